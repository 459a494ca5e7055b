"""The experiment grid: its specification, runner, results and the paper's findings.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.experiments`` stays cheap; the modules are ``cli``, ``findings``,
``real_edition``, ``results``, ``runner``, ``spec``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["cli", "findings", "real_edition", "results", "runner", "spec"],
    submod_attrs={
        "cli": ["main"],
        "findings": [
            "CONFIGURATION_EXTRAS", "FINDINGS", "STATUSES", "Finding", "Verdict", "at_ceiling",
            "class_improvements", "evaluate_findings", "findings_markdown", "improvements",
            "label_configurations", "normalise_metric"
        ],
        "real_edition": [
            "BEYOND_THE_PAPER", "COMPARED_METRICS", "HAM_IMAGE_DIR", "OUTSIDE_REFERENCES",
            "RESOLUTION_RUN", "SPLIT_SCHEME", "TOLERANCE", "beyond_the_paper",
            "build_real_manifests", "check_against_committed", "cohort_sentence", "cohort_summary",
            "collect_real", "committed_resolution", "committed_results", "compute_resolution",
            "data_checksums", "feature_run_facts", "headline", "headline_table",
            "machine_description", "provenance_markdown", "read_provenance", "real_grid_table",
            "real_manifest_path",
            "reference_points", "write_provenance"
        ],
        "results": [
            "RESULT_COLUMNS", "collect", "grid_status", "load_results", "read_status",
            "results_table"
        ],
        "runner": ["STATES", "choose_layout", "run_configuration", "run_grid"],
        "spec": [
            "CONFIG_COLUMNS", "DEFAULT_NOTEBOOKS", "Configuration", "Grid", "config_id", "load_grid"
        ],
    },
)

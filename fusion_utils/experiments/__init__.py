"""The experiment grid: its specification, runner, results and the paper's findings.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.experiments`` stays cheap; the modules are ``__main__``, ``findings``,
``grid``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["findings", "grid"],
    submod_attrs={
        "findings": [
            "FINDINGS", "STATUSES", "Finding", "Verdict", "at_ceiling", "class_improvements",
            "evaluate_findings", "findings_markdown", "improvements", "label_configurations",
            "normalise_metric"
        ],
        "grid": [
            "CONFIG_COLUMNS", "DEFAULT_NOTEBOOKS", "RESULT_COLUMNS", "Configuration", "Grid",
            "choose_layout", "collect", "config_id", "grid_status", "load_grid", "load_results",
            "main", "read_status", "run_configuration", "run_grid"
        ],
    },
)

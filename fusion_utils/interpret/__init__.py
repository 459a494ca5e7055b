"""Interpretability: classifier weights, feature importance and metadata-only baselines.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.interpret`` stays cheap; the modules are ``importance``, ``metadata_only``,
``plots``, ``runs``, ``shrinkage``, ``summary``, ``weights``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["importance", "metadata_only", "plots", "runs", "shrinkage", "summary", "weights"],
    submod_attrs={
        "importance": ["drop_column_ablation", "grouped_permutation_importance"],
        "metadata_only": [
            "DEFAULT_COLUMN_SETS", "LABEL_LEAK_COLUMNS", "fit_metadata_only", "parse_column_sets"
        ],
        "plots": [
            "note_figure", "plot_auroc_intervals", "plot_fig5", "plot_fig6", "plot_importance",
            "plot_per_class_auroc", "plot_raw_vs_standardised"
        ],
        "runs": [
            "FusedData", "RunWeights", "find_runs", "load_fused_data", "load_run", "pick_main_run",
            "run_parameters"
        ],
        "shrinkage": [
            "REAL_RUNS", "SETUPS", "committed_shrinkage", "main", "real_shrinkage",
            "shrinkage_conclusion", "shrinkage_table"
        ],
        "summary": ["metadata_only_summary", "reading_summary", "weight_ratio_summary"],
        "weights": [
            "IMAGE_PREFIX", "ClassifierWeights", "WeightBlocks", "block_summary", "feature_groups",
            "image_mask", "reading_comparison", "source_column", "split_blocks",
            "standardised_weights", "weight_scale_table", "weights_frame"
        ],
    },
)

"""Interpretability: classifier weights, feature importance and metadata-only baselines.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.interpret`` stays cheap; the modules are ``analysis``, ``plots``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=['analysis', 'plots'],
    submod_attrs={
        'analysis': ['DEFAULT_COLUMN_SETS', 'IMAGE_PREFIX', 'LABEL_LEAK_COLUMNS', 'ClassifierWeights', 'FusedData', 'RunWeights', 'WeightBlocks', 'block_summary', 'bootstrap_auroc_ci', 'drop_column_ablation', 'feature_groups', 'find_runs', 'fit_metadata_only', 'grouped_permutation_importance', 'image_mask', 'load_fused_data', 'load_run', 'macro_auroc', 'one_vs_rest_auroc', 'paired_bootstrap_delta', 'parse_column_sets', 'reading_comparison', 'run_parameters', 'source_column', 'split_blocks', 'standardised_weights', 'weight_scale_table', 'weights_frame'],
        'plots': ['plot_auroc_intervals', 'plot_fig5', 'plot_fig6', 'plot_importance', 'plot_raw_vs_standardised'],
    },
)

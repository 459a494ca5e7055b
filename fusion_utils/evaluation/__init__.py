"""The nine metrics, their significance, and the evaluation figures.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.evaluation`` stays cheap; the modules are ``bootstrap``, ``metrics``,
``plots``, ``significance``, ``summary``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["bootstrap", "metrics", "plots", "significance", "summary"],
    submod_attrs={
        "bootstrap": [
            "bootstrap_intervals", "check_level", "difference_name", "stratified_resamples"
        ],
        "metrics": [
            "METRICS", "UndefinedMetricWarning", "classification_report_table", "compare_models",
            "improvement", "improvement_table", "macro_auroc", "macro_summary", "midranks",
            "one_vs_rest_auroc", "one_vs_rest_counts", "per_class_metrics", "relative_change"
        ],
        "plots": [
            "METRIC_LABELS", "auroc_improvement_boxplot", "classwise_auroc_difference",
            "confusion_matrices", "improvement_frame", "improvement_heatmap", "macro_metric_bars",
            "roc_curves", "setup_label"
        ],
        "significance": [
            "FIG4_TESTS", "DeLongResult", "across_networks_test", "bootstrap_macro_ci",
            "classwise_delong", "delong_test", "delong_variance", "stars"
        ],
        "summary": ["data_label", "evaluation_summary"],
    },
)

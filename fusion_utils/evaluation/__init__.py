"""The nine metrics, their significance, and the evaluation figures.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.evaluation`` stays cheap; the modules are ``metrics``, ``plots``,
``significance``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["metrics", "plots", "significance"],
    submod_attrs={
        "metrics": [
            "METRICS", "UndefinedMetricWarning", "classification_report_table", "compare_models",
            "improvement", "improvement_table", "macro_summary", "one_vs_rest_counts",
            "per_class_metrics", "relative_change"
        ],
        "plots": [
            "METRIC_LABELS", "auroc_improvement_boxplot", "confusion_matrices", "improvement_frame",
            "improvement_heatmap", "macro_metric_bars", "roc_curves"
        ],
        "significance": [
            "DeLongResult", "bootstrap_macro_ci", "classwise_delong", "delong_test",
            "delong_variance", "fast_auc", "stars"
        ],
    },
)

"""Figures of the evaluation: improvement heatmap (Figs. 2-3), class-wise AUROC boxes across
networks (Fig. 4) and one configuration's class-wise AUROC difference with DeLong's interval,
macro metrics with class spread, ROC curves and confusion matrices.

Every function returns a :class:`matplotlib.figure.Figure` and imports matplotlib/seaborn lazily.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.evaluation.metrics import METRICS, improvement, one_vs_rest_auroc

__all__ = [
    "METRIC_LABELS",
    "auroc_improvement_boxplot",
    "classwise_auroc_difference",
    "confusion_matrices",
    "improvement_frame",
    "improvement_heatmap",
    "macro_metric_bars",
    "roc_curves",
    "setup_label",
]

METRIC_LABELS: dict[str, str] = {
    "accuracy": "Accuracy", "specificity": "Specificity", "sensitivity": "Sensitivity",
    "precision": "Precision", "f1": "F-measure", "informedness": "Informedness",
    "markedness": "Markedness", "mcc": "MCC", "auroc": "AUROC",
}
MODEL_COLORS: dict[str, str] = {"image": "#7f7f7f", "fused": "#1f77b4"}


def improvement_frame(df: pd.DataFrame, config_col: str = "configuration",
                      default_config: str = "this run") -> pd.DataFrame:
    """Normalise input for :func:`improvement_heatmap` to ``metric, configuration, improvement``.

    Accepts (a) a frame that already has ``improvement`` (percentage points), e.g.
    :func:`fusion_utils.experiments.findings.improvements`; (b) a wide frame with ``image`` and
    ``fused``
    fractions; (c) a tidy metrics frame (``metric, class, model, value``), from whose
    ``macro_mean`` rows the improvement ``100 * (fused - image)`` is computed.
    """
    frame = df.copy()
    if config_col not in frame.columns:
        frame[config_col] = frame["config_label"] if "config_label" in frame.columns \
            else default_config
    if "improvement" not in frame.columns:
        if {"image", "fused"} <= set(frame.columns):
            frame["improvement"] = improvement(frame["image"].to_numpy(float),
                                               frame["fused"].to_numpy(float))
        elif {"model", "value", "class"} <= set(frame.columns):
            macro = frame[frame["class"].astype(str) == "macro_mean"]
            wide = macro.pivot_table(index=[config_col, "metric"], columns="model",
                                     values="value", aggfunc="first").reset_index()
            wide["improvement"] = improvement(wide["image"].to_numpy(float),
                                              wide["fused"].to_numpy(float))
            frame = wide
        else:
            raise ValueError("improvement_heatmap needs an 'improvement' column, 'image' and "
                             "'fused' columns, or a tidy metrics frame (metric, class, model, "
                             f"value); got columns {list(df.columns)}")
    return frame[["metric", config_col, "improvement"]].rename(columns={config_col:
                                                                        "configuration"})


def improvement_heatmap(df: pd.DataFrame, *, config_col: str = "configuration",
                        title: str | None = None, ax: Any = None, limit: float | None = None,
                        annot: bool = True) -> Any:
    """Metrics x configurations heatmap of the macro improvement in percentage points (Figs. 2-3).

    Parameters
    ----------
    df : DataFrame
        See :func:`improvement_frame`; any number of configurations (columns of the heatmap).
    config_col : str
        Column naming the configuration (default ``configuration``; ``config_label`` is used when
        present and ``configuration`` is not).
    title : str, optional
    ax : matplotlib Axes, optional
    limit : float, optional
        Symmetric colour limit; default: the largest absolute value (at least 1).
    annot : bool
        Write the values in the cells.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = improvement_frame(df, config_col=config_col)
    order = [m for m in METRICS if m in set(frame["metric"])] + \
        sorted(set(frame["metric"]) - set(METRICS))
    table = frame.pivot_table(index="metric", columns="configuration", values="improvement",
                              aggfunc="mean", sort=False).reindex(order)
    table.index = [METRIC_LABELS.get(m, m) for m in table.index]
    if limit is None:
        finite = np.abs(table.to_numpy(float))
        limit = max(1.0, float(np.nanmax(finite)) if np.isfinite(finite).any() else 1.0)
    if ax is None:
        fig, ax = plt.subplots(figsize=(2.2 + 1.0 * max(1, table.shape[1]), 4.2))
    else:
        fig = ax.figure
    sns.heatmap(table, ax=ax, cmap="RdBu", center=0, vmin=-limit, vmax=limit, annot=annot,
                fmt=".1f", cbar_kws={"label": "fused - image (percentage points)"},
                linewidths=0.5, linecolor="white")
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(axis="x", rotation=30)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def setup_label(mode: Any, augment: Any) -> str:
    """The paper's name of a set-up: ``"BN"``, ``"BN aug"``, ``"FT"``, ``"FT aug"`` (else "all")."""
    name = "" if mode is None or (isinstance(mode, float) and np.isnan(mode)) else str(mode).upper()
    aug = " aug" if isinstance(augment, (bool, np.bool_)) and augment else ""
    return (name + aug).strip() or "all"


def auroc_improvement_boxplot(classwise: pd.DataFrame, *, test: str = "wilcoxon",
                              network: str = "backbone", title: str | None = None,
                              ax: Any = None) -> Any:
    """The paper's Fig. 4: per class and set-up, a box of the AUROC differences across networks.

    Each box holds one point per network (``fused - image``, percentage points) for one class and
    one set-up (BN/FT, with or without augmentation); the stars above it come from the paired
    test across networks (:func:`fusion_utils.evaluation.significance.across_networks_test`:
    ``**`` p <= 0.05, ``*`` p <= 0.10). With one network a box is a single point and has no test.

    Parameters
    ----------
    classwise : DataFrame
        One row per configuration and class: ``class``, ``image`` and ``fused`` AUROC
        (fractions), the ``network`` column, and ``mode``/``augment`` when the set-ups vary
        (:func:`fusion_utils.experiments.findings.class_improvements`).
    test : {"wilcoxon", "ttest"}
        The across-networks test.
    network : str
        Column naming the network.
    title : str, optional
    ax : matplotlib Axes, optional
    """
    import matplotlib.pyplot as plt

    from fusion_utils.evaluation.significance import across_networks_test

    frame = classwise.copy()
    for col in ("mode", "augment"):
        if col not in frame.columns:
            frame[col] = None
    if network not in frame.columns:
        frame[network] = "this run"
    frame["setup"] = [setup_label(m, a) for m, a in zip(frame["mode"], frame["augment"],
                                                         strict=True)]
    tests = across_networks_test(frame, by=("class", "setup"), network=network, test=test)
    per_net = (frame.groupby(["class", "setup", network], sort=False)[["image", "fused"]].mean()
               .reset_index())
    per_net["improvement"] = improvement(per_net["image"].to_numpy(float),
                                         per_net["fused"].to_numpy(float))
    classes = list(dict.fromkeys(frame["class"].astype(str)))
    setups = [s for s in ("BN", "BN aug", "FT", "FT aug") if s in set(frame["setup"])] + \
        sorted(set(frame["setup"]) - {"BN", "BN aug", "FT", "FT aug"})
    if ax is None:
        width_in = 2.0 + 0.45 * len(classes) * len(setups) + 0.4 * len(classes)
        fig, ax = plt.subplots(figsize=(width_in, 4.0))
    else:
        fig = ax.figure
    width = 0.8 / len(setups)
    colors = plt.get_cmap("tab10")
    rng = np.random.default_rng(0)
    top = float(np.nanmax(np.abs(per_net["improvement"]))) if len(per_net) else 1.0
    for j, setup in enumerate(setups):
        for i, cls in enumerate(classes):
            x = i + (j - (len(setups) - 1) / 2) * width
            vals = per_net.loc[(per_net["class"].astype(str) == cls)
                               & (per_net["setup"] == setup), "improvement"].dropna().to_numpy()
            if not len(vals):
                continue
            ax.boxplot([vals], positions=[x], widths=width * 0.8, showfliers=False,
                       patch_artist=True, boxprops={"facecolor": colors(j), "alpha": 0.45},
                       medianprops={"color": "black"})
            ax.scatter(x + rng.uniform(-0.2, 0.2, len(vals)) * width, vals, s=10,
                       color=colors(j), edgecolor="black", linewidth=0.3, zorder=3)
            mark = tests.loc[(tests["class"].astype(str) == cls) & (tests["setup"] == setup),
                             "stars"]
            if len(mark) and mark.iloc[0]:
                ax.text(x, np.nanmax(vals) + 0.04 * max(top, 1.0), mark.iloc[0], ha="center",
                        va="bottom", fontsize=9)
        ax.bar([np.nan], [np.nan], color=colors(j), alpha=0.45, label=setup)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(np.arange(len(classes)), classes)
    ax.set_ylabel("AUROC, fused - image (percentage points)")
    ax.legend(title="set-up", fontsize=8, title_fontsize=8)
    name = {"wilcoxon": "Wilcoxon signed-rank", "ttest": "paired t-test"}.get(test, test)
    ax.set_title(title or f"Class-wise AUROC improvement across networks (* p<=0.10, "
                 f"** p<=0.05, {name})", fontsize=10)
    fig.tight_layout()
    return fig


def classwise_auroc_difference(sig: pd.DataFrame, *, title: str | None = None,
                               ax: Any = None) -> Any:
    """One configuration's class-wise AUROC difference with DeLong's 95% interval and stars.

    Parameters
    ----------
    sig : DataFrame
        :func:`fusion_utils.evaluation.significance.classwise_delong`: ``class``, ``auc_image``,
        ``auc_fused``, ``se``, ``stars``. The point is ``fused - image`` in percentage points,
        the bar ``+-1.96`` DeLong standard errors.
    title : str, optional
    ax : matplotlib Axes, optional
    """
    import matplotlib.pyplot as plt

    frame = sig.reset_index(drop=True)
    diff = improvement(frame["auc_image"].to_numpy(float), frame["auc_fused"].to_numpy(float))
    half = improvement(0.0, 1.96 * frame["se"].to_numpy(float))
    if ax is None:
        fig, ax = plt.subplots(figsize=(2.5 + 0.8 * len(frame), 3.6))
    else:
        fig = ax.figure
    x = np.arange(len(frame))
    ax.errorbar(x, diff, yerr=half, fmt="o", color="#1f77b4", ecolor="grey", capsize=4)
    for xi, d, h, mark in zip(x, diff, half, frame["stars"], strict=True):
        if mark and np.isfinite(d):
            ax.text(xi, d + (h if np.isfinite(h) else 0), mark, ha="center", va="bottom")
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(x, frame["class"].astype(str))
    ax.set_ylabel("AUROC, fused - image (percentage points)")
    ax.set_title(title or "Class-wise AUROC difference, DeLong 95% interval "
                 "(* p<=0.10, ** p<=0.05)", fontsize=10)
    fig.tight_layout()
    return fig


def macro_metric_bars(metrics: pd.DataFrame, title: str | None = None) -> Any:
    """Macro mean (bars) +- std across classes (error bars) of each metric, image vs fused."""
    import matplotlib.pyplot as plt

    mean = metrics[metrics["class"] == "macro_mean"].pivot_table(
        index="metric", columns="model", values="value", aggfunc="first")
    std = metrics[metrics["class"] == "macro_std"].pivot_table(
        index="metric", columns="model", values="value", aggfunc="first")
    order = [m for m in METRICS if m in mean.index]
    models = [m for m in ("image", "fused") if m in mean.columns] + \
        [m for m in mean.columns if m not in ("image", "fused")]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(order))
    for j, model in enumerate(models):
        ax.bar(x + (j - (len(models) - 1) / 2) * width, mean.loc[order, model], width,
               yerr=std.reindex(index=order).get(model), capsize=3, label=model,
               color=MODEL_COLORS.get(model))
    ax.set_xticks(x, [METRIC_LABELS.get(m, m) for m in order], rotation=30)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("macro mean (error bar: std across classes)")
    ax.legend(title="classifier")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def roc_curves(y_true: Sequence, probas: Mapping[str, np.ndarray], classes: Sequence[str],
               sig: pd.DataFrame | None = None) -> Any:
    """One-vs-rest ROC curves, one panel per class, one line per model (AUROC in the legend)."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    y = np.asarray(y_true).astype(str)
    classes = list(np.asarray(classes, dtype=str))
    ncol = min(4, len(classes))
    nrow = int(np.ceil(len(classes) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.1 * nrow), squeeze=False)
    star = {} if sig is None else dict(zip(sig["class"].astype(str), sig["stars"], strict=False))
    for k, cls in enumerate(classes):
        ax = axes.flat[k]
        pos = y == cls
        ax.plot([0, 1], [0, 1], color="lightgrey", lw=1)
        if 0 < pos.sum() < len(y):
            for model, proba in probas.items():
                fpr, tpr, _ = roc_curve(pos, np.asarray(proba)[:, k])
                auc = one_vs_rest_auroc(y, np.asarray(proba), classes)[k]
                ax.plot(fpr, tpr, label=f"{model} {auc:.3f}", color=MODEL_COLORS.get(model))
            ax.legend(fontsize=7, loc="lower right", title="AUROC", title_fontsize=7)
        else:
            ax.text(0.5, 0.5, "no positives\nor negatives", ha="center", va="center")
        ax.set_title(f"{cls} {star.get(cls, '')}".strip())
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
    for ax in list(axes.flat)[len(classes):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def confusion_matrices(y_true: Sequence, probas: Mapping[str, np.ndarray],
                       classes: Sequence[str], normalize: bool = True) -> Any:
    """Confusion matrices (rows: true class, columns: predicted), one panel per model.

    With ``normalize`` each row is divided by its count (the diagonal is the sensitivity); the
    cell text gives the counts.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns
    from sklearn.metrics import confusion_matrix

    y = np.asarray(y_true).astype(str)
    classes = np.asarray(classes, dtype=str)
    fig, axes = plt.subplots(1, len(probas), figsize=(3.6 * len(probas) + 0.6, 3.4),
                             squeeze=False)
    for ax, (model, proba) in zip(axes[0], probas.items(), strict=True):
        pred = classes[np.argmax(np.asarray(proba), axis=1)]
        cm = confusion_matrix(y, pred, labels=classes)
        rows = cm.sum(axis=1, keepdims=True)
        shown = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0) \
            if normalize else cm
        sns.heatmap(shown, ax=ax, annot=cm, fmt="d", cmap="Blues", vmin=0,
                    vmax=1 if normalize else None, cbar=False, xticklabels=classes,
                    yticklabels=classes)
        ax.set_title(model)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.tight_layout()
    return fig

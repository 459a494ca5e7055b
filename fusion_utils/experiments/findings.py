"""The paper's findings, checked one by one against a grid's results table.

Thomas (2021) states its headline claims in the abstract and conclusion (metadata significantly
improves nearly every metric; BN suits natural images, FT scalograms; at negligible extra cost)
and details them in sections III.B-E (which configurations gain most, which degrade, how the
image weights shrink). Each is coded here as a :class:`Finding` whose check reads the tidy
results table of :func:`fusion_utils.experiments.results.collect` and returns a
:class:`Verdict`: ``reproduced``, ``not reproduced`` or ``not testable`` (the grid lacks the
datasets, backbones, modes or columns the finding is about), with the numbers behind it.

Two findings read the per-configuration columns of the results table
(:data:`CONFIGURATION_EXTRAS`, derived from each run folder by
:func:`fusion_utils.experiments.results.run_columns`): the image-weight shrinkage needs
``image_weight_ratio`` and the cost ``fit_seconds_image``, ``fit_seconds_fused`` and
``extraction_seconds`` (``finetune_seconds`` counted when present). When a table lacks them (or
they are all NaN: run folders without the classifier or timing files) their verdict is
``not testable`` and names what is missing.

Improvement is the paper's: the difference fused - image of a metric's value, in percentage points
(Figs. 2-3: 70% -> 80% is +10), computed from the ``macro_mean`` rows (Figs. 2-3) or from each
class's AUROC (Fig. 4). Metric values are taken as fractions in [0, 1] (notebook 05's convention).

Configurations whose image-only classifier is already perfect (:func:`at_ceiling`) are left out:
metadata cannot improve them, so they would only dilute the comparisons.

A finding reproduced on the synthetic demo cohort shows that the pipeline computes the comparison,
not that the science holds: the demo cohort's metadata-label relation is made up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusion_utils.evaluation.metrics import improvement

__all__ = [
    "CONFIGURATION_EXTRAS",
    "FINDINGS",
    "STATUSES",
    "Finding",
    "Verdict",
    "at_ceiling",
    "class_improvements",
    "evaluate_findings",
    "findings_markdown",
    "improvements",
    "label_configurations",
    "normalise_metric",
]

STATUSES: tuple[str, ...] = ("reproduced", "not reproduced", "not testable")
KEY_COLUMNS: tuple[str, ...] = ("config_id", "dataset", "backbone", "mode", "augment")

CONFIGURATION_EXTRAS: tuple[str, ...] = (
    "image_weight_ratio", "fit_seconds_image", "fit_seconds_fused", "extraction_seconds",
    "finetune_seconds",
)
"""Per-configuration columns of a results table that some findings read.

``image_weight_ratio``: median ``|w|`` of the image-feature weights of the image-only classifier
divided by that of the fused classifier (the paper's Fig. 5 statistic, as
:func:`fusion_utils.interpret.weights.weight_scale_table` computes it). ``fit_seconds_image``,
``fit_seconds_fused``: the two softmax fits; ``extraction_seconds``, ``finetune_seconds``: feature
extraction and fine-tuning (a run folder's ``timings.json`` holds these as ``fit_image``,
``fit_fused``, ``extraction`` and ``finetune``).
"""

#: Metrics of the paper's Figs. 2-3 (threshold metrics; AUROC is Fig. 4's).
FIG23_METRICS: tuple[str, ...] = ("accuracy", "specificity", "sensitivity", "precision", "f1",
                                  "informedness", "markedness", "mcc")

#: Share of the image features' time (extraction plus fine-tuning) below which the fused
#: classifier's fit counts as a negligible extra cost.
NEGLIGIBLE_COST = 0.05

#: Image-weight shrinkage the paper reports: one to three orders of magnitude.
SHRINKAGE_FACTOR = 10.0

#: Fewest networks for which the two-sided Wilcoxon test across networks can reach p <= 0.05.
MIN_NETWORKS_FOR_WILCOXON = 6

#: Canonical metric names and the spellings accepted for each.
_METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "acc"),
    "specificity": ("specificity", "tnr", "truenegativerate"),
    "sensitivity": ("sensitivity", "recall", "tpr", "truepositiverate"),
    "precision": ("precision", "ppv"),
    "f1": ("f1", "fmeasure", "f1score", "fscore"),
    "informedness": ("informedness", "youden", "youdensj", "bookmakerinformedness"),
    "markedness": ("markedness",),
    "mcc": ("mcc", "matthews", "matthewscorrcoef", "matthewscorrelationcoefficient"),
    "auroc": ("auroc", "auc", "rocauc"),
}
_ALIAS_TO_METRIC = {a: m for m, aliases in _METRIC_ALIASES.items() for a in aliases}


def normalise_metric(name: str) -> str:
    """Canonical metric name (``"F-measure"`` -> ``"f1"``, ``"AUC"`` -> ``"auroc"``); else as is."""
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return _ALIAS_TO_METRIC.get(key, str(name))


def _check_results(results: pd.DataFrame) -> pd.DataFrame:
    required = {"config_id", "dataset", "metric", "class", "model", "value"}
    missing = required - set(results.columns)
    if missing:
        raise ValueError(f"results table lacks column(s) {', '.join(sorted(missing))}; pass the "
                         "table of fusion_utils.experiments.results.collect(runs_dir)")
    df = results.copy()
    for col in ("backbone", "mode", "augment"):
        if col not in df.columns:
            df[col] = None
    df["metric"] = df["metric"].map(normalise_metric)
    return df


def _image_vs_fused(rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per configuration and ``key``: image and fused values, improvement in points."""
    wide = rows.pivot_table(index=[*KEY_COLUMNS, key], columns="model", values="value",
                            aggfunc="first", dropna=False).reset_index()
    wide.columns.name = None
    for model in ("image", "fused"):
        if model not in wide.columns:
            wide[model] = np.nan
    wide = wide.dropna(subset=["image", "fused"], how="all")
    wide["improvement"] = improvement(wide["image"].to_numpy(float), wide["fused"].to_numpy(float))
    return wide


def improvements(results: pd.DataFrame) -> pd.DataFrame:
    """Macro-mean improvement per configuration and metric (fused - image, percentage points).

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy results (:data:`fusion_utils.experiments.results.RESULT_COLUMNS`).

    Returns
    -------
    pandas.DataFrame
        ``config_id``, ``dataset``, ``backbone``, ``mode``, ``augment``, ``metric``, ``image``,
        ``fused`` and ``improvement`` (``100 * (fused - image)``).
    """
    df = _check_results(results)
    macro = df[df["class"].astype(str).eq("macro_mean")]
    wide = _image_vs_fused(macro, "metric")
    return wide[[*KEY_COLUMNS, "metric", "image", "fused", "improvement"]].reset_index(drop=True)


def class_improvements(results: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Class-wise improvement of one metric (the paper's Fig. 4 uses AUROC), with p-values.

    Returns
    -------
    pandas.DataFrame
        ``config_id``, ``dataset``, ``backbone``, ``mode``, ``augment``, ``class``, ``image``,
        ``fused``, ``improvement`` (percentage points), ``p_value`` and ``stars`` (from the fused
        rows, when the table has them).
    """
    df = _check_results(results)
    rows = df[df["metric"].eq(normalise_metric(metric))
              & ~df["class"].astype(str).isin(["macro_mean", "macro_std"])]
    wide = _image_vs_fused(rows, "class")
    extra = [c for c in ("p_value", "stars") if c in rows.columns]
    if extra:
        fused = rows[rows["model"].eq("fused")][[*KEY_COLUMNS, "class", *extra]]
        wide = wide.merge(fused.drop_duplicates([*KEY_COLUMNS, "class"]),
                          on=[*KEY_COLUMNS, "class"], how="left")
    for col in ("p_value", "stars"):
        if col not in wide.columns:
            wide[col] = np.nan if col == "p_value" else ""
    return wide[[*KEY_COLUMNS, "class", "image", "fused", "improvement", "p_value", "stars"]]


@dataclass(frozen=True)
class Verdict:
    """Outcome of one finding's check: a status from :data:`STATUSES` and the numbers behind it."""

    status: str
    evidence: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r}: expected one of {', '.join(STATUSES)}")


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings and how to check it.

    Attributes
    ----------
    key : str
        Short identifier.
    source : str
        Where the paper states it (section, figure).
    claim : str
        The finding in words, with how it is measured here.
    check : callable
        ``check(macro, classwise, tol) -> Verdict``, with ``macro`` from :func:`improvements`
        (plus any :data:`CONFIGURATION_EXTRAS` column of the results table, one value per
        configuration) and ``classwise`` from :func:`class_improvements`.
    """

    key: str
    source: str
    claim: str
    check: Callable[[pd.DataFrame, pd.DataFrame, float], Verdict]


def _untestable(why: str) -> Verdict:
    return Verdict("not testable", why)


def _verdict(ok: bool, evidence: str) -> Verdict:
    return Verdict("reproduced" if ok else "not reproduced", evidence)


def _per_config(macro: pd.DataFrame) -> pd.DataFrame:
    """Mean improvement over metrics, one row per configuration."""
    return (macro.groupby(list(KEY_COLUMNS), dropna=False)["improvement"].mean()
            .rename("improvement").reset_index())


def _fmt(x: float) -> str:
    return f"{x:+.2f} pp"


def _mode_contrast(dataset: str, better: str, metric: str | None = None):
    worse = "ft" if better == "bn" else "bn"

    def check(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
        if metric is None:
            table = macro[macro["dataset"].eq(dataset)]
            what = "mean macro improvement over all metrics"
        else:
            table = classwise[classwise["dataset"].eq(dataset)]
            what = f"mean class-wise {metric.upper()} improvement"
        means = table.groupby("mode")["improvement"].mean()
        if better not in means.index or worse not in means.index:
            return _untestable(f"needs both BN and FT configurations of {dataset}; has "
                               f"{', '.join(map(str, means.index)) or 'none'}")
        ok = bool(means[better] > means[worse])
        return _verdict(ok, f"{dataset} {what}: BN {_fmt(means.get('bn'))}, "
                            f"FT {_fmt(means.get('ft'))}")
    return check


def _ham_improves_almost_all(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    table = macro[macro["dataset"].eq("ham10000") & macro["metric"].ne("auroc")].dropna(
        subset=["improvement"])
    if table.empty:
        return _untestable("no HAM10000 configuration in the results")
    share = float((table["improvement"] >= -tol).mean())
    return _verdict(share >= 0.8, f"{(table['improvement'] >= -tol).sum()} of {len(table)} "
                                  f"(configuration, metric) pairs ({share:.0%}) improve or change "
                                  f"less than {tol} pp (reproduced at >= 80%)")


def _degrades(backbone: str, augment: bool | None):
    label = f"{backbone} FT" + ("" if augment is None else
                                " with augmentation" if augment else " without augmentation")

    def check(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
        per = _per_config(macro)
        rows = per[per["dataset"].eq("ham10000") & per["backbone"].eq(backbone)
                   & per["mode"].eq("ft")]
        if augment is not None:
            rows = rows[rows["augment"].astype(bool) == augment]
        if rows.empty:
            return _untestable(f"needs {label} on HAM10000; the grid has no such configuration")
        ok = bool((rows["improvement"] < 0).all())
        detail = ", ".join(f"{r.config_id} {_fmt(r.improvement)}" for r in rows.itertuples())
        return _verdict(ok, f"mean macro improvement: {detail} (reproduced when all < 0)")
    return check


def _acc_spec_least(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    table = macro[macro["dataset"].eq("ham10000")]
    if table.empty:
        return _untestable("no HAM10000 configuration in the results")
    mean_abs = table.groupby("metric")["improvement"].apply(lambda s: s.abs().mean())
    others = [m for m in ("sensitivity", "precision", "f1", "informedness", "markedness", "mcc")
              if m in mean_abs.index]
    if not {"accuracy", "specificity"} <= set(mean_abs.index) or not others:
        return _untestable("needs accuracy, specificity and the other threshold metrics; has "
                           + ", ".join(mean_abs.index))
    if not (mean_abs > 0).any():
        return _untestable("metadata changed no metric on HAM10000: nothing to rank")
    ok = bool(max(mean_abs["accuracy"], mean_abs["specificity"]) < mean_abs[others].min())
    ranked = ", ".join(f"{m} {mean_abs[m]:.2f}" for m in mean_abs[["accuracy", "specificity",
                                                                  *others]].sort_values().index)
    return _verdict(ok, f"mean |improvement| (pp) on HAM10000, smallest first: {ranked}")


def _ptbxl_larger_scale(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    scale = macro.groupby("dataset")["improvement"].apply(lambda s: s.abs().mean())
    if not {"ptbxl", "ham10000"} <= set(scale.index):
        return _untestable("needs both datasets")
    return _verdict(bool(scale["ptbxl"] > scale["ham10000"]),
                    f"mean |improvement|: PTB-XL {scale['ptbxl']:.2f} pp, HAM10000 "
                    f"{scale['ham10000']:.2f} pp")


def _ptbxl_accuracy_all(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    rows = macro[macro["dataset"].eq("ptbxl") & macro["metric"].eq("accuracy")]
    if rows.empty:
        return _untestable("no PTB-XL accuracy in the results")
    ok = bool((rows["improvement"] > 0).all())
    worst = rows.loc[rows["improvement"].idxmin()]
    return _verdict(ok, f"{(rows['improvement'] > 0).sum()} of {len(rows)} PTB-XL configurations "
                        f"gain accuracy; smallest {worst['config_id']} "
                        f"{_fmt(worst['improvement'])}")


def _ptbxl_ft_all(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    per = _per_config(macro)
    rows = per[per["dataset"].eq("ptbxl") & per["mode"].eq("ft")]
    if rows.empty:
        return _untestable("no fine-tuned PTB-XL configuration in the results")
    ok = bool((rows["improvement"] > tol).all())
    detail = ", ".join(f"{r.config_id} {_fmt(r.improvement)}" for r in rows.itertuples())
    return _verdict(ok, f"mean macro improvement: {detail} (reproduced when all > {tol} pp)")


def _ptbxl_ft_aug_larger(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    per = _per_config(macro)
    rows = per[per["dataset"].eq("ptbxl") & per["mode"].eq("ft")]
    pairs = rows.pivot_table(index="backbone", columns=rows["augment"].astype(bool),
                             values="improvement", aggfunc="mean")
    if True not in pairs.columns or False not in pairs.columns:
        return _untestable("needs PTB-XL FT configurations with and without augmentation")
    pairs = pairs.dropna()
    checked = pairs.drop(index=[b for b in pairs.index if b == "densenet201"])
    if checked.empty:
        return _untestable("needs a backbone other than densenet201 with both augmentation "
                           "settings")
    larger = checked[True] > checked[False]
    detail = ", ".join(f"{b}: aug {_fmt(r[True])} vs no aug {_fmt(r[False])}"
                       for b, r in checked.iterrows())
    return _verdict(bool(larger.all()), detail + " (densenet201, the paper's exception, excluded)")


def _auroc_no_drop(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    if classwise.empty:
        return _untestable("no class-wise AUROC in the results")
    per = classwise.groupby("config_id")["improvement"].mean()
    drops = per[per < -tol]
    return _verdict(len(drops) <= 1,
                    f"{len(drops)} of {len(per)} configurations lose more than {tol} pp of mean "
                    "class-wise AUROC"
                    + (f": {', '.join(f'{k} {_fmt(v)}' for k, v in drops.items())}"
                       if len(drops) else "")
                    + " (the paper: one, VGG16 BN on HAM10000)")


def _augmentation_helps(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    if classwise.empty:
        return _untestable("no class-wise AUROC in the results")
    per = (classwise.groupby(["dataset", "backbone", "mode", classwise["augment"].astype(bool)])
           ["improvement"].mean().unstack("augment"))
    if True not in per.columns or False not in per.columns:
        return _untestable("needs configurations with and without augmentation")
    per = per.dropna()
    if per.empty:
        return _untestable("no matched pair of configurations with and without augmentation")
    parts, ok = [], True
    for dataset, sub in per.groupby(level="dataset"):
        wins = int((sub[True] > sub[False]).sum())
        ok &= wins * 2 > len(sub)
        parts.append(f"{dataset}: augmentation larger in {wins} of {len(sub)} pairs")
    return _verdict(ok, "; ".join(parts) + " (reproduced when a majority in each dataset)")


def _ham_big_four(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    four = {"mobilenet_v2", "googlenet", "densenet201", "inception_resnet_v2"}
    per = macro[macro["dataset"].eq("ham10000")].groupby("backbone")["improvement"].mean()
    inside, outside = per[per.index.isin(four)], per[~per.index.isin(four)]
    if inside.empty or outside.empty:
        return _untestable("needs on HAM10000 at least one of mobilenet_v2, googlenet, "
                           "densenet201, inception_resnet_v2 and one other backbone; "
                           f"has {', '.join(per.index)}")
    ok = bool(inside.min() > outside.max())
    return _verdict(ok, f"the four: {', '.join(f'{b} {_fmt(v)}' for b, v in inside.items())}; "
                        f"others: {', '.join(f'{b} {_fmt(v)}' for b, v in outside.items())}")


def _metadata_improves_metrics(macro: pd.DataFrame, classwise: pd.DataFrame,
                               tol: float) -> Verdict:
    means = macro.groupby("metric")["improvement"].mean().dropna().sort_values()
    if len(means) < 2:
        return _untestable("needs image-only and fused values of several metrics; has "
                           f"{', '.join(means.index) or 'none'}")
    losing = means[means <= 0]
    detail = ", ".join(f"{m} {_fmt(v)}" for m, v in means.items())
    return _verdict(len(losing) <= 1,
                    f"mean improvement over {macro['config_id'].nunique()} configuration(s), "
                    f"lowest first: {detail}; {len(losing)} of {len(means)} metrics not improved "
                    "(reproduced when at most one)")


_LISTED_HAM_DEGRADATIONS: tuple[tuple[str, bool | None], ...] = (("alexnet", None),
                                                                 ("vgg19", True))


def _ham_only_listed_degrade(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    rows = macro[macro["dataset"].eq("ham10000") & macro["metric"].isin(FIG23_METRICS)]
    per = _per_config(rows).dropna(subset=["improvement"])
    listed = pd.Series(False, index=per.index)
    for backbone, augment in _LISTED_HAM_DEGRADATIONS:
        hit = per["backbone"].eq(backbone) & per["mode"].eq("ft")
        if augment is not None:
            hit &= per["augment"].astype(bool) == augment
        listed |= hit
    others = per[~listed]
    if others.empty:
        return _untestable("needs a HAM10000 configuration other than AlexNet FT and VGG19 FT "
                           "with augmentation")
    worse = others[others["improvement"] < -tol]
    detail = (", ".join(f"{r.config_id} {_fmt(r.improvement)}" for r in worse.itertuples())
              if len(worse) else f"smallest {_fmt(others['improvement'].min())}")
    return _verdict(worse.empty, f"{len(worse)} of {len(others)} other HAM10000 configurations "
                                 f"lose more than {tol} pp (mean over the Fig. 2 metrics): "
                                 f"{detail}")


def _ptbxl_bn_small_or_degrades(macro: pd.DataFrame, classwise: pd.DataFrame,
                                tol: float) -> Verdict:
    rows = macro[macro["dataset"].eq("ptbxl") & macro["mode"].eq("bn")
                 & macro["metric"].isin(FIG23_METRICS) & macro["metric"].ne("accuracy")]
    per = _per_config(rows).dropna(subset=["improvement"])
    if per.empty:
        return _untestable("no PTB-XL BN configuration in the results")
    gains = per[per["improvement"] > tol]
    detail = ", ".join(f"{r.config_id} {_fmt(r.improvement)}" for r in per.itertuples())
    return _verdict(gains.empty, "mean improvement over the Fig. 3 metrics other than accuracy: "
                                 f"{detail} (reproduced when none gains more than {tol} pp)")


def _vgg16_bn_auroc_drops(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    ham = classwise[classwise["dataset"].eq("ham10000")].dropna(subset=["improvement"])
    vgg16 = ham[ham["backbone"].eq("vgg16") & ham["mode"].eq("bn")]
    if vgg16.empty:
        return _untestable("needs VGG16 BN on HAM10000; the grid has no such configuration")
    per = ham.groupby("config_id")["improvement"].mean()
    worst = str(per.idxmin())
    ok = worst in set(vgg16["config_id"]) and bool(per[worst] < -tol)
    return _verdict(ok, f"largest drop: {worst} {_fmt(per[worst])} (mean class-wise AUROC "
                        f"improvement; reproduced when it is a VGG16 BN configuration and below "
                        f"-{tol} pp)")


def _significant_gain(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    rows = classwise.dropna(subset=["improvement"])
    if rows.empty:
        return _untestable("no class-wise AUROC in the results")
    rows = rows.assign(augment=rows["augment"].astype(bool))
    networks = rows.groupby(["dataset", "mode", "augment", "class"])["backbone"].nunique()
    if int(networks.max()) >= MIN_NETWORKS_FOR_WILCOXON:
        from fusion_utils.evaluation.significance import across_networks_test

        tests = across_networks_test(rows)
        tested = tests[tests["n_networks"] >= MIN_NETWORKS_FOR_WILCOXON]
        hits = tested[(tested["p_value"] <= 0.05) & (tested["mean_improvement"] > 0)]
        how = ("paired Wilcoxon test across networks per dataset, set-up and class "
               "(fusion_utils.evaluation.significance.across_networks_test)")
        units = "set-up x class groups"
    else:
        tested = rows.dropna(subset=["p_value"])
        if tested.empty:
            return _untestable("the results have no p-values (significance.parquet) and fewer "
                               f"than {MIN_NETWORKS_FOR_WILCOXON} networks per set-up for a "
                               "test across networks")
        hits = tested[(tested["p_value"] <= 0.05) & (tested["improvement"] > 0)]
        how = (f"per-configuration DeLong p-values, as the grid has at most "
               f"{int(networks.max())} network(s) per set-up, fewer than the "
               f"{MIN_NETWORKS_FOR_WILCOXON} a paired test across networks needs to reach "
               "p <= 0.05")
        units = "configuration x class pairs"
    counts = tested.groupby("dataset").size()
    found = hits.groupby("dataset").size()
    parts = [f"{d}: {int(found.get(d, 0))} of {int(n)} {units} with a significant gain"
             for d, n in counts.items()]
    ok = bool(len(counts)) and all(found.get(d, 0) > 0 for d in counts.index)
    return _verdict(ok, f"{how}; " + "; ".join(parts) + " (p <= 0.05; reproduced when at least "
                        "one in each dataset)")


def _missing_columns(macro: pd.DataFrame, needed: Sequence[str]) -> list[str]:
    return [c for c in needed if c not in macro.columns or macro[c].isna().all()]


def _image_weight_shrinkage(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    if _missing_columns(macro, ["image_weight_ratio"]):
        return _untestable("not testable from the results table: it needs a column "
                           "image_weight_ratio (per configuration, median |w| of the image-feature "
                           "weights of the image-only classifier over that of the fused one, "
                           "from classifier_image.npz and classifier_fused.npz; chapter 06 "
                           "computes it for one configuration)")
    per = macro.groupby("config_id")["image_weight_ratio"].first().dropna().astype(float)
    low = per[per < SHRINKAGE_FACTOR]
    return _verdict(low.empty, f"image-weight ratio (image-only / fused) in {len(per)} "
                               f"configuration(s): {per.min():.3g} to {per.max():.3g}; "
                               f"{len(low)} below {SHRINKAGE_FACTOR:g} (reproduced when none)")


_COST_COLUMNS: tuple[str, ...] = ("fit_seconds_image", "fit_seconds_fused", "extraction_seconds")


def _negligible_cost(macro: pd.DataFrame, classwise: pd.DataFrame, tol: float) -> Verdict:
    missing = _missing_columns(macro, _COST_COLUMNS)
    if missing:
        return _untestable("not testable from the results table: it lacks column(s) "
                           f"{', '.join(missing)} (seconds per configuration; a run folder's "
                           "timings.json records fit_image, fit_fused, extraction and finetune)")
    cols = [*_COST_COLUMNS, *(["finetune_seconds"] if "finetune_seconds" in macro.columns else [])]
    per = (macro.groupby("config_id")[cols].first().astype(float)
           .dropna(subset=list(_COST_COLUMNS)))
    if per.empty:
        return _untestable("no configuration has all of " + ", ".join(_COST_COLUMNS))
    features = per["extraction_seconds"]
    if "finetune_seconds" in per.columns:
        features = features + per["finetune_seconds"].fillna(0.0)
    share = per["fit_seconds_fused"] / features.where(features > 0)
    slow = share[~(share < NEGLIGIBLE_COST)]
    ratio = float((per["fit_seconds_fused"] / per["fit_seconds_image"]).median())
    return _verdict(slow.empty, f"fused fit / (extraction + fine-tuning) in {len(per)} "
                                f"configuration(s): {share.min():.2%} to {share.max():.2%}; "
                                f"{len(slow)} not below {NEGLIGIBLE_COST:.0%} (reproduced when "
                                f"none); median fused / image-only fit time {ratio:.2f}")


FINDINGS: tuple[Finding, ...] = (
    Finding("metadata_improves_metrics", "Abstract, IV, Figs. 2-3",
            "Metadata improves nearly every metric: averaged over the grid's configurations, at "
            "most one metric does not improve.", _metadata_improves_metrics),
    Finding("significant_gain", "Abstract, IV, Fig. 4",
            "Metadata can significantly enhance performance: in each dataset, a class-wise AUROC "
            "gain is significant (p <= 0.05).", _significant_gain),
    Finding("ham_improves", "III.B, Fig. 2",
            "HAM10000: metadata improves almost every metric for every network (>= 80% of "
            "configuration-metric pairs improve or change by less than the tolerance).",
            _ham_improves_almost_all),
    Finding("ham_big_four", "III.B, Fig. 2",
            "HAM10000: MobileNetV2, GoogLeNet, DenseNet201 and InceptionResNetV2 gain the most.",
            _ham_big_four),
    Finding("ham_bn_gains_most", "III.B, IV, Fig. 2",
            "HAM10000 gains most with BN (frozen ImageNet features) rather than FT (mean macro "
            "improvement over the metrics).", _mode_contrast("ham10000", "bn")),
    Finding("alexnet_ft_degrades", "III.B, Fig. 2",
            "HAM10000: AlexNet fine-tuned degrades with metadata.", _degrades("alexnet", None)),
    Finding("vgg19_ft_aug_degrades", "III.B, Fig. 2",
            "HAM10000: VGG19 fine-tuned with augmentation degrades with metadata.",
            _degrades("vgg19", True)),
    Finding("ham_only_listed_degrade", "III.B, Fig. 2",
            "HAM10000: no other configuration degrades (none loses more than the tolerance, mean "
            "over the Fig. 2 metrics).", _ham_only_listed_degrade),
    Finding("ham_acc_spec_least", "III.B, Fig. 2",
            "HAM10000: accuracy and specificity change least (smaller mean |improvement| than "
            "sensitivity, precision, F1, informedness, markedness and MCC).", _acc_spec_least),
    Finding("ptbxl_larger_scale", "III.C, Figs. 2-3",
            "PTB-XL's changes (gains and losses) are larger than HAM10000's.", _ptbxl_larger_scale),
    Finding("ptbxl_accuracy_all", "III.C, Fig. 3",
            "PTB-XL: metadata increases accuracy in every configuration.", _ptbxl_accuracy_all),
    Finding("ptbxl_ft_improves", "III.C, Fig. 3",
            "PTB-XL: fine-tuned networks all improve with metadata.", _ptbxl_ft_all),
    Finding("ptbxl_ft_gains_most", "III.C, IV, Fig. 3",
            "PTB-XL gains most with FT rather than BN (mean macro improvement over the metrics).",
            _mode_contrast("ptbxl", "ft")),
    Finding("ptbxl_ft_aug_larger", "III.C, Fig. 3",
            "PTB-XL FT: the improvement is larger with augmentation (every network but "
            "DenseNet201).", _ptbxl_ft_aug_larger),
    Finding("ptbxl_bn_small_or_degrades", "III.C, Fig. 3",
            "PTB-XL BN: metadata brings only small changes or degradations in the metrics other "
            "than accuracy (no configuration gains more than the tolerance).",
            _ptbxl_bn_small_or_degrades),
    Finding("auroc_no_drop", "III.D, Fig. 4",
            "Class-wise AUROC rises or changes little with metadata in all but at most one "
            "configuration.", _auroc_no_drop),
    Finding("vgg16_bn_auroc_drops", "III.D, Fig. 4",
            "HAM10000: VGG16 BN is that exception: of all HAM10000 configurations, its "
            "class-wise AUROC drops most, by more than the tolerance.",
            _vgg16_bn_auroc_drops),
    Finding("ham_auroc_bn", "III.D, Fig. 4",
            "HAM10000: AUROC gains more with BN than with FT.",
            _mode_contrast("ham10000", "bn", metric="auroc")),
    Finding("ptbxl_auroc_ft", "III.D, Fig. 4",
            "PTB-XL: AUROC gains more with FT than with BN.",
            _mode_contrast("ptbxl", "ft", metric="auroc")),
    Finding("augmentation_helps", "III.D, Fig. 4",
            "Augmentation helps: the AUROC gain from metadata is larger with augmentation, in "
            "most matched configurations of each dataset.", _augmentation_helps),
    Finding("image_weight_shrinkage", "III.E, Fig. 5",
            "The image-feature weights shrink by one to three orders of magnitude when metadata "
            "join (image-only / fused mean |w| >= 10 in every configuration).",
            _image_weight_shrinkage),
    Finding("negligible_cost", "Abstract, IV",
            "Metadata come at a negligible extra cost: the fused classifier's fit takes under 5% "
            "of the time spent on the image features (extraction and fine-tuning).",
            _negligible_cost),
)
"""The paper's findings, in the order of its sections."""


def at_ceiling(results: pd.DataFrame, ceiling: float = 0.999) -> list[str]:
    """Configurations whose image-only classifier is already perfect: nothing left to improve.

    A configuration is at the ceiling when the image-only model's macro-mean accuracy and AUROC
    are both at least ``ceiling``; metadata cannot improve it, so comparisons of improvements
    that include it say nothing (the demo cohort's HAM10000 images can be separated this well).
    """
    macro = improvements(results)
    wide = macro.pivot_table(index="config_id", columns="metric", values="image")
    if not {"accuracy", "auroc"} <= set(wide.columns):
        return []
    full = wide[(wide["accuracy"] >= ceiling) & (wide["auroc"] >= ceiling)]
    return sorted(full.index)


def evaluate_findings(results: pd.DataFrame, *, tol: float = 0.5, ceiling: float | None = 0.999,
                      findings: Sequence[Finding] = FINDINGS) -> pd.DataFrame:
    """Check each finding against a results table.

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy results (:func:`fusion_utils.experiments.results.collect`), optionally with
        :data:`CONFIGURATION_EXTRAS` columns.
    tol : float
        Percentage points within which a change counts as "unchanged".
    ceiling : float or None
        Leave out configurations at the ceiling (:func:`at_ceiling`); None keeps them all.
    findings : sequence of Finding
        Which findings (default: all of :data:`FINDINGS`).

    Returns
    -------
    pandas.DataFrame
        ``key``, ``source``, ``claim``, ``status`` (one of :data:`STATUSES`) and ``evidence``;
        ``attrs["excluded"]`` lists the configurations left out at the ceiling.
    """
    excluded = at_ceiling(results, ceiling) if ceiling is not None else []
    if excluded:
        results = results[~results["config_id"].isin(excluded)]
    macro = improvements(results)
    extras = [c for c in CONFIGURATION_EXTRAS if c in results.columns]
    if extras:
        per_config = results.groupby("config_id")[extras].first().reset_index()
        macro = macro.merge(per_config, on="config_id", how="left")
    classwise = class_improvements(results, "auroc")
    rows = []
    for finding in findings:
        verdict = finding.check(macro, classwise, tol)
        rows.append({"key": finding.key, "source": finding.source, "claim": finding.claim,
                     "status": verdict.status, "evidence": verdict.evidence})
    table = pd.DataFrame(rows, columns=["key", "source", "claim", "status", "evidence"])
    table.attrs["excluded"] = excluded
    return table


def label_configurations(df: pd.DataFrame) -> pd.DataFrame:
    """Add a short ``configuration`` label (``"resnet50 FT aug"``) and order the rows.

    Rows are sorted by dataset, network, BN before FT, and no augmentation before augmentation,
    the order of the paper's figures.
    """
    labelled = df.assign(configuration=df["backbone"].astype(str) + " "
                         + df["mode"].astype(str).str.upper()
                         + df["augment"].map({True: " aug", False: ""}).fillna(""))
    return labelled.sort_values(["dataset", "backbone", "mode", "augment"], kind="stable")


_STATUS_MARKDOWN = {"reproduced": "reproduced", "not reproduced": "**not reproduced**",
                    "not testable": "*not testable*"}


def findings_markdown(table: pd.DataFrame) -> str:
    """The output of :func:`evaluate_findings` as a Markdown table: claim, verdict, evidence."""
    lines = ["| # | finding (paper section) | on this grid | evidence |", "|---|---|---|---|"]
    for i, row in enumerate(table.itertuples(), start=1):
        claim, evidence = (str(x).replace("|", "\\|") for x in (row.claim, row.evidence))
        lines.append(f"| {i} | {claim} ({row.source}) | {_STATUS_MARKDOWN[row.status]} "
                     f"| {evidence} |")
    return "\n".join(lines)

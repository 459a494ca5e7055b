"""Tests of fusion_utils.experiments.findings on hand-made results tables with known verdicts."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from fusion_utils.experiments import findings as gf
from fusion_utils.experiments.results import RESULT_COLUMNS

METRICS = ("accuracy", "specificity", "sensitivity", "precision", "f1", "informedness",
           "markedness", "mcc", "auroc")
BACKBONES = ("alexnet", "vgg19", "mobilenet_v2", "resnet50")
PAPER_BACKBONES = (*BACKBONES, "vgg16")  # with the paper's one AUROC exception


def paper_like(ds: str, bb: str, mode: str, aug: bool, metric: str) -> float:
    """Improvement (pp) of a table built to agree with every finding the grid can test."""
    if ds == "ham10000":
        if metric == "auroc":
            if (bb == "alexnet" and mode == "ft") or (bb == "vgg19" and mode == "ft" and aug):
                return -0.3
            if bb == "vgg16" and mode == "bn" and not aug:
                return -2.0  # the paper's one AUROC drop (III.D)
            return (4 if mode == "bn" else 2) + aug
        if bb == "alexnet" and mode == "ft":
            v = -2.0
        elif bb == "vgg19" and mode == "ft" and aug:
            v = -1.0
        else:
            v = (5 if mode == "bn" else 2) + aug + (3 if bb == "mobilenet_v2" else 0)
        return 0.2 * v if metric in ("accuracy", "specificity") else v
    if metric == "accuracy":
        return 1 + 5 * (mode == "ft") + aug
    if metric == "auroc":
        return 0.2 + 0.2 * aug if mode == "bn" else 6 + 6 * aug
    return -3.0 if mode == "bn" else 6 + 6 * aug


def paper_extras(ds: str, bb: str, mode: str, aug: bool) -> dict[str, float]:
    """Per-configuration columns agreeing with the paper: weights shrink 100x, fits take 20 s."""
    return {"image_weight_ratio": 100.0, "fit_seconds_image": 20.0, "fit_seconds_fused": 22.0,
            "extraction_seconds": 2000.0, "finetune_seconds": 20000.0 if mode == "ft" else 0.0}


def make_results(improvement=paper_like, backbones=BACKBONES, datasets=("ham10000", "ptbxl"),
                 image: float = 0.6,
                 extras: Callable[[str, str, str, bool], dict[str, float]] | None = None
                 ) -> pd.DataFrame:
    """A results table in the collect() format: image 0.6, fused = image + improvement / 100.

    ``extras(dataset, backbone, mode, augment)`` adds per-configuration columns (such as
    ``findings.CONFIGURATION_EXTRAS``) after the documented ones.
    """
    rows = []
    for ds, bb, mode, aug in itertools.product(datasets, backbones, ("bn", "ft"), (False, True)):
        cid = f"{ds}-{bb}-{mode}-{'aug' if aug else 'noaug'}"
        cfg = {"grid": "hand", "config_id": cid, "dataset": ds, "backbone": bb,
               "weights": "imagenet", "mode": mode, "augment": aug, "epochs": 1, "seed": 0}
        more = extras(ds, bb, mode, aug) if extras else {}
        for metric in METRICS:
            d = improvement(ds, bb, mode, aug, metric) / 100
            per_class = {"A": (image, image + d - 0.005), "B": (image, image + d + 0.005)}
            for model in ("image", "fused"):
                values = {c: v[model == "fused"] for c, v in per_class.items()}
                values["macro_mean"] = float(np.mean(list(values.values())))
                values["macro_std"] = 0.0
                for cls, value in values.items():
                    rows.append({**cfg, **more, "metric": metric, "class": cls,
                                 "model": model,
                                 "with_metadata": model == "fused", "value": value,
                                 "p_value": 0.01 if (metric == "auroc" and model == "fused"
                                                     and cls in "AB") else np.nan,
                                 "stars": "**" if (metric == "auroc" and model == "fused"
                                                   and cls in "AB") else ""})
    extra_columns = list(extras(datasets[0], backbones[0], "bn", False)) if extras else []
    return pd.DataFrame(rows, columns=[*RESULT_COLUMNS,
                                       *[c for c in extra_columns if c not in RESULT_COLUMNS]])


def paper_table(improvement=paper_like, **kw) -> pd.DataFrame:
    """The full paper-like table: five networks, both datasets, with the extra columns."""
    kw.setdefault("extras", paper_extras)
    return make_results(improvement, backbones=PAPER_BACKBONES, **kw)


def statuses(results: pd.DataFrame, **kw) -> dict[str, str]:
    table = gf.evaluate_findings(results, **kw)
    assert list(table.columns) == ["key", "source", "claim", "status", "evidence"]
    assert set(table["status"]) <= set(gf.STATUSES)
    return dict(zip(table["key"], table["status"], strict=True))


def test_improvements_known_values() -> None:
    imp = gf.improvements(make_results())
    row = imp[(imp.config_id == "ham10000-mobilenet_v2-bn-aug") & (imp.metric == "sensitivity")]
    assert row["improvement"].item() == pytest.approx(9.0)  # 5 (bn) + 1 (aug) + 3 (mobilenet)
    assert row["image"].item() == pytest.approx(0.6)
    assert len(imp) == 2 * 4 * 2 * 2 * len(METRICS)
    cls = gf.class_improvements(make_results())
    row = cls[(cls.config_id == "ptbxl-resnet50-ft-aug") & (cls["class"] == "B")]
    assert row["improvement"].item() == pytest.approx(12.5)
    assert row["p_value"].item() == 0.01 and row["stars"].item() == "**"


def test_paper_like_table_reproduces_every_finding() -> None:
    got = statuses(paper_table())
    assert got == {f.key: "reproduced" for f in gf.FINDINGS}


def test_book_like_grid_marks_backbone_findings_not_testable() -> None:
    got = statuses(make_results(backbones=("resnet50",)))
    for key in ("alexnet_ft_degrades", "vgg19_ft_aug_degrades", "ham_big_four"):
        assert got[key] == "not testable"
    assert got["ham_bn_gains_most"] == "reproduced" and got["ptbxl_ft_gains_most"] == "reproduced"


def test_one_dataset_marks_cross_dataset_findings_not_testable() -> None:
    got = statuses(make_results(datasets=("ptbxl",)))
    assert got["ptbxl_larger_scale"] == "not testable"
    assert got["ham_improves"] == "not testable" and got["ham_acc_spec_least"] == "not testable"
    assert got["ptbxl_accuracy_all"] == "reproduced"


def test_contrary_results_are_not_reproduced() -> None:
    def contrary(ds, bb, mode, aug, metric):
        v = paper_like(ds, bb, mode, aug, metric)
        if ds == "ham10000":  # FT now gains more than BN, AlexNet FT gains
            return v + (6 if mode == "ft" else 0) + (5 if bb == "alexnet" else 0)
        if metric == "accuracy" and bb == "vgg19" and mode == "bn":
            return -1.0  # one PTB-XL configuration loses accuracy
        return v

    table = gf.evaluate_findings(make_results(contrary)).set_index("key")
    assert table.loc["ham_bn_gains_most", "status"] == "not reproduced"
    assert table.loc["alexnet_ft_degrades", "status"] == "not reproduced"
    assert table.loc["ptbxl_accuracy_all", "status"] == "not reproduced"
    assert "14 of 16 PTB-XL configurations gain accuracy" in table.loc["ptbxl_accuracy_all",
                                                                    "evidence"]
    assert "smallest ptbxl-vgg19-bn-aug -1.00 pp" in table.loc["ptbxl_accuracy_all", "evidence"]


def test_tolerance_changes_the_unchanged_band() -> None:
    # AlexNet FT and VGG19 FT-aug AUROC drop by 0.3 pp: "little change" at tol 0.5, drops at 0.1
    assert statuses(make_results(), tol=0.5)["auroc_no_drop"] == "reproduced"
    assert statuses(make_results(), tol=0.1)["auroc_no_drop"] == "not reproduced"


def test_metric_names_are_normalised() -> None:
    assert gf.normalise_metric("F-measure") == "f1"
    assert gf.normalise_metric("AUC") == "auroc"
    assert gf.normalise_metric("Matthews") == "mcc"
    assert gf.normalise_metric("custom") == "custom"
    renamed = make_results().replace({"metric": {"f1": "F-measure", "accuracy": "Accuracy"}})
    assert statuses(renamed) == statuses(make_results())


def test_bad_input_is_explained() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        gf.improvements(pd.DataFrame({"metric": ["a"]}))
    with pytest.raises(ValueError, match="status"):
        gf.Verdict("maybe", "")


def test_configurations_at_the_ceiling_are_left_out() -> None:
    results = make_results()
    perfect = results["dataset"].eq("ham10000") & results["mode"].eq("ft")
    results.loc[perfect, "value"] = 1.0  # image-only and fused both perfect: nothing to improve
    excluded = gf.at_ceiling(results)
    assert excluded == sorted(results.loc[perfect, "config_id"].unique()) and len(excluded) == 8
    table = gf.evaluate_findings(results)
    assert table.attrs["excluded"] == excluded
    got = dict(zip(table["key"], table["status"], strict=True))
    assert got["ham_bn_gains_most"] == "not testable"  # no HAM10000 FT left to compare
    assert got["ptbxl_ft_gains_most"] == "reproduced"
    kept = dict(zip(*gf.evaluate_findings(results, ceiling=None)[["key", "status"]].T.values,
                    strict=True))
    assert kept["ham_bn_gains_most"] == "reproduced"  # BN +5 vs FT 0 when they are kept


def test_configurations_are_labelled_and_ordered_as_in_the_paper() -> None:
    df = pd.DataFrame({"dataset": ["ptbxl"] * 3, "backbone": ["vgg16", "alexnet", "alexnet"],
                       "mode": ["bn", "ft", "bn"], "augment": [False, True, False]})
    out = gf.label_configurations(df)
    assert out["configuration"].tolist() == ["alexnet BN", "alexnet FT aug", "vgg16 BN"]


def test_findings_markdown_marks_each_verdict_and_escapes_pipes() -> None:
    table = pd.DataFrame({"claim": ["a | b", "c"], "source": ["III.B", "III.C"],
                          "status": ["not reproduced", "reproduced"], "evidence": ["x", "y"]})
    md = gf.findings_markdown(table).splitlines()
    assert md[2] == r"| 1 | a \| b (III.B) | **not reproduced** | x |"
    assert md[3] == "| 2 | c (III.C) | reproduced | y |"


# ----------------------------------------------------------------- every finding can fail
#
# For each finding, a table built from the paper-like one with the finding's claim broken:
# the finding must then be "not reproduced" (while the paper-like table reproduces it), so a
# check that always answered "reproduced" would fail here.


def _changed(change: Callable[[str, str, str, bool, str, float], float]):
    def improvement(ds: str, bb: str, mode: str, aug: bool, metric: str) -> float:
        return change(ds, bb, mode, aug, metric, paper_like(ds, bb, mode, aug, metric))
    return improvement


def _ham(f):  # apply ``f`` on HAM10000 only
    return _changed(lambda ds, bb, mode, aug, metric, v: f(bb, mode, aug, metric, v)
                    if ds == "ham10000" else v)


def _ptbxl(f):  # apply ``f`` on PTB-XL only
    return _changed(lambda ds, bb, mode, aug, metric, v: f(bb, mode, aug, metric, v)
                    if ds == "ptbxl" else v)


def _insignificant() -> pd.DataFrame:
    table = paper_table()
    table.loc[table["p_value"].notna(), ["p_value", "stars"]] = [0.5, ""]
    return table


CONTRARY: dict[str, Callable[[], pd.DataFrame]] = {
    "metadata_improves_metrics": lambda: paper_table(_changed(
        lambda ds, bb, mode, aug, metric, v: -5.0 if metric in ("accuracy", "specificity")
        else v)),
    "significant_gain": _insignificant,
    "ham_improves": lambda: paper_table(_ham(lambda bb, mode, aug, metric, v: -2.0)),
    "ham_big_four": lambda: paper_table(_ham(
        lambda bb, mode, aug, metric, v: 0.0 if bb == "mobilenet_v2" else v)),
    "ham_bn_gains_most": lambda: paper_table(_ham(
        lambda bb, mode, aug, metric, v: v + 6 if mode == "ft" else v)),
    "alexnet_ft_degrades": lambda: paper_table(_ham(
        lambda bb, mode, aug, metric, v: 5.0 if bb == "alexnet" else v)),
    "vgg19_ft_aug_degrades": lambda: paper_table(_ham(
        lambda bb, mode, aug, metric, v: 3.0 if (bb, mode, aug) == ("vgg19", "ft", True) else v)),
    "ham_only_listed_degrade": lambda: paper_table(_ham(
        lambda bb, mode, aug, metric, v: -3.0 if (bb, mode) == ("resnet50", "bn") else v)),
    "ham_acc_spec_least": lambda: paper_table(_ham(
        lambda bb, mode, aug, metric, v: 10.0 if metric == "accuracy" else v)),
    "ptbxl_larger_scale": lambda: paper_table(_ptbxl(lambda bb, mode, aug, metric, v: v / 10)),
    "ptbxl_accuracy_all": lambda: paper_table(_ptbxl(
        lambda bb, mode, aug, metric, v: -1.0 if (bb, mode, metric) == ("vgg19", "bn", "accuracy")
        else v)),
    "ptbxl_ft_improves": lambda: paper_table(_ptbxl(
        lambda bb, mode, aug, metric, v: -1.0 if (bb, mode, aug) == ("alexnet", "ft", False)
        else v)),
    "ptbxl_ft_gains_most": lambda: paper_table(_ptbxl(
        lambda bb, mode, aug, metric, v: v + 20 if mode == "bn" else v)),
    "ptbxl_ft_aug_larger": lambda: paper_table(_ptbxl(
        lambda bb, mode, aug, metric, v: 3.0 if (mode, aug) == ("ft", True) else v)),
    "ptbxl_bn_small_or_degrades": lambda: paper_table(_ptbxl(
        lambda bb, mode, aug, metric, v: 4.0 if mode == "bn" and metric != "accuracy" else v)),
    "auroc_no_drop": lambda: paper_table(_ham(
        lambda bb, mode, aug, metric, v: -2.0 if (mode, metric) == ("ft", "auroc") else v)),
    "vgg16_bn_auroc_drops": lambda: paper_table(_ham(
        lambda bb, mode, aug, metric, v: 4.0 if (bb, metric) == ("vgg16", "auroc")
        else -3.0 if (bb, mode, aug, metric) == ("alexnet", "bn", False, "auroc") else v)),
    "ham_auroc_bn": lambda: paper_table(_ham(
        lambda bb, mode, aug, metric, v: 8.0 if (mode, metric) == ("ft", "auroc") else v)),
    "ptbxl_auroc_ft": lambda: paper_table(_ptbxl(
        lambda bb, mode, aug, metric, v: 15.0 if (mode, metric) == ("bn", "auroc") else v)),
    "augmentation_helps": lambda: paper_table(_changed(
        lambda ds, bb, mode, aug, metric, v: v - 8 * aug if metric == "auroc" else v)),
    "image_weight_shrinkage": lambda: paper_table(extras=lambda ds, bb, mode, aug: {
        **paper_extras(ds, bb, mode, aug),
        "image_weight_ratio": 1.2 if (ds, bb, mode, aug) == ("ptbxl", "vgg16", "ft", True)
        else 100.0}),
    "negligible_cost": lambda: paper_table(extras=lambda ds, bb, mode, aug: {
        **paper_extras(ds, bb, mode, aug), "fit_seconds_fused": 500.0,
        "finetune_seconds": 0.0}),
}


def test_every_finding_has_a_contrary_table() -> None:
    assert set(CONTRARY) == {f.key for f in gf.FINDINGS}


@functools.cache
def _paper_statuses() -> dict[str, str]:
    return statuses(paper_table())


@pytest.mark.parametrize("key", list(CONTRARY))
def test_each_finding_fails_on_a_table_that_contradicts_it(key: str) -> None:
    assert _paper_statuses()[key] == "reproduced"
    assert statuses(CONTRARY[key]())[key] == "not reproduced"


# ----------------------------------------------------------------- the headline claims


def test_significance_falls_back_to_delong_with_few_networks() -> None:
    table = gf.evaluate_findings(paper_table()).set_index("key")
    evidence = table.loc["significant_gain", "evidence"]
    assert "per-configuration DeLong p-values" in evidence and "at most 5 network(s)" in evidence
    no_p = paper_table().assign(p_value=np.nan, stars="")
    got = gf.evaluate_findings(no_p).set_index("key").loc["significant_gain"]
    assert got["status"] == "not testable" and "no p-values" in got["evidence"]


def test_significance_across_networks_with_six_or_more() -> None:
    six = (*PAPER_BACKBONES, "googlenet")
    table = make_results(backbones=six).assign(p_value=0.5, stars="")  # DeLong: none significant
    got = gf.evaluate_findings(table).set_index("key").loc["significant_gain"]
    # all six networks gain AUROC in PTB-XL FT: Wilcoxon exact two-sided p = 2 / 2^6 = 0.031
    assert got["status"] == "reproduced" and "across_networks_test" in got["evidence"]

    def mixed(ds, bb, mode, aug, metric):  # signs alternate over networks: no shift
        sign = 1 if six.index(bb) % 2 else -1
        return sign * (1 + six.index(bb)) if metric == "auroc" else 1.0

    got = gf.evaluate_findings(make_results(mixed, backbones=six)).set_index("key")
    assert got.loc["significant_gain", "status"] == "not reproduced"
    assert "0 of" in got.loc["significant_gain", "evidence"]


def test_shrinkage_and_cost_name_the_missing_columns() -> None:
    table = gf.evaluate_findings(make_results()).set_index("key")
    for key in ("image_weight_shrinkage", "negligible_cost"):
        assert table.loc[key, "status"] == "not testable"
        assert table.loc[key, "evidence"].startswith("not testable from the results table")
    assert "image_weight_ratio" in table.loc["image_weight_shrinkage", "evidence"]
    assert ("fit_seconds_image, fit_seconds_fused, extraction_seconds"
            in table.loc["negligible_cost", "evidence"])
    partial = make_results(extras=lambda *_: {"fit_seconds_image": 1.0, "fit_seconds_fused": 1.0})
    got = gf.evaluate_findings(partial).set_index("key").loc["negligible_cost"]
    assert got["status"] == "not testable" and "lacks column(s) extraction_seconds" in got[
        "evidence"]


def test_cost_and_shrinkage_known_numbers() -> None:
    table = gf.evaluate_findings(paper_table()).set_index("key")
    # fused fit 22 s against 2,000 s of extraction (BN) or 22,000 s with fine-tuning (FT)
    assert "0.10% to 1.10%" in table.loc["negligible_cost", "evidence"]
    assert "median fused / image-only fit time 1.10" in table.loc["negligible_cost", "evidence"]
    assert "in 40 configuration(s): 100 to 100" in table.loc["image_weight_shrinkage", "evidence"]


def test_vgg16_exception_needs_vgg16() -> None:
    assert statuses(make_results())["vgg16_bn_auroc_drops"] == "not testable"
    evidence = gf.evaluate_findings(paper_table()).set_index("key").loc[
        "vgg16_bn_auroc_drops", "evidence"]
    assert "largest drop: ham10000-vgg16-bn-noaug -2.00 pp" in evidence


def _run_folder(run_dir, cid: str, *, ratio: float, fit_fused: float) -> None:
    """A completed run folder with notebook 03/04/05 files (metrics from ``make_results``)."""
    from fusion_utils.experiments.results import results_table
    from fusion_utils.interpret.weights import ClassifierWeights
    from fusion_utils.run_folder import RunFolder

    run = RunFolder(run_dir)
    ds, bb, _mode, _aug = cid.split("-")
    table = make_results(datasets=(ds,), backbones=(bb,))
    rows = table[table["config_id"] == cid]
    run.write_metrics(rows[["metric", "class", "model", "value"]].reset_index(drop=True))
    run.write_feature_timings({"extraction_s": 1000.0, "fine_tuning_s": 0.0})
    run.write_timings({"fit_image": 5.0, "fit_fused": fit_fused})
    coef = np.array([[2.0, -2.0], [-2.0, 2.0]])
    for name, c, names in (("image", coef, ["img.0", "img.1"]),
                           ("fused", np.hstack([coef / ratio, [[1.0], [-1.0]]]),
                            ["img.0", "img.1", "age"])):
        run.write_classifier(name, ClassifierWeights(c, np.zeros(2), np.array(names),
                                                     np.array(["A", "B"])))
    cols = dict(rows.iloc[0][["grid", "config_id", "dataset", "backbone", "weights", "mode",
                              "augment", "epochs", "seed"]])
    run.write_results(results_table(run_dir, cols))
    run.write_status({"state": "done"})


@pytest.mark.parametrize(("ratio", "fit_fused", "shrinks", "cheap"),
                         [(100.0, 6.0, "reproduced", "reproduced"),
                          (1.5, 200.0, "not reproduced", "not reproduced")])
def test_shrinkage_and_cost_from_collected_run_folders(tmp_path, ratio, fit_fused, shrinks,
                                                       cheap) -> None:
    from fusion_utils.experiments.results import collect

    for cid in ("ham10000-resnet50-bn-noaug", "ptbxl-resnet50-bn-noaug"):
        _run_folder(tmp_path / cid, cid, ratio=ratio, fit_fused=fit_fused)
    table = gf.evaluate_findings(collect(tmp_path)).set_index("key")
    assert table.loc["image_weight_shrinkage", "status"] == shrinks
    assert f"{ratio:.3g} to {ratio:.3g}" in table.loc["image_weight_shrinkage", "evidence"]
    assert table.loc["negligible_cost", "status"] == cheap
    share = f"{fit_fused / 1000:.2%}"
    assert f"{share} to {share}" in table.loc["negligible_cost", "evidence"]

"""Tests of fusion_utils.experiments.findings on hand-made results tables with known verdicts."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from fusion_utils.experiments import findings as gf
from fusion_utils.experiments.results import RESULT_COLUMNS

METRICS = ("accuracy", "specificity", "sensitivity", "precision", "f1", "informedness",
           "markedness", "mcc", "auroc")
BACKBONES = ("alexnet", "vgg19", "mobilenet_v2", "resnet50")


def paper_like(ds: str, bb: str, mode: str, aug: bool, metric: str) -> float:
    """Improvement (pp) of a table built to agree with every finding the grid can test."""
    if ds == "ham10000":
        if metric == "auroc":
            if (bb == "alexnet" and mode == "ft") or (bb == "vgg19" and mode == "ft" and aug):
                return -0.3
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


def make_results(improvement=paper_like, backbones=BACKBONES, datasets=("ham10000", "ptbxl"),
                 image: float = 0.6) -> pd.DataFrame:
    """A results table in the collect() format: image 0.6, fused = image + improvement / 100."""
    rows = []
    for ds, bb, mode, aug in itertools.product(datasets, backbones, ("bn", "ft"), (False, True)):
        cid = f"{ds}-{bb}-{mode}-{'aug' if aug else 'noaug'}"
        cfg = {"grid": "hand", "config_id": cid, "dataset": ds, "backbone": bb,
               "weights": "imagenet", "mode": mode, "augment": aug, "epochs": 1, "seed": 0}
        for metric in METRICS:
            d = improvement(ds, bb, mode, aug, metric) / 100
            per_class = {"A": (image, image + d - 0.005), "B": (image, image + d + 0.005)}
            for model in ("image", "fused"):
                values = {c: v[model == "fused"] for c, v in per_class.items()}
                values["macro_mean"] = float(np.mean(list(values.values())))
                values["macro_std"] = 0.0
                for cls, value in values.items():
                    rows.append({**cfg, "metric": metric, "class": cls, "model": model,
                                 "with_metadata": model == "fused", "value": value,
                                 "p_value": 0.01 if (metric == "auroc" and model == "fused"
                                                     and cls in "AB") else np.nan,
                                 "stars": "**" if (metric == "auroc" and model == "fused"
                                                   and cls in "AB") else ""})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


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
    got = statuses(make_results())
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

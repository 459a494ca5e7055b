"""Meta-embeddings: sources, DVME (attention invariants, early stopping), the comparison, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fusion_utils.fusion.meta_embedding import (
    DVME,
    DVMEClassifier,
    DVMEConfig,
    answer,
    attention_by_class,
    committed_meta_embedding,
    compare_meta_embeddings,
    load_sources,
    main,
    resolve_run_dirs,
    summary_table,
)

CLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]
SMALL = DVMEConfig(dim=16, n_heads=2, max_epochs=60, patience=10, lr=1e-3, seed=0)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _problem(n: int = 300, k: int = 3, d: int = 8, seed: int = 0, scale: float = 2.0):
    """Three sources; only the first carries the label (shifted means), the others are noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    informative = rng.normal(size=(n, d))
    informative[:, :k] += scale * np.eye(k)[y]
    noise = [3 * rng.normal(size=(n, d)) for _ in range(2)]
    split = np.array(["train"] * (n * 6 // 10) + ["val"] * (n * 2 // 10) + ["test"] * (n // 5))
    return y, [informative, *noise], split


def _fit(xs, labels, split, config=SMALL, **kw):
    classes = sorted(set(labels))
    tr, va = split == "train", split == "val"
    return DVMEClassifier(classes, config, **kw).fit(
        [x[tr] for x in xs], labels[tr], [x[va] for x in xs], labels[va])


# -- DVME network: invariants --------------------------------------------------------------

def test_attention_rows_sum_to_one_and_received_attention_sums_to_one():
    torch.manual_seed(0)
    net = DVME([5, 7, 3], 4, meta_dim=2, metadata="token", dim=8, n_heads=2).eval()
    xs = [torch.randn(6, d) for d in (5, 7, 3)]
    logits, w = net(xs, torch.randn(6, 2))
    assert logits.shape == (6, 4) and w.shape == (6, 4, 4)  # three sources + metadata token
    np.testing.assert_allclose(w.sum(dim=2).detach().numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(w.mean(dim=1).sum(dim=1).detach().numpy(), 1.0, atol=1e-6)


@pytest.mark.parametrize("residual", [True, False])
def test_permuting_sources_permutes_attention(residual):
    torch.manual_seed(1)
    net = DVME([4, 6, 5], 3, dim=8, n_heads=2, residual=residual).eval()
    xs = [torch.randn(10, d) for d in (4, 6, 5)]
    _, w = net(xs)
    perm = [2, 0, 1]
    permuted = DVME([5, 4, 6], 3, dim=8, n_heads=2, residual=residual).eval()
    permuted.projections = torch.nn.ModuleList(net.projections[i] for i in perm)
    permuted.norm, permuted.attention = net.norm, net.attention
    _, w2 = permuted([xs[i] for i in perm])
    np.testing.assert_allclose(w2.detach().numpy(), w[:, perm][:, :, perm].detach().numpy(),
                               atol=1e-6)
    assert not np.allclose(w2.detach().numpy(), w.detach().numpy(), atol=1e-3)


def test_metadata_modes_change_the_inputs_of_the_head():
    concat = DVME([4, 4], 3, meta_dim=5, metadata="concat", dim=8, n_heads=2)
    token = DVME([4, 4], 3, meta_dim=5, metadata="token", dim=8, n_heads=2)
    assert concat.head[0].in_features == 2 * 8 + 5 and concat.meta_projection is None
    assert token.head[0].in_features == 3 * 8 and token.meta_projection.in_features == 5
    with pytest.raises(ValueError, match="meta_dim"):
        DVME([4], 3, metadata="token")
    with pytest.raises(ValueError, match="metadata="):
        DVME([4], 3, meta_dim=2, metadata="both")
    with pytest.raises(ValueError, match="multiple of n_heads"):
        DVMEConfig(dim=10, n_heads=3)


# -- DVME training --------------------------------------------------------------------------

def test_the_informative_source_gets_most_attention_in_either_position():
    y, xs, split = _problem()
    labels = np.array(["a", "b", "c"])[y]
    te = split == "test"
    for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0]):
        ordered = [xs[i] for i in order]
        clf = _fit(ordered, labels, split)
        received = clf.attention_received([x[te] for x in ordered]).mean(axis=0)
        where = order.index(0)
        assert np.argmax(received) == where, (order, received)
        assert received[where] > 0.37  # uniform would be 1/3
        acc = (clf.predict_proba([x[te] for x in ordered]).argmax(1) == y[te]).mean()
        assert acc > 0.6  # chance 1/3


def test_early_stopping_restores_the_best_validation_epoch():
    y, xs, split = _problem(seed=3)
    labels = np.array(["a", "b", "c"])[y]
    cfg = DVMEConfig(dim=16, n_heads=2, max_epochs=80, patience=5, lr=1e-2, seed=0)
    clf = _fit(xs, labels, split, cfg)
    hist = clf.history_
    best = int(hist["val_loss"].idxmin())
    assert clf.best_epoch_ == hist.loc[best, "epoch"]
    assert clf.n_epochs_ == len(hist) and clf.n_epochs_ - clf.best_epoch_ == 5  # stopped
    va = split == "val"
    restored = clf.loss([x[va] for x in xs], labels[va])
    assert restored == pytest.approx(hist["val_loss"].min(), rel=1e-5)
    assert restored < hist["val_loss"].iloc[-1]  # not the last epoch's weights


def test_dvme_is_deterministic_with_a_seed():
    y, xs, split = _problem(n=150)
    labels = np.array(["a", "b", "c"])[y]
    te = split == "test"
    p1 = _fit(xs, labels, split).predict_proba([x[te] for x in xs])
    p2 = _fit(xs, labels, split).predict_proba([x[te] for x in xs])
    p3 = _fit(xs, labels, split, DVMEConfig(dim=16, n_heads=2, max_epochs=60, patience=10, lr=1e-3,
                                            seed=1)).predict_proba([x[te] for x in xs])
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0)
    assert not np.allclose(p1, p3)


def test_dvme_checks_its_inputs():
    y, xs, _split = _problem(n=60)
    labels = np.array(["a", "b", "c"])[y]
    with pytest.raises(ValueError, match="not among classes"):
        DVMEClassifier(["a", "b"], SMALL).fit(xs, labels, xs, labels)
    with pytest.raises(ValueError, match="pass meta"):
        DVMEClassifier(["a", "b", "c"], SMALL, metadata="token").fit(xs, labels, xs, labels)
    with pytest.raises(RuntimeError, match="not fitted"):
        DVMEClassifier(["a", "b", "c"]).predict_proba(xs)


def test_attention_by_class_averages_per_true_class():
    received = np.array([[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]])
    table = attention_by_class(received, ["x", "x", "y"], ["x", "y", "z"], ["s1", "s2"])
    got = table.set_index(["class", "source"])["attention"]
    assert got[("x", "s1")] == pytest.approx(0.3) and got[("y", "s2")] == pytest.approx(0.1)
    assert set(table["class"]) == {"x", "y"}  # z has no records
    assert table.groupby("class")["attention"].sum().tolist() == pytest.approx([1.0, 1.0])


# -- sources and run folders ---------------------------------------------------------------

def _write_runs(tmp: Path, n: int = 200, seed: int = 0) -> tuple[list[Path], Path]:
    """Three run folders (one informative backbone) and a manifest with metadata."""
    from fusion_utils.data.manifest import save_manifest
    from fusion_utils.features.extraction import FeatureSet

    rng = np.random.default_rng(seed)
    y = np.arange(n) % 5
    labels = np.array(CLASSES)[y]
    split = np.array(["train"] * 120 + ["val"] * 40 + ["test"] * 40)
    rng.shuffle(split)
    ids = np.array([str(5000 + i) for i in range(n)])
    runs = []
    for k, scale in enumerate((1.5, 0.0, 0.3)):
        X = rng.normal(size=(n, 6))
        X[:, :5] += scale * np.eye(5)[y]
        perm = rng.permutation(n) if k else np.arange(n)  # rows in another order
        run = tmp / f"ptbxl-toy{k}-bn-noaug"
        run.mkdir()
        FeatureSet(ids[perm], labels[perm], split[perm], X[perm], FeatureSet.names(6),
                   {"backbone": f"toy{k}", "mode": "bn"}).save(run / "features.npz")
        runs.append(run)
    manifest = pd.DataFrame({"record_id": ids, "dataset": "ptbxl", "label": labels,
                             "path": "/nonexistent", "group": ids, "split": split,
                             "meta.age": rng.normal(60, 10, n) + 8 * (y == 1),
                             "meta.sex": np.where(rng.random(n) < 0.5, "male", "female")})
    manifest.attrs = {"dataset": "ptbxl", "classes": CLASSES}
    return runs, save_manifest(manifest, tmp / "manifest.parquet")


def test_load_sources_aligns_rows_by_record_id(tmp_path):
    runs, _ = _write_runs(tmp_path)
    assert resolve_run_dirs("ptbxl-toy*-bn-noaug", root=tmp_path) == runs
    src = load_sources(",".join(str(r) for r in runs))
    assert src.names == ["toy0", "toy1", "toy2"]
    from fusion_utils.run_folder import RunFolder

    second = RunFolder(runs[1]).read_features()
    pos = pd.Index(second.ids).get_indexer(src.ids)
    np.testing.assert_array_equal(src.X[1], second.X[pos])
    np.testing.assert_array_equal(src.labels, second.labels[pos])
    concat = src.concatenated()
    assert concat.X.shape == (200, 18) and concat.feature_names[6] == "toy1.0000"


def test_load_sources_refuses_other_records_and_single_sources(tmp_path):
    from fusion_utils.features.extraction import FeatureSet

    runs, _ = _write_runs(tmp_path)
    with pytest.raises(ValueError, match="at least two"):
        load_sources([runs[0]])
    with pytest.raises(FileNotFoundError, match="no folder with features.npz"):
        resolve_run_dirs("nothing-*", root=tmp_path)
    fs = FeatureSet.load(runs[2] / "features.npz")
    fs.subset(np.arange(len(fs)) > 0).save(runs[2] / "features.npz")
    with pytest.raises(ValueError, match="1 missing"):
        load_sources(runs)
    fs.split[0] = "train" if fs.split[0] != "train" else "test"
    fs.save(runs[2] / "features.npz")
    with pytest.raises(ValueError, match="disagree on the splits"):
        load_sources(runs)


# -- the comparison --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    from fusion_utils.data.manifest import load_manifest

    tmp = tmp_path_factory.mktemp("meta")
    runs, manifest_path = _write_runs(tmp)
    torch.set_num_threads(1)
    src = load_sources(runs)
    res = compare_meta_embeddings(src, load_manifest(manifest_path), classifier_params={"l2": 0.01},
                                  config=SMALL, n_bootstrap=50)
    return src, load_manifest(manifest_path), res


def test_comparison_chooses_the_informative_backbone_on_validation(comparison):
    _, _, res = comparison
    sel = res.selection.set_index("source")
    assert res.info["best_single"] == "toy0" == sel["val_auroc"].idxmax()
    assert sel.loc["toy0", "chosen"] == "single single+meta"
    assert sel.loc["toy1", "val_auroc"] < 0.7  # pure noise
    assert res.info["n_train"] == 120 and res.info["n_test"] == 40


def test_concatenation_baseline_equals_a_softmax_fit_on_hstack(comparison):
    from fusion_utils.fusion.softmax import SoftmaxClassifier

    src, _, res = comparison
    tr, te = src.split == "train", src.split == "test"
    H = np.hstack(src.X).astype(np.float64)
    clf = SoftmaxClassifier(l2=0.01).fit(H[tr], src.labels[tr])
    proba = clf.predict_proba(H[te])[:, [list(clf.classes_).index(c) for c in CLASSES]]
    np.testing.assert_allclose(res.probas["concat"], proba, atol=1e-10)
    single = SoftmaxClassifier(l2=0.01).fit(src.X[0][tr].astype(np.float64), src.labels[tr])
    np.testing.assert_allclose(
        res.probas["single"],
        single.predict_proba(src.X[0][te])[:, [list(single.classes_).index(c) for c in CLASSES]],
        atol=1e-10)


def test_comparison_reports_nine_metrics_with_cis_and_attention(comparison):
    from fusion_utils.evaluation.metrics import METRICS, macro_auroc

    src, _, res = comparison
    m = res.metrics
    models = ["single", "single+meta", "concat", "concat+meta", "dvme", "dvme+meta-token",
              "dvme+meta-concat"]
    assert list(dict.fromkeys(m["model"]))[:7] == models
    assert {"dvme - single", "dvme+meta-token - single+meta"} <= set(m["model"])
    assert len(m[m["model"] == "dvme"]) == len(METRICS)
    assert (m["ci_low"] <= m["estimate"] + 1e-12).all()
    assert (m["estimate"] <= m["ci_high"] + 1e-12).all()
    te = src.split == "test"
    for model in models:
        est = m[(m["model"] == model) & (m["metric"] == "auroc")]["estimate"].item()
        assert est == pytest.approx(macro_auroc(src.labels[te], res.probas[model], CLASSES))
    att = res.attention
    assert set(att["model"]) == {"dvme", "dvme+meta-token", "dvme+meta-concat"}
    sums = att.groupby(["model", "class"])["attention"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-9)
    assert set(att[att["model"] == "dvme+meta-token"]["source"]) == {"toy0", "toy1", "toy2",
                                                                     "metadata"}
    per_class = att.drop_duplicates(["model", "class"]).groupby("model")["n_records"].sum()
    assert per_class.eq(40).all()  # every test record counted once per model
    table = summary_table(m)
    assert list(table.columns) == ["macro AUROC", "balanced accuracy"]
    dvme_auroc = m[(m.model == "dvme") & (m.metric == "auroc")].estimate.item()
    assert table.loc["dvme", "macro AUROC"].startswith(f"{dvme_auroc:.3f} [")


def test_answer_reads_the_paired_intervals():
    rows = [{"model": "concat - single", "metric": "auroc", "estimate": 0.05, "ci_low": 0.01,
             "ci_high": 0.09},
            {"model": "dvme - single", "metric": "auroc", "estimate": -0.01, "ci_low": -0.04,
             "ci_high": 0.02},
            {"model": "dvme+meta-token - single+meta", "metric": "auroc", "estimate": -0.1,
             "ci_low": -0.2, "ci_high": -0.05}]
    text = answer(pd.DataFrame(rows))
    assert text.startswith("1 of 3 combinations beat")
    assert "`concat` is better than `single`" in text
    assert "`dvme` is not distinguishable from `single`" in text
    assert "`dvme+meta-token` is worse than `single+meta`" in text
    with pytest.raises(ValueError, match="no paired differences"):
        answer(pd.DataFrame(rows).assign(metric="f1"))


def test_cli_writes_tables_and_provenance(tmp_path, monkeypatch):
    import fusion_utils.fusion.meta_embedding as me

    _runs, manifest_path = _write_runs(tmp_path)
    monkeypatch.setattr(me, "DVMEConfig", lambda seed=0: DVMEConfig(
        dim=8, n_heads=2, max_epochs=5, patience=2, seed=seed))
    out = tmp_path / "out"
    assert main(["real", "--dataset", "ptbxl", "--run-dirs", str(tmp_path / "ptbxl-toy*"),
                 "--manifest", str(manifest_path), "--out-dir", str(out),
                 "--n-bootstrap", "20"]) == 0
    metrics, attention, prov = committed_meta_embedding("ptbxl", out)
    assert set(metrics["model"]) >= {"single", "dvme", "dvme+meta-concat"}
    assert set(attention["source"]) == {"toy0", "toy1", "toy2", "metadata"}
    assert prov["sources"] == ["toy0", "toy1", "toy2"] and prov["n_test"] == 40
    assert prov["command"].endswith("--n-bootstrap 20") and len(prov["features_sha256"]) == 3
    assert json.loads((out / "PROVENANCE.json").read_text())["ptbxl"]["dvme"]["max_epochs"] == 5
    assert committed_meta_embedding("ham10000", out) is None


def test_plot_attention_by_class_draws_one_panel_per_model(comparison):
    import matplotlib

    matplotlib.use("Agg")
    from fusion_utils.fusion.plots import plot_attention_by_class

    _, _, res = comparison
    fig = plot_attention_by_class(res.attention, title="toy")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["dvme", "dvme+meta-token", "dvme+meta-concat"]
    image = panels[1].images[0].get_array()
    assert image.shape == (5, 4)  # five classes x (three sources + metadata token)
    np.testing.assert_allclose(image.sum(axis=1), 1.0, atol=1e-9)
    with pytest.raises(ValueError, match="lacks"):
        plot_attention_by_class(res.attention.drop(columns="source"))

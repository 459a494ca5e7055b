"""Fusion H = [F(X), G(M)] and alignment of features with the manifest by record_id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion_utils.fusion.metadata import MetadataEncoder
from fusion_utils.fusion.train import align_metadata, feature_matrix, fuse, metadata_frame


class _FS:  # FeatureSet-like
    def __init__(self, ids, X):
        self.ids = np.asarray(ids)
        self.X = np.asarray(X, np.float32)
        self.feature_names = np.array([f"img.{i:04d}" for i in range(self.X.shape[1])])


def _manifest():
    return pd.DataFrame({
        "record_id": ["3", "1", "2"],
        "label": ["MI", "NORM", "CD"],
        "split": ["train", "train", "test"],
        "meta.age": [70.0, 56.0, np.nan],
        "meta.recording_date": ["1990-01-02 03:04:05", "2001-05-28 12:49:25",
                                "1984-11-09 09:17:34"],
    })


def test_align_by_record_id_and_fuse_with_names():
    fs = _FS(["1", "2", "3"], np.arange(6).reshape(3, 2))
    meta = align_metadata(fs, _manifest())
    assert meta["meta.age"].fillna(-9).tolist() == [56.0, -9, 70.0]
    enc = MetadataEncoder().fit(meta.iloc[[0, 2]])
    H, names = fuse(fs, meta, enc)
    assert names.tolist() == ["img.0000", "img.0001", "age", "recording_date.year",
                              "recording_date.month", "recording_date.day",
                              "recording_date.hour", "recording_date.minute",
                              "recording_date.second"]
    assert H.shape == (3, 9) and H.dtype == np.float64
    np.testing.assert_array_equal(H[:, :2], fs.X)  # F(X) first, unchanged
    assert H[0, 2:].tolist() == [56, 2001, 5, 28, 12, 49, 25]
    assert H[1, 2] == -1  # NaN age -> -1


def test_fuse_accepts_plain_arrays_and_none():
    X = np.ones((2, 3))
    H, names = fuse((X, ["a", "b", "c"]), None, None)
    assert H.shape == (2, 3) and names.tolist() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="3 feature names"):
        feature_matrix((np.ones((2, 2)), ["a", "b", "c"]))
    with pytest.raises(TypeError, match="FeatureSet"):
        feature_matrix(np.ones((2, 2)))


def test_errors_name_what_is_wrong():
    fs = _FS(["1", "99"], np.ones((2, 1)))
    with pytest.raises(KeyError, match="99"):
        align_metadata(fs, _manifest())
    with pytest.raises(KeyError, match="meta.height"):
        metadata_frame(_manifest(), ["height"])
    enc = MetadataEncoder().fit(_manifest()[["meta.age"]])
    with pytest.raises(ValueError, match="align"):
        fuse(_FS(["1"], np.ones((1, 1))), _manifest()[["meta.age"]], enc)


def test_with_real_featureset_class(tmp_path):
    features = pytest.importorskip("fusion_utils.features.extraction")
    fs = features.FeatureSet(ids=["1", "2", "3"], labels=["NORM", "CD", "MI"],
                             split=["train", "test", "train"], X=np.ones((3, 4)),
                             feature_names=features.FeatureSet.names(4), info={})
    fs.save(tmp_path / "features.npz")
    fs = features.FeatureSet.load(tmp_path / "features.npz")
    meta = align_metadata(fs, _manifest(), columns=["age"])
    H, names = fuse(fs, meta, MetadataEncoder().fit(meta))
    assert names[-1] == "age" and H[:, -1].tolist() == [56.0, -1.0, 70.0]


def test_classifier_inputs_with_nan_or_text_name_columns_and_records() -> None:
    from fusion_utils.errors import ClassifierError
    from fusion_utils.fusion.train import check_classifier_inputs

    names = ["img.0000", "img.0001", "meta.age"]
    ids = ["r1", "r2", "r3"]
    ok = check_classifier_inputs(np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]]), names, ids)
    assert ok.dtype == np.float64 and ok[2, 2] == 9.0
    M = np.ones((3, 3))
    M[1, 2] = np.nan
    M[2, 0] = np.inf
    with pytest.raises(ClassifierError, match=r"2 column\(s\), e\.g\. \['img\.0000', 'meta\.age'\]"
                                              r", for 2 record\(s\), e\.g\. \['r2', 'r3'\]"):
        check_classifier_inputs(M, names, ids)
    text = np.array([[1.0, 2.0, "abc"], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], dtype=object)
    with pytest.raises(ClassifierError, match=r"not numbers in column\(s\) \['meta\.age'\]"):
        check_classifier_inputs(text, names, ids, model="image")


def _toy_run(n: int = 120, d: int = 6, seed: int = 0):
    """A FeatureSet-like object and a PTB-XL manifest with age and sex (metadata tied to y)."""
    from types import SimpleNamespace

    classes = ["NORM", "MI", "STTC", "CD", "HYP"]
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 5
    X = rng.normal(size=(n, d)) + 0.8 * (y[:, None] == np.arange(d) % 5)
    ids = np.array([f"r{i}" for i in range(n)])
    split = np.where(np.arange(n) < 90, "train", "test")
    features = SimpleNamespace(ids=ids, labels=np.array(classes)[y], split=split, X=X,
                               feature_names=np.array([f"img.{i:04d}" for i in range(d)]))
    manifest = pd.DataFrame({"record_id": ids, "label": np.array(classes)[y], "split": split,
                             "meta.age": rng.normal(60, 10, n) + 5 * y,
                             "meta.sex": np.where(y % 2 == 0, "male", "female")})
    manifest.attrs = {"dataset": "ptbxl"}
    return features, manifest


def test_training_parameter_chooses_the_solver_and_changes_the_weights(tmp_path):
    import json

    from fusion_utils.fusion.train import train_image_and_fused, write_run

    features, manifest = _toy_run()
    params = {"max_epochs": 50, "tol": 1e-6}
    with pytest.warns(Warning):  # the converged fit stops at max_epochs on separable toy data
        conv = train_image_and_fused(features, manifest, classifier_params=params)
    paper = train_image_and_fused(features, manifest, classifier_params=params, training="paper")
    assert conv["parameters"]["training"] == "converged"
    assert conv["parameters"]["solver"] == "lbfgs"
    assert paper["parameters"]["training"] == "paper"
    assert paper["parameters"]["solver"] == "trainscg"
    assert {f["solver"] for f in paper["fit"].values()} == {"trainscg"}
    assert paper["fit"]["fused"]["epochs"] == 50  # MATLAB's budget, rejected steps counted
    # raw age (~60) next to features of scale 1: MATLAB's training is far from the optimum
    # after 50 epochs, the converged one is not, so the fused weights differ
    a, b = conv["models"]["fused"].coef_, paper["models"]["fused"].coef_
    assert a.shape == b.shape and not np.allclose(a, b, rtol=0.1, atol=0.01)
    assert paper["fit"]["fused"]["stop_reason"] == "max_epochs"
    assert conv["fit"]["fused"]["grad_norm"] < 1e-3 < paper["fit"]["fused"]["grad_norm"]
    # the paper's training is MATLAB's trainscg from zeros: the same fit done directly agrees
    from fusion_utils.fusion.softmax import SoftmaxClassifier

    H, _ = paper["matrices"]["fused"]
    train = paper["train"]
    direct = SoftmaxClassifier(solver="trainscg", **params).fit(
        H[train], features.labels[train])
    np.testing.assert_allclose(paper["models"]["fused"].coef_, direct.coef_)
    timings = write_run(tmp_path / "run", paper, {"seconds": 3.0})
    assert timings["training"] == "paper"
    assert json.loads((tmp_path / "run" / "timings.json").read_text())["training"] == "paper"
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["stages"]["fusion"]["parameters"]["training"] == "paper"
    assert run_json["stages"]["fusion"]["parameters"]["solver"] == "trainscg"


def test_training_parameter_refuses_what_matlab_lacks():
    from fusion_utils.fusion.train import TRAININGS, training_params

    assert TRAININGS == {"converged": "lbfgs", "paper": "trainscg"}
    assert training_params("paper", {"l2": 0.0})["solver"] == "trainscg"
    with pytest.raises(ValueError, match="training='fast'.*converged, paper"):
        training_params("fast")
    with pytest.raises(ValueError, match="training='paper' with l2=0.01"):
        training_params("paper", {"l2": 0.01})
    with pytest.raises(ValueError, match="standardize=True"):
        training_params("paper", {"standardize": True})
    with pytest.raises(ValueError, match="solver='gd'"):
        training_params("converged", {"solver": "gd"})

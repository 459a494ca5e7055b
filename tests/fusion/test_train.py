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

"""MetadataEncoder: the paper's mapping G (Eq. 2), its options and its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion_utils.fusion.metadata import MetadataEncoder, parse_datetime_column


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "meta.age": [56.0, 19.0, np.nan, 70.0],
        "meta.sex": ["male", "female", "female", None],
        "meta.recording_date": ["2001-05-28 12:49:25", "1984-11-09 09:17:34", None,
                                "1990-01-02T03:04:05"],
    })


def test_paper_example_date_to_six_numbers():
    enc = MetadataEncoder().fit(_frame())
    out = enc.transform(_frame())
    names = list(enc.get_feature_names_out())
    assert names == ["age", "sex", "recording_date.year", "recording_date.month",
                     "recording_date.day", "recording_date.hour", "recording_date.minute",
                     "recording_date.second"]
    assert out[0, 2:].tolist() == [2001, 5, 28, 12, 49, 25]  # the paper's example
    assert out[3, 2:].tolist() == [1990, 1, 2, 3, 4, 5]  # ISO 'T' variant


def test_numbers_pass_through_nan_is_minus_one_categories_sorted():
    out = MetadataEncoder().fit(_frame()).transform(_frame())
    assert out[:, 0].tolist() == [56.0, 19.0, -1.0, 70.0]
    # categories learned on training, sorted and numbered from 1 as MATLAB's categorical:
    # female=1, male=2; missing -> -1
    assert out[:, 1].tolist() == [2.0, 1.0, 1.0, -1.0]
    assert (out[2, 2:] == -1).all()  # missing date -> six -1


def test_unseen_category_maps_to_minus_one_and_fit_uses_training_only():
    train = pd.DataFrame({"meta.device": ["CS-12", "AT-6", "CS-12"]})
    test = pd.DataFrame({"meta.device": ["AT-6", "NEW-1", "CS-12"]})
    enc = MetadataEncoder().fit(train)
    assert enc.categories_["device"] == ["AT-6", "CS-12"]
    assert enc.transform(test)[:, 0].tolist() == [1.0, -1.0, 2.0]


def test_plain_column_names_and_prefix_are_interchangeable():
    plain = _frame().rename(columns=lambda c: c.removeprefix("meta."))
    a = MetadataEncoder().fit(_frame()).transform(plain)
    b = MetadataEncoder().fit(plain).transform(_frame())
    np.testing.assert_array_equal(a, b)


def test_malformed_date_names_column_and_value():
    bad = pd.DataFrame(
        {"meta.recording_date": ["2001-05-28 12:49:25"] * 20 + ["2001-13-45 99:00:00"]})
    with pytest.raises(ValueError, match=r"recording_date.*2001-13-45 99:00:00"):
        MetadataEncoder().fit(bad)
    garbage = pd.Series(["28/05/2001"])
    with pytest.raises(ValueError, match=r"'when'.*28/05/2001"):
        parse_datetime_column(garbage, "when")


def test_explicit_datetime_columns_and_date_only():
    df = pd.DataFrame({"d": ["2001-05-28", "2002-06-01"]})
    enc = MetadataEncoder(datetime_columns=["meta.d"]).fit(df)
    assert enc.transform(df)[0].tolist() == [2001, 5, 28, 0, 0, 0]


def test_standardised_option_zero_mean_unit_std_on_training():
    df = _frame()
    enc = MetadataEncoder(encoding="standardised").fit(df)
    out = enc.transform(df)
    age = out[:, 0]
    assert age[2] == pytest.approx(0.0)  # missing -> training mean -> 0
    assert np.mean(age) == pytest.approx(0.0, abs=1e-12)
    assert np.std(age) == pytest.approx(1.0)


def test_onehot_option_indicators():
    df = _frame()
    enc = MetadataEncoder(encoding="onehot").fit(df)
    names = list(enc.get_feature_names_out())
    assert names[:3] == ["age", "sex=female", "sex=male"]
    out = enc.transform(df)
    assert out[:, 1:3].tolist() == [[0, 1], [1, 0], [1, 0], [0, 0]]


def test_sklearn_pipeline_and_clone():
    from sklearn.base import clone

    enc = clone(MetadataEncoder(encoding="paper"))
    assert enc.fit_transform(_frame()).shape == (4, 8)
    with pytest.raises(ValueError, match="encoding"):
        MetadataEncoder(encoding="bogus").fit(_frame())


def test_real_ptbxl_and_ham_metadata(shared_ptbxl, shared_ham):
    ptb = pd.read_csv(shared_ptbxl / "ptbxl_database.csv", nrows=300)
    meta = ptb[["age", "sex", "height", "weight", "recording_date"]].add_prefix("meta.")
    enc = MetadataEncoder().fit(meta)
    out = enc.transform(meta)
    assert enc.kinds_["recording_date"] == "datetime"
    # ecg_id 1: age 56, sex 1, recorded 1984-11-09 09:17:34 (README of the shared data)
    assert out[0, 0] == 56 and out[0, 1] == 1
    assert out[0, -6:].tolist() == [1984, 11, 9, 9, 17, 34]
    assert (out[:, 2] == -1).sum() == ptb["height"].isna().sum()
    ham = pd.read_csv(shared_ham / "HAM10000_metadata.csv")
    enc = MetadataEncoder().fit(ham[["age", "sex", "localization"]])
    out = enc.transform(ham[["age", "sex", "localization"]])
    assert (out[:, 0] == -1).sum() == 57  # 'age' missing in 57 rows (README)
    # 'unknown' sex (57 rows) and localization (234 rows) are missing values, as null in ISIC's JSON
    assert enc.categories_["sex"] == ["female", "male"]
    assert "unknown" not in enc.categories_["localization"]
    assert enc.categories_["localization"][:3] == ["abdomen", "acral", "back"]
    assert (out[:, 1] == -1).sum() == (ham["sex"] == "unknown").sum() == 57
    assert (out[:, 2] == -1).sum() == (ham["localization"] == "unknown").sum() == 234
    assert set(np.unique(out[:, 1])) == {-1.0, 1.0, 2.0}
    kept = MetadataEncoder(missing_values=()).fit(ham[["sex"]])
    assert kept.categories_["sex"] == ["female", "male", "unknown"]


def test_unknown_is_missing_by_default_in_every_encoding():
    df = pd.DataFrame({"sex": ["male", "Unknown ", "female", None],
                       "age": ["50", "unknown", "60", "70"],
                       "when": ["2001-05-28", "unknown", "2002-01-01", "2003-03-03"]})
    paper = MetadataEncoder().fit(df)
    out = paper.transform(df)
    assert paper.kinds_ == {"sex": "categorical", "age": "numeric", "when": "datetime"}
    assert out[:, 0].tolist() == [2.0, -1.0, 1.0, -1.0]
    assert out[:, 1].tolist() == [50.0, -1.0, 60.0, 70.0]
    assert (out[1, 2:] == -1).all()
    onehot = MetadataEncoder(encoding="onehot").fit(df)
    assert list(onehot.get_feature_names_out()[:2]) == ["sex=female", "sex=male"]
    assert onehot.transform(df)[:, :2].tolist() == [[0, 1], [0, 0], [1, 0], [0, 0]]
    std = MetadataEncoder(encoding="standardised").fit(df).transform(df)
    assert std[1, 0] == pytest.approx(0.0) and std[3, 0] == pytest.approx(0.0)


def test_category_codes_start_at_one_and_never_touch_minus_one():
    """With K categories the codes are exactly 1..K; -1 is left for missing and unseen values."""
    values = ["c", "a", "b", "a", "d", None]
    out = MetadataEncoder().fit_transform(pd.DataFrame({"v": values}))[:, 0]
    assert out.tolist() == [3.0, 1.0, 2.0, 1.0, 4.0, -1.0]


def test_arrays_are_tables_with_positional_columns():
    X = np.array([[1.0, np.nan], [2.0, 5.0], [3.0, 6.0]])
    enc = MetadataEncoder().fit(X)
    assert enc.columns_ == ["x0", "x1"] and enc.n_features_in_ == 2
    assert enc.transform(X).tolist() == [[1.0, -1.0], [2.0, 5.0], [3.0, 6.0]]
    with pytest.raises(ValueError, match="X has 1 features, but MetadataEncoder is expecting 2"):
        enc.transform(X[:, :1])
    with pytest.raises(ValueError, match="0 sample"):
        MetadataEncoder().fit(pd.DataFrame({"age": []}))
    with pytest.raises(ValueError, match="infinity.*'x0'"):
        MetadataEncoder().fit(np.array([[np.inf], [1.0]]))

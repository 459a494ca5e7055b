"""The package's one bootstrap engine: stratified resamples and percentile intervals."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_utils.evaluation.bootstrap import (
    bootstrap_intervals,
    check_level,
    difference_name,
    stratified_resamples,
)


def test_bootstrap_engine_by_hand():
    """Percentile limits of a statistic whose resampled values can be listed: the mean of a
    0/1 score in a class of four records. Stratified: the other class's rows never move."""
    y = np.array(list("aaaab"))
    score = np.array([[0.0], [0.0], [1.0], [1.0], [5.0]])
    idx = list(stratified_resamples(y, 400, seed=1))
    assert all(sorted(i[-1:]) == [4] for i in idx)  # class b keeps its one record
    assert all(set(i[:4]) <= {0, 1, 2, 3} for i in idx)
    out = bootstrap_intervals(y, {"m": score}, lambda yy, p: p[yy == "a", 0].mean(),
                              n_bootstrap=400, seed=1, level=0.9)
    row = out.iloc[0]
    assert row["estimate"] == 0.5 and row["statistic"] == "value"
    # the resampled means take the values k/4; reproduce the percentiles from the same indices
    means = np.array([score[i[:4], 0].mean() for i in idx])
    assert row["ci_low"] == np.quantile(means, 0.05) and row["ci_high"] == np.quantile(means, 0.95)
    with pytest.raises(ValueError, match="level=95"):
        bootstrap_intervals(y, {"m": score}, lambda yy, p: 0.0, level=95)
    with pytest.raises(KeyError, match="no model 'x'"):
        bootstrap_intervals(y, {"m": score}, lambda yy, p: 0.0, differences=[("x", "m")])


def test_seeded_and_paired_differences():
    y = np.array(list("aabbb"))
    a = np.arange(5.0)[:, None]
    b = a + 1.0
    stat = lambda yy, p: p.mean()  # noqa: E731
    one = bootstrap_intervals(y, {"a": a, "b": b}, stat, n_bootstrap=50, seed=3,
                              differences=[("a", "b")])
    two = bootstrap_intervals(y, {"a": a, "b": b}, stat, n_bootstrap=50, seed=3,
                              differences=[("a", "b")])
    assert one.equals(two)
    diff = one.set_index("model").loc[difference_name("a", "b")]
    # b = a + 1 on the same resample: the difference is exactly 1 in every resample
    np.testing.assert_allclose(diff[["estimate", "ci_low", "ci_high"]].to_numpy(float), 1.0)
    assert list(one["model"]) == ["a", "b", "b - a"]
    assert check_level(0.9) == 0.9
    with pytest.raises(ValueError, match="n_bootstrap=0"):
        next(stratified_resamples(y, 0))

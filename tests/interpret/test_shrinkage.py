"""The Fig. 5 shrinkage statistic per training set-up, and its plain-words reading."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from fusion_utils.fusion.softmax import SoftmaxClassifier
from fusion_utils.interpret.shrinkage import shrinkage_conclusion, shrinkage_table


def _data(n=160, d=12, k=3, seed=0):
    """Overlapping classes (a finite, unique unpenalised optimum) plus raw 'age' and 'year'."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    img = rng.normal(size=(n, d)) + 0.6 * (y[:, None] == (np.arange(d) % k))
    age = rng.normal(60, 12, n) + 3 * y
    year = rng.integers(1984, 2002, n).astype(float)
    X = np.column_stack([img, age, year])
    names = [f"img.{i:04d}" for i in range(d)] + ["age", "recording_date.year"]
    return X, np.array(["a", "b", "c"])[y], names


def test_table_matches_direct_fits_and_standardising_only_touches_metadata():
    X, y, names = _data()
    train = np.arange(len(y)) % 4 != 0
    tab = shrinkage_table(X, y, names, train=train, max_epochs=300).set_index("setup")
    assert list(tab.index) == ["paper_raw", "paper_standardised", "converged_raw",
                               "converged_standardised"]
    # paper_raw by hand: MATLAB's training of both classifiers on the training rows
    img = np.array([n.startswith("img.") for n in names])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = SoftmaxClassifier(solver="trainscg", max_epochs=300).fit(X[train][:, img], y[train])
        b = SoftmaxClassifier(solver="trainscg", max_epochs=300).fit(X[train], y[train])
    expected = np.median(np.abs(a.coef_)) / np.median(np.abs(b.coef_[:, img]))
    assert tab.loc["paper_raw", "ratio"] == pytest.approx(expected, rel=1e-12)
    assert tab.loc["paper_raw", "orders_of_magnitude"] == pytest.approx(np.log10(expected))
    assert tab.loc["paper_raw", "epochs_fused"] == b.n_epochs_
    # the image-only classifier does not see metadata: the same in both metadata scalings
    for solver in ("paper", "converged"):
        assert (tab.loc[f"{solver}_raw", "median_abs_image_only"]
                == tab.loc[f"{solver}_standardised", "median_abs_image_only"])
    # at a unique unpenalised optimum, z-scoring the metadata columns re-parametrises only
    # their weights (and the intercept): the image weights, and so the ratio, are unchanged
    assert tab.loc["converged_raw", "stop_fused"] == "tol"
    assert tab.loc["converged_standardised", "ratio"] == pytest.approx(
        tab.loc["converged_raw", "ratio"], rel=1e-4)
    # ... while a fixed SCG budget on raw metadata ends elsewhere than on standardised metadata
    assert tab.loc["paper_raw", "ratio"] != pytest.approx(tab.loc["paper_standardised", "ratio"],
                                                          rel=1e-3)


def test_refuses_bad_input():
    X, y, names = _data(n=40)
    with pytest.raises(ValueError, match="unknown set-up"):
        shrinkage_table(X, y, names, setups=["paper"])
    with pytest.raises(ValueError, match="metadata"):
        shrinkage_table(X[:, :12], y, names[:12])
    with pytest.raises(ValueError, match="shape"):
        shrinkage_table(X, y, names[:-1])


def _table(**ratios):
    return pd.DataFrame({"setup": list(ratios), "ratio": list(ratios.values())})


def test_conclusion_names_the_setups_that_reproduce_the_paper():
    only_paper = shrinkage_conclusion(_table(paper_raw=150.0, paper_standardised=1.1,
                                             converged_raw=0.97, converged_standardised=1.0))
    assert "appears with the paper's training (MATLAB's scaled conjugate gradient" in only_paper
    assert "(150x)" in only_paper and "not with" in only_paper
    assert "product of how the paper trained" in only_paper
    none = shrinkage_conclusion(_table(paper_raw=2.0, converged_raw=0.97))
    assert none.startswith("No set-up reproduces") and "not supported here" in none
    # below 10x, but the paper's training alone shrinks the weights (the real HAM10000 case)
    near = shrinkage_conclusion(_table(paper_raw=9.4, paper_standardised=0.36,
                                       converged_raw=0.9, converged_standardised=1.05))
    assert near.startswith("No set-up reproduces") and "comes closest (9.4x" in near
    assert "product of how the paper trained" in near and "not supported here" not in near
    close_others = shrinkage_conclusion(_table(paper_raw=4.0, converged_raw=2.0))
    assert "comes closest" not in close_others and "not supported here" in close_others
    every = shrinkage_conclusion(_table(paper_raw=20.0, converged_raw=30.0))
    assert every.startswith("Every set-up") and "product of" not in every
    mixed = shrinkage_conclusion(_table(paper_raw=2.0, converged_raw=30.0))
    assert "appears with the classifier trained to convergence on raw metadata" in mixed
    assert "product of how the paper trained" not in mixed and "depends on the set-up" in mixed
    with pytest.raises(ValueError, match="empty"):
        shrinkage_conclusion(_table())


def test_committed_real_shrinkage_is_the_papers_statistic() -> None:
    """results/real/shrinkage.parquet: the four set-ups for each real run, each ratio the
    image-only over the fused median |image weight|, and a conclusion naming the set-ups."""
    from fusion_utils.interpret.shrinkage import REAL_RUNS, SETUPS, committed_shrinkage

    table = committed_shrinkage()
    if table is None:
        pytest.skip("no committed results/real/shrinkage.parquet")
    assert set(table["run"]) == set(REAL_RUNS)
    for _run, block in table.groupby("run"):
        assert list(block["setup"]) == list(SETUPS)
        assert block["conclusion"].nunique() == 1
    np.testing.assert_allclose(table["ratio"],
                               table["median_abs_image_only"] / table["median_abs_fused"])

"""Plain-language summaries of the interpretability and metadata-only chapters, written by code
and tested, so that every number in the chapters' sentences comes from the tables above them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["metadata_only_summary", "reading_summary", "weight_ratio_summary"]

_READING_NAMES = {"mean_abs_weight": "raw weight", "mean_abs_std_weight": "standardised weight",
                  "permutation_importance": "permutation importance",
                  "ablation_delta": "ablation"}
IMAGE_BLOCK = "image features (all)"


def weight_ratio_summary(ratio: float, ratios: Sequence[float]) -> str:
    """The Fig. 5 statistic in words: the main run's median-|weight| ratio and the range.

    Parameters
    ----------
    ratio : float
        Median |image weight| without metadata over the same with metadata, main run.
    ratios : sequence of float
        The same ratio for every run read.
    """
    r = np.asarray(ratios, dtype=float)
    return (f"In the main run the median |weight| of the image features without metadata divided "
            f"by the same with metadata is **{ratio:.3g}** (10^{np.log10(ratio):.2f}; above 1 "
            f"means the image weights shrink when metadata join); across the {len(r)} run(s) it "
            f"ranges from {np.nanmin(r):.3g} to {np.nanmax(r):.3g}. The paper's one to three "
            "orders of magnitude would be ratios of 10 to 1000.")


def reading_summary(reading: pd.DataFrame, permutation: pd.DataFrame | None = None, *,
                    negligible: float = 1e-3) -> str:
    """Markdown bullets: the most important metadata column by each reading, and rank moves.

    Parameters
    ----------
    reading : pandas.DataFrame
        :func:`fusion_utils.interpret.weights.reading_comparison` (index: metadata columns;
        score columns and their ``rank_`` columns).
    permutation : pandas.DataFrame, optional
        :func:`fusion_utils.interpret.importance.grouped_permutation_importance`, with a row
        ``"image features (all)"`` for the whole image block.
    negligible : float
        Permutation and ablation scores at or below this (macro AUROC) count as no effect.
    """
    lines = []
    for col in [c for c in reading.columns if not c.startswith("rank_")]:
        best = reading[col].max()
        name = _READING_NAMES.get(col, col)
        if not np.isfinite(best) or (best <= negligible
                                     and col in ("permutation_importance", "ablation_delta")):
            lines.append(f"- by **{name}** no metadata column has a measurable effect (all below "
                         f"{negligible:g} macro AUROC)")
            continue
        tied = ", ".join(f"`{i}`" for i in reading.index[reading[col] == best])
        lines.append(f"- by **{name}** the most important metadata column is {tied}")
    if {"rank_mean_abs_weight", "rank_permutation_importance"} <= set(reading.columns):
        shift = (reading["rank_mean_abs_weight"] - reading["rank_permutation_importance"]).abs()
        moved = reading.index[shift >= 2]
        lines.append("- columns whose rank moves by two places or more between the raw weights "
                     "and the permutation importance: "
                     + (", ".join(f"`{m}`" for m in moved) or "none"))
    if permutation is not None and IMAGE_BLOCK in set(permutation["feature"]):
        img = permutation.set_index("feature").loc[IMAGE_BLOCK, "importance_mean"]
        meta = permutation.loc[permutation["feature"] != IMAGE_BLOCK, "importance_mean"].max()
        lines.append(f"- shuffling all image features costs {img:.3f} macro AUROC, the most "
                     f"important metadata column {meta:.3f}")
    return "\n".join(lines)


def metadata_only_summary(auroc: pd.DataFrame, delta: pd.DataFrame,
                          importances: Sequence[pd.DataFrame], *, source: str, n_records: int,
                          n_test: int, split_scheme: str, seed: int, n_bootstrap: int,
                          encoding: str, top: int = 3) -> str:
    """The metadata-only chapter's summary in Markdown: data, AUROC per set, differences, columns.

    Parameters
    ----------
    auroc : pandas.DataFrame
        One row per model: ``column_set``, ``encoding``, ``label_leak``, ``auroc``, ``ci_low``,
        ``ci_high``.
    delta : pandas.DataFrame
        Paired differences: ``model`` (``"<new> - <base>"``), ``auroc``, ``ci_low``, ``ci_high``.
    importances : sequence of pandas.DataFrame
        Permutation importance per probed set (``column_set``, ``feature``,
        ``importance_mean``, sorted decreasing).
    source : str
        Which data (demo cohort or the real table, and its folder).
    n_records, n_test, split_scheme, seed, n_bootstrap
        The cohort's size, the test split's size and how they were drawn.
    encoding : str
        The encoding the permutation importance was computed with.
    top : int
        Columns listed per set.
    """
    def interval(a: float, lo: float, hi: float, sign: str = "") -> str:
        return f"{a:{sign}.3f} [{lo:{sign}.3f}, {hi:{sign}.3f}]"

    lines = [f"- `{r.column_set}` [{r.encoding}]: macro AUROC "
             f"**{interval(r.auroc, r.ci_low, r.ci_high)}**"
             + (" **(label leak: not a baseline)**" if r.label_leak else "")
             for r in auroc.itertuples()]
    diffs = [f"- {r.model}: {interval(r.auroc, r.ci_low, r.ci_high, '+')}"
             for r in delta.itertuples()]
    used = [f"- `{imp['column_set'].iloc[0]}` [{encoding}]: "
            + ", ".join(f"{f} {v:.3f}" for f, v in zip(imp["feature"].head(top),
                                                         imp["importance_mean"].head(top),
                                                         strict=True))
            for imp in importances if len(imp)]
    head = (f"Data: {source}; {n_records:,} records, {n_test:,} in the test split "
            f"(`split_scheme={split_scheme!r}`, seed {seed}, {n_bootstrap} bootstrap resamples).")
    return (head + "\n\n" + "\n".join(lines)
            + "\n\nPaired differences from the first set:\n\n" + ("\n".join(diffs) or "- none")
            + "\n\nMost used columns (drop in macro AUROC when shuffled):\n\n" + "\n".join(used))

"""Plain-language summaries of the evaluation chapter's tables, written by code and tested.

The chapter prints these sentences under its tables; building them here (not from f-strings in
the notebook) keeps every number in them computed from the tables they summarise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["data_label", "evaluation_summary"]


def data_label(run_name: str, dataset: str, n_test: int) -> str:
    """The data a figure of one run shows, for captions: ``"run x (PTB-XL), 80 test records"``."""
    names = {"ptbxl": "PTB-XL", "ham10000": "HAM10000"}
    return f"run {run_name} ({names.get(dataset, dataset)}), {n_test:,} test records"


def evaluation_summary(improvement: pd.DataFrame, sig: pd.DataFrame, *,
                       alpha: float = 0.05) -> str:
    """One paragraph: how many macro metrics improve, the AUROC change, significant classes.

    Parameters
    ----------
    improvement : pandas.DataFrame
        Indexed by metric, with a column ``improvement`` (percentage points, fused - image), e.g.
        the ``macro_mean`` rows of :func:`fusion_utils.evaluation.metrics.improvement_table`.
    sig : pandas.DataFrame
        :func:`fusion_utils.evaluation.significance.classwise_delong` (``class``, ``p_value``).
    alpha : float
        Significance level of DeLong's test.
    """
    gains = improvement["improvement"].to_numpy(float)
    better = int((gains > 0).sum())
    worse = int((gains < 0).sum())
    parts = [f"With metadata, {better} of {len(gains)} macro metrics improve"
             + (f" and {worse} get worse" if worse else "")]
    if "auroc" in improvement.index and np.isfinite(improvement.loc["auroc", "improvement"]):
        parts.append(f"the macro AUROC changes by "
                     f"{improvement.loc['auroc', 'improvement']:+.1f} percentage points")
    p = sig["p_value"].to_numpy(float)
    tested = int(np.isfinite(p).sum())
    n_sig = int((p <= alpha).sum())
    up = int(((p <= alpha) & (sig["diff"].to_numpy(float) > 0)).sum()) if "diff" in sig else n_sig
    detail = f" ({up} up, {n_sig - up} down)" if n_sig else ""
    parts.append(f"{n_sig} of {tested} tested classes have a significant AUROC change{detail} "
                 f"(DeLong's paired test, p <= {alpha:g}, not corrected for {tested} tests)")
    return "; ".join(parts[:-1]) + ", and " + parts[-1] + "."

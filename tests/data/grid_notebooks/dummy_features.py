# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Dummy stage 1 for the grid tests
# Writes `features.json` into `run_dir`; raises when `fail` is true.

# %% tags=["parameters"]
dataset: str = "ptbxl"  # dataset name
run_dir: str = ""  # run folder
backbone: str = "tiny"  # backbone name
mode: str = "bn"  # bn or ft
augment: bool = False  # augmentation on
fail: bool = False  # raise on purpose (tests the failure path)
seed: int = 0  # random seed

# %%
# ruff: noqa: E402  (imports after the parameters cell, as in every notebook)
import json
import os
from pathlib import Path

if fail:
    raise RuntimeError(f"dummy failure requested for {dataset}")
out = Path(run_dir)
out.mkdir(parents=True, exist_ok=True)
info = {"dataset": dataset, "backbone": backbone, "mode": mode, "augment": augment, "seed": seed,
        "omp_threads": os.environ.get("OMP_NUM_THREADS")}
(out / "features.json").write_text(json.dumps(info))

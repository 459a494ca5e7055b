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
# # Dummy stage 2 for the grid tests
# Reads `features.json` and writes `metrics.parquet` and `significance.parquet` in the formats
# of notebook 05, with values that follow from the configuration:
# image = 0.6 (+0.1 for ft), fused = image + 0.05 (+0.02 with augmentation).

# %% tags=["parameters"]
dataset: str = "ptbxl"  # dataset name
run_dir: str = ""  # run folder
config_label: str = ""  # configuration id
seed: int = 0  # random seed

# %%
# ruff: noqa: E402  (imports after the parameters cell, as in every notebook)
import json
from pathlib import Path

import pandas as pd

out = Path(run_dir)
info = json.loads((out / "features.json").read_text())
image = 0.6 + (0.1 if info["mode"] == "ft" else 0.0)
fused = image + 0.05 + (0.02 if info["augment"] else 0.0)
rows = []
for metric in ("accuracy", "auroc"):
    for model, value in (("image", image), ("fused", fused)):
        for cls, v in (("A", value - 0.01), ("B", value + 0.01)):
            rows.append({"metric": metric, "class": cls, "model": model, "value": v})
        rows.append({"metric": metric, "class": "macro_mean", "model": model, "value": value})
        rows.append({"metric": metric, "class": "macro_std", "model": model, "value": 0.01})
pd.DataFrame(rows).to_parquet(out / "metrics.parquet")
pd.DataFrame({"class": ["A", "B"], "auc_image": [image - 0.01, image + 0.01],
              "auc_fused": [fused - 0.01, fused + 0.01], "diff": [fused - image] * 2,
              "p_value": [0.04, 0.5], "stars": ["**", ""]}).to_parquet(out / "significance.parquet")
print(config_label, "done")

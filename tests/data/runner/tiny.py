# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tiny notebook for the runner's tests

# %% tags=["parameters"]
n: int = 3  # how many squares to write
out: str = ""  # file that receives the result
fail: bool = False  # raise on purpose

# %%
# ruff: noqa: E402
if fail:
    raise ValueError("asked to fail")
from pathlib import Path

Path(out).write_text(",".join(str(i * i) for i in range(n)))

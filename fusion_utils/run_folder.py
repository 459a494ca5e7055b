"""One owner of a run folder: the files that chapters 03-08 and the grid pass to each other.

A run folder holds one configuration's outputs (ARCHITECTURE.md, "Classifier outputs" and "Grid
runs"). :class:`RunFolder` knows the path of every file, which chapter writes it, and reads and
writes each one with its format checked:

======================== ================ ======================================
file                     written by       content
======================== ================ ======================================
``run.json``             every stage      parameters that produced the run
``features.npz``         notebook 03      :class:`~fusion_utils.features.extraction.FeatureSet`
``feature_timings.json`` notebook 03      extraction timings
``predictions.parquet``  notebook 04      ``record_id, split, label, model, prob.*``
``classifier_image.npz`` notebook 04      :mod:`fusion_utils.fusion.classifier_io`
``classifier_fused.npz`` notebook 04      idem
``timings.json``         notebook 04      extraction and classifier fit times
``metrics.parquet``      notebook 05      ``metric, class, model, value``
``significance.parquet`` notebook 05      DeLong test per class
``bootstrap_ci.parquet`` notebook 05      bootstrap confidence intervals
``results.parquet``      the grid runner  one run's tidy results
``status.json``          the grid runner  ``state`` (written last when done)
======================== ================ ======================================

Every write is atomic (:mod:`fusion_utils.io`). Every read raises ``FileNotFoundError`` naming
the run folder, the file and the chapter that writes it when the file is missing, and
:class:`fusion_utils.errors.RunFolderError` (a ``ValueError``, re-exported here) naming the file
when it is damaged (unreadable parquet, npz or JSON, or missing columns).

``run.json`` records every parameter that produced the run, stage by stage::

    {"dataset": "ptbxl", "created": "...", "updated": "...",
     "package_version": "0.1.0", "git_commit": "3f2c..." or null,
     "stages": {"features": {"updated": "...", "package_version": ..., "git_commit": ...,
                             "parameters": {"backbone": ..., "mode": ..., "seed": ...}},
                "fusion": {..., "parameters": {"encoding": ..., "metadata_columns": [...],
                                               "l2": ..., "tol": ..., "solver": ...}}}}

:meth:`RunFolder.parameters` merges the stages' parameters (later stages win on a shared key
such as ``manifest_path``); it is the only place parameters of a run are read from.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fusion_utils.errors import RunFolderError
from fusion_utils.io import atomic_path, atomic_write_json, file_sha256

if TYPE_CHECKING:  # pragma: no cover
    from fusion_utils.features.extraction import FeatureSet
    from fusion_utils.interpret.weights import ClassifierWeights

__all__ = [
    "FILES",
    "METRIC_COLUMNS",
    "MODELS",
    "PREDICTION_COLUMNS",
    "STAGES",
    "RunFolder",
    "RunFolderError",
    "git_commit",
]

#: file name -> who writes it (used in the error messages).
FILES: dict[str, str] = {
    "run.json": "every stage (notebooks 03-05, via RunFolder.record)",
    "features.npz": "notebook 03 (03_feature_extraction)",
    "feature_timings.json": "notebook 03 (03_feature_extraction)",
    "predictions.parquet": "notebook 04 (04_fusion)",
    "classifier_image.npz": "notebook 04 (04_fusion)",
    "classifier_fused.npz": "notebook 04 (04_fusion)",
    "timings.json": "notebook 04 (04_fusion)",
    "metrics.parquet": "notebook 05 (05_evaluation)",
    "significance.parquet": "notebook 05 (05_evaluation)",
    "bootstrap_ci.parquet": "notebook 05 (05_evaluation)",
    "results.parquet": "the grid runner (fusion_utils.experiments)",
    "status.json": "the grid runner (fusion_utils.experiments)",
}
#: the two classifiers of a run.
MODELS: tuple[str, ...] = ("image", "fused")
#: stages of a run, in the order they run (``run.json`` keeps their parameters).
STAGES: tuple[str, ...] = ("features", "fusion", "evaluation", "grid")
PREDICTION_COLUMNS: tuple[str, ...] = ("record_id", "split", "label", "model")
METRIC_COLUMNS: tuple[str, ...] = ("metric", "class", "model", "value")


@functools.lru_cache(maxsize=4)
def git_commit(folder: str | None = None) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``folder`` (default: the project root).

    Returns ``None`` when git is missing or the folder is not in a repository.
    """
    if folder is None:
        from fusion_utils.paths import project_root

        folder = str(project_root())
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _package_version() -> str:
    import fusion_utils

    return str(fusion_utils.__version__)


def _jsonable(value: Any) -> Any:
    """Plain JSON types for parameters (tuples to lists, numpy scalars to Python, paths to str)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        items = list(value) if not isinstance(value, set | frozenset) else sorted(value, key=str)
        return [_jsonable(v) for v in items]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class RunFolder:
    """Paths, typed readers and atomic writers of one run folder.

    Parameters
    ----------
    path : path-like
        The run folder (created by the first write, never by the constructor).

    Examples
    --------
    >>> run = RunFolder("runs/single/ptbxl")  # doctest: +SKIP
    >>> run.record("fusion", {"encoding": "paper"}, dataset="ptbxl")  # doctest: +SKIP
    >>> run.parameters()["encoding"]  # doctest: +SKIP
    'paper'
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @classmethod
    def for_notebook(cls, dataset: str, run_dir: str | os.PathLike[str] | None) -> RunFolder:
        """A notebook's ``run_dir`` parameter: empty means ``runs/single/<dataset>``; relative
        paths are taken from the project root."""
        from fusion_utils.paths import check_dataset, project_root, runs_dir

        if run_dir is None or str(run_dir).strip() == "":
            return cls(runs_dir("single") / check_dataset(dataset))
        path = Path(run_dir).expanduser()
        return cls(path if path.is_absolute() else project_root() / path)

    # ---------------------------------------------------------------- paths and checks

    def file(self, name: str) -> Path:
        """Path of one of the run's files (a name of :data:`FILES`)."""
        if name not in FILES:
            raise KeyError(f"{name!r} is not a run-folder file; expected one of {', '.join(FILES)}")
        return self.path / name

    @property
    def run_json(self) -> Path:
        return self.file("run.json")

    @property
    def features_path(self) -> Path:
        return self.file("features.npz")

    @property
    def predictions_path(self) -> Path:
        return self.file("predictions.parquet")

    @property
    def metrics_path(self) -> Path:
        return self.file("metrics.parquet")

    @property
    def results_path(self) -> Path:
        return self.file("results.parquet")

    @property
    def status_path(self) -> Path:
        return self.file("status.json")

    def classifier_path(self, model: str) -> Path:
        """``classifier_image.npz`` or ``classifier_fused.npz``."""
        if model not in MODELS:
            raise ValueError(f"model={model!r}: expected one of {', '.join(MODELS)}")
        return self.file(f"classifier_{model}.npz")

    def has(self, name: str) -> bool:
        """Whether the run holds file ``name``."""
        return self.file(name).is_file()

    def _existing(self, name: str) -> Path:
        path = self.file(name)
        if not path.is_file():
            raise FileNotFoundError(f"run folder {self.path} has no {name}: {FILES[name]} "
                                    f"writes it (missing {path})")
        return path

    # ---------------------------------------------------------------- generic formats

    def _read_json(self, name: str) -> dict[str, Any]:
        path = self._existing(name)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunFolderError(f"{path}: damaged JSON ({exc}); rerun {FILES[name]}") from exc
        if not isinstance(obj, dict):
            raise RunFolderError(f"{path}: expected a JSON object, found {type(obj).__name__}")
        return obj

    def _write_json(self, name: str, obj: Mapping[str, Any]) -> Path:
        return atomic_write_json(self.file(name), _jsonable(obj))

    def read_table(self, name: str, columns: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
        """Read a parquet file of the run, checking that it holds ``columns``."""
        path = self._existing(name)
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise RunFolderError(f"{path}: damaged parquet file ({type(exc).__name__}: {exc}); "
                                 f"rerun {FILES[name]}") from exc
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise RunFolderError(f"{path}: missing column(s) {', '.join(missing)}; it has "
                                 f"{', '.join(map(str, df.columns))}")
        return df

    def write_table(self, name: str, df: pd.DataFrame,
                    columns: tuple[str, ...] | list[str] = ()) -> Path:
        """Write a parquet file of the run atomically (checking ``columns`` first)."""
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"{name}: the table lacks column(s) {', '.join(missing)}")
        with atomic_path(self.file(name)) as tmp:
            df.to_parquet(tmp, index=False)
        return self.file(name)

    # ---------------------------------------------------------------- run.json

    def read_run_json(self) -> dict[str, Any]:
        """The whole ``run.json`` (see the module docstring)."""
        obj = self._read_json("run.json")
        if not isinstance(obj.get("stages"), dict):
            raise RunFolderError(f"{self.run_json}: no 'stages' object; it was not written by "
                                 "RunFolder.record")
        return obj

    def record(self, stage: str, parameters: Mapping[str, Any], *,
               dataset: str | None = None,
               manifest_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Merge one stage's parameters into ``run.json`` (atomic) and return the new content.

        Parameters
        ----------
        stage : str
            One of :data:`STAGES`; its entry is replaced, the other stages' are kept.
        parameters : mapping
            The stage's parameters (JSON-able after tuples become lists and paths strings).
        dataset : str, optional
            The run's dataset; a run holds one dataset, so a different one is refused.
        manifest_path : path-like, optional
            The cohort manifest; its path and SHA-256 are added to the stage's parameters.
        """
        if stage not in STAGES:
            raise ValueError(f"stage={stage!r}: expected one of {', '.join(STAGES)}")
        now = _now()
        content = self.read_run_json() if self.has("run.json") else {
            "created": now, "dataset": None, "stages": {}}
        if dataset is not None:
            from fusion_utils.paths import check_dataset

            dataset = check_dataset(dataset)
            if content.get("dataset") not in (None, dataset):
                raise RunFolderError(f"{self.run_json}: the run holds dataset "
                                     f"{content['dataset']!r}, not {dataset!r}; use another "
                                     "run folder")
            content["dataset"] = dataset
        params = dict(parameters)
        if manifest_path is not None and str(manifest_path).strip():
            mpath = Path(manifest_path).expanduser().resolve()
            params["manifest_path"] = str(mpath)
            params["manifest_sha256"] = file_sha256(mpath) if mpath.is_file() else None
        version, commit = _package_version(), git_commit()
        content["stages"][stage] = {"updated": now, "package_version": version,
                                    "git_commit": commit, "parameters": _jsonable(params)}
        content.update(updated=now, package_version=version, git_commit=commit)
        self._write_json("run.json", content)
        return content

    def parameters(self, stage: str | None = None) -> dict[str, Any]:
        """Parameters that produced the run, from ``run.json`` only.

        With ``stage``, that stage's parameters; otherwise every stage's merged in
        :data:`STAGES` order (a later stage wins on a shared key), plus ``dataset``.
        """
        content = self.read_run_json()
        stages = content["stages"]
        if stage is not None:
            if stage not in stages:
                raise KeyError(f"{self.run_json} has no {stage!r} stage (it has "
                               f"{', '.join(stages) or 'none'}): run that stage's notebook "
                               "on this run folder")
            return dict(stages[stage].get("parameters") or {})
        merged: dict[str, Any] = {"dataset": content.get("dataset")}
        for name in sorted(stages, key=lambda s: STAGES.index(s) if s in STAGES else len(STAGES)):
            merged.update(stages[name].get("parameters") or {})
        return merged

    # ---------------------------------------------------------------- chapter 03

    def write_features(self, features: FeatureSet) -> Path:
        """``features.npz`` (atomic, by :meth:`FeatureSet.save`)."""
        return features.save(self.features_path)

    def read_features(self) -> FeatureSet:
        """``features.npz`` as a :class:`~fusion_utils.features.extraction.FeatureSet`."""
        from fusion_utils.features.extraction import FeatureSet

        path = self._existing("features.npz")
        try:
            return FeatureSet.load(path)
        except (OSError, EOFError, KeyError, ValueError) as exc:  # np.load on a damaged zip
            raise RunFolderError(f"{path}: damaged or not a features file ({exc}); "
                                 f"rerun {FILES['features.npz']}") from exc

    def write_feature_timings(self, timings: Mapping[str, Any]) -> Path:
        return self._write_json("feature_timings.json", timings)

    def read_feature_timings(self) -> dict[str, Any]:
        return self._read_json("feature_timings.json")

    # ---------------------------------------------------------------- chapter 04

    def write_classifier(self, model: str, weights: ClassifierWeights) -> Path:
        """``classifier_<model>.npz`` through
        :func:`fusion_utils.fusion.classifier_io.save_classifier`."""
        from fusion_utils.fusion.classifier_io import save_classifier

        return save_classifier(self.classifier_path(model), weights)

    def read_classifier(self, model: str) -> ClassifierWeights:
        """``classifier_<model>.npz`` through
        :func:`fusion_utils.fusion.classifier_io.load_classifier`."""
        from fusion_utils.fusion.classifier_io import load_classifier

        return load_classifier(self.classifier_path(model))

    def write_predictions(self, predictions: pd.DataFrame) -> Path:
        """``predictions.parquet``: ``record_id, split, label, model`` and ``prob.<class>``."""
        if not any(str(c).startswith("prob.") for c in predictions.columns):
            raise ValueError("predictions: no prob.<class> column")
        return self.write_table("predictions.parquet", predictions, PREDICTION_COLUMNS)

    def read_predictions(self) -> pd.DataFrame:
        df = self.read_table("predictions.parquet", PREDICTION_COLUMNS)
        if not any(str(c).startswith("prob.") for c in df.columns):
            raise RunFolderError(f"{self.predictions_path}: no prob.<class> column")
        return df

    def prediction_classes(self, predictions: pd.DataFrame | None = None) -> list[str]:
        """Class names in the order of the ``prob.*`` columns."""
        df = self.read_predictions() if predictions is None else predictions
        return [str(c).removeprefix("prob.") for c in df.columns if str(c).startswith("prob.")]

    def write_timings(self, timings: Mapping[str, Any]) -> Path:
        return self._write_json("timings.json", timings)

    def read_timings(self) -> dict[str, Any]:
        return self._read_json("timings.json")

    # ---------------------------------------------------------------- chapter 05

    def write_metrics(self, metrics: pd.DataFrame) -> Path:
        """``metrics.parquet`` with exactly the columns ``metric, class, model, value``."""
        missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
        if missing:
            raise ValueError(f"metrics.parquet: the table lacks column(s) {', '.join(missing)}")
        return self.write_table("metrics.parquet", metrics[list(METRIC_COLUMNS)])

    def read_metrics(self) -> pd.DataFrame:
        """``metrics.parquet`` (checked for ``metric, class, model, value``)."""
        return self.read_table("metrics.parquet", METRIC_COLUMNS)

    # ---------------------------------------------------------------- grid

    def write_status(self, status: Mapping[str, Any]) -> Path:
        return self._write_json("status.json", status)

    def read_status(self) -> dict[str, Any]:
        """``status.json``; ``{"state": "pending"}`` when the run has none yet."""
        if not self.has("status.json"):
            return {"state": "pending"}
        return self._read_json("status.json")

    def write_results(self, results: pd.DataFrame) -> Path:
        return self.write_table("results.parquet", results)

    def read_results(self) -> pd.DataFrame:
        return self.read_table("results.parquet")

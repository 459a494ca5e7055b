"""Experiment grids as data: a YAML grid file expanded into :class:`Configuration` objects.

The paper is a grid (2 datasets x 8 backbones x {BN, FT} x {no augmentation, augmentation}, each
classified with and without metadata). A grid file declares it; :func:`load_grid` expands it
into configurations, each with a stable id (:func:`config_id`) that names its run folder.
Running them is :mod:`fusion_utils.experiments.runner`; their results,
:mod:`fusion_utils.experiments.results`; the command line, :mod:`fusion_utils.experiments.cli`.

Grid file
---------
A YAML mapping (see ``experiments/book.yaml`` and ``experiments/paper.yaml``)::

    name: book                    # runs go to runs/<name>/<config-id>/ unless --runs-dir
    notebooks:                    # optional; run in this order for every configuration
      - 03_feature_extraction     #   (a stem under notebooks/ or a path; relative paths are
      - 04_fusion                 #   taken from the grid file's folder first, then the root)
      - 05_evaluation
    cell_timeout: 3600            # optional; seconds per cell, null for none
    defaults:                     # parameters of every configuration
      weights: imagenet
      epochs: 2
    datasets:                     # the dataset axis: one entry per dataset, with overrides
      ptbxl: {batch_size: 64, manifest: ""}
      ham10000: {batch_size: 128}
    axes:                         # the Cartesian product of these lists, for each dataset
      backbone: [efficientnet_lite0]
      mode: [bn, ft]
      augment: [false, true]
    rules:                        # optional conditional overrides, applied in order
      - when: {mode: bn}
        set: {epochs: 0}

A configuration's parameters are ``defaults``, then its dataset's entry, then its axis values,
then every matching rule. Each parameter goes to every notebook that declares it in its
``parameters`` cell (a name no notebook declares is an error that lists what each declares).
The runner itself sets ``dataset``, ``run_dir`` (the configuration's folder), ``config_label``
(the configuration id) and, from a dataset's ``manifest`` entry, ``manifest_path`` (relative
paths from the project root; empty means the notebooks' default,
``cache/manifests/<dataset>.parquet``, which notebook 01 writes).

The configuration id is the dataset followed by the axis values in the order the axes are
declared, joined by ``-``: booleans read ``aug``/``noaug`` for ``augment`` and ``<axis>``/
``no<axis>`` otherwise, other values their text with characters outside ``[A-Za-z0-9_.]``
replaced by ``_``; e.g. ``ptbxl-efficientnet_lite0-bn-noaug``.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_utils.io import stable_hash
from fusion_utils.paths import check_dataset, project_root

__all__ = ["CONFIG_COLUMNS", "DEFAULT_NOTEBOOKS", "Configuration", "Grid", "config_id", "load_grid"]

DEFAULT_NOTEBOOKS: tuple[str, ...] = ("03_feature_extraction", "04_fusion", "05_evaluation")
"""Notebooks a configuration runs, in order, when the grid file names none."""

CONFIG_COLUMNS: tuple[str, ...] = (
    "grid", "config_id", "dataset", "backbone", "weights", "mode", "augment", "epochs", "seed",
)
"""Configuration columns of the results table (extra axes of a grid follow them)."""

_TOP_KEYS = {"name", "notebooks", "cell_timeout", "defaults", "datasets", "axes", "rules"}
_RUNNER_KEYS = {"dataset", "run_dir", "config_label", "manifest_path"}
_GRID_ONLY_KEYS = {"manifest"}


@dataclass(frozen=True)
class Configuration:
    """One point of a grid: a dataset, its axis values and the merged parameters.

    Attributes
    ----------
    grid : str
        Name of the grid.
    config_id : str
        Stable identifier, also the run folder's name.
    dataset : str
        ``ptbxl`` or ``ham10000``.
    axes : dict
        The axis values that define this configuration (axis name -> value).
    parameters : dict
        Merged parameters (defaults, dataset entry, axes, rules), without runner-set names.
    """

    grid: str
    config_id: str
    dataset: str
    axes: dict[str, Any]
    parameters: dict[str, Any]

    def manifest_path(self) -> Path | None:
        """The ``manifest`` parameter as an absolute path (relative: from the project root)."""
        manifest = self.parameters.get("manifest")
        if manifest in (None, ""):
            return None
        path = Path(str(manifest)).expanduser()
        return path if path.is_absolute() else project_root() / path

    def columns(self, extra_axes: Sequence[str] = ()) -> dict[str, Any]:
        """The configuration columns of the results table for this configuration."""
        values = {"grid": self.grid, "config_id": self.config_id, "dataset": self.dataset}
        for name in CONFIG_COLUMNS[3:]:
            values[name] = self.axes.get(name, self.parameters.get(name))
        for name in extra_axes:
            values.setdefault(name, self.axes.get(name, self.parameters.get(name)))
        return values


@dataclass
class Grid:
    """A parsed grid file.

    Attributes
    ----------
    name : str
        Grid name (default folder ``runs/<name>``).
    source : Path or None
        The YAML file it came from.
    notebooks : tuple of Path
        Notebooks each configuration runs, in order.
    configurations : list of Configuration
        The expanded grid, in declaration order.
    axes : tuple of str
        Axis names (besides ``dataset``).
    cell_timeout : int or None
        Seconds per notebook cell.
    """

    name: str
    source: Path | None
    notebooks: tuple[Path, ...]
    configurations: list[Configuration]
    axes: tuple[str, ...]
    cell_timeout: int | None = 3600
    _declared: dict[Path, set[str]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.configurations)

    def extra_axes(self) -> tuple[str, ...]:
        """Axes that are not among :data:`CONFIG_COLUMNS` (they become extra result columns)."""
        return tuple(a for a in self.axes if a not in CONFIG_COLUMNS)

    def select(self, patterns: str | Sequence[str] | None) -> list[Configuration]:
        """Configurations whose id matches any of the glob ``patterns`` (comma-separated)."""
        if not patterns:
            return list(self.configurations)
        if isinstance(patterns, str):
            patterns = [p.strip() for p in patterns.split(",") if p.strip()]
        chosen = [c for c in self.configurations
                  if any(fnmatch.fnmatchcase(c.config_id, p) for p in patterns)]
        if not chosen:
            ids = ", ".join(c.config_id for c in self.configurations[:6])
            raise ValueError(f"--only {','.join(patterns)!s} matches no configuration of grid "
                             f"{self.name!r}; ids look like: {ids}, ...")
        return chosen

    def declared(self, notebook: Path) -> set[str]:
        """Parameter names declared by ``notebook`` (read once)."""
        if notebook not in self._declared:
            from fusion_utils.notebook_runner import notebook_parameters

            self._declared[notebook] = set(notebook_parameters(notebook))
        return self._declared[notebook]

    def notebook_parameters(self, config: Configuration, run_dir: str | os.PathLike[str]
                            ) -> list[tuple[Path, dict[str, Any]]]:
        """Route a configuration's parameters to each notebook that declares them.

        Raises
        ------
        ValueError
            If a parameter is declared by none of the grid's notebooks.
        """
        params = {k: v for k, v in config.parameters.items() if k not in _GRID_ONLY_KEYS}
        manifest = config.manifest_path()
        if manifest is not None:
            params["manifest_path"] = str(manifest)
        params.update(dataset=config.dataset, run_dir=str(run_dir), config_label=config.config_id)
        declared = {nb: self.declared(nb) for nb in self.notebooks}
        known = set().union(*declared.values()) | _RUNNER_KEYS
        unknown = sorted(set(params) - known)
        if unknown:
            listing = "; ".join(f"{nb.stem}: {', '.join(sorted(d))}" for nb, d in declared.items())
            raise ValueError(
                f"grid {self.name!r}, configuration {config.config_id}: parameter(s) "
                f"{', '.join(unknown)} are declared by none of its notebooks ({listing})"
            )
        return [(nb, {k: v for k, v in params.items() if k in declared[nb]})
                for nb in self.notebooks]

    def config_hash(self, config: Configuration) -> str:
        """Hash of what determines a run's results (notebooks and their parameters).

        It does not depend on where the project lies: a ``manifest_path`` inside the project
        root enters as its path relative to the root, so a run computed in another checkout
        (a GPU machine, a cluster node with another mount point) counts as the same
        configuration.
        """
        root = project_root()

        def portable(key: str, value: Any) -> Any:
            if key == "manifest_path" and isinstance(value, str):
                path = Path(value)
                if path.is_absolute() and path.is_relative_to(root):
                    return path.relative_to(root).as_posix()
            return value

        routed = self.notebook_parameters(config, run_dir="")
        return stable_hash([[nb.stem, {k: portable(k, v) for k, v in p.items() if k != "run_dir"}]
                            for nb, p in routed])


def _format_value(axis: str, value: Any) -> str:
    if isinstance(value, bool):
        short = {"augment": "aug"}.get(axis, axis)
        return short if value else f"no{short}"
    return re.sub(r"[^A-Za-z0-9_.]", "_", str(value))


def config_id(dataset: str, axes: Mapping[str, Any]) -> str:
    """Stable id of a configuration: the dataset and the axis values in order, joined by ``-``.

    Examples
    --------
    >>> config_id("ptbxl", {"backbone": "efficientnet_lite0", "mode": "bn", "augment": False})
    'ptbxl-efficientnet_lite0-bn-noaug'
    """
    return "-".join([dataset, *(_format_value(a, v) for a, v in axes.items())])


def _require_mapping(value: Any, what: str, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{source}: {what} must be a mapping, "
                         f"got {type(value).__name__} {value!r}")
    return dict(value)


def _resolve_notebook(name: str, base: Path | None) -> Path:
    from fusion_utils.notebook_runner import notebook_path

    candidate = Path(str(name)).expanduser()
    if not candidate.is_absolute() and base is not None and (base / candidate).is_file():
        return (base / candidate).resolve()
    if not candidate.is_absolute() and (project_root() / candidate).is_file():
        return (project_root() / candidate).resolve()
    return notebook_path(str(name))


def load_grid(source: str | os.PathLike[str] | Mapping[str, Any], *, name: str | None = None,
              resolve_notebooks: bool = True) -> Grid:
    """Read a grid file (or an already parsed mapping) and expand its configurations.

    Parameters
    ----------
    source : path-like or mapping
        A YAML grid file (schema in this module's docstring) or its parsed content.
    name : str, optional
        Overrides the file's ``name`` (default: ``name`` key, else the file's stem).
    resolve_notebooks : bool
        Check that the notebooks exist (turn off to only count configurations).

    Returns
    -------
    Grid

    Raises
    ------
    ValueError
        For an unknown top-level key, an axis that is not a non-empty list, an unknown dataset,
        a rule without ``when``/``set``, or two configurations with the same id.
    """
    import yaml

    if isinstance(source, Mapping):
        spec, path, label = dict(source), None, "<grid mapping>"
    else:
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"grid file {path} not found; the project's grids are in "
                                    f"{project_root() / 'experiments'}")
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        label = str(path)
        if not isinstance(spec, Mapping):
            raise ValueError(f"{label}: a grid file must be a YAML mapping")
    unknown = sorted(set(spec) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{label}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(_TOP_KEYS))}")
    grid_name = str(name or spec.get("name") or (path.stem if path else "grid"))
    defaults = _require_mapping(spec.get("defaults"), "defaults", label)
    datasets_spec = _require_mapping(spec.get("datasets"), "datasets", label)
    if not datasets_spec:
        raise ValueError(f"{label}: 'datasets' must list at least one of ptbxl, ham10000")
    datasets = {check_dataset(k): _require_mapping(v, f"datasets.{k}", label)
                for k, v in datasets_spec.items()}
    axes = _require_mapping(spec.get("axes"), "axes", label)
    for axis, values in axes.items():
        if axis == "dataset":
            raise ValueError(f"{label}: 'dataset' is not an axis; list datasets under 'datasets'")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{label}: axes.{axis} must be a non-empty list, got {values!r}")
    rules = spec.get("rules") or []
    if not isinstance(rules, list):
        raise ValueError(f"{label}: rules must be a list of {{when: ..., set: ...}}")
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping) or set(rule) != {"when", "set"}:
            raise ValueError(f"{label}: rules[{i}] must have exactly the keys 'when' and 'set', "
                             f"got {rule!r}")
    base = path.parent if path else None
    nb_names = spec.get("notebooks") or list(DEFAULT_NOTEBOOKS)
    if isinstance(nb_names, str) or not isinstance(nb_names, list):
        raise ValueError(f"{label}: notebooks must be a list of notebook names, got {nb_names!r}")
    notebooks = tuple(_resolve_notebook(n, base) if resolve_notebooks else Path(str(n))
                      for n in nb_names)
    timeout = spec.get("cell_timeout", 3600)

    configurations: list[Configuration] = []
    seen: dict[str, Configuration] = {}
    for dataset, overrides in datasets.items():
        for combo in itertools.product(*axes.values()):
            point = dict(zip(axes, combo, strict=True))
            params = {**defaults, **overrides, **point}
            where = {"dataset": dataset, **params}
            for rule in rules:
                if all(where.get(k) == v for k, v in dict(rule["when"]).items()):
                    params.update(dict(rule["set"]))
            params.pop("dataset", None)
            cid = config_id(dataset, point)
            if cid in seen:
                raise ValueError(f"{label}: configurations {point} and {seen[cid].axes} both "
                                 f"have id {cid!r}; make the axis values distinct")
            cfg = Configuration(grid_name, cid, dataset, point, params)
            seen[cid] = cfg
            configurations.append(cfg)
    return Grid(grid_name, path, notebooks, configurations, tuple(axes),
                None if timeout is None else int(timeout))

"""Tests of fusion_utils.experiments.spec: grid files, merge order, ids, routing and hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion_utils.experiments.spec import config_id, load_grid
from tests.experiments.grid_helpers import NOTEBOOKS, ROOT, dummy_spec, write_spec

PAPER_BACKBONES = ("alexnet", "mobilenet_v2", "densenet201", "resnet50", "inception_resnet_v2",
                   "vgg16", "vgg19", "googlenet")



def test_config_id_known_answers() -> None:
    assert config_id("ptbxl", {"backbone": "efficientnet_lite0", "mode": "bn",
                                    "augment": False}) == "ptbxl-efficientnet_lite0-bn-noaug"
    assert config_id("ham10000", {"backbone": "vgg19", "mode": "ft",
                                       "augment": True}) == "ham10000-vgg19-ft-aug"
    assert config_id("ptbxl", {"standardize": True, "l2": 0.01,
                                    "weights": "/w/x y.pt"}) == "ptbxl-standardize-0.01-_w_x_y.pt"


def test_merge_order_defaults_dataset_axes_rules() -> None:
    spec = {
        "name": "m",
        "defaults": {"epochs": 5, "batch_size": 8, "seed": 1},
        "datasets": {"PTB-XL": {"batch_size": 64}, "ham10000": {"seed": 2}},
        "axes": {"mode": ["bn", "ft"], "epochs": [3]},
        "rules": [{"when": {"mode": "bn"}, "set": {"epochs": 0}},
                  {"when": {"dataset": "ham10000", "mode": "ft"}, "set": {"batch_size": 128}}],
    }
    g = load_grid(spec, resolve_notebooks=False)
    by_id = {c.config_id: c.parameters for c in g.configurations}
    assert list(by_id) == ["ptbxl-bn-3", "ptbxl-ft-3", "ham10000-bn-3", "ham10000-ft-3"]
    assert by_id["ptbxl-bn-3"] == {"epochs": 0, "batch_size": 64, "seed": 1, "mode": "bn"}
    assert by_id["ptbxl-ft-3"] == {"epochs": 3, "batch_size": 64, "seed": 1, "mode": "ft"}
    assert by_id["ham10000-ft-3"] == {"epochs": 3, "batch_size": 128, "seed": 2, "mode": "ft"}
    assert g.select("*-ft-*") == [c for c in g.configurations if c.axes["mode"] == "ft"]
    assert [c.config_id for c in g.select("ptbxl-bn-3, ham*-bn-*")] == ["ptbxl-bn-3",
                                                                       "ham10000-bn-3"]
    with pytest.raises(ValueError, match="matches no configuration"):
        g.select("nothing-*")


@pytest.mark.parametrize(("spec", "message"), [
    ({"datasets": {"ptbxl": {}}, "axis": {}}, "unknown key"),
    ({"datasets": {}}, "at least one"),
    ({"datasets": {"mnist": {}}}, "unknown dataset"),
    ({"datasets": {"ptbxl": {}}, "axes": {"mode": "bn"}}, "non-empty list"),
    ({"datasets": {"ptbxl": {}}, "axes": {"dataset": ["ptbxl"]}}, "not an axis"),
    ({"datasets": {"ptbxl": {}}, "rules": [{"when": {}}]}, "when' and 'set"),
    ({"datasets": {"ptbxl": {}}, "axes": {"a": ["x y", "x_y"]}}, "both have id"),
])
def test_invalid_grid_files_name_the_problem(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_grid(spec, resolve_notebooks=False)


def test_paper_grid_is_the_papers_64_configurations() -> None:
    g = load_grid(ROOT / "experiments" / "paper.yaml", resolve_notebooks=False)
    assert g.name == "paper" and len(g) == 2 * 8 * 2 * 2 == 64
    ids = [c.config_id for c in g.configurations]
    assert len(set(ids)) == 64
    assert {c.axes["backbone"] for c in g.configurations} == set(PAPER_BACKBONES)
    assert "ptbxl-inception_resnet_v2-ft-aug" in ids and "ham10000-alexnet-bn-noaug" in ids
    batch = {c.dataset: c.parameters["batch_size"] for c in g.configurations}
    assert batch == {"ham10000": 128, "ptbxl": 64}
    assert all(c.parameters["device"] == "auto" for c in g.configurations)


def test_book_grid_is_eight_offline_configurations() -> None:
    g = load_grid(ROOT / "experiments" / "book.yaml", resolve_notebooks=False)
    assert g.name == "book" and len(g) == 8
    assert {c.config_id for c in g.configurations} == {
        f"{d}-efficientnet_lite0-{m}-{a}" for d in ("ptbxl", "ham10000")
        for m in ("bn", "ft") for a in ("aug", "noaug")}
    assert all(c.parameters["weights"] == "imagenet" for c in g.configurations)
    assert max(c.parameters["epochs"] for c in g.configurations) <= 3


def test_routing_gives_each_notebook_only_its_parameters(tmp_path: Path) -> None:
    g = load_grid(write_spec(tmp_path, dummy_spec(ptbxl={"fail": True})))
    (cfg,) = g.configurations
    routed = dict(g.notebook_parameters(cfg, tmp_path / "run"))
    features = routed[NOTEBOOKS / "dummy_features.py"]
    evaluation = routed[NOTEBOOKS / "dummy_evaluation.py"]
    assert features == {"backbone": "tiny", "seed": 0, "fail": True, "mode": "ft",
                        "augment": True, "dataset": "ptbxl", "run_dir": str(tmp_path / "run")}
    assert evaluation == {"seed": 0, "dataset": "ptbxl", "run_dir": str(tmp_path / "run"),
                          "config_label": "ptbxl-ft-aug"}


def test_unknown_parameter_is_named_with_what_notebooks_declare(tmp_path: Path) -> None:
    spec = dummy_spec(ptbxl={"learning_rate": 0.1})
    g = load_grid(write_spec(tmp_path, spec))
    with pytest.raises(ValueError, match=r"learning_rate.*dummy_features: augment, backbone"):
        g.notebook_parameters(g.configurations[0], tmp_path)


def test_config_hash_follows_parameters_not_run_folder(tmp_path: Path) -> None:
    a = load_grid(write_spec(tmp_path, dummy_spec(ptbxl={})))
    b = load_grid(write_spec(tmp_path, dummy_spec(ptbxl={"seed": 1}), "b.yaml"))
    assert a.config_hash(a.configurations[0]) == a.config_hash(a.configurations[0])
    assert a.config_hash(a.configurations[0]) != b.config_hash(b.configurations[0])


def test_config_hash_does_not_depend_on_where_the_project_lies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run computed in another checkout (a GPU machine) is the same configuration: the
    manifest path enters the hash relative to the project root."""
    notebook = tmp_path / "stage.py"
    notebook.write_text('# %% tags=["parameters"]\ndataset: str = ""\nrun_dir: str = ""\n'
                        'config_label: str = ""\nmanifest_path: str = ""\nseed: int = 0\n')

    def hash_under(root: Path, manifest: str) -> str:
        monkeypatch.setenv("FUSION_PROJECT_ROOT", str(root))
        spec = {"name": "g", "notebooks": [str(notebook)], "defaults": {"seed": 0},
                "datasets": {"ptbxl": {"manifest": manifest}}, "axes": {"seed": [0]}}
        grid = load_grid(write_spec(tmp_path, spec))
        cfg = grid.configurations[0]
        routed = dict((nb.stem, p) for nb, p in grid.notebook_parameters(cfg, tmp_path))
        assert routed["stage"]["manifest_path"] == str(root / manifest)  # notebooks: absolute
        return grid.config_hash(cfg)

    here = hash_under(tmp_path / "main", "cache/manifests/x.parquet")
    assert hash_under(tmp_path / "elsewhere", "cache/manifests/x.parquet") == here
    assert hash_under(tmp_path / "main", "cache/manifests/y.parquet") != here

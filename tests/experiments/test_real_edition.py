"""The real edition: the re-check of committed results, provenance, the real grid file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fusion_utils.experiments import real_edition as re_


def _table(auroc: float, bacc: float) -> pd.DataFrame:
    """A long results table (as collect writes it) with distractor rows around the headline."""
    rows = []
    for model, d_auc, d_bacc in (("image", 0.0, 0.0), ("fused", 0.02, 0.05)):
        for metric, cls, value in (("auroc", "macro_mean", auroc + d_auc),
                                   ("sensitivity", "macro_mean", bacc + d_bacc),
                                   ("auroc", "macro_std", 0.9), ("sensitivity", "nv", 0.1),
                                   ("accuracy", "macro_mean", 0.3)):
            rows.append({"config_id": "ham10000-efficientnet_lite0-bn-noaug",
                         "dataset": "ham10000", "metric": metric, "class": cls,
                         "model": model, "value": value})
    return pd.DataFrame(rows)


def test_headline_is_macro_auroc_and_mean_sensitivity() -> None:
    h = re_.headline(_table(0.8, 0.5)).set_index("model")
    assert h.loc["image", "auroc_macro"] == pytest.approx(0.8)
    assert h.loc["fused", "auroc_macro"] == pytest.approx(0.82)
    assert h.loc["fused", "balanced_accuracy"] == pytest.approx(0.55)


def test_agreeing_results_pass_and_report_differences() -> None:
    report = re_.check_against_committed(_table(0.85, 0.50), _table(0.855, 0.497))
    assert len(report) == 4
    assert report["difference"].max() == pytest.approx(0.005)
    assert set(report["metric"]) == {"auroc_macro", "balanced_accuracy"}


def test_disagreement_beyond_tolerance_names_the_row() -> None:
    with pytest.raises(ValueError, match="fused balanced_accuracy: committed 0.5700, re-computed "
                                         "0.5500"):
        re_.check_against_committed(_table(0.85, 0.50), _table(0.85, 0.52))
    with pytest.raises(ValueError, match="--from-stage 04_fusion refits the classifiers"):
        re_.check_against_committed(_table(0.85, 0.50), _table(0.85, 0.52))


def test_tolerance_is_the_stated_one() -> None:
    new, old = _table(0.85, 0.50), _table(0.85, 0.50)
    old.loc[0, "value"] += re_.TOLERANCE * 0.9
    re_.check_against_committed(new, old)
    old.loc[0, "value"] += re_.TOLERANCE * 0.2
    with pytest.raises(ValueError, match="more than 0.01"):
        re_.check_against_committed(new, old)


def test_missing_committed_row_and_nan_fail() -> None:
    committed = _table(0.85, 0.5)
    committed = committed[committed["model"] == "image"]
    with pytest.raises(ValueError, match="absent from the committed table"):
        re_.check_against_committed(_table(0.85, 0.5), committed)
    nan = _table(0.85, 0.5)
    nan.loc[0, "value"] = float("nan")
    with pytest.raises(ValueError, match="differ"):
        re_.check_against_committed(nan, _table(0.85, 0.5))


def test_provenance_records_command_checksums_and_timings(tmp_path) -> None:
    data = tmp_path / "data"
    (data / "ptbxl").mkdir(parents=True)
    (data / "ptbxl" / "ptbxl_database.csv").write_bytes(b"abc")
    status = pd.DataFrame({"config_id": ["a", "b"], "state": ["done", "done"],
                           "started": ["2026-01-01T10:00:00", "2026-01-01T11:00:00"],
                           "finished": ["2026-01-01T10:30:00", "2026-01-01T12:00:00"],
                           "seconds": [1800.0, 3600.0]})
    path = re_.write_provenance(_table(0.8, 0.5), status, command="fusion-grid run x",
                                out_dir=tmp_path / "out", data_dir=data, not_run=["c"])
    prov = json.loads(path.read_text())
    # sha256("abc"), an independent known answer
    assert prov["data_checksums_sha256"] == {
        "ptbxl/ptbxl_database.csv":
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
    assert (prov["start"], prov["end"]) == ("2026-01-01T10:00:00", "2026-01-01T12:00:00")
    assert [c["seconds"] for c in prov["configurations"]] == [1800.0, 3600.0]
    assert prov["not_yet_run"] == ["c"] and prov["command"] == "fusion-grid run x"
    assert prov["machine"]["cores"] >= 1 and prov["machine"]["cpu_model"]
    back = pd.read_parquet(tmp_path / "out" / "results.parquet")
    pd.testing.assert_frame_equal(back, _table(0.8, 0.5))


def test_real_grid_is_the_issue_design() -> None:
    from fusion_utils.experiments.spec import load_grid
    from fusion_utils.paths import project_root

    grid = load_grid(project_root() / "experiments" / "real.yaml")
    ids = [c.config_id for c in grid.configurations]
    assert len(ids) == 24
    assert sum("-bn-" in i for i in ids) == 12
    assert {c.axes["backbone"] for c in grid.configurations} == {
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    assert {c.manifest_path().name for c in grid.configurations} == {
        "ptbxl_real.parquet", "ham10000_real.parquet"}


@pytest.mark.shared_data
def test_committed_results_match_their_provenance_and_the_data(shared_ptbxl) -> None:
    """results/real: checksums of the data it was computed on equal today's, rows match."""
    from fusion_utils.experiments.spec import load_grid
    from fusion_utils.paths import project_root

    prov = json.loads((re_.results_dir() / "PROVENANCE.json").read_text())
    assert prov["data_checksums_sha256"] == re_.data_checksums(shared_ptbxl.parent)
    committed = re_.committed_results()
    done = {c["config_id"] for c in prov["configurations"]}
    assert set(committed["config_id"]) == done and done
    grid_ids = {c.config_id for c in load_grid(project_root() / "experiments" / "real.yaml",
                                               resolve_notebooks=False).configurations}
    assert done <= grid_ids
    assert {n.split(" ")[0] for n in prov["not_yet_run"]} == grid_ids - done
    h = re_.headline(committed)
    assert set(h["model"]) == {"image", "fused"}
    assert h[["auroc_macro", "balanced_accuracy"]].apply(lambda s: s.between(0, 1)).all().all()
    assert prov["cohorts"]["ptbxl"]["n_records"] == 1533
    assert prov["cohorts"]["ham10000"]["n_records"] == 10_015


def test_feature_run_facts_give_device_weights_and_rates(tmp_path) -> None:
    """A fine-tuned run's images per second = epochs x training images / fine-tuning seconds,
    with the training images counted in the run's manifest (not in its predictions)."""
    from fusion_utils.data.manifest import save_manifest

    rows = [{"record_id": str(i), "dataset": "ptbxl", "label": "NORM", "path": f"/x/{i}",
             "group": str(i), "split": "train" if i < 12 else "test"} for i in range(16)]
    manifest = pd.DataFrame(rows)
    manifest.attrs.update(dataset="ptbxl", classes=["NORM"])
    save_manifest(manifest, tmp_path / "m.parquet")
    run = tmp_path / "run"
    run.mkdir()
    (run / "feature_timings.json").write_text(json.dumps(
        {"device": "cuda", "extraction_s": 2.0, "images_per_second": 8.0,
         "fine_tuning_s": 6.0}))
    (run / "run.json").write_text(json.dumps({"dataset": "ptbxl", "stages": {"features": {
        "parameters": {"mode": "ft", "epochs": 3, "weights_tag": "imagenet:w-fp16",
                       "manifest_path": str(tmp_path / "m.parquet")}}}}))
    pd.DataFrame({"split": ["test"] * 4}).to_parquet(run / "predictions.parquet")
    facts = re_.feature_run_facts(run)
    assert facts["feature_device"] == "cuda" and facts["weights_tag"] == "imagenet:w-fp16"
    assert facts["extraction_images_per_second"] == 8.0
    assert facts["finetune_images_per_second"] == pytest.approx(3 * 12 / 6.0)
    bn = json.loads((run / "run.json").read_text())
    bn["stages"]["features"]["parameters"]["mode"] = "bn"
    (run / "run.json").write_text(json.dumps(bn))
    assert "finetune_images_per_second" not in re_.feature_run_facts(run)
    assert re_.feature_run_facts(tmp_path / "missing") == {}


@pytest.mark.shared_data
def test_committed_resolution_comparison_is_consistent(shared_ham) -> None:
    """results/real/resolution.json: 273 paired images, per-split figures that add up, the
    per-image table behind it, and the data it was computed on."""
    record = re_.committed_resolution()
    if record is None:
        pytest.skip("no committed results/real/resolution.json")
    per_image = pd.read_parquet(re_.results_dir() / "resolution_per_image.parquet")
    assert record["n_images"] == len(per_image) == 273
    assert sum(v["n_images"] for v in record["by_split"].values()) == 273
    assert record["agreement"] == pytest.approx(per_image["agree"].mean())
    test = per_image[per_image["split"] == "test"]
    assert record["by_split"]["test"]["agreement"] == pytest.approx(test["agree"].mean())
    assert record["data_checksums_sha256"]["ham10000/HAM10000_metadata.csv"] == \
        re_.data_checksums(shared_ham.parent)["ham10000/HAM10000_metadata.csv"]


def test_reference_points_set_the_grid_beside_the_isic_2019_winners() -> None:
    a = _table(0.8, 0.40)  # balanced accuracy 0.40 -> 0.45 (+0.05)
    b = _table(0.7, 0.30).assign(config_id="ham10000-efficientnet_lite1-bn-noaug")
    b.loc[(b["metric"] == "sensitivity") & (b["class"] == "macro_mean")
          & (b["model"] == "fused"), "value"] = 0.29  # 0.30 -> 0.29 (-0.01)
    table = re_.reference_points(pd.concat([a, b]))
    isic = table.iloc[0]
    assert isic["dataset"] == "ham10000" and isic["metric"] == "balanced_accuracy"
    assert (isic["reference_image"], isic["reference_fused"]) == (0.636, 0.634)
    assert isic["this_grid_image_median"] == pytest.approx(0.35)
    assert isic["this_grid_fused_median"] == pytest.approx(0.37)
    assert isic["this_grid_gain_min"] == pytest.approx(-0.01)
    assert isic["this_grid_gain_max"] == pytest.approx(0.05)
    assert isic["this_grid_configurations"] == 2
    assert pd.isna(table.iloc[1]["reference_image"])  # EMBC 2021: a statement, no figure


def test_beyond_the_paper_reads_the_later_chapters_tables_beside_the_best_configuration(
        tmp_path) -> None:
    rows = []
    for model, meta, auc, sens in (("dvme", "none", 0.72, 0.33), ("single", "none", 0.53, 0.21)):
        for metric, value in (("auroc", auc), ("sensitivity", sens), ("accuracy", 0.7)):
            rows.append({"metric": metric, "model": model, "family": model, "metadata": meta,
                         "estimate": value, "ci_low": value - 0.05, "ci_high": value + 0.05,
                         "n_bootstrap": 10})
    (tmp_path / "meta_embedding").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "meta_embedding" / "ptbxl.parquet")
    grid = _table(0.6, 0.3).assign(dataset="ptbxl", config_id="ptbxl-a")
    grid = pd.concat([grid, _table(0.7, 0.2).assign(dataset="ptbxl", config_id="ptbxl-b")])
    table = re_.beyond_the_paper("ptbxl", grid, out_dir=tmp_path)
    best = table[table["chapter"].str.startswith("08")]
    assert set(best["model"]) == {"ptbxl-b"}  # highest image-only macro AUROC
    dvme = table[table["model"] == "dvme"].iloc[0]
    assert dvme["chapter"] == "09 meta-embeddings"
    assert (dvme["auroc_macro"], dvme["balanced_accuracy"]) == (0.72, 0.33)
    assert dvme["auroc_ci"] == "[0.670, 0.770]"
    assert len(table) == 4  # no autoencoder table: left out
    assert re_.beyond_the_paper("ham10000", None, out_dir=tmp_path).empty


def test_real_grid_table_skips_a_missing_or_repeated_table(tmp_path) -> None:
    table = _table(0.8, 0.4)
    table.to_parquet(tmp_path / "real.parquet")
    got, path, note = re_.real_grid_table(tmp_path / "real.parquet", tmp_path / "book.parquet")
    assert path == tmp_path / "real.parquet" and note == "" and len(got) == len(table)
    assert re_.real_grid_table(tmp_path / "real.parquet", tmp_path / "real.parquet")[2] == (
        "The real grid's table is this chapter's main table (see above).")
    for skipped in ("none", tmp_path / "absent.parquet"):
        got, _, note = re_.real_grid_table(skipped)
        assert got is None and note.startswith("No committed real-grid results")


def _ci_rows(config_id: str, auroc: tuple[float, float, float],
             gain_ci: tuple[float, float]) -> pd.DataFrame:
    """notebook 05's bootstrap_ci.parquet: image, fused and the paired difference."""
    image, fused, _ = auroc
    rows = []
    for metric, scale in (("auroc", 1.0), ("sensitivity", 0.5), ("accuracy", 0.9)):
        rows += [{"metric": metric, "model": "image", "estimate": image * scale,
                  "ci_low": image * scale - 0.05, "ci_high": image * scale + 0.05,
                  "n_bootstrap": 1000},
                 {"metric": metric, "model": "fused", "estimate": fused * scale,
                  "ci_low": fused * scale - 0.05, "ci_high": fused * scale + 0.05,
                  "n_bootstrap": 1000},
                 {"metric": metric, "model": "fused - image",
                  "estimate": (fused - image) * scale, "ci_low": gain_ci[0] * scale,
                  "ci_high": gain_ci[1] * scale, "n_bootstrap": 1000}]
    return pd.DataFrame(rows)


def _write_run(runs, config_id: str, dataset: str, ci: pd.DataFrame, n_test: int) -> None:
    from fusion_utils.run_folder import RunFolder

    run = RunFolder(runs / config_id)
    run.path.mkdir(parents=True)
    ci.to_parquet(run.file("bootstrap_ci.parquet"), index=False)
    backbone, mode, aug = config_id.split("-")[1:]
    (run.path / "status.json").write_text(json.dumps({
        "config_id": config_id, "state": "done", "columns": {
            "dataset": dataset, "backbone": backbone, "mode": mode, "augment": aug == "aug"}}))
    # each test record twice (image and fused rows), training records too
    preds = pd.DataFrame({
        "record_id": [f"r{i}" for i in range(n_test)] * 2 + ["t0", "t1"],
        "split": ["test"] * (2 * n_test) + ["train"] * 2,
        "label": "NORM", "model": ["image"] * n_test + ["fused"] * n_test + ["image"] * 2,
        "prob.NORM": 1.0})
    preds.to_parquet(run.file("predictions.parquet"), index=False)


def test_gains_with_intervals_per_configuration(tmp_path) -> None:
    runs = tmp_path / "runs"
    _write_run(runs, "ptbxl-efficientnet_lite0-bn-noaug", "ptbxl",
               _ci_rows("a", (0.50, 0.56, 0), (0.01, 0.06)), n_test=7)
    _write_run(runs, "ptbxl-efficientnet_lite1-ft-aug", "ptbxl",
               _ci_rows("b", (0.60, 0.58, 0), (-0.05, 0.01)), n_test=7)
    _write_run(runs, "ham10000-efficientnet_lite0-bn-noaug", "ham10000",
               _ci_rows("c", (0.80, 0.70, 0), (-0.12, -0.08)), n_test=3)
    ids = ["ptbxl-efficientnet_lite0-bn-noaug", "ptbxl-efficientnet_lite1-ft-aug",
           "ham10000-efficientnet_lite0-bn-noaug"]
    intervals = re_.collect_intervals(runs, ids)
    assert len(intervals) == 27 and set(intervals["n_test"]) == {7, 3}
    gains = re_.gains_with_intervals(intervals)
    assert len(gains) == 6  # 3 configurations x (macro AUROC, balanced accuracy)
    auc = gains[gains["metric"] == "macro AUROC"].set_index("config_id")
    row = auc.loc["ptbxl-efficientnet_lite0-bn-noaug"]
    assert (row["image"], row["fused"]) == pytest.approx((0.50, 0.56))
    assert (row["gain"], row["gain_low"], row["gain_high"]) == pytest.approx((0.06, 0.01, 0.06))
    assert row["backbone"] == "efficientnet_lite0" and not row["augment"]
    assert auc["ci_excludes_0"].to_dict() == {
        "ptbxl-efficientnet_lite0-bn-noaug": "above", "ptbxl-efficientnet_lite1-ft-aug": "",
        "ham10000-efficientnet_lite0-bn-noaug": "below"}
    bacc = gains[gains["metric"] == "balanced accuracy"].set_index("config_id")
    assert bacc.loc["ham10000-efficientnet_lite0-bn-noaug", "gain"] == pytest.approx(-0.05)
    text = re_.gains_sentence(gains)
    assert ("ptbxl macro AUROC: the 95% CI of the gain is above 0 for 1 of 2 configurations "
            "and below 0 for 0 (7 test records)") in text
    assert "ham10000 macro AUROC: the 95% CI of the gain is above 0 for 0 of 1" in text
    assert "below 0 for 1 (3 test records)" in text and "1000 resamples" in text
    with pytest.raises(FileNotFoundError, match="bootstrap_ci.parquet"):
        re_.collect_intervals(runs, ["ptbxl-efficientnet_lite2-bn-noaug"])


@pytest.mark.shared_data
def test_committed_intervals_cover_every_committed_configuration(shared_ptbxl) -> None:
    committed = re_.committed_results()
    intervals = re_.committed_intervals()
    assert intervals is not None
    assert set(intervals["config_id"]) == set(committed["config_id"])
    gains = re_.gains_with_intervals(intervals)
    # the CIs' estimates are the committed table's headline figures
    h = re_.headline(committed).pivot_table(index="config_id", columns="model",
                                            values="auroc_macro")
    auc = gains[gains["metric"] == "macro AUROC"].set_index("config_id")
    assert auc["image"].to_dict() == pytest.approx(h["image"].to_dict())
    assert auc["fused"].to_dict() == pytest.approx(h["fused"].to_dict())
    assert (auc["gain_low"] <= auc["gain"]).all() and (auc["gain"] <= auc["gain_high"]).all()
    assert set(intervals.groupby("dataset")["n_test"].unique().map(tuple)) == {(229,), (1502,)}

"""Atomic writes never leave a partial file, and hashes are stable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion_utils.io import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    file_sha256,
    save_npz_atomic,
    stable_hash,
)


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "result.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_json_and_npz_round_trip(tmp_path):
    atomic_write_json(tmp_path / "a" / "b.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "a" / "b.json").read_text()) == {"a": [1, 2], "b": 1}
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_npz_atomic(tmp_path / "x.npz", x=x, ids=np.array(["a", "b", "c"]))
    with np.load(tmp_path / "x.npz") as z:
        np.testing.assert_array_equal(z["x"], x)
        assert z["ids"].tolist() == ["a", "b", "c"]


def test_stable_hash_ignores_key_order_and_sees_values():
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    assert len(stable_hash({"a": 1}, length=8)) == 8


def test_file_sha256_known_answer(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert file_sha256(tmp_path / "abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o644

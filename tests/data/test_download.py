"""Downloads against a local HTTP server on 127.0.0.1 (never the real hosts).

The server serves files from a dict, honours ``Range: bytes=N-`` with 206 answers, can drop the
connection after a number of bytes (to simulate an interruption) and records every request.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fusion_utils.data import download as dl
from fusion_utils.paths import shared_data_dir

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


class FakeServer:
    """Files by URL path; ``drop_after[path] = n`` cuts the next answer for ``path`` at n bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                cut = server.drop_after.pop(self.path, None)
                self.wfile.write(chunk if cut is None else chunk[:cut])
                self.wfile.flush()
                if cut is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_and_renames_atomically(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    seen: list[int] = []
    out = dl.download_file(server.url + "/a.bin", tmp_path / "a.bin", sha256=sha256(PAYLOAD),
                           chunk_size=8192, progress=lambda n, total: seen.append(n))
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()
    assert seen[-1] == len(PAYLOAD)
    # a second call finds the verified file and makes no request
    n_requests = len(server.requests)
    dl.download_file(server.url + "/a.bin", out, sha256=sha256(PAYLOAD))
    assert len(server.requests) == n_requests


def test_resume_after_interruption_uses_range(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    server.drop_after["/a.bin"] = 30_000
    dest = tmp_path / "a.bin"
    with pytest.raises(dl.DownloadError, match="interrupted.*run again to resume"):
        dl.download_file(server.url + "/a.bin", dest, sha256=sha256(PAYLOAD), retries=0,
                         chunk_size=4096)
    part = tmp_path / "a.bin.part"
    assert not dest.exists()
    kept = part.stat().st_size
    assert 0 < kept <= 30_000
    assert part.read_bytes() == PAYLOAD[:kept]
    dl.download_file(server.url + "/a.bin", dest, sha256=sha256(PAYLOAD), retries=0)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges("/a.bin") == [None, f"bytes={kept}-"]
    assert not part.exists()


def test_retries_resume_within_one_call(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    server.drop_after["/a.bin"] = 50_000
    dest = dl.download_file(server.url + "/a.bin", tmp_path / "a.bin",
                            md5=hashlib.md5(PAYLOAD).hexdigest(), retries=2, chunk_size=4096)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges("/a.bin")[0] is None
    assert server.ranges("/a.bin")[1].startswith("bytes=")


def test_server_ignoring_range_restarts_cleanly(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes from another file")
    server.ignore_range = True
    dest = dl.download_file(server.url + "/a.bin", tmp_path / "a.bin", sha256=sha256(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_gets_416_and_is_verified(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)
    dest = dl.download_file(server.url + "/a.bin", tmp_path / "a.bin", sha256=sha256(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges("/a.bin") == [f"bytes={len(PAYLOAD)}-"]


def test_checksum_mismatch_deletes_the_download(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    with pytest.raises(dl.ChecksumError, match=r"a\.bin.*sha256 is [0-9a-f]{64}, expected 0{64}"):
        dl.download_file(server.url + "/a.bin", tmp_path / "a.bin", sha256="0" * 64)
    assert not (tmp_path / "a.bin").exists()
    assert not (tmp_path / "a.bin.part").exists()


def test_http_error_names_the_url(server: FakeServer, tmp_path: Path) -> None:
    with pytest.raises(dl.DownloadError, match=r"/missing\.bin: HTTP 404"):
        dl.download_file(server.url + "/missing.bin", tmp_path / "m.bin")
    with pytest.raises(ValueError, match="only http"):
        dl.download_file("file:///etc/passwd", tmp_path / "x")


def test_stubbed_transport(tmp_path: Path) -> None:
    class Stub:
        status, headers = 200, {"Content-Length": "5"}

        def __init__(self) -> None:
            self.body = io.BytesIO(b"hello")

        def read(self, amt: int | None = None) -> bytes:
            return self.body.read(amt)

        def close(self) -> None:
            pass

    calls = []

    def transport(url: str, headers: dict[str, str], timeout: float) -> Stub:
        calls.append((url, headers.get("Range")))
        return Stub()

    out = dl.download_file("https://example.org/h.txt", tmp_path / "h.txt", transport=transport,
                           sha256=sha256(b"hello"))
    assert out.read_text() == "hello"
    assert calls == [("https://example.org/h.txt", None)]


def test_parse_sha256sums_and_verify(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_bytes(b"x")
    text = f"{sha256(b'x')}  sub/x.txt\n{sha256(b'y')} *missing.txt\n"
    sums = dl.parse_sha256sums(text)
    assert sums == {"sub/x.txt": sha256(b"x"), "missing.txt": sha256(b"y")}
    assert dl.verify_sha256sums(tmp_path, sums) == 1
    with pytest.raises(dl.ChecksumError, match="missing.txt"):
        dl.verify_sha256sums(tmp_path, sums, ignore_missing=False)
    (tmp_path / "sub" / "x.txt").write_bytes(b"corrupted")
    with pytest.raises(dl.ChecksumError, match=r"sub/x\.txt \(sha256 differs\)"):
        dl.verify_sha256sums(tmp_path, sums)
    with pytest.raises(ValueError, match="line 1"):
        dl.parse_sha256sums("nothex  file\n")


def test_shared_sample_passes_physionet_sums() -> None:
    folder = shared_data_dir() / "ptbxl"
    if not (folder / "SHA256SUMS.physionet.txt").is_file():
        pytest.skip(f"real PTB-XL sample absent at {folder}")
    sums = dl.parse_sha256sums((folder / "SHA256SUMS.physionet.txt").read_text())
    assert len(sums) == 212
    records = {k: v for k, v in sums.items() if k.startswith("records500/")}
    assert dl.verify_sha256sums(folder, records) == 10  # 5 records x (.hea, .dat)


def _ptbxl_tree() -> dict[str, bytes]:
    return {
        "ptbxl_database.csv": b"ecg_id,patient_id\n1,1.0\n",
        "scp_statements.csv": b",diagnostic\nNORM,1.0\n",
        "records100/00000/00001_lr.hea": b"00001_lr 12 100 1000\n",
        "records100/00000/00001_lr.dat": b"\x00" * 24,
        "records100/00000/00002_lr.hea": b"00002_lr 12 100 1000\n",
        "records100/00000/00002_lr.dat": b"\x01" * 24,
        "records500/00000/00001_hr.hea": b"00001_hr 12 500 5000\n",
        "records500/00000/00001_hr.dat": b"\x02" * 24,
    }


def _sums(tree: dict[str, bytes]) -> bytes:
    return "".join(f"{sha256(v)}  {k}\n" for k, v in tree.items()).encode()


def test_download_ptbxl_files(server: FakeServer, tmp_path: Path) -> None:
    tree = _ptbxl_tree()
    for rel, body in tree.items():
        server.files[f"/ptb-xl/1.0.3/{rel}"] = body
    server.files["/ptb-xl/1.0.3/SHA256SUMS.txt"] = _sums(tree)
    dest = dl.download_ptbxl(tmp_path / "ptbxl", files_url=server.url + "/ptb-xl/1.0.3/",
                             ecg_ids=[2])
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == ["SHA256SUMS.txt", "ptbxl_database.csv", "records100/00000/00002_lr.dat",
                   "records100/00000/00002_lr.hea", "scp_statements.csv"]
    assert dl.verify_sha256sums(dest) == 4
    # a file corrupted on the server is caught against SHA256SUMS.txt
    server.files["/ptb-xl/1.0.3/records100/00000/00001_lr.dat"] = b"\xff" * 24
    with pytest.raises(dl.ChecksumError, match="00001_lr.dat"):
        dl.download_ptbxl(tmp_path / "ptbxl", files_url=server.url + "/ptb-xl/1.0.3/")


def test_download_ptbxl_zip(server: FakeServer, tmp_path: Path) -> None:
    tree = _ptbxl_tree()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, body in {**tree, "SHA256SUMS.txt": _sums(tree)}.items():
            zf.writestr(f"ptb-xl-1.0.3/{rel}", body)
    server.files["/ptb-xl.zip"] = buf.getvalue()
    server.drop_after["/ptb-xl.zip"] = 100
    dest = dl.download_ptbxl(tmp_path / "ptbxl", method="zip", zip_url=server.url + "/ptb-xl.zip",
                             zip_sha256=sha256(buf.getvalue()))
    assert (dest / "records500/00000/00001_hr.dat").read_bytes() == tree[
        "records500/00000/00001_hr.dat"]
    assert not (dest / "ptb-xl-1.0.3").exists()
    assert server.ranges("/ptb-xl.zip")[1] == "bytes=100-"


def test_download_ham10000_from_dataverse_listing(server: FakeServer, tmp_path: Path) -> None:
    images = io.BytesIO()
    with zipfile.ZipFile(images, "w") as zf:
        zf.writestr("ISIC_0000001.jpg", b"jpeg-bytes-1")
        zf.writestr("ISIC_0000002.jpg", b"jpeg-bytes-2")
    metadata = b"lesion_id,image_id,dx,dx_type,age,sex,localization\r\n"
    server.files["/api/access/datafile/11?format=original"] = metadata
    server.files["/api/access/datafile/12"] = images.getvalue()
    listing = {"status": "OK", "data": [
        {"label": "HAM10000_metadata.tab", "dataFile": {
            "id": 11, "filename": "HAM10000_metadata.tab",
            "originalFileName": "HAM10000_metadata.csv", "md5": hashlib.md5(metadata).hexdigest()}},
        {"label": "HAM10000_images_part_1.zip", "dataFile": {
            "id": 12, "filename": "HAM10000_images_part_1.zip",
            "checksum": {"type": "MD5", "value": hashlib.md5(images.getvalue()).hexdigest()}}},
    ]}
    server.files["/api/datasets/:persistentId/versions/:latest-published/files"
                 "?persistentId=doi%3A10.7910%2FDVN%2FDBW86T"] = json.dumps(listing).encode()
    dest = dl.download_ham10000(tmp_path / "ham", server=server.url,
                                files=("HAM10000_metadata", "HAM10000_images_part_1.zip"))
    assert (dest / "HAM10000_metadata.csv").read_bytes() == metadata
    part1 = dest / "HAM10000_images_part_1"
    assert sorted(os.listdir(part1)) == [".extracted", "ISIC_0000001.jpg", "ISIC_0000002.jpg"]
    from fusion_utils.data.ham10000 import find_images

    assert sorted(find_images(dest)) == ["ISIC_0000001", "ISIC_0000002"]
    with pytest.raises(dl.DownloadError, match=r"no file HAM10000_images_part_2\.zip.*lists"):
        dl.download_ham10000(tmp_path / "ham", server=server.url,
                             files=("HAM10000_images_part_2.zip",))


def test_extract_zip_refuses_escaping_paths(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.txt", b"no")
    with pytest.raises(ValueError, match="refusing"):
        dl.extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.network
@pytest.mark.skipif(os.environ.get("FUSION_NETWORK_TESTS") != "1",
                    reason="touches physionet.org; set FUSION_NETWORK_TESTS=1 to run")
def test_real_physionet_sums_list_the_tables() -> None:  # pragma: no cover - never in CI
    text = dl._fetch_bytes(dl.PTBXL_FILES_URL + "SHA256SUMS.txt", None, 60).decode()
    sums = dl.parse_sha256sums(text)
    assert "ptbxl_database.csv" in sums and "scp_statements.csv" in sums


class _DictTransport:
    """A transport serving full URLs from a dict (no socket); records the URLs asked for."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.urls = files, []

    def __call__(self, url: str, headers: dict[str, str], timeout: float):
        self.urls.append(url)
        body = self.files[url]

        class Answer:
            status, headers = 200, {"Content-Length": str(len(body))}
            stream = io.BytesIO(body)

            def read(self, amt: int | None = None) -> bytes:
                return self.stream.read(amt)

            def close(self) -> None:
                pass

        return Answer()


def _physionet(release: str) -> dict[str, bytes]:
    tree = _ptbxl_tree()
    tree["ptbxl_database.csv"] = f"ecg_id,patient_id,release\n1,1.0,{release}\n".encode()
    base = f"https://physionet.org/files/ptb-xl/{release}/"
    files = {base + rel: body for rel, body in tree.items()}
    files[base + "SHA256SUMS.txt"] = _sums(tree)
    return files


def test_ptbxl_release_default_is_the_papers_and_1_0_3_on_request(tmp_path: Path) -> None:
    assert dl.PTBXL_VERSION == "1.0.1"
    assert dl.PTBXL_RELEASES["1.0.1"] == {"records": 21_837, "patients": 18_885,
                                          "single_superclass": 16_272}
    assert dl.PTBXL_RELEASES["1.0.3"]["records"] == 21_799
    assert dl.ptbxl_urls("1.0.3") == (
        "https://physionet.org/files/ptb-xl/1.0.3/",
        "https://physionet.org/static/published-projects/ptb-xl/"
        "ptb-xl-a-large-publicly-available-electrocardiography-dataset-1.0.3.zip")
    assert dl.PTBXL_FILES_URL == "https://physionet.org/files/ptb-xl/1.0.1/"
    transport = _DictTransport(_physionet("1.0.1") | _physionet("1.0.3"))
    old = dl.download_ptbxl(tmp_path / "old", transport=transport)
    assert (old / "ptbxl_database.csv").read_text().endswith("1.0.1\n")
    assert transport.urls and all("/ptb-xl/1.0.1/" in u for u in transport.urls)
    transport.urls.clear()
    new = dl.download_ptbxl(tmp_path / "new", release="1.0.3", transport=transport)
    assert (new / "ptbxl_database.csv").read_text().endswith("1.0.3\n")
    assert all("/ptb-xl/1.0.3/" in u for u in transport.urls)
    with pytest.raises(ValueError, match=r"'1.0.2' is unknown: choose one of 1.0.1, 1.0.3"):
        dl.download_ptbxl(tmp_path / "x", release="1.0.2", transport=transport)


def test_command_line_release_option(monkeypatch, tmp_path: Path) -> None:
    seen = {}
    monkeypatch.setattr(dl, "download_ptbxl", lambda dest, **kw: seen.update(kw, dest=dest))
    assert dl.main(["ptbxl", str(tmp_path)]) == 0 and seen["release"] == "1.0.1"
    assert dl.main(["ptbxl", str(tmp_path), "--release", "1.0.3"]) == 0
    assert seen["release"] == "1.0.3"
    with pytest.raises(SystemExit):
        dl.main(["ptbxl", str(tmp_path), "--release", "1.0.2"])

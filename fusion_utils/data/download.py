"""Download the real datasets: PTB-XL from PhysioNet, HAM10000 from Harvard Dataverse.

For users who want the full data; never run in CI (the tests serve small files from a local
HTTP server on 127.0.0.1). Every transfer is

- **checksummed**: PTB-XL files against the dataset's own ``SHA256SUMS.txt``, HAM10000 files
  against the MD5 that Dataverse lists for each file;
- **resumable**: bytes land in ``<name>.part``; a later call asks for the rest with an HTTP
  ``Range`` header (and starts over if the server ignores it); an interrupted transfer is
  retried ``retries`` times in the same call;
- **atomic**: the ``.part`` file is renamed onto the final name only once its checksum matches.

Only the standard library is used for HTTP (``urllib``), so the module adds no dependency;
``transport=`` swaps in any callable with the same contract (see :data:`Transport`).

Examples
--------
Shell, from the project root::

    python -m fusion_utils.data.download ptbxl data/ptbxl              # 100 Hz records + tables
    python -m fusion_utils.data.download ptbxl data/ptbxl-1.0.3 --release 1.0.3
    python -m fusion_utils.data.download ham10000 data/ham10000

then point notebook 01 at the folder with ``-p data_dir data/ptbxl``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "DATAVERSE_SERVER",
    "HAM10000_DOI",
    "HAM10000_FILES",
    "PTBXL_FILES_URL",
    "PTBXL_RELEASES",
    "PTBXL_VERSION",
    "PTBXL_ZIP_URL",
    "ChecksumError",
    "DownloadError",
    "Transport",
    "download_file",
    "download_ham10000",
    "download_ptbxl",
    "extract_zip",
    "file_digest",
    "parse_sha256sums",
    "ptbxl_urls",
    "urllib_transport",
    "verify_sha256sums",
]

PTBXL_RELEASES: dict[str, dict[str, int | None]] = {
    "1.0.1": {"records": 21_837, "patients": 18_885, "single_superclass": 16_272},
    "1.0.3": {"records": 21_799, "patients": 18_869, "single_superclass": None},
}
"""The PTB-XL releases :func:`download_ptbxl` knows, with their sizes.

Records and patients as the releases state them (Wagner et al. 2020 for 1.0.1; the PhysioNet
page of 1.0.3). ``single_superclass``: records with exactly one diagnostic superclass under the
official aggregation, counted on the 1.0.1 table in ``../shared/data/ptbxl`` (its README);
``None`` where that table was not available to count (1.0.3; chapter 01 counts it on a
download). 1.0.2 dropped duplicate records and stores ages above 89 as 300; 1.0.3 is 1.0.2
with two more records removed.
"""

PTBXL_VERSION = "1.0.1"
"""The default release: the one the paper used.

The paper (2021) predates 1.0.2 (August 2022), so it used 1.0.1 (or the identical 1.0.0): its
21,837 records, with the real ages above 89 that 1.0.2 replaced by 300. The real sample in
``../shared/data`` is 1.0.1 too, and PhysioNet keeps serving it. Pass ``release="1.0.3"``
(``--release 1.0.3``) for the current release, which drops duplicates and caps ages, when the point
is the data rather than the reproduction.
"""


def ptbxl_urls(release: str = PTBXL_VERSION) -> tuple[str, str]:
    """PhysioNet's per-file folder and zip archive URLs of a PTB-XL ``release``.

    Raises
    ------
    ValueError
        For a release not in :data:`PTBXL_RELEASES` (the message lists them).
    """
    if release not in PTBXL_RELEASES:
        raise ValueError(f"PTB-XL release {release!r} is unknown: choose one of "
                         f"{', '.join(PTBXL_RELEASES)}")
    files = f"https://physionet.org/files/ptb-xl/{release}/"
    archive = ("https://physionet.org/static/published-projects/ptb-xl/"
               f"ptb-xl-a-large-publicly-available-electrocardiography-dataset-{release}.zip")
    return files, archive


PTBXL_FILES_URL, PTBXL_ZIP_URL = ptbxl_urls(PTBXL_VERSION)
DATAVERSE_SERVER = "https://dataverse.harvard.edu"
HAM10000_DOI = "doi:10.7910/DVN/DBW86T"
HAM10000_FILES: tuple[str, ...] = (
    "HAM10000_metadata", "HAM10000_images_part_1.zip", "HAM10000_images_part_2.zip",
)
"""Files taken from the Dataverse record by default (a name without suffix matches any)."""


class DownloadError(RuntimeError):
    """The server refused or the transfer failed after its retries (names the URL)."""


class ChecksumError(ValueError):
    """A downloaded or extracted file does not match its published checksum."""


class Response(Protocol):
    """What a transport returns: an HTTP status, headers and a readable body."""

    status: int
    headers: Any

    def read(self, amt: int | None = ...) -> bytes: ...
    def close(self) -> None: ...


Transport = Callable[[str, dict[str, str], float], Response]
"""``transport(url, headers, timeout) -> response``; must not raise on HTTP error statuses."""


def urllib_transport(url: str, headers: dict[str, str], timeout: float) -> Response:
    """Open ``url`` with ``urllib``; HTTP errors come back as responses (status >= 400)."""
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        return exc  # an HTTPError is a response with .status, .headers, .read()


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file (``sha256`` or ``md5``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_url(url: str) -> None:
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"url {url!r}: only http(s) URLs are downloaded")


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    md5: str | None = None,
    transport: Transport | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` with resume, checksum verification and an atomic rename.

    Parameters
    ----------
    url : str
        http(s) URL.
    dest : path-like
        Final file. If it exists and matches the checksum (or no checksum is given) nothing is
        downloaded.
    sha256, md5 : str, optional
        Expected hex digest. On a mismatch the ``.part`` file is deleted and
        :class:`ChecksumError` is raised.
    transport : callable, optional
        ``transport(url, headers, timeout) -> response`` (default :func:`urllib_transport`).
    retries : int
        Extra attempts after an interrupted transfer; each resumes from the ``.part`` file.
    timeout : float
        Socket timeout in seconds.
    chunk_size : int
        Bytes per read.
    progress : callable, optional
        Called as ``progress(bytes_so_far, total_or_None)`` after each chunk.

    Returns
    -------
    pathlib.Path
        ``dest``.
    """
    _check_url(url)
    transport = transport or urllib_transport
    dest = Path(dest)
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5) if md5 else (None, None)
    if dest.is_file() and (expected is None or file_digest(dest, algorithm) == expected.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for _attempt in range(retries + 1):
        try:
            _transfer(url, part, transport, timeout, chunk_size, progress)
            last_error = None
            break
        except (OSError, http.client.HTTPException, _Incomplete) as exc:
            last_error = exc
    if last_error is not None:
        kept = part.stat().st_size if part.exists() else 0
        raise DownloadError(f"{url}: transfer interrupted ({last_error}); {kept} bytes kept in "
                            f"{part}, run again to resume") from last_error
    if expected is not None:
        actual = file_digest(part, algorithm)
        if actual != expected.lower():
            part.unlink()
            raise ChecksumError(f"{dest.name} from {url}: {algorithm} is {actual}, expected "
                                f"{expected.lower()}; the corrupt download was deleted, run "
                                "again to fetch it afresh")
    os.replace(part, dest)
    return dest


class _Incomplete(Exception):
    """The body ended before Content-Length bytes arrived."""


def _transfer(url: str, part: Path, transport: Transport, timeout: float, chunk_size: int,
              progress: Callable[[int, int | None], None] | None) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "fusion_utils-download/1", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = transport(url, headers, timeout)
    try:
        status = int(response.status)
        if status == 416 and offset:
            return  # nothing left to fetch: the checksum decides whether the part is good
        if status == 206 and offset:
            content_range = str(response.headers.get("Content-Range", ""))
            if not content_range.startswith(f"bytes {offset}-"):
                raise DownloadError(f"{url}: asked for bytes {offset}- but got {content_range!r}")
            mode = "ab"
        elif status == 200:
            mode, offset = "wb", 0  # the server ignored Range (or there was none): start over
        else:
            raise DownloadError(f"{url}: HTTP {status}; check the URL and that the server is "
                                "reachable")
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        total = offset + remaining if remaining is not None else None
        received = 0
        with open(part, mode) as fh:
            while True:
                chunk = response.read(chunk_size)
                if not chunk:
                    break
                fh.write(chunk)
                received += len(chunk)
                if progress is not None:
                    progress(offset + received, total)
            fh.flush()
            os.fsync(fh.fileno())
        if remaining is not None and received < remaining:
            raise _Incomplete(f"got {received} of {remaining} bytes")
    finally:
        response.close()


def _fetch_bytes(url: str, transport: Transport | None, timeout: float) -> bytes:
    _check_url(url)
    response = (transport or urllib_transport)(url, {"User-Agent": "fusion_utils-download/1"},
                                                timeout)
    try:
        if int(response.status) != 200:
            raise DownloadError(f"{url}: HTTP {response.status}")
        return response.read()
    finally:
        response.close()


def parse_sha256sums(text: str) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex>  <path>`` per line) into ``{path: hex}``."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ValueError(f"SHA256SUMS line {number} is not '<sha256>  <path>': {line!r}")
        sums[parts[1].lstrip("*").removeprefix("./")] = parts[0].lower()
    return sums


def verify_sha256sums(
    folder: str | os.PathLike[str],
    sums: dict[str, str] | str | os.PathLike[str] = "SHA256SUMS.txt",
    *,
    ignore_missing: bool = True,
) -> int:
    """Check files under ``folder`` against a SHA256SUMS table; return how many were checked.

    Raises :class:`ChecksumError` naming every mismatching (or, unless ``ignore_missing``,
    missing) file.
    """
    folder = Path(folder)
    if not isinstance(sums, dict):
        sums = parse_sha256sums((folder / sums).read_text(encoding="utf-8"))
    bad, checked = [], 0
    for rel, want in sorted(sums.items()):
        path = folder / rel
        if not path.is_file():
            if not ignore_missing:
                bad.append(f"{rel} (missing)")
            continue
        checked += 1
        if file_digest(path) != want:
            bad.append(f"{rel} (sha256 differs)")
    if bad:
        raise ChecksumError(f"{folder}: {len(bad)} file(s) fail SHA256SUMS: {', '.join(bad[:10])}")
    return checked


def extract_zip(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Unpack ``archive`` into ``dest``; a single top-level folder in the archive is dropped.

    Files are unpacked into a temporary folder beside ``dest`` and moved in at the end, so an
    interrupted extraction leaves no half-written tree. Paths escaping ``dest`` are refused.

    Raises
    ------
    fusion_utils.errors.DataError
        The archive is truncated or damaged (not a zip, a missing central directory, a member
        that fails its CRC or ends early); nothing is moved into ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"zip archive not found: {archive}")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _damaged_zip(archive, exc) from exc
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        for name in names:
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"{archive}: refusing to extract {name!r} outside {dest}")
        tops = {n.split("/", 1)[0] for n in names}
        strip = len(tops) == 1 and all("/" in n for n in names)
        tmp = Path(tempfile.mkdtemp(prefix=f".{archive.stem}.", dir=dest))
        try:
            try:
                zf.extractall(tmp)
            except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
                raise _damaged_zip(archive, exc) from exc
            root = tmp / next(iter(tops)) if strip else tmp
            for item in root.iterdir():
                target = dest / item.name
                if target.is_dir() and item.is_dir():
                    shutil.copytree(item, target, dirs_exist_ok=True)
                else:
                    os.replace(item, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _damaged_zip(archive: Path, exc: BaseException) -> Exception:
    from fusion_utils.errors import DataError, describe

    size = archive.stat().st_size if archive.is_file() else 0
    return DataError(describe(
        archive, f"truncated or damaged zip archive ({size} bytes; {type(exc).__name__}: {exc})",
        "delete it and download it again (download_ptbxl / download_ham10000 check the "
        "checksum of a fresh copy)"))


def _ptbxl_wanted(path: str, sampling_rates: Sequence[int], ecg_ids: set[int] | None) -> bool:
    if "/" not in path:
        return path in ("ptbxl_database.csv", "scp_statements.csv")
    folder = path.split("/", 1)[0]
    if folder not in {f"records{r}" for r in sampling_rates}:
        return False
    if ecg_ids is None:
        return True
    stem = Path(path).name.split("_", 1)[0]
    return stem.isdigit() and int(stem) in ecg_ids


def download_ptbxl(
    dest: str | os.PathLike[str],
    *,
    method: str = "files",
    sampling_rates: Sequence[int] = (100,),
    ecg_ids: Iterable[int] | None = None,
    release: str = PTBXL_VERSION,
    files_url: str | None = None,
    zip_url: str | None = None,
    zip_sha256: str | None = None,
    transport: Transport | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download PTB-XL (release 1.0.1, the paper's, by default) from PhysioNet into ``dest``.

    Parameters
    ----------
    dest : path-like
        Target folder; gets PhysioNet's layout (``ptbxl_database.csv``, ``records100/...``).
    method : {"files", "zip"}
        ``files``: fetch ``SHA256SUMS.txt``, then each wanted file, each verified against it
        (resumable file by file; choose ``sampling_rates`` and ``ecg_ids``). ``zip``: fetch the
        1.7 GB archive (resumable; checked against ``zip_sha256`` when given), unpack it and
        verify every file against the ``SHA256SUMS.txt`` inside.
    sampling_rates : sequence of int
        ``(100,)``, ``(500,)`` or both (``files`` only).
    ecg_ids : iterable of int, optional
        Only these records (``files`` only); the two tables always come.
    release : {"1.0.1", "1.0.3"}
        Which release (:data:`PTBXL_RELEASES`): 1.0.1, the paper's (default, see
        :data:`PTBXL_VERSION` for why), or 1.0.3, the current one.
    files_url, zip_url : str, optional
        Where to download from instead of ``release``'s PhysioNet URLs (a mirror, or a local
        server in the tests).
    zip_sha256 : str, optional
        SHA-256 of the archive, as shown on the PhysioNet project page.
    transport, retries, timeout
        As in :func:`download_file`.

    Returns
    -------
    pathlib.Path
        ``dest``.
    """
    dest = Path(dest)
    default_files, default_zip = ptbxl_urls(release)
    files_url = files_url or default_files
    zip_url = zip_url or default_zip
    bad_rates = [r for r in sampling_rates if r not in (100, 500)]
    if bad_rates:
        raise ValueError(f"sampling_rates has {bad_rates}: PTB-XL has 100 and 500 Hz records")
    if method == "zip":
        archive = dest / Path(urllib.parse.urlparse(zip_url).path).name
        download_file(zip_url, archive, sha256=zip_sha256, transport=transport, retries=retries,
                      timeout=timeout)
        extract_zip(archive, dest)
        verify_sha256sums(dest, "SHA256SUMS.txt", ignore_missing=False)
        return dest
    if method != "files":
        raise ValueError(f"method={method!r}: choose 'files' or 'zip'")
    base = files_url if files_url.endswith("/") else files_url + "/"
    text = _fetch_bytes(base + "SHA256SUMS.txt", transport, timeout).decode("utf-8")
    sums = parse_sha256sums(text)
    ids = None if ecg_ids is None else {int(i) for i in ecg_ids}
    wanted = sorted(p for p in sums if _ptbxl_wanted(p, sampling_rates, ids))
    if not any(p == "ptbxl_database.csv" for p in wanted):
        raise DownloadError(f"{base}SHA256SUMS.txt does not list ptbxl_database.csv: is "
                            f"{files_url} a PTB-XL release?")
    dest.mkdir(parents=True, exist_ok=True)
    for rel in wanted:
        download_file(base + rel, dest / rel, sha256=sums[rel], transport=transport,
                      retries=retries, timeout=timeout)
    from fusion_utils.io import atomic_write_text

    atomic_write_text(dest / "SHA256SUMS.txt", text)
    return dest


def _dataverse_listing(server: str, doi: str, version: str, transport: Transport | None,
                       timeout: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"persistentId": doi})
    url = f"{server.rstrip('/')}/api/datasets/:persistentId/versions/{version}/files?{query}"
    try:
        payload = json.loads(_fetch_bytes(url, transport, timeout).decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise DownloadError(f"{url}: not a Dataverse file listing ({exc})") from exc
    if payload.get("status") != "OK" or not isinstance(payload.get("data"), list):
        raise DownloadError(f"{url}: unexpected answer {str(payload)[:200]}")
    return payload["data"]


def download_ham10000(
    dest: str | os.PathLike[str],
    *,
    files: Sequence[str] = HAM10000_FILES,
    extract: bool = True,
    server: str = DATAVERSE_SERVER,
    doi: str = HAM10000_DOI,
    version: str = ":latest-published",
    transport: Transport | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download HAM10000 from its Harvard Dataverse record into ``dest``.

    The dataset's file listing gives each file's id and MD5; each wanted file is downloaded
    from ``/api/access/datafile/<id>`` (the original upload for files Dataverse ingested as
    tables), verified, and the image archives are unpacked into ``HAM10000_images_part_1/`` and
    ``HAM10000_images_part_2/``, which :func:`fusion_utils.data.ham10000.find_images` reads.

    Parameters
    ----------
    dest : path-like
        Target folder.
    files : sequence of str
        File names in the record; a name without a suffix matches any suffix (the metadata is
        listed as ``HAM10000_metadata.tab`` with original ``HAM10000_metadata.csv``).
    extract : bool
        Unpack ``.zip`` files next to the archive (the archive is kept).
    server, doi, version : str
        The Dataverse installation, the dataset's persistent id and version.
    transport, retries, timeout
        As in :func:`download_file`.
    """
    dest = Path(dest)
    listing = _dataverse_listing(server, doi, version, transport, timeout)
    entries: dict[str, dict[str, Any]] = {}
    for item in listing:
        datafile = item.get("dataFile", {})
        for name in (datafile.get("originalFileName"), datafile.get("filename"), item.get("label")):
            if name:
                entries.setdefault(name, datafile)
                entries.setdefault(Path(name).stem, datafile)
    missing = [f for f in files if f not in entries]
    if missing:
        available = sorted({n for n in entries if "." in n})
        raise DownloadError(f"{doi} on {server} has no file {', '.join(missing)}; it lists "
                            f"{', '.join(available)}")
    out = []
    for wanted in files:
        datafile = entries[wanted]
        original = datafile.get("originalFileName")
        name = original or datafile.get("filename") or wanted
        checksum = datafile.get("checksum") or {}
        md5 = datafile.get("md5") or (checksum.get("value") if checksum.get("type") == "MD5"
                                      else None)
        url = f"{server.rstrip('/')}/api/access/datafile/{datafile['id']}"
        if original:
            url += "?format=original"
        path = download_file(url, dest / name, md5=md5, transport=transport, retries=retries,
                             timeout=timeout)
        out.append(path)
        if extract and path.suffix == ".zip":
            target = dest / path.stem
            marker = target / ".extracted"
            if not marker.is_file():
                extract_zip(path, target)
                marker.write_text(file_digest(path, "md5") + "\n")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m fusion_utils.data.download {ptbxl,ham10000} DEST [options]``."""
    parser = argparse.ArgumentParser(prog="python -m fusion_utils.data.download",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=["ptbxl", "ham10000"])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--method", choices=["files", "zip"], default="files",
                        help="PTB-XL: per-file download (default) or the whole zip")
    parser.add_argument("--sampling-rate", type=int, action="append", choices=[100, 500],
                        help="PTB-XL records to fetch (repeatable; default 100)")
    parser.add_argument("--release", choices=list(PTBXL_RELEASES), default=PTBXL_VERSION,
                        help=f"PTB-XL release (default {PTBXL_VERSION}, the paper's; 1.0.3 is "
                        "the current one)")
    args = parser.parse_args(argv)
    if args.dataset == "ptbxl":
        download_ptbxl(args.dest, method=args.method, release=args.release,
                       sampling_rates=tuple(args.sampling_rate or (100,)))
    else:
        download_ham10000(args.dest)
    print(f"{args.dataset} is in {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

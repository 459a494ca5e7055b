"""PTB-XL: the metadata table, diagnostic superclasses and WFDB signals.

The layout is PhysioNet's own (Wagner et al. 2020)::

    <data_dir>/ptbxl_database.csv        one row per record (index ``ecg_id``)
    <data_dir>/scp_statements.csv        the SCP-ECG statements (index: statement code)
    <data_dir>/records100/NNNNN/<id>_lr  WFDB records at 100 Hz (``filename_lr``)
    <data_dir>/records500/NNNNN/<id>_hr  WFDB records at 500 Hz (``filename_hr``)

Superclasses follow the dataset's official aggregation: every key of ``scp_codes`` whose
statement has ``diagnostic == 1`` is mapped through ``diagnostic_class``. The paper keeps the
records with exactly one superclass (its 15,351 samples; the official table gives 16,272, see
``../shared/data/README.md``).

Both published releases load: v1.0.1 (21,837 records, real ages above 89) and v1.0.2/v1.0.3
(21,799 records, ages above 89 stored as the code ``300``). The code is replaced by
:data:`AGE_OVER_89_VALUE` (90, the smallest age it stands for), so that age keeps its order and
its scale in both releases; the number of replaced values is kept in
``df.attrs["n_age_over_89_coded"]``.

What the readers check (see also ``book/own_data.md``, "What the loaders check"):

* the table has the columns the book needs (``age`` and ``sex`` included), ``ecg_id`` is unique,
  ``age`` is numeric (a text age raises :class:`~fusion_utils.errors.DataError` naming the rows);
* SCP codes that ``scp_statements.csv`` does not list are counted, a warning names how many
  records carry them and examples (``df.attrs["unknown_scp_codes"]``), and such a record is
  labelled from its known codes only;
* WFDB's missing-sample value (``-32768`` in format 16) becomes NaN, never a voltage;
  :func:`lead_problems` finds leads with missing samples or a flat line, and
  :func:`apply_bad_leads` applies the ``bad_leads`` policy (``"drop"``, ``"interpolate"`` or
  ``"error"``) that the scalogram cache uses.
"""

from __future__ import annotations

import ast
import json
import math
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.errors import DataError, describe

__all__ = [
    "ACQUISITION_COLUMNS",
    "AGE_OVER_89_CODE",
    "AGE_OVER_89_VALUE",
    "BAD_LEADS_POLICIES",
    "DATABASE_FILE",
    "LEADS",
    "PATIENT_COLUMNS",
    "SAMPLING_RATES",
    "STATEMENTS_FILE",
    "SUPERCLASSES",
    "SignalFileError",
    "aggregate_superclasses",
    "apply_bad_leads",
    "describe_lead_problems",
    "lead_problems",
    "load_ptbxl_table",
    "load_scp_statements",
    "load_signal",
    "record_path",
]

SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
"""Diagnostic superclasses in the book's class order."""

LEADS: tuple[str, ...] = (
    "I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6",
)
"""Lead names as written in PTB-XL's WFDB headers, in the headers' order."""

PATIENT_COLUMNS: tuple[str, ...] = ("age", "sex", "height", "weight")
"""Patient metadata (the paper's choice). ``sex``: 0 male, 1 female."""

ACQUISITION_COLUMNS: tuple[str, ...] = ("nurse", "site", "device", "recording_date")
"""Acquisition metadata (the paper's Fig. 5 discusses Device and Nurse)."""

SAMPLING_RATES: tuple[int, ...] = (100, 500)
DATABASE_FILE = "ptbxl_database.csv"
STATEMENTS_FILE = "scp_statements.csv"
AGE_OVER_89_CODE = 300
"""How v1.0.2+ stores ages above 89 (HIPAA de-identification)."""
AGE_OVER_89_VALUE = 90.0
"""What :func:`load_ptbxl_table` puts in place of :data:`AGE_OVER_89_CODE`."""

_REQUIRED_DB_COLUMNS = ("patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr",
                        "age", "sex")
_REQUIRED_STATEMENT_COLUMNS = ("diagnostic", "diagnostic_class")
# WFDB's "missing sample" value of each storage format (the most negative code; see the WFDB
# format specification, signal(5)); wfdb-python's physical reader turns the same values into NaN.
_MISSING_SAMPLE = {"8": -128, "16": -32768, "61": -32768, "80": -128, "160": -32768,
                   "212": -2048, "24": -(2**23), "32": -(2**31), "310": -512, "311": -512}
BAD_LEADS_POLICIES: tuple[str, ...] = ("drop", "interpolate", "error")
"""What :func:`apply_bad_leads` may do with a record that has missing samples or flat leads."""
# Bytes per sample of the WFDB storage formats PTB-XL and common writers use.
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0,
                     "160": 2.0, "212": 1.5}


class SignalFileError(DataError):
    """A WFDB record cannot be read as a 12-lead PTB-XL signal (names the file and the problem)."""


def _read_csv(path: Path, what: str, **kwargs: Any) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found: {path}. Pass the PTB-XL folder that holds {path.name} "
            "(e.g. ../shared/data/ptbxl, or download it with "
            "fusion_utils.data.download.download_ptbxl)"
        )
    try:
        return pd.read_csv(path, **kwargs)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(describe(path, f"cannot be read as the PTB-XL {what}: {exc}",
                                 "re-download the file or check that it is PTB-XL's CSV")) from exc


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, df.columns))}. "
            "Is this PTB-XL's own file? (own data: add the column(s), see book/own_data.md)"
        )


def load_scp_statements(data_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Read ``scp_statements.csv`` (index: statement code) and check its columns."""
    path = Path(data_dir) / STATEMENTS_FILE
    df = _read_csv(path, "SCP statement table", index_col=0)
    _require_columns(df, _REQUIRED_STATEMENT_COLUMNS, path)
    return df


def _parse_scp(text: Any, ecg_id: Any, path: Path) -> dict[str, float]:
    value = None
    if isinstance(text, str):
        try:  # the codes are Python dict literals; as JSON they parse ~10x faster
            value = json.loads(text.replace("'", '"'))
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = None
    if not isinstance(value, dict):
        raise DataError(
            f"{path}: scp_codes of ecg_id {ecg_id} is {text!r}, expected a dict literal such as "
            "\"{'NORM': 100.0, 'SR': 0.0}\""
        )
    return {str(k): float(v) for k, v in value.items()}


def aggregate_superclasses(
    scp_codes: dict[str, float],
    code_to_class: dict[str, str],
    likelihood_threshold: float | None = None,
) -> list[str]:
    """Superclasses of one record, in :data:`SUPERCLASSES` order.

    Parameters
    ----------
    scp_codes : dict
        Statement code -> likelihood (0-100), as in ``ptbxl_database.csv``.
    code_to_class : dict
        Diagnostic statement code -> superclass (rows of ``scp_statements.csv`` with
        ``diagnostic == 1``).
    likelihood_threshold : float, optional
        Keep only codes with likelihood ``>=`` this value. ``None`` keeps every code (the
        official aggregation). Likelihood 0 means "unknown" in PTB-XL; a threshold of 1 drops it.
    """
    found = {
        code_to_class[code]
        for code, likelihood in scp_codes.items()
        if code in code_to_class
        and (likelihood_threshold is None or likelihood >= likelihood_threshold)
    }
    return [c for c in SUPERCLASSES if c in found]


def load_ptbxl_table(
    data_dir: str | os.PathLike[str],
    *,
    likelihood_threshold: float | None = None,
    single_superclass: bool = True,
) -> pd.DataFrame:
    """Read ``ptbxl_database.csv`` with parsed codes, superclasses and a label.

    Parameters
    ----------
    data_dir : path-like
        The PTB-XL folder (holds ``ptbxl_database.csv`` and ``scp_statements.csv``).
    likelihood_threshold : float, optional
        Only count SCP codes whose likelihood is at least this value (see
        :func:`aggregate_superclasses`).
    single_superclass : bool
        Keep only records with exactly one superclass (the paper's rule). With ``False`` every
        record is kept and ``label`` is missing (``None``) where a record has zero or several.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``ecg_id`` (int), with every column of the file plus ``scp_codes`` as a dict,
        ``superclasses`` (list of str, class order) and ``label`` (str or None). ``attrs`` holds
        ``data_dir``, ``n_table`` (rows in the file), ``likelihood_threshold`` and
        ``n_age_over_89_coded``.

    Examples
    --------
    >>> df = load_ptbxl_table("../shared/data/ptbxl")  # doctest: +SKIP
    >>> df["label"].value_counts()["NORM"]  # doctest: +SKIP
    9083
    """
    data_dir = Path(data_dir)
    path = data_dir / DATABASE_FILE
    df = _read_csv(path, "database table")
    _require_columns(df, ("ecg_id", *_REQUIRED_DB_COLUMNS), path)
    df = df.set_index("ecg_id")
    if not df.index.is_unique:
        dup = df.index[df.index.duplicated()][:5].tolist()
        raise DataError(f"{path}: ecg_id is not unique (e.g. {dup})")
    statements = load_scp_statements(data_dir)
    diag = statements[pd.to_numeric(statements["diagnostic"], errors="coerce") == 1]
    code_to_class = {str(k): str(v) for k, v in diag["diagnostic_class"].items()}
    unknown = sorted(set(code_to_class.values()) - set(SUPERCLASSES))
    if unknown:
        raise DataError(f"{data_dir / STATEMENTS_FILE}: unknown diagnostic_class value(s) "
                        f"{unknown}; expected {', '.join(SUPERCLASSES)}")

    df = df.copy()
    df["scp_codes"] = [_parse_scp(t, i, path)
                       for i, t in zip(df.index, df["scp_codes"], strict=True)]
    unknown_codes = _report_unknown_codes(df["scp_codes"], set(map(str, statements.index)), path)
    df["superclasses"] = [aggregate_superclasses(c, code_to_class, likelihood_threshold)
                          for c in df["scp_codes"]]
    df["label"] = [s[0] if len(s) == 1 else None for s in df["superclasses"]]
    age = _numeric_column(df, "age", path)
    coded = age == AGE_OVER_89_CODE
    n_coded = int(coded.sum())
    df["age"] = age.mask(coded, AGE_OVER_89_VALUE)
    n_table = len(df)
    if single_superclass:
        df = df[df["label"].notna()].copy()
    df.index = df.index.astype(int)
    df.attrs.update(data_dir=str(data_dir.resolve()), n_table=n_table,
                    likelihood_threshold=likelihood_threshold, n_age_over_89_coded=n_coded,
                    unknown_scp_codes=unknown_codes)
    return df


def _numeric_column(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """``df[column]`` as float; blanks stay missing, any other text raises :class:`DataError`."""
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        examples = {str(i): str(v) for i, v in raw[bad].head(5).items()}
        raise DataError(describe(
            path, f"{int(bad.sum())} value(s) are not numbers (ecg_id: value {examples})",
            "write ages in years as numbers and leave unknown ones empty", column=column))
    return values.astype(float)


def _report_unknown_codes(codes: pd.Series, known: set[str], path: Path) -> dict[str, int]:
    """Count SCP codes missing from ``scp_statements.csv``; warn with counts and examples."""
    per_code: Counter[str] = Counter()
    records: list[Any] = []
    for ecg_id, record_codes in codes.items():
        unknown = [c for c in record_codes if c not in known]
        if unknown:
            per_code.update(unknown)
            records.append(ecg_id)
    if per_code:
        top = ", ".join(f"{c} ({n})" for c, n in per_code.most_common(5))
        warnings.warn(
            f"{path}: {len(records)} record(s) carry {len(per_code)} SCP code(s) that "
            f"{STATEMENTS_FILE} does not list: {top}; e.g. ecg_id {records[:5]}. They count for "
            "no superclass (a record with only unknown codes has no label and is dropped by "
            "single_superclass=True); add the codes to scp_statements.csv if they are real",
            stacklevel=3)
    return dict(per_code)


def record_path(data_dir: str | os.PathLike[str], ecg_id: int, sampling_rate: int = 100) -> Path:
    """Base path (no extension) of a record in PhysioNet's layout.

    ``record_path(d, 1234, 100)`` is ``d/records100/01000/01234_lr``; the table's
    ``filename_lr``/``filename_hr`` give the same path.
    """
    _check_rate(sampling_rate)
    suffix = "lr" if sampling_rate == 100 else "hr"
    folder = f"{int(ecg_id) // 1000 * 1000:05d}"
    return Path(data_dir) / f"records{sampling_rate}" / folder / f"{int(ecg_id):05d}_{suffix}"


def _check_rate(sampling_rate: int) -> None:
    if sampling_rate not in SAMPLING_RATES:
        raise ValueError(f"sampling_rate={sampling_rate!r}: PTB-XL has records at 100 or 500 Hz")


def _record_base(source: str | os.PathLike[str], ecg_id: int | None, sampling_rate: int) -> Path:
    path = Path(source)
    if ecg_id is not None:
        return record_path(path, ecg_id, sampling_rate)
    if path.suffix in (".hea", ".dat"):
        return path.with_suffix("")
    if path.is_dir():
        raise ValueError(f"{path} is a folder: pass a record base path such as "
                         f"{record_path(path, 1, sampling_rate)} or give ecg_id=")
    return path


def load_signal(
    data_dir_or_record_base: str | os.PathLike[str],
    sampling_rate: int = 100,
    *,
    ecg_id: int | None = None,
    verify_checksum: bool = True,
) -> np.ndarray:
    """Read one 12-lead record with wfdb, in mV, leads in the header's order.

    Samples stored as WFDB's missing-sample value (``-32768`` in format 16, the most negative
    code of the other formats) come back as NaN, never as a voltage; use :func:`lead_problems`
    and :func:`apply_bad_leads` to find and handle them.

    Parameters
    ----------
    data_dir_or_record_base : path-like
        The record's base path without extension (the manifest's ``path``; ``.hea``/``.dat``
        suffixes are accepted and dropped), or the PTB-XL folder together with ``ecg_id``.
    sampling_rate : int
        100 or 500; must match the header.
    ecg_id : int, optional
        Record number, when the first argument is the PTB-XL folder.
    verify_checksum : bool
        Compare each lead's 16-bit sample sum with the checksum stored in the header (catches
        corrupted ``.dat`` bytes).

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n_samples, 12)`` (1000 at 100 Hz, 5000 at 500 Hz); NaN where a
        sample is missing.

    Raises
    ------
    FileNotFoundError
        The ``.hea`` or ``.dat`` file is missing.
    SignalFileError
        The header cannot be parsed, disagrees with the data file (size, number of leads,
        sampling rate), or the data fail their checksum. The message names the file.
    """
    import wfdb

    _check_rate(sampling_rate)
    base = _record_base(data_dir_or_record_base, ecg_id, sampling_rate)
    hea = base.with_name(base.name + ".hea")
    if not hea.is_file():
        raise FileNotFoundError(f"WFDB header not found: {hea} (is the record downloaded? "
                                "the manifest skips records whose files are missing)")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises many types for a malformed header
        raise SignalFileError(f"{hea}: cannot parse the WFDB header: {exc}") from exc
    if header.n_sig != len(LEADS):
        raise SignalFileError(f"{hea}: header/data mismatch: the header lists {header.n_sig} "
                              f"signals, a PTB-XL record has 12 ({', '.join(LEADS)})")
    if header.fs is None or not math.isclose(float(header.fs), sampling_rate):
        raise SignalFileError(f"{hea}: the header says {header.fs} Hz but sampling_rate="
                              f"{sampling_rate} was asked for (use filename_lr for 100 Hz and "
                              "filename_hr for 500 Hz)")
    _check_data_files(base, header)
    digital = _read_format16(base, header)
    if digital is None:
        try:
            record = wfdb.rdrecord(str(base), physical=False)
        except Exception as exc:
            raise SignalFileError(f"{base}.dat: wfdb cannot read the samples: {exc}") from exc
        digital = np.asarray(record.d_signal)
    if digital.shape != (header.sig_len, header.n_sig):
        raise SignalFileError(f"{base}: header/data mismatch: header promises "
                              f"{header.sig_len} x {header.n_sig} samples, read {digital.shape}")
    if verify_checksum:
        _verify_checksum(base, header, digital)
    gain = np.asarray(header.adc_gain, dtype=np.float64)
    baseline = np.asarray(header.baseline, dtype=np.float64)
    if np.any(gain == 0):
        raise SignalFileError(f"{hea}: a lead has ADC gain 0; cannot convert to mV")
    signal = (digital.astype(np.float64) - baseline) / gain
    missing = np.array([_MISSING_SAMPLE.get(str(f), np.iinfo(np.int64).min) for f in header.fmt])
    signal[digital == missing] = np.nan
    units = {str(u).lower() for u in (header.units or [])}
    if units and units != {"mv"}:
        scale = {"uv": 1e-3, "μv": 1e-3, "v": 1e3}
        factors = [scale.get(str(u).lower(), np.nan) for u in header.units]
        if np.any(np.isnan(factors)):
            raise SignalFileError(f"{hea}: units {header.units} cannot be converted to mV")
        signal = signal * np.asarray(factors)
    return signal.astype(np.float32)


def _read_format16(base: Path, header: Any) -> np.ndarray | None:
    """Samples of a one-file, format-16 record (PTB-XL's own), or ``None`` for anything else.

    Format 16 is little-endian int16 with the signals interleaved, so NumPy reads it directly;
    ``wfdb.rdrecord`` would parse the header a second time, which doubles the cost of a record
    (about 10 ms against 5 ms). Other formats go through wfdb.
    """
    if len(set(header.file_name)) != 1 or set(header.fmt) != {"16"} or any(header.byte_offset):
        return None
    raw = np.fromfile(base.parent / header.file_name[0], dtype="<i2")
    return raw.reshape(header.sig_len, header.n_sig).astype(np.int64)


def _check_data_files(base: Path, header: Any) -> None:
    """Check that every data file exists and has the size its header implies."""
    by_file: dict[str, list[int]] = {}
    for i, name in enumerate(header.file_name):
        by_file.setdefault(name, []).append(i)
    for name, idx in by_file.items():
        dat = base.parent / name
        if not dat.is_file():
            raise FileNotFoundError(f"WFDB data file not found: {dat} (named in {base}.hea)")
        fmts = {header.fmt[i] for i in idx}
        if len(fmts) != 1 or next(iter(fmts)) not in _BYTES_PER_SAMPLE:
            continue  # mixed or exotic formats: leave the size check to wfdb
        offset = max(int(header.byte_offset[i] or 0) for i in idx)
        expected = offset + math.ceil(_BYTES_PER_SAMPLE[next(iter(fmts))] * len(idx)
                                      * header.sig_len)
        actual = dat.stat().st_size
        if actual < expected:
            raise SignalFileError(
                f"{dat}: truncated or corrupt .dat: {actual} bytes, but the header "
                f"({header.sig_len} samples x {len(idx)} signals, format {next(iter(fmts))}) "
                f"needs {expected}")
        if actual > expected:
            raise SignalFileError(
                f"{dat}: header/data mismatch: {actual} bytes, but the header "
                f"({header.sig_len} samples x {len(idx)} signals, format {next(iter(fmts))}) "
                f"describes {expected}")


def _verify_checksum(base: Path, header: Any, digital: np.ndarray) -> None:
    stored = header.checksum
    if not stored:
        return
    sums = digital.astype(np.int64).sum(axis=0) % 65536
    for i, want in enumerate(stored):
        if want is None:
            continue
        if int(want) % 65536 != int(sums[i]):
            raise SignalFileError(
                f"{base}.dat: corrupt data: lead {header.sig_name[i]} sums to checksum "
                f"{int(sums[i])} but the header {base.name}.hea records {int(want) % 65536}")


def lead_problems(signal: np.ndarray) -> dict[str, list[int]]:
    """Leads with missing samples and flat leads of one record.

    Parameters
    ----------
    signal : numpy.ndarray
        ``(n_samples, n_leads)``, as :func:`load_signal` returns (NaN = missing sample).

    Returns
    -------
    dict
        ``"missing"``: indices of leads with at least one NaN sample (or infinite value);
        ``"flat"``: indices of leads whose finite samples are all equal (an all-zero lead, a
        disconnected electrode) or that have no finite sample at all.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"signal must be (n_samples, n_leads), got shape {x.shape}")
    finite = np.isfinite(x)
    missing = np.flatnonzero(~finite.all(axis=0)).tolist()
    hi = np.where(finite, x, -np.inf).max(axis=0)
    lo = np.where(finite, x, np.inf).min(axis=0)
    flat = np.flatnonzero(~finite.any(axis=0) | (hi == lo)).tolist()
    return {"missing": missing, "flat": flat}


def _lead_names(idx: list[int], n_leads: int) -> str:
    names = LEADS if n_leads == len(LEADS) else tuple(str(i) for i in range(n_leads))
    return ", ".join(names[i] for i in idx)


def describe_lead_problems(problems: dict[str, list[int]], n_leads: int = 12) -> str:
    """``"missing samples in V1, V2; flat: III"`` (empty when there is no problem)."""
    parts = []
    if problems["missing"]:
        parts.append(f"missing samples in {_lead_names(problems['missing'], n_leads)}")
    if problems["flat"]:
        parts.append(f"flat: {_lead_names(problems['flat'], n_leads)}")
    return "; ".join(parts)


def apply_bad_leads(signal: np.ndarray, policy: str = "drop", *,
                    where: str | os.PathLike[str] = "signal") -> tuple[np.ndarray | None, str]:
    """Apply a ``bad_leads`` policy to one record.

    Parameters
    ----------
    signal : numpy.ndarray
        ``(n_samples, n_leads)`` in mV, NaN where a sample is missing.
    policy : {"drop", "interpolate", "error"}
        ``"drop"``: a record with any missing sample or flat lead is not used (returns
        ``None``). ``"interpolate"``: missing samples are filled by linear interpolation along
        time within their lead (ends by the nearest sample; a lead with no sample at all becomes
        0 mV, i.e. flat); flat leads are kept as they are. ``"error"``: raise
        :class:`~fusion_utils.errors.DataError` naming the record and the leads.
    where : path-like
        The record, for messages.

    Returns
    -------
    (signal or None, problem)
        The signal to use (``None`` when dropped) and a description of what was wrong (empty
        when the record is clean). Callers report non-empty descriptions; nothing is silent.
    """
    if policy not in BAD_LEADS_POLICIES:
        raise ValueError(f"bad_leads={policy!r}: choose one of {', '.join(BAD_LEADS_POLICIES)}")
    problems = lead_problems(signal)
    text = describe_lead_problems(problems, np.shape(signal)[1])
    if not text:
        return signal, ""
    if policy == "error":
        raise DataError(describe(where, text, "pass bad_leads='drop' or 'interpolate', or repair "
                                              "the record"))
    if policy == "drop":
        return None, text
    x = np.array(signal, dtype=np.float32, copy=True)
    t = np.arange(x.shape[0])
    for lead in problems["missing"]:
        ok = np.isfinite(x[:, lead])
        x[:, lead] = np.interp(t, t[ok], x[ok, lead]) if ok.any() else 0.0
    return x, text

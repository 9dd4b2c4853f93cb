"""SEG-Y and SU files: layout detection, sample decoding and writing.

Reading is split in two: :func:`probe` looks at a file once and returns its :class:`Layout`
(kind, byte order, sample format, samples per trace, interval, where the traces start); the
trace index (:mod:`seis_hpc.io.index`) then reads headers and samples by byte position with
NumPy. Writing (:func:`write_segy`, :func:`write_su`) takes float32 traces and a dict of header
arrays keyed by ``segyio.TraceField`` names.

Conventions: times in s, coordinates and elevations in m. Coordinates and elevations are
written as integers with scalar -100 (cm precision) unless the caller passes the scalar itself.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.io.atomic import atomic_output
from seis_hpc.io.segy_rev2 import rev2_interval_us, rev2_samples, trace_extensions

TEXT_BYTES = 3200
BINARY_BYTES = 400
FILE_HEADER_BYTES = TEXT_BYTES + BINARY_BYTES
TRACE_HEADER_BYTES = 240

# Sample format code -> (bytes per sample, NumPy dtype without byte order or a special name).
FORMATS: dict[int, tuple[int, str]] = {
    1: (4, "ibm"),
    2: (4, "i4"),
    3: (2, "i2"),
    5: (4, "f4"),
    6: (8, "f8"),
    7: (3, "int24"),
    8: (1, "i1"),
    9: (8, "i8"),
    10: (4, "u4"),
    11: (2, "u2"),
    12: (8, "u8"),
    15: (3, "uint24"),
    16: (1, "u1"),
}
FORMAT_NAMES = {
    1: "IBM float32", 2: "int32", 3: "int16", 5: "IEEE float32", 6: "IEEE float64",
    7: "int24", 8: "int8", 9: "int64", 10: "uint32", 11: "uint16", 12: "uint64",
    15: "uint24", 16: "uint8",
}
# Plausible sample interval range (s); outside it the header is taken as corrupt. The lower
# bound is seis_hpc.limits.DT_MIN (10 us), finer than any seismic recorder.
DT_MIN, DT_MAX = 1e-5, 0.1


def _trace_field_sizes() -> dict[str, tuple[int, int]]:
    """``segyio.TraceField`` name -> (1-based byte, size in bytes)."""
    import segyio

    items = sorted((v, k) for k, v in vars(segyio.TraceField).items()
                   if not k.startswith("_") and isinstance(v, int))
    out = {}
    for i, (pos, name) in enumerate(items):
        nxt = items[i + 1][0] if i + 1 < len(items) else TRACE_HEADER_BYTES + 1
        out[name] = (pos, min(nxt - pos, 4))
    return out


TRACE_FIELDS = _trace_field_sizes()
COORDINATE_FIELDS = ("SourceX", "SourceY", "GroupX", "GroupY", "CDP_X", "CDP_Y")
ELEVATION_FIELDS = ("ReceiverGroupElevation", "SourceSurfaceElevation", "SourceDepth",
                    "ReceiverDatumElevation", "SourceDatumElevation", "SourceWaterDepth",
                    "GroupWaterDepth")


@dataclass(frozen=True)
class Layout:
    """Where everything is in a SEG-Y or SU file.

    Attributes
    ----------
    path : str
        The file.
    kind : str
        ``"segy"`` or ``"su"``.
    endian : str
        ``"big"`` or ``"little"``.
    format : int
        Sample format code actually used to decode (see :data:`FORMATS`); SU is always 5.
    declared_format : int
        Format code written in the binary header (differs from ``format`` when IEEE samples
        were found in a file declared IBM).
    ns : int
        Samples per trace.
    dt : float
        Sample interval (s).
    t_start : float
        Time of the first sample (s), from the first trace's delay recording time.
    data_offset : int
        Byte position of the first trace header.
    trace_bytes : int
        Bytes per trace, header included.
    n_traces : int
        Number of traces.
    revision : str
        SEG-Y revision (``"0"``, ``"1"``, ``"2.0"``...); ``""`` for SU.
    file_size : int
        Size of the file (bytes).
    header_bytes : int
        Trace header bytes per trace: 240, plus 240 per rev 2 trace header extension.
    """

    path: str
    kind: str
    endian: str
    format: int
    declared_format: int
    ns: int
    dt: float
    t_start: float
    data_offset: int
    trace_bytes: int
    n_traces: int
    revision: str
    file_size: int
    header_bytes: int = TRACE_HEADER_BYTES  # trace header + rev 2 extensions, per trace

    @property
    def byteorder(self) -> str:
        """NumPy byte-order character, ``">"`` or ``"<"``."""
        return ">" if self.endian == "big" else "<"

    @property
    def sample_bytes(self) -> int:
        """Bytes per sample."""
        return FORMATS[self.format][0]


# -- sample codecs -------------------------------------------------------------------------------
def ibm_to_float32(words: np.ndarray) -> np.ndarray:
    """Decode IBM System/360 single-precision words (uint32, native order) to float32.

    Values beyond the float32 range become +-inf.
    """
    w = np.asarray(words, dtype=np.uint32)
    exp = ((w >> 24) & 0x7F).astype(np.int32) - 64
    mant = (w & 0x00FFFFFF).astype(np.float64) * (1.0 / (1 << 24))
    with np.errstate(over="ignore"):
        val = np.ldexp(mant, 4 * exp).astype(np.float32)
    return np.where((w >> 31).astype(bool), -val, val)


def float32_to_ibm(values: np.ndarray) -> np.ndarray:
    """Encode float values as IBM single-precision words (uint32, native order), rounded."""
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise SeisError("cannot write NaN or Inf samples as IBM float")
    a = np.abs(x)
    m, p = np.frexp(a)  # a = m * 2**p, m in [0.5, 1)
    e = -((-p) // 4)  # ceil(p / 4): hex exponent with a / 16**e in [1/16, 1)
    frac = np.ldexp(m, p - 4 * e)
    mant = np.rint(frac * (1 << 24)).astype(np.int64)
    carry = mant >= (1 << 24)  # rounding overflowed the 24-bit fraction
    mant = np.where(carry, mant >> 4, mant)
    e = e + carry
    biased = np.clip(e + 64, 0, 127).astype(np.uint32)
    word = (biased << 24) | mant.astype(np.uint32)
    word = np.where(x < 0, word | np.uint32(0x80000000), word)
    return np.where(a == 0, np.uint32(0), word).astype(np.uint32)


def decode_samples(raw: np.ndarray, fmt: int, endian: str, ns: int) -> np.ndarray:
    """Decode sample bytes to float32.

    Parameters
    ----------
    raw : numpy.ndarray
        uint8, shape ``(n, ns * bytes_per_sample)``.
    fmt : int
        Sample format code.
    endian : str
        ``"big"`` or ``"little"``.
    ns : int
        Samples per trace.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n, ns)``.
    """
    bo = ">" if endian == "big" else "<"
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    n = raw.shape[0]
    nb, kind = FORMATS[fmt]
    if kind == "ibm":
        return ibm_to_float32(raw.view(f"{bo}u4").astype(np.uint32)).reshape(n, ns)
    if kind in ("int24", "uint24"):
        b = raw.reshape(n, ns, 3).astype(np.int32)
        hi, mid, lo = (b[..., 0], b[..., 1], b[..., 2]) if bo == ">" else \
            (b[..., 2], b[..., 1], b[..., 0])
        v = (hi << 16) | (mid << 8) | lo
        if kind == "int24":
            v = np.where(v >= (1 << 23), v - (1 << 24), v)
        return v.astype(np.float32)
    return raw.view(f"{bo}{kind}" if nb > 1 else kind).astype(np.float32).reshape(n, ns)


def encode_samples(data: np.ndarray, fmt: int, endian: str) -> np.ndarray:
    """Encode float samples ``(n, ns)`` in format ``fmt``; returns uint8 ``(n, ns * bytes)``.

    Integer formats round to the nearest integer and refuse values outside their range.
    """
    if fmt not in FORMATS or FORMATS[fmt][1] in ("int24", "uint24"):
        raise SeisError(f"cannot write sample format {fmt} (write 1, 2, 3, 5, 6, 8-12 or 16)")
    bo = ">" if endian == "big" else "<"
    data = np.asarray(data)
    n = data.shape[0]
    nb, kind = FORMATS[fmt]
    if kind == "ibm":
        out = float32_to_ibm(data).astype(f"{bo}u4")
    elif kind.startswith("f"):
        out = data.astype(f"{bo}{kind}")
    else:
        info = np.iinfo(np.dtype(kind))
        r = np.rint(np.asarray(data, dtype=np.float64))
        if r.size and (r.min() < info.min or r.max() > info.max or not np.all(np.isfinite(r))):
            raise SeisError(f"samples out of range for format {fmt} ({FORMAT_NAMES[fmt]})")
        out = r.astype(f"{bo}{kind}" if nb > 1 else kind)
    return np.ascontiguousarray(out).view(np.uint8).reshape(n, -1)


# -- detection -----------------------------------------------------------------------------------
def _u16(buf: bytes, pos: int, bo: str, signed: bool = False) -> int:
    """2-byte integer at 1-based byte ``pos``."""
    return int(np.frombuffer(buf, f"{bo}{'i' if signed else 'u'}2", 1, pos - 1)[0])


def _i32(buf: bytes, pos: int, bo: str) -> int:
    return int(np.frombuffer(buf, f"{bo}i4", 1, pos - 1)[0])


def _scaled_time_ms(th: bytes, bo: str) -> float:
    """Delay recording time (ms) of a trace header, with the time scalar (bytes 215-216)."""
    delay = _u16(th, 109, bo, signed=True)
    scalar = _u16(th, 215, bo, signed=True)
    if scalar > 0:
        return float(delay * scalar)
    if scalar < 0:
        return delay / float(-scalar)
    return float(delay)


def text_header(path: str | os.PathLike) -> str:
    """The 3200-byte textual header of a SEG-Y file as 40 lines of text (EBCDIC or ASCII)."""
    with open(path, "rb") as f:
        raw = f.read(TEXT_BYTES)
    printable = sum(32 <= b < 127 or b in (10, 13) for b in raw)
    text = raw.decode("ascii", "replace") if printable > 0.9 * len(raw) else raw.decode("cp037")
    text = text.replace("\x00", " ")
    return "\n".join(text[i:i + 80].rstrip() for i in range(0, len(text), 80))


def probe(path: str | os.PathLike, kind: str | None = None) -> Layout:
    """Detect the layout of a SEG-Y or SU file and check it is self-consistent.

    Parameters
    ----------
    path : path-like
        The file.
    kind : str, optional
        ``"segy"`` or ``"su"``; default: SU for ``.su`` names, otherwise SEG-Y when the
        binary header holds a known format code in either byte order, else SU.

    Returns
    -------
    Layout

    Raises
    ------
    SeisError
        Truncated file, unknown format code, zero or absurd sample count or interval, or a
        size that is not a whole number of traces.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(FILE_HEADER_BYTES + TRACE_HEADER_BYTES)
    if kind is None:
        if path.lower().endswith(".su"):
            kind = "su"
        elif path.lower().endswith((".sgy", ".segy")) or size < TRACE_HEADER_BYTES:
            kind = "segy"
        else:
            kind = "segy" if _format_code(head)[0] is not None else "su"
    if kind == "su":
        return _probe_su(path, head, size)
    return _probe_segy(path, head, size)


def _format_code(head: bytes) -> tuple[int | None, str, int]:
    """(format, endian, raw big-endian value): a big-endian code that is not a known format
    but is one read little-endian marks a little-endian file."""
    if len(head) < FILE_HEADER_BYTES:
        return None, "big", -1
    be = _u16(head, 3225, ">")
    if be in FORMATS or be == 4:
        return be, "big", be
    le = _u16(head, 3225, "<")
    if le in FORMATS or le == 4:
        return le, "little", be
    return None, "big", be


def _probe_segy(path: str, head: bytes, size: int) -> Layout:
    if size < FILE_HEADER_BYTES + TRACE_HEADER_BYTES:
        raise SeisError(f"truncated: {size} bytes, shorter than the 3600-byte SEG-Y file header "
                        "and one 240-byte trace header", path)
    fmt, endian, raw_code = _format_code(head)
    if fmt is None:
        raise SeisError(f"unknown sample format code {raw_code} (binary header bytes 3225-3226; "
                        f"known: {sorted(FORMATS)})", path)
    if fmt == 4:
        raise SeisError("sample format 4 (fixed point with gain, obsolete) is not supported",
                        path)
    bo = ">" if endian == "big" else "<"
    # bytes 3501 and 3502 are the major and minor revision, one byte each (not a 2-byte word:
    # little-endian rev 2.1 files hold 02 01)
    major, minor = head[3500], head[3501]
    if major == 0 and minor in (1, 2):  # the major number alone as a 2-byte word (00 01)
        major, minor = minor, 0
    revision = "0" if major == 0 else (f"{major}" if major == 1 else f"{major}.{minor}")
    n_ext = _u16(head, 3505, bo, signed=True)
    if n_ext < 0:
        n_ext = _count_stanzas(path, size)
    if n_ext < 0 or FILE_HEADER_BYTES + TEXT_BYTES * n_ext > size:
        n_ext = 0  # an impossible count (rev 0 files leave garbage here): ignore it
    data_offset = FILE_HEADER_BYTES + TEXT_BYTES * n_ext
    th0 = head[FILE_HEADER_BYTES:] if n_ext == 0 else _read_at(path, data_offset,
                                                               TRACE_HEADER_BYTES)
    ns = _u16(head, 3221, bo)
    if ns == 0 and major >= 2:
        ns = rev2_samples(head, bo)
    if ns == 0 and len(th0) == TRACE_HEADER_BYTES:
        ns = _u16(th0, 115, bo)
    if ns == 0:
        raise SeisError("sample count is 0 in the binary header (bytes 3221-3222) and in the "
                        "first trace header (bytes 115-116)", path)
    if len(th0) == TRACE_HEADER_BYTES:
        # a binary-header count the file size cannot hold, but the trace header's can
        body = size - data_offset
        tr_ns = _u16(th0, 115, bo)
        fits = [n for n in (ns, tr_ns) if n and body >= TRACE_HEADER_BYTES + n * FORMATS[fmt][0]
                and body % (TRACE_HEADER_BYTES + n * FORMATS[fmt][0]) == 0]
        if fits and ns not in fits:
            ns = fits[0]
    dt_us = bin_dt = _u16(head, 3217, bo, signed=True)
    if dt_us == 0 and major >= 2:
        dt_us = bin_dt = rev2_interval_us(head, bo)
    tr_dt = _u16(th0, 117, bo, signed=True) if len(th0) == TRACE_HEADER_BYTES else None
    field = "binary header bytes 3217-3218" + (
        f"; the first trace header, bytes 117-118, says {tr_dt} us"
        if tr_dt is not None and tr_dt != bin_dt else "")
    if dt_us <= 0 and tr_dt is not None:
        dt_us = tr_dt
        if dt_us <= 0:
            raise SeisError(f"sample interval is {bin_dt} us in the binary header (bytes "
                            f"3217-3218) and {dt_us} us in the first trace header (bytes "
                            "117-118)", path)
        field = f"first trace header bytes 117-118; the binary header says {bin_dt} us"
    dt = _check_dt(path, dt_us, field)
    nb = FORMATS[fmt][0]
    n_th = trace_extensions(head, bo, size - data_offset, ns, nb) if major >= 2 else 0
    header_bytes = TRACE_HEADER_BYTES * (1 + n_th)
    trace_bytes = header_bytes + ns * nb
    n_traces = _count_traces(path, size, data_offset, trace_bytes, ns)
    t_start = _scaled_time_ms(th0, bo) * 1e-3 if len(th0) == TRACE_HEADER_BYTES else 0.0
    used = fmt
    if fmt == 1 and _ieee_in_ibm_file(path, data_offset, trace_bytes, n_traces, ns, bo,
                                      header_bytes):
        warnings.warn(f"{path}: binary header says IBM float (format 1) but the samples are "
                      "IEEE float; reading them as IEEE", stacklevel=3)
        used = 5
    return Layout(path, "segy", endian, used, fmt, ns, dt, t_start, data_offset, trace_bytes,
                  n_traces, revision, size, header_bytes)


def _probe_su(path: str, head: bytes, size: int) -> Layout:
    if size < TRACE_HEADER_BYTES:
        raise SeisError(f"truncated: {size} bytes, shorter than one 240-byte SU trace header",
                        path)
    fits = []
    for bo, endian in ((">", "big"), ("<", "little")):
        ns = _u16(head, 115, bo)
        tb = TRACE_HEADER_BYTES + 4 * ns
        if ns > 0 and size % tb == 0:
            dt_us = _u16(head, 117, bo, signed=True)
            fits.append((not (DT_MIN <= dt_us * 1e-6 <= DT_MAX), endian, bo, ns, dt_us))
    if not fits:
        ns_be, ns_le = _u16(head, 115, ">"), _u16(head, 115, "<")
        if ns_be == 0 and ns_le == 0:
            raise SeisError("sample count is 0 in the first trace header (bytes 115-116)", path)
        raise SeisError(f"not a whole number of SU traces: {size} bytes is not a multiple of "
                        f"240 + 4 x ns for ns = {ns_be} (big-endian) or {ns_le} "
                        "(little-endian) (truncated file?)", path)
    fits.sort()  # prefer the byte order whose sample interval is plausible
    _, endian, bo, ns, dt_us = fits[0]
    dt = _check_dt(path, dt_us, "trace header bytes 117-118")
    return Layout(path, "su", endian, 5, 5, ns, dt, _scaled_time_ms(head, bo) * 1e-3, 0,
                  TRACE_HEADER_BYTES + 4 * ns, size // (TRACE_HEADER_BYTES + 4 * ns), "", size)


def _check_dt(path: str, dt_us: int, field: str) -> float:
    """The sample interval (s) from ``dt_us`` read at ``field``; refused outside
    :data:`DT_MIN`..:data:`DT_MAX`."""
    if dt_us <= 0:
        raise SeisError(f"sample interval is {dt_us} us ({field})", path)
    dt = dt_us * 1e-6
    if not DT_MIN <= dt <= DT_MAX:
        raise SeisError(f"absurd sample interval {dt_us} us ({field}; expected "
                        f"{DT_MIN * 1e6:g}..{DT_MAX * 1e6:g} us)", path)
    return dt


def _count_traces(path: str, size: int, data_offset: int, trace_bytes: int, ns: int) -> int:
    body = size - data_offset
    if body < trace_bytes:
        raise SeisError(f"truncated or absurd sample count: {body} bytes after the file header, "
                        f"but one trace of {ns} samples needs {trace_bytes}", path)
    if body % trace_bytes:
        raise SeisError(f"trace count not whole: {body} bytes after the file header is "
                        f"{body / trace_bytes:.3f} traces of {trace_bytes} bytes ({ns} samples) "
                        "(truncated file, or wrong sample count/format)", path)
    return body // trace_bytes


def _count_stanzas(path: str, size: int) -> int:
    """Extended textual headers of a rev 2 file that says -1: count 3200-byte blocks up to and
    including the ``((SEG: EndText))`` stanza (any case and spacing); -1 when there is none."""
    with open(path, "rb") as f:
        f.seek(FILE_HEADER_BYTES)
        for k in range(1, min(100, (size - FILE_HEADER_BYTES) // TEXT_BYTES) + 1):
            block = f.read(TEXT_BYTES)
            for text in (block.decode("ascii", "replace"), block.decode("cp037")):
                if "seg:endtext" in text.lower().replace(" ", ""):
                    return k
    return -1


def _read_at(path: str, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


def header_blocks(layout: Layout, nbytes: int = TRACE_HEADER_BYTES, max_traces: int = 200_000,
                  map_bytes: int = 64 << 20) -> Iterator[tuple[int, int, np.ndarray]]:
    """The first ``nbytes`` of every trace, block by block: ``(first, end, headers)`` with
    ``headers`` a uint8 copy of shape ``(end - first, nbytes)``.

    The file is mapped one block (about ``map_bytes``) at a time and the map dropped after it:
    a map of the whole file would keep every page it touched (all of them: each holds a
    header) in the process's resident set, as large as the file.
    """
    step = max(1, min(max_traces, map_bytes // layout.trace_bytes))
    for a in range(0, layout.n_traces, step):
        b = min(layout.n_traces, a + step)
        mm = np.memmap(layout.path, dtype=np.uint8, mode="r",
                       offset=layout.data_offset + a * layout.trace_bytes,
                       shape=(b - a, layout.trace_bytes))
        block = np.ascontiguousarray(mm[:, :nbytes])
        del mm
        yield a, b, block


def _ieee_in_ibm_file(path: str, data_offset: int, trace_bytes: int, n_traces: int, ns: int,
                      bo: str, header_bytes: int = TRACE_HEADER_BYTES) -> bool:
    """True when the samples of a file declared IBM are really IEEE floats.

    The IEEE reading of IBM words is a monotone (square-root-like) function of their IBM value,
    so ordering samples by their IBM value also orders their IEEE value. IEEE words read as IBM
    drop to near zero at every power of 4, so that ordering scrambles the IEEE values: about 7 %
    of neighbours come out of order, against none for genuine IBM (normalised or not). The IEEE
    reading must also be finite.
    """
    picks = np.unique(np.linspace(0, n_traces - 1, min(n_traces, 32)).astype(np.int64))
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=data_offset,
                   shape=(n_traces, trace_bytes))
    words = np.ascontiguousarray(mm[picks, header_bytes:]).view(f"{bo}u4").ravel()
    del mm
    words = words.astype(np.uint32)
    words = words[(words & 0x7FFFFFFF) != 0]
    if words.size < 64:
        return False
    as_ieee = words.view(np.float32)
    if not np.all(np.isfinite(as_ieee)):
        return False
    order = np.argsort(np.abs(ibm_to_float32(words)), kind="stable")
    out_of_order = np.count_nonzero(np.diff(np.abs(as_ieee[order])) < 0) / (words.size - 1)
    return out_of_order > 0.02


# -- writing -------------------------------------------------------------------------------------
def _header_block(headers: dict, ntr: int, ns: int, dt: float, t_start: float, bo: str
                  ) -> np.ndarray:
    """The (ntr, 240) uint8 trace headers."""
    hdr = {k: np.broadcast_to(np.asarray(v), (ntr,)) for k, v in headers.items()}
    unknown = sorted(set(hdr) - set(TRACE_FIELDS))
    if unknown:
        raise SeisError(f"unknown trace header field(s) {unknown} (use segyio.TraceField names)")
    vals: dict[str, np.ndarray] = {}
    for group, scalar_key in ((COORDINATE_FIELDS, "SourceGroupScalar"),
                              (ELEVATION_FIELDS, "ElevationScalar")):
        present = [k for k in group if k in hdr]
        if not present:
            continue
        if scalar_key in hdr:  # caller gives raw integers and their scalar
            for k in present:
                vals[k] = np.rint(hdr[k].astype(np.float64))
        else:
            for k in present:
                vals[k] = np.rint(hdr[k].astype(np.float64) * 100.0)
            vals[scalar_key] = np.full(ntr, -100.0)
    delay_ms = t_start * 1e3
    time_scalar = 1
    while abs(delay_ms * time_scalar - round(delay_ms * time_scalar)) > 1e-6 and \
            time_scalar < 10000 and abs(delay_ms * time_scalar * 10) < 32767:
        time_scalar *= 10
    defaults = {
        "TRACE_SEQUENCE_LINE": np.arange(1, ntr + 1),
        "TRACE_SEQUENCE_FILE": np.arange(1, ntr + 1),
        "TraceIdentificationCode": np.ones(ntr),
        "TRACE_SAMPLE_COUNT": np.full(ntr, ns),
        "TRACE_SAMPLE_INTERVAL": np.full(ntr, round(dt * 1e6)),
        "DelayRecordingTime": np.full(ntr, round(delay_ms * time_scalar)),
    }
    if time_scalar > 1:
        defaults["ScalarTraceHeader"] = np.full(ntr, -time_scalar)
    merged = {**defaults, **{k: v for k, v in hdr.items() if k not in vals}, **vals}
    out = np.zeros((ntr, TRACE_HEADER_BYTES), dtype=np.uint8)
    for name, v in merged.items():
        pos, nb = TRACE_FIELDS[name]
        r = np.rint(np.asarray(v, dtype=np.float64))
        lo, hi = (-(1 << 31), (1 << 31) - 1) if nb == 4 else (-(1 << 15), (1 << 16) - 1)
        if r.size and (not np.all(np.isfinite(r)) or r.min() < lo or r.max() > hi):
            raise SeisError(f"trace header {name}: value out of range for a {nb}-byte field "
                            f"(min {r.min():g}, max {r.max():g})")
        code = "i" if r.size == 0 or r.min() < 0 or nb == 4 or r.max() < (1 << 15) else "u"
        out[:, pos - 1:pos - 1 + nb] = r.astype(f"{bo}{code}{nb}").view(np.uint8).reshape(ntr, nb)
    return out


def _text_block(text: str | None, lines_default: list[str]) -> bytes:
    if text is None:
        lines = lines_default
    else:
        lines = []
        for para in str(text).splitlines() or [""]:
            while len(para) > 76:
                cut = para.rfind(" ", 0, 76)
                cut = cut if cut > 0 else 76
                lines.append(para[:cut])
                para = para[cut:].lstrip()
            lines.append(para)
    lines = (lines + [""] * 40)[:40]
    body = "".join(f"C{i + 1:2d} {line}"[:80].ljust(80) for i, line in enumerate(lines))
    return body.encode("cp037", "replace")


def _default_text(fmt: int, endian: str) -> list[str]:
    return [
        "seis_hpc SEG-Y rev 1",
        f"sample format {fmt} ({FORMAT_NAMES.get(fmt, '?')}), {endian}-endian",
        "byte map (1-based): FFID 9, channel 13, CDP 21, offset 37, elevations 41-68",
        "elevation scalar 69, coordinate scalar 71 (-100: cm), SX 73, SY 77, GX 81,",
        "GY 85, delay 109 (ms), ns 115, dt 117 (us), CDP_X 181, CDP_Y 185,",
        "INLINE_3D 189, CROSSLINE_3D 193. Coordinates and elevations in m.",
        "SEG Y REV1",
    ]


def _check_write_args(data: np.ndarray, dt: float, endian: str) -> tuple[int, int]:
    if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 1:
        raise SeisError(f"traces must be a non-empty (n_traces, ns) array, got {data.shape}")
    if endian not in ("big", "little"):
        raise SeisError(f"endian must be 'big' or 'little', got {endian!r}")
    if not DT_MIN <= dt <= DT_MAX or abs(dt * 1e6 - round(dt * 1e6)) > 1e-3:
        raise SeisError(f"sample interval {dt} s is not a whole number of us in "
                        f"{DT_MIN:g}..{DT_MAX:g} s")
    if data.shape[1] > 65535:
        raise SeisError(f"{data.shape[1]} samples per trace exceeds the 2-byte limit 65535")
    return data.shape


def write_segy(path: str | os.PathLike, data: np.ndarray, headers: dict, dt: float, *,
               t_start: float = 0.0, fmt: int = 5, endian: str = "big",
               text: str | None = None, revision: int = 1) -> None:
    """Write traces as a SEG-Y rev 1 (or rev 2.0) file, atomically.

    Parameters
    ----------
    path : path-like
        Output file.
    data : numpy.ndarray
        Samples, shape ``(n_traces, ns)`` (converted from float32); or any object with
        ``shape``, ``ndim`` and ``data[a:b]`` giving those rows, read a block at a time.
    headers : dict of str -> array-like
        Trace header values keyed by ``segyio.TraceField`` names (``"FieldRecord"``,
        ``"TraceNumber"``, ``"SourceX"``, ``"GroupX"``, ``"CDP"``, ``"offset"``,
        ``"INLINE_3D"``, ``"CDP_X"``...), each of length ``n_traces`` or a scalar.
        Coordinates (``SourceX/Y``, ``GroupX/Y``, ``CDP_X/Y``) and elevations/depths are in m
        and written with scalar -100 (cm precision); if ``SourceGroupScalar`` (or
        ``ElevationScalar``) is given, those fields are written as given with that scalar.
        Sample count, interval, delay and trace sequence numbers are filled in.
    dt : float
        Sample interval (s).
    t_start : float
        Time of the first sample (s), written as the delay recording time.
    fmt : int
        Sample format code: 1 IBM float, 2 int32, 3 int16, 5 IEEE float (default), 6 IEEE
        double, 8 int8, 9-12 and 16 other integers.
    endian : str
        ``"big"`` (standard) or ``"little"``.
    text : str, optional
        Textual header (wrapped to 40 lines of 80 characters, EBCDIC); default lists the
        byte map.
    revision : {1, 2}
        SEG-Y revision: 2 also writes the rev 2.0 sample count (bytes 3269-3272) and interval
        (3273-3280, IEEE double, us), no trace header extensions.
    """
    if not (hasattr(data, "shape") and hasattr(data, "ndim")):
        data = np.asarray(data)  # else an array, or rows read on demand (``data[a:b]``)
    ntr, ns = _check_write_args(data, dt, endian)
    if revision not in (1, 2):
        raise SeisError(f"SEG-Y revision must be 1 or 2 (got {revision})")
    bo = ">" if endian == "big" else "<"
    binary = np.zeros(BINARY_BYTES, dtype=np.uint8)

    def put(pos: int, value: int, nb: int = 2) -> None:
        code = "u" if value >= 0 else "i"
        binary[pos - 3201:pos - 3201 + nb] = np.array([value], f"{bo}{code}{nb}").view(np.uint8)

    put(3213, 0)
    put(3217, round(dt * 1e6))
    put(3219, round(dt * 1e6))
    put(3221, ns)
    put(3223, ns)
    put(3225, fmt)
    put(3255, 1)  # measurement system: metres
    binary[300:302] = (revision, 0)  # bytes 3501-3502: major, minor revision (one byte each)
    put(3503, 1)  # fixed-length traces
    put(3505, 0)  # no extended textual headers
    if revision == 2:
        put(3269, ns, 4)
        binary[72:80] = np.array([round(dt * 1e6)], f"{bo}f8").view(np.uint8)
    head = _text_block(text, _default_text(fmt, endian)) + binary.tobytes()
    _write_traces(path, head, data, headers, dt, t_start, fmt, endian)


def write_su(path: str | os.PathLike, data: np.ndarray, headers: dict, dt: float, *,
             t_start: float = 0.0, endian: str = "big") -> None:
    """Write traces as a Seismic Unix file (240-byte headers, IEEE float32), atomically.

    Parameters are those of :func:`write_segy`; SU has no file header and always stores IEEE
    float32 samples. ``endian="little"`` writes the byte order of SU on x86 machines.
    """
    data = np.asarray(data)
    _check_write_args(data, dt, endian)
    _write_traces(path, b"", data, headers, dt, t_start, 5, endian)


def _write_traces(path, head: bytes, data: np.ndarray, headers: dict, dt: float,
                  t_start: float, fmt: int, endian: str) -> None:
    ntr, ns = data.shape
    bo = ">" if endian == "big" else "<"
    hdr = _header_block(headers, ntr, ns, dt, t_start, bo)
    chunk = max(1, (64 << 20) // (TRACE_HEADER_BYTES + ns * FORMATS[fmt][0]))
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(head)
        for a in range(0, ntr, chunk):
            b = min(ntr, a + chunk)
            f.write(trace_block(hdr[a:b], data[a:b], fmt, endian).tobytes())


def trace_block(headers: np.ndarray, data: np.ndarray, fmt: int, endian: str) -> np.ndarray:
    """Traces as they lie in a file: each 240-byte header followed by its encoded samples.

    Parameters
    ----------
    headers : numpy.ndarray
        uint8, shape ``(n, 240)``: the trace headers, as bytes.
    data : numpy.ndarray
        Samples, shape ``(n, ns)`` (amplitude units of the file).
    fmt : int
        Sample format code (see :data:`FORMATS`).
    endian : {"big", "little"}
        Byte order.

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(n, 240 + ns * bytes per sample)``.
    """
    return np.concatenate([headers, encode_samples(data, fmt, endian)], axis=1)


def preallocate(path: str | os.PathLike, head: bytes, file_size: int) -> None:
    """Create ``path`` holding the file header ``head``, extended to ``file_size`` bytes, so
    that ranks can then write their traces into it at their own positions
    (:func:`pwrite_traces`)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(file_size)


def _runs(ids: np.ndarray) -> list[tuple[int, int]]:
    """(start position in ids, length) of runs of consecutive trace numbers."""
    if len(ids) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks, len(ids)]
    return list(zip(starts.tolist(), (ends - starts).tolist(), strict=True))


def pwrite_traces(fd: int, layout: Layout, ids: np.ndarray, headers: np.ndarray,
                  data: np.ndarray) -> None:
    """Write traces ``ids`` into an open, preallocated file with ``layout`` at their positions.

    Each MPI rank writes its own traces into the one shared file (``os.pwrite``, one call per
    run of consecutive trace numbers), in the layout's sample format and byte order.

    Parameters
    ----------
    fd : int
        File descriptor open for writing (:func:`preallocate` made the file).
    layout : Layout
        Layout of the output (data offset, trace length, format, byte order).
    ids : numpy.ndarray
        Trace numbers (file order, from 0), any order.
    headers : numpy.ndarray
        uint8 ``(len(ids), 240)``: the trace headers of ``ids``.
    data : numpy.ndarray
        Samples ``(len(ids), ns)`` of ``ids``.
    """
    ids = np.asarray(ids, np.int64)
    order = np.argsort(ids, kind="stable")
    ids_sorted = ids[order]
    block = trace_block(headers[order], data[order], layout.format, layout.endian)
    for a, n in _runs(ids_sorted):
        pos = layout.data_offset + int(ids_sorted[a]) * layout.trace_bytes
        os.pwrite(fd, block[a:a + n].tobytes(), pos)

"""Trace-header fields as columns for ``select``, ``sort`` and ``headers`` (arrays only).

Two families of names are understood, as ``seis-hpc info`` and segyio call them:

* the trace index's columns (lower case): ``ffid``, ``channel``, ``offset`` (source-receiver
  distance, m), ``header_offset`` (the signed offset header), ``cdp`` (the CDP header),
  ``cmp``, ``sx``/``sy``/``rx``/``ry``/``mx``/``my`` (m, scalars applied), ``azimuth`` (deg),
  ``source_id``, ``energy_source_point``, ``inline``/``crossline``, and ``trace`` (position
  in the file, from 0);
* segyio's :class:`segyio.TraceField` names (``FieldRecord``, ``CDP``, ``ShotPoint``,
  ``SourceX``, ``offset``...): the raw integer in the header bytes. Where both families use
  one name (``offset``), the index column wins; use ``header_offset`` for the raw header.

Header math writes segyio fields only (raw integers: the value is rounded and must fit the
field's 2 or 4 bytes).
"""

from __future__ import annotations

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.io.segy import TRACE_FIELDS

INDEX_NAMES = ("ffid", "channel", "offset", "header_offset", "cdp", "cmp", "sx", "sy", "rx",
               "ry", "mx", "my", "azimuth", "source_id", "energy_source_point", "inline",
               "crossline", "header_inline", "header_crossline", "trace")
# Index column behind each name (``cdp`` is the header value, as info shows it).
_INDEX_COLUMN = {"cdp": "header_cdp"}
WRITABLE = tuple(TRACE_FIELDS)
HINT = (f"{', '.join(INDEX_NAMES)}, or a segyio header name such as FieldRecord, TraceNumber, "
        "CDP, ShotPoint, SourceX, GroupX")


def known_names() -> set[str]:
    """Every name an expression may read."""
    return set(INDEX_NAMES) | set(TRACE_FIELDS)


def index_column(name: str) -> str:
    """The trace-index column behind the index name ``name``."""
    return _INDEX_COLUMN.get(name, name)


def decode(headers: np.ndarray, names, endian: str) -> dict[str, np.ndarray]:
    """Raw values of the segyio fields ``names`` from 240-byte headers.

    Parameters
    ----------
    headers : numpy.ndarray
        uint8 ``(n, 240)`` trace headers.
    names : iterable of str
        segyio field names.
    endian : {"big", "little"}
        Byte order of the file.

    Returns
    -------
    dict of str -> numpy.ndarray
        int64 column per name.
    """
    bo = ">" if endian == "big" else "<"
    h = np.ascontiguousarray(headers, np.uint8)
    out = {}
    for name in names:
        pos, size = TRACE_FIELDS[name]
        raw = h[:, pos - 1:pos - 1 + size].copy()
        out[name] = raw.view(f"{bo}i{size}").ravel().astype(np.int64)
    return out


def encode(headers: np.ndarray, name: str, values, endian: str, ids=None) -> None:
    """Write ``values`` (rounded to integers) into the segyio field ``name``, in place.

    Raises
    ------
    SeisError
        A value is not finite or does not fit the field (naming the trace ``ids[i]``).
    """
    bo = ">" if endian == "big" else "<"
    pos, size = TRACE_FIELDS[name]
    n = headers.shape[0]
    v = np.broadcast_to(np.asarray(values, np.float64), (n,))
    lim = 2 ** (8 * size - 1)
    bad = ~np.isfinite(v) | (np.rint(v) < -lim) | (np.rint(v) >= lim)
    if bad.any():
        i = int(np.argmax(bad))
        tr = int(ids[i]) if ids is not None else i
        raise SeisError(f"trace {tr}: field {name}: value {v[i]:g} does not fit a "
                        f"{8 * size}-bit header integer")
    enc = np.rint(v).astype(f"{bo}i{size}")
    headers[:, pos - 1:pos - 1 + size] = enc.view(np.uint8).reshape(n, size)


def columns(names, index_cols: dict, headers: np.ndarray | None, endian: str,
            ids: np.ndarray) -> dict[str, np.ndarray]:
    """Columns for ``names``: index names from ``index_cols`` (name -> the index's column
    of the traces ``ids``, see :func:`index_column`), segyio names decoded from ``headers``
    (uint8 ``(len(ids), 240)``)."""
    out = {}
    raw = [n for n in names if n not in INDEX_NAMES]
    if raw:
        out.update(decode(headers, raw, endian))
    for n in names:
        if n == "trace":
            out[n] = np.asarray(ids, np.int64)
        elif n in INDEX_NAMES:
            out[n] = np.asarray(index_cols[n])
    return out

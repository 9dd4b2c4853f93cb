"""Shot-point (SP) numbers of the CMPs of a 2D line, for the deliverables' annotation.

A 2D section is annotated by shot point as well as by CDP: the SP of a CMP is the shot-point
number a source at the CMP's position along the line would have. Each source of the trace
index (one per ``source_id``) gives its SP number and its position projected on the line
axis (in fractional CMP numbers); a CMP's SP is interpolated linearly between the two shots
on either side of it, and outside the shots' range (the CMPs a marine spread reaches beyond
the first or last shot) extrapolated along the chord of the last five shots at that end;
rounded to an integer (halves to even).

The SP number of a source is, in order of preference, the first of these that numbers the
shots -- non-zero for every source, and at least as many distinct values as half the
distinct source positions (to 1 m; a reshoot may repeat an SP, but a constant such as the
source number 1 of a single-source line is no SP):

* ``ShotPoint`` (bytes 197-200) of the source's first trace (SEG-Y only: an SU header has
  other fields there; the index does not keep it, so it is read from the file);
* ``EnergySourcePoint`` (bytes 17-20, the index's ``energy_source_point``);
* the FFID (bytes 9-12).

Which one was used is recorded with the SP (``source`` attribute of the volumes'
``shotpoint`` data set; the SEG-Y textual header). 3D volumes have no SP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from seis_hpc.io.columns import column_chunks

SHOTPOINT_BYTE = 197  # 1-based, int32: SEG-Y rev 1 "shotpoint number" (2D post-stack)
END_SHOTS = 5  # shots whose chord gives the SP slope beyond either end of the line

SOURCES = {
    "shotpoint": "ShotPoint (bytes 197-200) of the input",
    "energy_source_point": "EnergySourcePoint (bytes 17-20) of the input",
    "ffid": "FFID (bytes 9-12) of the input",
}
METHOD = ("SP of each source at its position projected on the line axis; linear between "
          f"shots, extrapolated along the chord of the last {END_SHOTS} shots beyond the "
          "ends; rounded")


@dataclass
class ShotPoints:
    """The SP number of each CMP of a 2D line.

    Attributes
    ----------
    values : numpy.ndarray
        int64, one per CMP (``grid.crosslines()`` order).
    source : str
        Which header gave the sources' SP numbers (a value of :data:`SOURCES`).
    n_sources : int
        Sources (shots) the interpolation used.
    """

    values: np.ndarray
    source: str
    n_sources: int
    line_number: int | None = None  # the input's one non-zero inline header (bytes 189-192)

    def attrs(self) -> dict:
        """Attributes of the ``shotpoint`` data set of a volume."""
        a = {"source": self.source, "method": METHOD, "n_sources": int(self.n_sources),
             "units": "shot-point number"}
        if self.line_number is not None:
            a["line_number"] = int(self.line_number)
        return a


def _file_shotpoints(idx, byte_offset: np.ndarray | None) -> np.ndarray | None:
    """``ShotPoint`` (bytes 197-200) of the traces at ``byte_offset`` (each source's first
    trace), read from the SEG-Y file (None for an SU file, an index without its file, or a
    file that cannot be read)."""
    attrs = getattr(idx, "attrs", {})
    path = attrs.get("segy_path")
    if attrs.get("kind") != "segy" or not path or byte_offset is None:
        return None
    pos = np.asarray(byte_offset, dtype=np.int64) + (SHOTPOINT_BYTE - 1)
    # Four bytes per shot by pread: a map of the whole file put every page of it in this
    # process's RSS (a 720 MB line: 650 MB), though only one word per shot is read.
    try:
        with open(path, "rb") as f:
            if pos.size and pos.max() + 4 > os.fstat(f.fileno()).st_size:
                return None  # a file cut short since it was indexed
            raw = b"".join(os.pread(f.fileno(), 4, int(p)) for p in pos)
    except OSError:
        return None
    bo = ">" if attrs.get("endian", "big") == "big" else "<"
    return np.frombuffer(raw, dtype=f"{bo}i4").astype(np.int64)


def _first_rows(idx, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each source's first trace and the columns ``names`` there, in ``source_id`` order,
    from one pass over the index in chunks of rows (``COLUMN_CHUNK``): memory of one chunk
    and 8 B per source and column, nothing per trace (issue 19).

    Source numbers from 0 (as the index numbers them) are kept in arrays indexed by the
    number; any other numbering (an in-memory source) is found by ``numpy.unique`` over
    the whole column, as before.
    """
    first = np.full(0, -1, dtype=np.int64)
    vals: dict[str, np.ndarray] = {}
    for a, cols in column_chunks(idx, ["source_id", *names]):
        sid = np.asarray(cols["source_id"])
        if not sid.size:
            continue
        if not np.issubdtype(sid.dtype, np.integer) or sid.min() < 0:
            sid_all = np.asarray(idx["source_id"])
            _, f0 = np.unique(sid_all, return_index=True)
            return f0, {k: np.asarray(idx[k])[f0] for k in names}
        u, fi = np.unique(sid, return_index=True)
        top = int(u[-1]) + 1
        if top > first.size:  # grow (doubling: amortised O(sources))
            size = max(top, 2 * first.size)
            first = np.concatenate([first, np.full(size - first.size, -1, np.int64)])
            for k in names:
                grown = np.zeros(size, dtype=vals[k].dtype if k in vals
                                 else np.asarray(cols[k]).dtype)
                if k in vals:
                    grown[:vals[k].size] = vals[k]
                vals[k] = grown
        new = first[u] < 0  # first seen in this chunk (rows come in increasing order)
        first[u[new]] = a + fi[new]
        for k in names:
            vals[k][u[new]] = np.asarray(cols[k])[fi[new]]
    seen = np.flatnonzero(first >= 0)
    return first[seen], {k: vals[k][seen] if k in vals else np.zeros(0, np.int64)
                         for k in names}


def source_shotpoints(idx) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Each source's first trace, position (m) and SP number, and which header gave it.

    The index is read in one streamed pass (:func:`_first_rows`): memory of one chunk of
    rows and 48 B per source, not the survey's columns.

    Parameters
    ----------
    idx : TraceIndex
        With ``source_id``, ``sx``, ``sy``, ``ffid``, ``energy_source_point``.

    Returns
    -------
    first : numpy.ndarray
        Trace number of each source's first trace.
    xy : numpy.ndarray, shape (n_sources, 2)
        Source positions (m).
    sp : numpy.ndarray of int64 or None
        SP number of each source (None when no header numbers the shots).
    source : str
        A value of :data:`SOURCES` ("" with no SP).
    """
    have = set(idx.keys())
    names = ["sx", "sy", "ffid"] + [k for k in ("energy_source_point", "byte_offset")
                                    if k in have]
    first, at = _first_rows(idx, names)
    xy = np.column_stack([np.asarray(at["sx"], dtype=np.float64),
                          np.asarray(at["sy"], dtype=np.float64)])
    candidates = [("shotpoint", lambda: _file_shotpoints(idx, at.get("byte_offset")))]
    if "energy_source_point" in at:
        candidates.append(("energy_source_point", lambda: at["energy_source_point"]))
    candidates.append(("ffid", lambda: at["ffid"]))
    n_pos = len(np.unique(np.rint(xy), axis=0))
    for key, get in candidates:
        sp = get()
        if sp is not None and sp.size and np.all(sp != 0) \
                and 2 * len(np.unique(sp)) >= n_pos:
            return first, xy, np.asarray(sp, dtype=np.int64), SOURCES[key]
    return first, xy, None, ""  # no header numbers the shots


def interpolate_shotpoints(cmp: np.ndarray, shot_cmp: np.ndarray, shot_sp: np.ndarray
                           ) -> np.ndarray:
    """SP at CMP numbers ``cmp`` from shots at (fractional) CMP numbers ``shot_cmp`` with SP
    numbers ``shot_sp``: linear between shots, the end chords' slope beyond, not rounded.

    Shots at the same position (within 1e-6 CMP) count once, with their mean SP.
    """
    x = np.asarray(cmp, dtype=np.float64)
    pos = np.asarray(shot_cmp, dtype=np.float64)
    sp = np.asarray(shot_sp, dtype=np.float64)
    order = np.argsort(pos, kind="stable")
    pos, sp = pos[order], sp[order]
    key = np.rint(pos * 1e6)
    uniq, inv = np.unique(key, return_inverse=True)
    cnt = np.bincount(inv)
    pos = np.bincount(inv, pos) / cnt
    sp = np.bincount(inv, sp) / cnt
    if uniq.size == 1:
        return np.full(x.shape, sp[0])
    out = np.interp(x, pos, sp)
    k = min(END_SHOTS, pos.size) - 1
    lo, hi = x < pos[0], x > pos[-1]
    out[lo] = sp[0] + (x[lo] - pos[0]) * (sp[k] - sp[0]) / (pos[k] - pos[0])
    out[hi] = sp[-1] + (x[hi] - pos[-1]) * (sp[-1] - sp[-1 - k]) / (pos[-1] - pos[-1 - k])
    return out


def line_shotpoints(idx, grid) -> ShotPoints | None:
    """The SP number of every CMP of the 2D line ``grid`` from the shots of ``idx``.

    Parameters
    ----------
    idx : TraceIndex
        The survey's trace index (every source, whatever part of it is processed: the SP of
        a CMP is the same for every part of a job).
    grid : BinGrid
        The output grid (a selected part of the line is fine).

    Returns
    -------
    ShotPoints or None
        None for a 3D grid, an index without sources, or shots that no header numbers.
    """
    have = set(idx.keys()) if hasattr(idx, "keys") else set()
    if not grid.is_2d or not {"source_id", "sx", "sy", "ffid"} <= have \
            or (idx.n_traces if hasattr(idx, "n_traces") else len(idx["source_id"])) == 0:
        return None  # 3D, or a source without shot headers (an in-memory array)
    _, xy, sp, source = source_shotpoints(idx)
    if sp is None:
        return None
    _, shot_cmp = grid.world_to_grid(xy[:, 0], xy[:, 1])
    values = np.rint(interpolate_shotpoints(grid.crosslines(), shot_cmp, sp)).astype(np.int64)
    return ShotPoints(values, source, int(sp.size), line_number(idx))


def line_number(idx) -> int | None:
    """The 2D line's number: the one non-zero value of the input's inline header (bytes
    189-192) over every trace, else None (no number, or several: not one line). Streamed
    in chunks of rows; stops at the second value."""
    if "header_inline" not in (set(idx.keys()) if hasattr(idx, "keys") else set()):
        return None
    il = None
    for _, cols in column_chunks(idx, ["header_inline"]):
        u = np.unique(np.asarray(cols["header_inline"]))
        il = u if il is None else np.union1d(il, u)
        if il.size > 1:
            return None
    return int(il[0]) if il is not None and il.size == 1 and il[0] != 0 else None

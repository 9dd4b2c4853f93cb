"""A scratch file of fixed-width float64 rows, one per trace of the input, shared by the
ranks of a flow step: each rank reads and writes its traces' rows with ``pread``/``pwrite``
(rows of different traces never overlap, so ranks need no locks), and memory follows the
rows asked for, not the survey (a memory map would keep every page it touched in the RSS)."""

from __future__ import annotations

import os

import numpy as np

# Rows this close together are read as one span (fewer system calls on scattered traces).
READ_GAP = 64


def create(path: str | os.PathLike, n_rows: int, width: int) -> None:
    """Make the file: ``n_rows`` rows of ``width`` float64, all NaN-free zeros (sparse)."""
    with open(path, "wb") as f:
        f.truncate(n_rows * width * 8)


def _runs(s: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """(first, last + 1) positions in the sorted ``s`` of runs whose steps are <= gap."""
    if s.size == 0:
        return []
    brk = np.flatnonzero(np.diff(s) > gap) + 1
    return list(zip(np.r_[0, brk].tolist(), np.r_[brk, s.size].tolist(), strict=True))


def read(fd: int, ids, width: int) -> np.ndarray:
    """Rows ``ids`` (any order) as float64 ``(len(ids), width)``, in the order of ``ids``."""
    ids = np.asarray(ids, np.int64)
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    out = np.empty((ids.size, width))
    rb = width * 8
    for a, b in _runs(s, READ_GAP):
        lo, hi = int(s[a]), int(s[b - 1]) + 1
        buf = os.pread(fd, (hi - lo) * rb, lo * rb)
        if len(buf) != (hi - lo) * rb:
            raise OSError(f"short read of scratch rows {lo}..{hi - 1}")
        span = np.frombuffer(buf, np.float64).reshape(hi - lo, width)
        out[order[a:b]] = span[s[a:b] - lo]
    return out


def write(fd: int, ids, values: np.ndarray, column: int = 0, width: int | None = None) -> None:
    """Write ``values`` (``(len(ids), k)`` float64) into columns ``column..column + k - 1``
    of rows ``ids``. Whole consecutive rows go in one call; a part of a row is written alone
    (never a span that holds other ranks' rows)."""
    ids = np.asarray(ids, np.int64)
    values = np.ascontiguousarray(values, np.float64)
    k = values.shape[1]
    width = k if width is None else width
    order = np.argsort(ids, kind="stable")
    s, v = ids[order], values[order]
    rb = width * 8
    if k == width and column == 0:
        for a, b in _runs(s, 1):
            os.pwrite(fd, v[a:b].tobytes(), int(s[a]) * rb)
        return
    for i, row in zip(s.tolist(), v, strict=True):
        os.pwrite(fd, row.tobytes(), i * rb + column * 8)

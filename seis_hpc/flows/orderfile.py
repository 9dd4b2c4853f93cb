"""The output trace order of ``select`` and ``sort`` kept on disk, not in memory (issue 19).

``sort`` is an external sort: the keys are evaluated a run of :data:`RUN_ROWS` traces at a
time, each run sorted in memory (the ranks share the runs) and written to a scratch file
beside the output as rows of unsigned integers that order as ``np.lexsort`` orders the keys;
rank 0 merges the runs, a block of each at a time, into the order file (one int64 per output
position: the input trace written there). ``select`` writes the kept trace numbers of each
chunk of the index in a streamed pass. Each rank then reads only its own slices of the order
file (:class:`OrderFile`). Memory follows the run and block sizes, not the survey.
"""

from __future__ import annotations

import os

import numpy as np

# Traces whose keys (or condition) are evaluated at once.
CHUNK = 1 << 20
# Traces sorted in memory at once (a run): about (8 B per key + 16 B) a row.
RUN_ROWS = 1 << 20
# Rows of the runs buffered together while merging (shared by the runs, at least
# MIN_BLOCK each).
MERGE_ROWS = 1 << 20
MIN_BLOCK = 1024
# Output positions written to the order file at once.
WRITE_ROWS = 1 << 18

_SIGN = np.uint64(1 << 63)
_NAN = np.uint64((1 << 64) - 1)


def sortable(v) -> np.ndarray:
    """float64 keys as uint64 that order exactly as ``np.lexsort`` orders the floats:
    -0.0 equal to 0.0, every NaN equal and after +inf. (Integer keys are exact as float64
    below 2**53: header fields are 32-bit, trace numbers far below.)"""
    v = np.asarray(v, np.float64) + 0.0  # -0.0 + 0.0 is +0.0
    b = v.view(np.uint64)
    u = np.where(b & _SIGN, ~b, b | _SIGN)
    u[np.isnan(v)] = _NAN
    return u


class OrderFile:
    """The int64 order file's output positions, read a slice at a time: ``len(o)`` and
    ``o[a:b]`` (an int64 array) as for the array it replaces."""

    def __init__(self, path: str, offset: int, n: int):
        self.path, self.offset, self.n = str(path), int(offset), int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, s: slice) -> np.ndarray:
        a, b, step = s.indices(self.n)
        if step != 1:
            raise IndexError("order file slices are contiguous")
        if b <= a:
            return np.zeros(0, np.int64)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            buf = os.pread(fd, (b - a) * 8, self.offset + a * 8)
        finally:
            os.close(fd)
        if len(buf) != (b - a) * 8:
            raise OSError(f"short read of the order file {self.path} at {a}..{b - 1}")
        return np.frombuffer(buf, np.int64).copy()


def _ranks(comm):
    from seis_hpc.engine.comm import rank_size

    return rank_size(comm)


def select_order(path: str, n: int, keep_chunk, comm=None, chunk: int = 1 << 20
                 ) -> OrderFile:
    """Rank 0 streams ``keep_chunk(ids)`` (the kept trace numbers of ``ids``, in order) over
    the index ``chunk`` traces at a time into the order file ``path``; every rank gets it."""
    rank, size = _ranks(comm)
    count = 0
    if rank == 0:
        with open(path, "wb") as f:
            for a in range(0, n, chunk):
                kept = np.asarray(keep_chunk(np.arange(a, min(n, a + chunk))), np.int64)
                f.write(kept.tobytes())
                count += kept.size
    if size > 1:
        count = comm.bcast(count, root=0)
    return OrderFile(path, 0, count)


def sort_order(path: str, n: int, n_keys: int, run_keys, comm=None,
               run_rows: int | None = None, merge_rows: int | None = None) -> OrderFile:
    """The stable order of the traces by their keys, as ``np.lexsort`` of (trace number,
    keys) orders them, on disk in ``path``.

    ``run_keys(ids)`` gives the ``n_keys`` float64 key columns of the traces ``ids`` (a
    descending key already negated). The runs are dealt to the ranks in turn and written
    beside each other (``n`` rows of ``n_keys + 1`` uint64: the keys, then the trace number);
    rank 0 merges them into the order (int64, after the runs in the same file).
    """
    rank, size = _ranks(comm)
    run_rows = max(1, run_rows or RUN_ROWS)
    w = n_keys + 1
    order_at = n * w * 8
    if rank == 0:
        with open(path, "wb") as f:
            f.truncate(order_at + n * 8)
    if size > 1:
        comm.Barrier()
    starts = list(range(0, n, run_rows))
    fd = os.open(path, os.O_RDWR)
    try:
        for a in starts[rank::size]:
            b = min(n, a + run_rows)
            ids = np.arange(a, b)
            rows = np.empty((b - a, w), np.uint64)
            for j, col in enumerate(run_keys(ids)):
                rows[:, j] = sortable(col)
            rows[:, n_keys] = ids
            # stable within the run: ties in trace number, as the sort of every trace
            rows = rows[np.lexsort(rows.T[::-1])]
            os.pwrite(fd, rows.tobytes(), a * w * 8)
            del rows
        if size > 1:
            comm.Barrier()
        if rank == 0:
            _merge(fd, n, w, [(a, min(n, a + run_rows)) for a in starts], order_at,
                   merge_rows or MERGE_ROWS)
    finally:
        os.close(fd)
    if size > 1:
        comm.Barrier()
    return OrderFile(path, order_at, n)


def _count_le(cols: list[np.ndarray], bound: np.ndarray) -> int:
    """Leading rows of the sorted columns ``cols`` (the row order's keys, first one first)
    that are <= ``bound`` (uint64, one value per column), lexicographically."""
    lo, hi = 0, len(cols[0])
    for c, x in zip(cols, bound, strict=True):
        a = lo + int(np.searchsorted(c[lo:hi], x, "left"))
        b = lo + int(np.searchsorted(c[lo:hi], x, "right"))
        if a == b:
            return a
        lo, hi = a, b
    return hi


def _merge(fd: int, n: int, w: int, runs: list[tuple[int, int]], order_at: int,
           merge_rows: int) -> None:
    """Merge the sorted runs (row ranges of the scratch file) into the order at
    ``order_at``: every round emits the buffered rows up to the smallest last row of the
    runs that still have rows on disk (every row not yet read is above it)."""
    block = max(MIN_BLOCK, merge_rows // max(1, len(runs)))
    rb = w * 8
    nxt = [a for a, _ in runs]  # next row on disk, per run
    buf: list[list[np.ndarray] | None] = [None] * len(runs)  # columns, per run
    head = [0] * len(runs)  # first unconsumed buffered row, per run
    out: list[np.ndarray] = []
    out_n, written = 0, 0

    def load(r):
        a, b = nxt[r], min(runs[r][1], nxt[r] + block)
        data = os.pread(fd, (b - a) * rb, a * rb)
        if len(data) != (b - a) * rb:
            raise OSError(f"short read of the sort's runs at rows {a}..{b - 1}")
        rows = np.frombuffer(data, np.uint64).reshape(b - a, w)
        buf[r] = [np.ascontiguousarray(rows[:, j]) for j in range(w)]
        head[r] = 0
        nxt[r] = b

    def flush():
        nonlocal out, out_n, written
        if out_n:
            ids = np.concatenate(out).astype(np.int64)
            os.pwrite(fd, ids.tobytes(), order_at + written * 8)
            written += ids.size
        out, out_n = [], 0

    while True:
        live = []
        for r in range(len(runs)):
            if (buf[r] is None or head[r] == len(buf[r][0])) and nxt[r] < runs[r][1]:
                load(r)
            if buf[r] is not None and head[r] < len(buf[r][0]):
                live.append(r)
        if not live:
            break
        pending = [r for r in live if nxt[r] < runs[r][1]]
        if pending:
            # the smallest last buffered row (numpy throughout: the same comparisons as the
            # sorts')
            last = np.array([[c[-1] for c in buf[r]] for r in pending], np.uint64).T
            bound = last[:, np.lexsort(last[::-1])[0]]
        parts = []
        for r in live:
            cols = [c[head[r]:] for c in buf[r]]
            k = _count_le(cols, bound) if pending else len(cols[0])
            if k == 0:
                continue
            parts.append(np.stack([c[:k] for c in cols]))
            head[r] += k
        rows = np.concatenate(parts, axis=1)
        srt = np.lexsort(rows[::-1])
        out.append(rows[w - 1][srt])
        out_n += srt.size
        if out_n >= WRITE_ROWS:
            flush()
    flush()
    if written != n:
        raise RuntimeError(f"sort merged {written} of {n} traces")

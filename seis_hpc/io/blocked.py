"""The spatially blocked trace index: rows sorted into blocks of nearby midpoints, with a
block table, so that the traces near a place are a few contiguous row ranges.

A blocked index is an ordinary trace index file (:mod:`seis_hpc.io.index`: the same columns,
one row per trace, the same attributes) whose rows are **not** in file order but grouped into
spatial blocks, plus:

``trace``           int64 column: the trace's number in the data file (file order, from 0)
``blocks/start``    int64 (n_blocks,): first row of each block
``blocks/count``    int64 (n_blocks,): rows of each block (blocks are contiguous, in order)
``blocks/bbox``     float64 (n_blocks, 4): ``mx_min, mx_max, my_min, my_max`` of the block's
                    midpoints (m)
``blocks/key``      int64 (n_blocks, 2): the block's place (sail line and along-line segment,
                    or cell row and column)
attributes          ``order = "spatial"``, ``blocking`` (how the blocks were made)

Readers that only take columns (``idx["mx"]``) work unchanged, row by row.
:meth:`TraceIndex.read_traces <seis_hpc.io.index.TraceIndex.read_traces>` takes row numbers
and maps them through ``trace``. :class:`BlockTable` finds the rows near a point without
reading any coordinate outside the blocks it returns; :func:`iter_rows` streams any index
(blocked or not) in bounded memory.

:class:`BlockedIndexWriter` writes one block at a time (bounded memory: the caller holds one
block); :func:`write_blocked_index` sorts an in-memory index into cells.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from seis_hpc import __version__
from seis_hpc.errors import SeisError
from seis_hpc.io.atomic import atomic_output

ORDER_SPATIAL = "spatial"
_CHUNK_ROWS = 1 << 16  # HDF5 chunk of a column (rows)
_FLUSH_ROWS = 1 << 20  # rows buffered before a write: whole chunks, each compressed once


class BlockedIndexWriter:
    """Write a blocked index block by block (atomically: the file appears at :meth:`close`).

    Parameters
    ----------
    path : path-like
        The index file to write.
    columns : dict of str -> numpy.dtype
        Column names and types (every block must give all of them, plus ``mx`` and ``my``).
    attrs : dict
        File attributes (those of :mod:`seis_hpc.io.index`); ``order``, ``blocking``,
        ``n_traces``, ``software`` and ``created`` are set here.
    blocking : str
        How the blocks are made (a sentence for the attributes).
    compress : bool
        Shuffle + LZF on every column (the integer columns shrink 10-100 times, the
        coordinates 2-10 times; LZF is several times faster than gzip at about the same
        size here).

    Use as a context manager; an exception removes the temporary file.
    """

    def __init__(self, path: str | os.PathLike, columns: dict[str, np.dtype], attrs: dict,
                 blocking: str, compress: bool = True):
        if "mx" not in columns or "my" not in columns:
            raise ValueError("a blocked index needs the mx and my columns")
        self.path = Path(path)
        self.columns = {k: np.dtype(v) for k, v in columns.items()}
        self.attrs = dict(attrs)
        self.blocking = blocking
        self.compress = compress
        self.n = 0
        self.starts: list[int] = []
        self.counts: list[int] = []
        self.bboxes: list[tuple[float, float, float, float]] = []
        self.keys: list[tuple[int, int]] = []
        self._ctx = None
        self._f: h5py.File | None = None

    def __enter__(self) -> BlockedIndexWriter:
        self._ctx = atomic_output(self.path)
        tmp = self._ctx.__enter__()
        self._f = h5py.File(tmp, "w")
        kw = {"compression": "lzf", "shuffle": True} if self.compress else {}
        self._buf: list[dict[str, np.ndarray]] = []
        self._buffered = 0
        from seis_hpc.io.index import UNITS

        for name, dt in self.columns.items():
            ds = self._f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt,
                                        chunks=(_CHUNK_ROWS,), **kw)
            if name in UNITS:
                ds.attrs["units"] = UNITS[name]
        return self

    def write_block(self, cols: dict[str, np.ndarray], key: Sequence[int] = (0, 0)) -> None:
        """Append one block: every column, same length (rows in the order given)."""
        n = len(cols["mx"])
        if n == 0:
            return
        missing = set(self.columns) - set(cols)
        if missing:
            raise ValueError(f"block lacks the columns {sorted(missing)}")
        self._buf.append({k: np.asarray(cols[k], dtype=dt) for k, dt in self.columns.items()})
        self._buffered += n
        mx, my = np.asarray(cols["mx"]), np.asarray(cols["my"])
        self.starts.append(self.n)
        self.counts.append(n)
        self.bboxes.append((float(mx.min()), float(mx.max()), float(my.min()), float(my.max())))
        self.keys.append((int(key[0]), int(key[1])))
        self.n += n
        if self._buffered >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Write the buffered blocks (one write per column)."""
        if not self._buf:
            return
        a = self.n - self._buffered
        for name in self.columns:
            ds = self._f[name]
            ds.resize((self.n,))
            ds[a:self.n] = np.concatenate([b[name] for b in self._buf])
        self._buf, self._buffered = [], 0

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._flush()
                f = self._f
                g = f.create_group("blocks")
                g.create_dataset("start", data=np.asarray(self.starts, np.int64))
                g.create_dataset("count", data=np.asarray(self.counts, np.int64))
                g.create_dataset("bbox", data=np.asarray(self.bboxes, np.float64).reshape(-1, 4))
                g.create_dataset("key", data=np.asarray(self.keys, np.int64).reshape(-1, 2))
                g["bbox"].attrs["units"] = "m"
                attrs = dict(self.attrs)
                attrs.update(order=ORDER_SPATIAL, blocking=self.blocking, n_traces=self.n,
                             software=f"seis_hpc {__version__}",
                             created=_dt.datetime.now(_dt.timezone.utc)
                             .isoformat(timespec="seconds"))
                for k, v in attrs.items():
                    f.attrs[k] = v
        finally:
            self._f.close()
            self._ctx.__exit__(exc_type, exc, tb)
        return False


class BlockTable:
    """The block table of a blocked index: which rows lie where.

    Attributes
    ----------
    start, count : numpy.ndarray
        First row and number of rows of each block (int64).
    bbox : numpy.ndarray
        ``(n_blocks, 4)`` midpoint bounding boxes ``mx_min, mx_max, my_min, my_max`` (m).
    key : numpy.ndarray
        ``(n_blocks, 2)`` block places.
    """

    def __init__(self, start, count, bbox, key):
        self.start = np.asarray(start, np.int64)
        self.count = np.asarray(count, np.int64)
        self.bbox = np.asarray(bbox, np.float64).reshape(-1, 4)
        self.key = np.asarray(key, np.int64).reshape(-1, 2)

    @classmethod
    def read(cls, path: str | os.PathLike) -> BlockTable:
        """The block table of the index file ``path``.

        Raises
        ------
        SeisError
            The index is not blocked (no ``blocks`` group).
        """
        with h5py.File(path, "r") as f:
            if "blocks" not in f or f.attrs.get("order") != ORDER_SPATIAL:
                raise SeisError("not a spatially blocked index (no block table)", path)
            g = f["blocks"]
            return cls(g["start"][...], g["count"][...], g["bbox"][...], g["key"][...])

    def __len__(self) -> int:
        return int(len(self.start))

    @property
    def nbytes(self) -> int:
        """Bytes the table holds in memory."""
        return int(self.start.nbytes + self.count.nbytes + self.bbox.nbytes + self.key.nbytes)

    def near(self, x: float, y: float, radius: float) -> np.ndarray:
        """Blocks whose bounding box comes within ``radius`` m of the point (x, y) (m)."""
        b = self.bbox
        dx = np.maximum(np.maximum(b[:, 0] - x, x - b[:, 1]), 0.0)
        dy = np.maximum(np.maximum(b[:, 2] - y, y - b[:, 3]), 0.0)
        return np.flatnonzero(dx * dx + dy * dy <= radius * radius)

    def ranges(self, blocks) -> list[tuple[int, int]]:
        """Row ranges ``[a, b)`` of ``blocks``, adjacent blocks merged, in row order."""
        blocks = np.unique(np.asarray(blocks, np.int64))
        out: list[tuple[int, int]] = []
        for i in blocks:
            a, b = int(self.start[i]), int(self.start[i] + self.count[i])
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out

    def rows_near(self, path: str | os.PathLike, x: float, y: float, radius: float
                  ) -> np.ndarray:
        """Rows whose midpoint lies within ``radius`` m of (x, y): the blocks near the point
        are read (``mx``, ``my`` of those rows only) and filtered exactly."""
        rngs = self.ranges(self.near(x, y, radius))
        out = []
        with h5py.File(path, "r") as f:
            for a, b in rngs:
                mx, my = f["mx"][a:b], f["my"][a:b]
                d2 = (mx - x) ** 2 + (my - y) ** 2
                out.append(a + np.flatnonzero(d2 <= radius * radius))
        return np.concatenate(out) if out else np.zeros(0, np.int64)


def is_blocked(attrs: dict) -> bool:
    """True for the attributes of a spatially blocked index."""
    return attrs.get("order") == ORDER_SPATIAL


def iter_rows(path: str | os.PathLike, names: Sequence[str], chunk: int = 1 << 20
              ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Stream the columns ``names`` of an index file (blocked or not), ``chunk`` rows at a time.

    Yields
    ------
    (int, dict)
        The first row of the chunk and its columns (memory: ``chunk`` rows of ``names``).
    """
    with h5py.File(path, "r") as f:
        n = int(f.attrs["n_traces"])
        for name in names:
            if name not in f:
                raise SeisError(f"index has no {name!r} column", path)
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            yield a, {name: f[name][a:b] for name in names}


def write_blocked_index(idx, target: str | os.PathLike, cell: float = 500.0) -> Path:
    """Write the in-memory index ``idx`` as a blocked index: midpoints sorted into square
    cells of ``cell`` m (cell rows along y, columns along x; rows in file order inside a
    cell).

    Parameters
    ----------
    idx : TraceIndex
        A (file-order) index; its columns are loaded.
    target : path-like
        The blocked index file.
    cell : float
        Cell edge (m).

    Returns
    -------
    pathlib.Path
    """
    if is_blocked(idx.attrs):
        raise SeisError("index is already blocked", idx.path)
    cols = idx.columns()
    mx, my = cols["mx"], cols["my"]
    n = len(mx)
    ci = np.floor((my - my.min()) / cell).astype(np.int64) if n else np.zeros(0, np.int64)
    cj = np.floor((mx - mx.min()) / cell).astype(np.int64) if n else np.zeros(0, np.int64)
    order = np.lexsort((np.arange(n), cj, ci))
    cols = {k: v[order] for k, v in cols.items()}
    cols["trace"] = order.astype(np.int64)
    ci, cj = ci[order], cj[order]
    cuts = np.flatnonzero(np.r_[True, (ci[1:] != ci[:-1]) | (cj[1:] != cj[:-1]), True]) \
        if n else np.zeros(1, np.int64)
    with BlockedIndexWriter(target, {k: v.dtype for k, v in cols.items()}, idx.attrs,
                            f"midpoints in {cell:g} m square cells (rows along y)") as w:
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            w.write_block({k: v[a:b] for k, v in cols.items()}, (ci[a], cj[a]))
    return Path(target)

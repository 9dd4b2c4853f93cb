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
block, or a part of one); :func:`write_blocked_index` sorts an in-memory index into cells;
:func:`block_index_file` gives the same from an index file in memory bounded by a row budget
(an external sort: ``seis-hpc index --spatial``).
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
    flush_rows : int
        Rows buffered before a write (memory: that many rows of every column).

    Use as a context manager; an exception removes the temporary file.
    """

    def __init__(self, path: str | os.PathLike, columns: dict[str, np.dtype], attrs: dict,
                 blocking: str, compress: bool = True, flush_rows: int = _FLUSH_ROWS):
        if "mx" not in columns or "my" not in columns:
            raise ValueError("a blocked index needs the mx and my columns")
        self.path = Path(path)
        self.columns = {k: np.dtype(v) for k, v in columns.items()}
        self.attrs = dict(attrs)
        self.blocking = blocking
        self.compress = compress
        self.flush_rows = max(1, int(flush_rows))
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
        self._append(cols, key, extend=False)

    def extend_block(self, cols: dict[str, np.ndarray]) -> None:
        """Append rows to the last block (a block written in parts: its count, bounding box
        and key are those of the whole block, as if written at once)."""
        if not self.counts:
            raise ValueError("no block to extend")
        self._append(cols, self.keys[-1], extend=True)

    def _append(self, cols: dict[str, np.ndarray], key: Sequence[int], extend: bool) -> None:
        n = len(cols["mx"])
        if n == 0:
            return
        missing = set(self.columns) - set(cols)
        if missing:
            raise ValueError(f"block lacks the columns {sorted(missing)}")
        self._buf.append({k: np.asarray(cols[k], dtype=dt) for k, dt in self.columns.items()})
        self._buffered += n
        mx, my = np.asarray(cols["mx"]), np.asarray(cols["my"])
        box = (float(mx.min()), float(mx.max()), float(my.min()), float(my.max()))
        if extend:
            b = self.bboxes[-1]
            self.counts[-1] += n
            self.bboxes[-1] = (min(b[0], box[0]), max(b[1], box[1]), min(b[2], box[2]),
                               max(b[3], box[3]))
        else:
            self.starts.append(self.n)
            self.counts.append(n)
            self.bboxes.append(box)
            self.keys.append((int(key[0]), int(key[1])))
        self.n += n
        if self._buffered >= self.flush_rows:
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


def _blocking(cell: float) -> str:
    """The ``blocking`` attribute of an index sorted into square cells of ``cell`` m."""
    return f"midpoints in {cell:g} m square cells (rows along y)"


def _cells(mx: np.ndarray, my: np.ndarray, x0: float, y0: float, cell: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """The cell row (along y) and column (along x) of midpoints ``mx``, ``my`` (m) in square
    cells of ``cell`` m from the origin ``x0``, ``y0`` (the smallest midpoint coordinates):
    the one definition of a cell, element by element, so that a file sorted in pieces
    (:func:`block_index_file`) gets the cells of the whole survey in memory."""
    ci = np.floor((my - y0) / cell).astype(np.int64)
    cj = np.floor((mx - x0) / cell).astype(np.int64)
    return ci, cj


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

    See Also
    --------
    block_index_file : the same from an index file, in memory bounded by a row budget.
    """
    if is_blocked(idx.attrs):
        raise SeisError("index is already blocked", idx.path)
    cols = idx.columns()
    mx, my = cols["mx"], cols["my"]
    n = len(mx)
    ci, cj = _cells(mx, my, mx.min(), my.min(), cell) if n else \
        (np.zeros(0, np.int64), np.zeros(0, np.int64))
    order = np.lexsort((np.arange(n), cj, ci))
    cols = {k: v[order] for k, v in cols.items()}
    cols["trace"] = order.astype(np.int64)
    ci, cj = ci[order], cj[order]
    cuts = np.flatnonzero(np.r_[True, (ci[1:] != ci[:-1]) | (cj[1:] != cj[:-1]), True]) \
        if n else np.zeros(1, np.int64)
    with BlockedIndexWriter(target, {k: v.dtype for k, v in cols.items()}, idx.attrs,
                            _blocking(cell)) as w:
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            w.write_block({k: v[a:b] for k, v in cols.items()}, (ci[a], cj[a]))
    return Path(target)


def spatial_index_path(index_path: str | os.PathLike) -> Path:
    """The default name of the blocked index sorted from the file-order index ``index_path``:
    beside it, ``NAME.index.h5`` -> ``NAME.spatial.index.h5`` (a distinct name: a blocked
    index is never taken as a file's default index, :meth:`TraceIndex.matches
    <seis_hpc.io.index.TraceIndex.matches>`)."""
    p = Path(index_path)
    for suffix in (".index.h5", ".h5"):
        if p.name.endswith(suffix) and len(p.name) > len(suffix):
            return p.with_name(p.name[:-len(suffix)] + ".spatial.index.h5")
    return p.with_name(p.name + ".spatial.index.h5")


def sort_rows(src: str | os.PathLike, budget: int) -> int:
    """The row budget (``max_rows`` of :func:`block_index_file`) that keeps the sort of the
    index file ``src`` within about ``budget`` bytes (the peak holds about three times
    ``max_rows`` rows of every column, and the output's buffer at least one HDF5 chunk)."""
    with h5py.File(src, "r") as f:
        row = 8 + sum(f[k].dtype.itemsize for k in f if isinstance(f[k], h5py.Dataset))
    return max(1, int(budget) // (3 * row))


def check_sort_options(cell: float, sort_memory: str) -> int:
    """``seis-hpc index --spatial``'s ``--cell`` (m) and ``--sort-memory`` (a size such as
    ``1G``) checked before any work; returns the memory budget in bytes."""
    from seis_hpc.engine.decomposition import parse_size

    budget = parse_size(sort_memory)
    if not cell > 0:
        raise SeisError(f"--cell must be > 0 m (got {cell:g})")
    return budget


def sort_index(src: str | os.PathLike, dst: str | os.PathLike | None, cell: float,
               budget: int) -> Path:
    """The blocked index of the file-order index file ``src`` written to ``dst`` (default
    :func:`spatial_index_path`) by :func:`block_index_file` within about ``budget`` bytes of
    memory (:func:`sort_rows`), ``cell`` m cells."""
    return block_index_file(src, dst or spatial_index_path(src), cell=cell,
                            max_rows=sort_rows(src, budget))


def scratch_name(path: str | os.PathLike) -> Path:
    """The scratch file of :func:`block_index_file` writing ``path`` (beside it, hidden)."""
    p = Path(path)
    return p.with_name(f".{p.name}.runs-{os.getpid()}")


def block_index_file(src: str | os.PathLike, dst: str | os.PathLike, cell: float = 500.0,
                     max_rows: int = 1 << 22) -> Path:
    """Sort the file-order index file ``src`` into the blocked index ``dst`` (an external
    sort: memory bounded by ``max_rows`` rows, whatever the survey's traces).

    The result is that of :func:`write_blocked_index` on ``src`` loaded in memory: the same
    rows in the same order, the same columns, block table and attributes. Three streamed
    passes:

    1. the smallest and largest midpoint coordinates (``mx``, ``my`` only), which place the
       cells;
    2. runs of ``max_rows`` rows, each sorted stably by cell and written to a scratch HDF5
       file beside ``dst`` (uncompressed: as large as the columns, about 220 B a trace),
       with each run's rows per cell;
    3. the merge: the rows of ``dst`` in order, ``max_rows`` at a time; the rows of a cell in
       each run are contiguous and the runs are read front to back, so each piece is one
       slice per run that holds some of it, put in order (cell, then file order) and written
       block by block through :class:`BlockedIndexWriter` (a cell larger than the budget is
       written in parts, one block).

    The scratch file is registered as a temporary (:mod:`seis_hpc.io.atomic`): removed on
    success, on error and on SIGTERM/SIGINT under ``seis-hpc``; ``dst`` appears only
    complete.

    Parameters
    ----------
    src : path-like
        A trace index file in file order (``seis-hpc index``: binned, or not).
    dst : path-like
        The blocked index file to write.
    cell : float
        Cell edge (m).
    max_rows : int
        Rows read at once (every column: about 220 B a row for an index of ``seis-hpc
        index``). The peak holds about three times that many rows (the piece read, its
        reordered copy, the output's buffer), the buffer at least one HDF5 chunk of the
        output (65536 rows, some 15 MB), plus 24 B for each cell of each run; not the
        survey's traces.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    SeisError
        ``src`` is not a trace index, is already blocked, or lacks ``mx``/``my``.
    """
    from seis_hpc.io.atomic import registered
    from seis_hpc.io.index import TraceIndex

    if not cell > 0:
        raise SeisError(f"the cell edge must be > 0 m (got {cell:g})")
    max_rows = int(max_rows)
    if max_rows < 1:
        raise SeisError(f"the sort's row budget must be >= 1 (got {max_rows})")
    idx = TraceIndex.open(src)
    if is_blocked(idx.attrs):
        raise SeisError("index is already blocked", src)
    dst = Path(dst)
    if dst.exists() and dst.resolve() == Path(src).resolve():
        raise SeisError("the blocked index would replace the index it is sorted from", dst)
    with h5py.File(src, "r") as f:
        dtypes = {k: f[k].dtype for k in f if isinstance(f[k], h5py.Dataset)}
        for name in ("mx", "my"):
            if name not in dtypes:
                raise SeisError(f"index has no {name!r} column", src)
        n = int(f["mx"].shape[0])
    dtypes["trace"] = np.dtype(np.int64)  # as write_blocked_index: the file's trace number
    names = [k for k in dtypes if k != "trace"]

    # 1. the cells' origin (and the number of cell columns, to make one sort key)
    x0 = y0 = np.inf
    x1 = -np.inf
    for _, c in iter_rows(src, ("mx", "my"), chunk=max_rows):
        x0, x1, y0 = min(x0, c["mx"].min()), max(x1, c["mx"].max()), min(y0, c["my"].min())
    if n:
        ncol = int(_cells(np.array([x1]), np.array([y0]), x0, y0, cell)[1][0]) + 1

        def code(mx, my):  # cell row-major: the order of lexsort((cj, ci))
            ci, cj = _cells(mx, my, x0, y0, cell)
            return ci * ncol + cj

    scratch = scratch_name(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with registered(scratch):
        try:
            with h5py.File(scratch, "w") as s:
                # 2. runs: each max_rows rows of src, sorted stably by cell
                tables = []  # per run: (cell code, run, rows of that cell in the run)
                with h5py.File(src, "r") as f:
                    out = {name: s.create_dataset(name, shape=(n,), dtype=dt)
                           for name, dt in dtypes.items()}
                    inp = {name: f[name] for name in names}
                    for r, a in enumerate(range(0, n, max_rows)):
                        b = min(n, a + max_rows)
                        k = code(inp["mx"][a:b], inp["my"][a:b])
                        order = np.argsort(k, kind="stable")
                        for name in names:  # one column at a time: max_rows rows held
                            out[name][a:b] = inp[name][a:b][order]
                        out["trace"][a:b] = a + order
                        u, cnt = np.unique(k, return_counts=True)
                        tables.append(np.stack([u, np.full_like(u, r), cnt]))
                        del k, order
                # 3. merge: the entries (cell, run) in output order
                t = np.concatenate(tables, axis=1) if tables else np.zeros((3, 0), np.int64)
                del tables
                t = t[:, np.lexsort((t[1], t[0]))]
                _merge(s, t, names + ["trace"], dtypes, n, max_rows, dst, idx.attrs, cell,
                       ncol if n else 1)
        finally:
            scratch.unlink(missing_ok=True)
    return dst


def _merge(s: h5py.File, t: np.ndarray, names: list[str], dtypes: dict, n: int,
           max_rows: int, dst: Path, attrs: dict, cell: float, ncol: int) -> None:
    """Write ``dst`` from the sorted runs of the scratch file ``s``: ``t`` lists (cell code,
    run, rows) in output order; ``max_rows`` rows are read and written at a time."""
    codes, runs, counts = t
    n_runs = int(runs.max()) + 1 if runs.size else 0
    cursor = np.arange(n_runs, dtype=np.int64) * max_rows  # next unread row of each run
    left = counts.copy()  # rows of each entry not yet written
    e = 0  # first entry not yet written out completely
    last = None  # cell code of the last block written
    sets = {name: s[name] for name in names}  # (h5py's lookup costs more than a small read)
    # the writer buffers whole HDF5 chunks at least: writes of a few rows into a compressed
    # chunk would compress it again each time
    with BlockedIndexWriter(dst, dtypes, attrs, _blocking(cell),
                            flush_rows=max(max_rows, _CHUNK_ROWS)) as w:
        while e < len(codes):
            # the entries of this piece: up to max_rows rows (the last one maybe in part)
            take, room, j = [], max_rows, e
            while j < len(codes) and room > 0:
                k = int(min(left[j], room))
                take.append(k)
                room -= k
                j += 1
            take = np.asarray(take, np.int64)
            pc, pr = codes[e:j], runs[e:j]
            # each run's rows of the piece are contiguous there: one slice per run, the
            # slices joined in run order, then put in (cell, run) order
            by_run = np.lexsort((pc, pr))
            ur, first = np.unique(pr[by_run], return_index=True)
            sizes = np.add.reduceat(take[by_run], first)
            start = np.empty(len(take), np.int64)  # each entry's start in the joined slices
            start[by_run] = np.cumsum(take[by_run]) - take[by_run]
            pos = np.repeat(start - np.cumsum(take) + take, take) + np.arange(take.sum())
            cols = {}
            for name in names:
                ds = sets[name]
                joined = np.concatenate([ds[cursor[r]:cursor[r] + m]
                                         for r, m in zip(ur, sizes, strict=True)])
                cols[name] = joined[pos]
                del joined
            cursor[ur] += sizes
            left[e:j] -= take
            # blocks: the piece's cells; one continuing the last block is extended
            bc = np.repeat(pc, take)
            cuts = np.flatnonzero(np.r_[True, bc[1:] != bc[:-1], True])
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                part = {k: v[a:b] for k, v in cols.items()}
                if bc[a] == last:
                    w.extend_block(part)
                else:
                    w.write_block(part, (bc[a] // ncol, bc[a] % ncol))
                    last = bc[a]
            del cols, part
            e = j if left[j - 1] == 0 else j - 1

"""Rank 0's tile plan from the index streamed in chunks: memory bounded by the units' runs
and one chunk of rows, never by the survey (issue 19).

:func:`~seis_hpc.engine.decomposition.plan_job` takes every trace's midpoint and shot in
memory and lists every tile's traces before :func:`~seis_hpc.engine.job.compact_plan` turns
them into runs: on the spec's survey (1.6e8 traces, 64-bin tiles re-reading each trace ~66
times) that is ~95 GB on rank 0. :func:`plan_tiles_streamed` makes the same tile plan -
the same units, traces, work and windows, bit for bit - from the midpoints read
:data:`PLAN_CHUNK` rows at a time: each chunk is tested against the tiles whose disc
(:func:`~seis_hpc.engine.decomposition.tile_disc`) comes near the chunk's bounding box, and
each tile keeps its traces as runs of consecutive trace numbers
(:class:`~seis_hpc.engine.job.CompactUnit`). With a spatially blocked index
(:mod:`seis_hpc.io.blocked`) a chunk is a few blocks of nearby midpoints, so it reaches few
tiles and a tile's traces are few runs.

The shard strategy (possible when a rank holds the whole image, i.e. for small images) cuts
the traces in shot order by their cumulative work. :func:`plan_tiles_streamed` returns None
when the budget might allow it; :func:`plan_shard_streamed` then makes ``plan_job``'s plan,
bit for bit, in three streamed passes (the classes' totals; the cuts, with the same
sequential cumulative sum and shot boundaries; each unit's runs, work and window) over the
rows in shot order: an index of a shot-sorted file as it is, a spatially blocked index
after an external sort through temporary files (:class:`_ShotOrder`).

:func:`column_chunks`, :func:`column_abs_max` and :func:`take_rows` stream or take any
columns, for the survey's fold and offsets (:meth:`seis_hpc.survey.Survey.fold`) and the
flat-reflector response (:func:`seis_hpc.engine.normalise.traces_near`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from seis_hpc.engine.decomposition import (
    BASE_BYTES,
    REDUCE_SLAB_BYTES,
    UNIT_TRACE_BYTES,
    Plan,
    TileSizer,
    format_size,
    image_bytes,
    parse_size,
    tile_disc,
    tile_grid,
)
from seis_hpc.engine.job import CompactUnit, merge_runs, to_runs
from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid

# Rows of the index read at a time while planning (2 x 8 B + 8 B of trace numbers a row).
PLAN_CHUNK = 1 << 16

# (trace numbers, increasing; midpoint x (m); midpoint y (m)) of one chunk of rows
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]


def take_columns(source, names, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Columns ``names`` (float64) of the traces ``ids`` of ``source``: through its
    ``take`` (a :class:`~seis_hpc.io.index.TraceIndex` reads only those rows from its file)
    where it has one, else by indexing its whole columns."""
    ids = np.asarray(ids, dtype=np.int64)
    take = getattr(source, "take", None)
    cols = take(names, ids) if take is not None else {k: np.asarray(source[k])[ids]
                                                        for k in names}
    return {k: np.asarray(cols[k], dtype=np.float64) for k in names}


def column_chunks(source, names, chunk: int | None = None
                  ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """:func:`seis_hpc.io.index.column_chunks` in chunks of :data:`PLAN_CHUNK` rows by
    default (the planner's chunk, which tests lower to cut plans into many chunks)."""
    # imported here, as everywhere in the engine, from a module without segyio
    from seis_hpc.io.columns import column_chunks as index_column_chunks

    return index_column_chunks(source, names, chunk or PLAN_CHUNK)


def column_abs_max(source, name: str, traces: np.ndarray | None = None) -> float:
    """The largest ``|value|`` of column ``name`` over the traces (those of ``traces``, when
    given), streamed (:func:`column_chunks`); 0.0 for no traces. Exact: a maximum does not
    depend on the chunks."""
    top = 0.0
    if traces is not None:
        sel = np.asarray(traces, dtype=np.int64)
        for a in range(0, sel.size, PLAN_CHUNK):
            v = take_rows(source, [name], sel[a:a + PLAN_CHUNK])[name]
            if v.size:
                top = max(top, float(np.abs(v).max()))
        return top
    for _, cols in column_chunks(source, [name]):
        v = cols[name]
        if v.size:
            top = max(top, float(np.abs(v).max()))
    return top


def take_rows(source, names, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Columns ``names`` of the traces ``rows`` only (an index file reads just those rows:
    :meth:`~seis_hpc.io.index.TraceIndex.take`), in their own types."""
    take = getattr(source, "take", None)
    if take is not None:
        return take(list(names), rows)
    return {k: np.asarray(source[k])[rows] for k in names}


def midpoint_chunks(source, traces: np.ndarray | None = None, chunk: int | None = None
                    ) -> Callable[[], Iterator[Chunk]]:
    """A callable giving, each time it is called, the midpoints of ``source`` (of the
    trace numbers ``traces``, increasing, when given) ``chunk`` rows at a time.

    An index file whose midpoints are not in memory is read slice by slice (or row group
    by row group with ``traces``: :meth:`~seis_hpc.io.index.TraceIndex.take`); columns
    already in memory are sliced.
    """
    size = int(chunk or PLAN_CHUNK)
    from seis_hpc.io.columns import n_rows

    n = n_rows(source)
    path = getattr(source, "path", None)
    loaded = getattr(source, "_columns", None)
    on_file = (path is not None and loaded is not None and hasattr(source, "take")
               and not ("mx" in loaded and "my" in loaded))

    def gen() -> Iterator[Chunk]:
        if traces is not None:
            sel = np.asarray(traces, dtype=np.int64)
            for a in range(0, sel.size, size):
                rows = sel[a:a + size]
                if on_file:
                    c = source.take(["mx", "my"], rows)
                    mx, my = c["mx"], c["my"]
                else:
                    mx, my = source["mx"][rows], source["my"][rows]
                yield rows, np.asarray(mx, np.float64), np.asarray(my, np.float64)
            return
        if on_file:
            import h5py

            with h5py.File(path, "r") as f:
                for a in range(0, n, size):
                    b = min(n, a + size)
                    yield (np.arange(a, b, dtype=np.int64),
                           np.asarray(f["mx"][a:b], np.float64),
                           np.asarray(f["my"][a:b], np.float64))
            return
        mx_all, my_all = source["mx"], source["my"]
        for a in range(0, n, size):
            b = min(n, a + size)
            yield (np.arange(a, b, dtype=np.int64), np.asarray(mx_all[a:b], np.float64),
                   np.asarray(my_all[a:b], np.float64))

    return gen


def tile_units_streamed(grid: BinGrid, chunks: Callable[[], Iterator[Chunk]],
                        aperture: float, tile: int) -> list[CompactUnit]:
    """:func:`~seis_hpc.engine.decomposition.tile_units` from streamed midpoints: one
    :class:`~seis_hpc.engine.job.CompactUnit` per tile, the same traces (as runs), work
    and window.

    Parameters
    ----------
    grid : BinGrid
        Image grid.
    chunks : callable
        Gives an iterator of ``(trace numbers, mx, my)`` chunks, trace numbers increasing
        over the whole stream (:func:`midpoint_chunks`).
    aperture : float
        Migration aperture (m), ``inf`` for none.
    tile : int
        Tile edge (bins).
    """
    windows = tile_grid(grid, tile)
    parts: list[list[np.ndarray]] = [[] for _ in windows]
    if not np.isfinite(aperture):  # every tile takes every trace
        every = [to_runs(rows) for rows, _, _ in chunks()]
        for p in parts:
            p.extend(every)
    else:
        disc = np.array([tile_disc(grid, w, aperture) for w in windows]).reshape(-1, 3)
        cx, cy, rad = disc[:, 0], disc[:, 1], disc[:, 2]
        # a chunk's box further than this from a tile's centre holds none of its traces
        # (the margin covers the rounding of hypot against the box distance)
        far = rad * (1 + 1e-9) + 1e-6
        for rows, mx, my in chunks():
            if not rows.size:
                continue
            dx = np.maximum(np.maximum(mx.min() - cx, cx - mx.max()), 0.0)
            dy = np.maximum(np.maximum(my.min() - cy, cy - my.max()), 0.0)
            for t in np.flatnonzero(np.hypot(dx, dy) <= far):
                d = np.hypot(mx - cx[t], my - cy[t])
                hit = rows[d <= rad[t]]
                if hit.size:
                    parts[t].append(to_runs(hit))
    units = []
    for uid, (w, p) in enumerate(zip(windows, parts, strict=True)):
        runs = merge_runs(np.concatenate(p)) if p else np.zeros((0, 2), np.int64)
        nb = (w[1] - w[0]) * (w[3] - w[2])
        u = CompactUnit.of_runs(uid, runs, 0.0, w, -1)
        u.work = float(u.n_traces * nb)
        units.append(u)
    return units


def plan_tiles_streamed(grid: BinGrid, nt: int, ns: int,
                        chunks: Callable[[], Iterator[Chunk]], n_tr: int, aperture: float,
                        mem_per_rank: int | str = "2G", *, n_classes: int = 0,
                        strategy: str = "auto", tile: int | None = None, n_units: int = 256,
                        min_unit_traces: int = 32) -> Plan | None:
    """The tile plan of :func:`~seis_hpc.engine.decomposition.plan_job`, from streamed
    midpoints; None when the plan might be ``shard`` (plan in memory then).

    ``strategy="tile"`` gives the tile plan (identical to ``plan_job``'s, ``bytes_shard``
    included). With ``"auto"`` the plan is ``tile`` when even the smallest shard plan -
    the image, its gathers and two window images, plus ``n_tr / units`` traces - exceeds
    the budget, as ``plan_job`` would decide; ``bytes_shard`` is then that lower bound
    (``plan.extra["bytes_shard_bound"]``), since the shard units are never made. Other
    strategies give None.

    Parameters
    ----------
    grid : BinGrid
        Image grid.
    nt, ns : int
        Output samples per trace; input samples per trace.
    chunks : callable
        Midpoint chunks of the traces to migrate (:func:`midpoint_chunks`).
    n_tr : int
        Traces to migrate (the rows ``chunks`` gives).
    aperture : float
        Migration aperture (m), ``inf`` for none.
    mem_per_rank, strategy, tile, n_units, min_unit_traces
        As :func:`~seis_hpc.engine.decomposition.plan_job`.
    n_classes : int
        Offset classes of the image gathers (0: none).
    """
    if strategy not in ("auto", "tile"):
        return None
    budget = parse_size(mem_per_rank)
    if n_tr == 0:
        raise SeisError("no traces to migrate")
    k_units = int(max(1, min(n_units, n_tr // max(min_unit_traces, 1))))
    img = image_bytes(grid.n_bins, nt, n_classes)
    one = image_bytes(grid.n_bins, nt)
    # plan_job's shard units: at most k_units per offset class (the traces outside every
    # class form one more), so the largest holds at least this many traces
    n_groups = k_units if strategy == "tile" or n_classes == 0 else k_units * (n_classes + 1)
    max_tr = -(-n_tr // n_groups)
    bytes_shard = (BASE_BYTES + img + 2 * one + 4 * max_tr * ns + REDUCE_SLAB_BYTES
                   + UNIT_TRACE_BYTES * max_tr)
    if strategy == "auto" and bytes_shard <= budget:
        return None  # shard might fit: plan_job decides on the real shard units
    sizer = TileSizer(lambda t: tile_units_streamed(grid, chunks, aperture, t), grid, nt,
                      n_classes, ns)
    tiled, tile_bytes = sizer.units, sizer.bytes
    if tile is None:
        tile = sizer.choose(budget)
    if tile < 1:
        raise SeisError(f"tile size must be >= 1 bin (got {tile})")
    bytes_tile = tile_bytes(tile, tile)
    if strategy == "auto":
        reason = "the image does not fit one rank: output tiles"
    else:
        reason = "chosen by the user"
    if bytes_tile > budget:
        raise SeisError(f"memory per rank {format_size(budget)} is too small even for a "
                        f"{tile}-bin tile ({format_size(bytes_tile)}); raise --mem-per-rank")
    plan = Plan("tile", tiled(tile), grid, nt, n_classes, tile, bytes_shard, bytes_tile,
                budget, reason)
    plan.extra["bytes_shard_bound"] = strategy == "auto"
    return plan



class _ClassCuts:
    """The cuts of one offset class's traces (in shot order) into units of equal work, found
    from the streamed work as :func:`~seis_hpc.engine.decomposition.shard_traces` finds them
    from the whole arrays: the same sequential cumulative sum (``cum``), the same shot
    boundaries, the same choice of the nearest one. Memory: a few numbers per unit."""

    def __init__(self, total: float, n: int, n_units: int):
        self.n = n
        k = int(max(1, min(n_units, n)))
        self.target = total / k
        self.goals = [m * self.target for m in range(1, k)]
        self.carry = 0.0  # cum[q - 1]
        self.q = 0  # position (in the class's sequence) of the next trace
        self.shot = None  # shot of the last trace
        self.known: list[tuple[int, float]] = []  # the last two shot starts, cum before each
        # per goal found: [c_at, b, cum[b - 1], bprev, cum[bprev - 1]]; b = -1: not seen yet
        self.found: list[list] = []

    def add(self, w: np.ndarray, shot: np.ndarray) -> None:
        """The next traces of the class (in shot order): their work and shots."""
        if not w.size:
            return
        cum = np.cumsum(np.r_[self.carry, np.maximum(w, 1e-3)])[1:]
        new = np.r_[self.shot is None or shot[0] != self.shot, shot[1:] != shot[:-1]]
        loc = np.flatnonzero(new)
        here = [(self.q + int(s), float(cum[s - 1]) if s > 0 else self.carry) for s in loc]
        if here:
            for f in self.found:
                if f[1] < 0:  # the first shot start after an earlier c_at
                    f[1], f[2] = here[0]
        starts = self.known + here
        pos = np.array([s for s, _ in starts], np.int64)
        while len(self.found) < len(self.goals):
            i = int(np.searchsorted(cum, self.goals[len(self.found)]))
            if i >= cum.size:
                break
            c_at = self.q + i
            j = int(np.searchsorted(pos, c_at, side="right")) - 1  # the last start <= c_at
            if starts[j][0] == c_at:
                prev = starts[j - 1] if j >= 1 else starts[j]
                self.found.append([c_at, *starts[j], *prev])
            else:
                nxt = starts[j + 1] if j + 1 < len(starts) else (-1, np.nan)
                self.found.append([c_at, *nxt, *starts[j]])
        self.known = starts[-2:]
        self.shot = shot[-1]
        self.carry = float(cum[-1])
        self.q += w.size

    def cuts(self) -> list[int]:
        """The unit boundaries (positions in the class's sequence), as shard_traces cuts."""
        last = self.known[-1]
        out = [0]
        for m, goal in enumerate(self.goals):
            if m < len(self.found):
                c_at, b, b_before, bp, bp_before = self.found[m]
                if b < 0:  # no shot start after c_at: numpy's clip takes the last one
                    b, b_before = last
            else:  # searchsorted past the end (the goal above the total by rounding)
                c_at = self.n
                (b, b_before) = (bp, bp_before) = last
            for cand, before in sorted(((b, b_before), (bp, bp_before)),
                                       key=lambda t, c=c_at: abs(t[0] - c)):
                lost = abs((before if cand > 0 else 0.0) - goal)
                if lost <= 0.25 * self.target:
                    c_at = int(cand)
                    break
            if c_at > out[-1]:
                out.append(c_at)
        out.append(self.n)
        return out


def _shard_chunks(source, traces: np.ndarray | None, names):
    """(positions in the selection, trace numbers, columns) ``PLAN_CHUNK`` rows at a time."""
    if traces is None:
        for a, cols in column_chunks(source, names):
            pos = np.arange(a, a + len(cols[names[0]]), dtype=np.int64)
            yield pos, pos, cols
        return
    sel = np.asarray(traces, dtype=np.int64)
    for a in range(0, sel.size, PLAN_CHUNK):
        ids = sel[a:a + PLAN_CHUNK]
        yield np.arange(a, a + ids.size, dtype=np.int64), ids, take_rows(source, names, ids)


# Rows sorted in memory at a time when an index not in shot order is put in shot order for
# the shard plan (:class:`_ShotOrder`): 40-56 B a row, and as much again while sorted.
SPILL_ROWS = 1 << 19


class _ShotOrder:
    """The rows of an index that is not in shot order (a spatially blocked index), in shot
    order (``source_id``, then ``byte_offset``, else the position; ties in position order,
    as ``plan_job``'s stable sort), through temporary files: an external sort.

    One pass counts the traces of each shot (memory: the shots); consecutive shots are
    grouped into buckets of at most :data:`SPILL_ROWS` rows (a larger shot alone); a second
    pass appends each row (position, trace number, columns) to its bucket's file in the
    temporary folder (``TMPDIR``; 16 B + 8 B a column a row). Iterating reads one bucket at
    a time, sorts it and gives it ``PLAN_CHUNK`` rows at a time, like :func:`_shard_chunks`.
    Memory: the shots' counts and one bucket, not the survey.
    """

    def __init__(self, source, traces: np.ndarray | None, names):
        import tempfile

        self.names = list(names)
        self.key2 = "byte_offset" if "byte_offset" in self.names else "pos"
        shots = np.zeros(0, np.int64)
        counts = np.zeros(0, np.int64)
        for _, _, cols in _shard_chunks(source, traces, ["source_id"]):
            u, c = np.unique(np.asarray(cols["source_id"]), return_counts=True)
            shots, inv = np.unique(np.r_[shots, u], return_inverse=True)
            counts = np.bincount(inv, weights=np.r_[counts, c], minlength=shots.size
                                 ).astype(np.int64)
        # bucket of each shot: by the rows before it; a bucket starts where that changes
        before = np.cumsum(counts) - counts
        bid = before // SPILL_ROWS
        self.bounds = shots[np.flatnonzero(np.r_[True, bid[1:] != bid[:-1]])] \
            if shots.size else np.zeros(1, np.int64)
        self.folder = tempfile.mkdtemp(prefix="seis_hpc_shard_plan_")
        self.dtype = None
        files: dict[int, object] = {}
        try:
            for pos, ids, cols in _shard_chunks(source, traces, self.names):
                if not pos.size:
                    continue
                if self.dtype is None:
                    self.dtype = np.dtype([("pos", np.int64), ("ids", np.int64)] + [
                        (k, np.asarray(cols[k]).dtype) for k in self.names])
                rec = np.empty(pos.size, self.dtype)
                rec["pos"], rec["ids"] = pos, ids
                for k in self.names:
                    rec[k] = cols[k]
                b = np.searchsorted(self.bounds, rec["source_id"], side="right") - 1
                order = np.argsort(b, kind="stable")
                b, rec = b[order], rec[order]
                cut = np.flatnonzero(np.r_[True, b[1:] != b[:-1], True])
                for lo, hi in zip(cut[:-1], cut[1:], strict=True):
                    k = int(b[lo])
                    if k not in files:
                        files[k] = open(self._path(k), "ab")  # noqa: SIM115 - closed below
                    files[k].write(rec[lo:hi].tobytes())
        except BaseException:
            self.close()
            raise
        finally:
            for f in files.values():
                f.close()
        self.n_buckets = len(self.bounds)

    def _path(self, k: int) -> str:
        import os

        return os.path.join(self.folder, f"{k}.bin")

    def __call__(self):
        """(positions in the selection, trace numbers, columns) in shot order."""
        import os

        for k in range(self.n_buckets):
            path = self._path(k)
            if self.dtype is None or not os.path.exists(path):
                continue
            rec = np.fromfile(path, self.dtype)
            rec = rec[np.lexsort((rec[self.key2], rec["source_id"]))]
            for a in range(0, rec.size, PLAN_CHUNK):
                r = rec[a:a + PLAN_CHUNK]
                yield r["pos"], r["ids"], {n: r[n] for n in self.names}
            rec = r = None

    def close(self) -> None:
        """Remove the temporary files."""
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _joined_runs(parts: list[np.ndarray]) -> np.ndarray:
    """Runs of several pieces of one unit (in any order) as the runs of its sorted traces."""
    r = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    return merge_runs(r[np.argsort(r[:, 0], kind="stable")])


def _shard_units(grid: BinGrid, stream, aperture: float, *, k_units_of, classes,
                 has_order: bool, sorted_ids: bool) -> list[CompactUnit] | None:
    """The shard units of ``plan_job`` from ``stream()`` (chunks of rows in shot order, three
    passes); None when the rows are not in shot order. ``sorted_ids``: the trace numbers
    increase along the stream (else each unit's runs are sorted at the end)."""
    from seis_hpc.engine.decomposition import bins_in_aperture, grid_coords, window_of

    # pass 1: the rows in shot order? each class's traces and total (the cumulative sum)
    last = None
    count: dict[int, int] = {}
    total: dict[int, float] = {}
    for pos, _, cols in stream():
        if not pos.size:
            continue
        shot = np.asarray(cols["source_id"])
        key = np.asarray(cols["byte_offset"]) if has_order else pos
        s = np.r_[last[0], shot] if last is not None else shot
        k = np.r_[last[1], key] if last is not None else key
        same = s[1:] == s[:-1]
        if np.any(s[1:] < s[:-1]) or np.any(same & (k[1:] < k[:-1])):
            return None  # not in shot order: sorted first (_ShotOrder)
        last = (shot[-1], key[-1])
        w = np.maximum(bins_in_aperture(grid, cols["mx"], cols["my"], aperture)
                       .astype(np.float64), 1e-3)
        cls = classes(cols)
        for c in np.unique(cls):
            m = cls == c
            c = int(c)
            total[c] = float(np.cumsum(np.r_[total.get(c, 0.0), w[m]])[-1])
            count[c] = count.get(c, 0) + int(m.sum())
    n_tr = sum(count.values())
    if n_tr == 0:
        raise SeisError("no traces to migrate")
    k_units = k_units_of(n_tr)
    # pass 2: where each class is cut
    cutters = {c: _ClassCuts(total[c], count[c], k_units) for c in sorted(count)}
    for _, _, cols in stream():
        w = bins_in_aperture(grid, cols["mx"], cols["my"], aperture).astype(np.float64)
        cls, shot = classes(cols), np.asarray(cols["source_id"])
        for c in np.unique(cls):
            m = cls == c
            cutters[int(c)].add(w[m], shot[m])
    cuts, base = {}, {}
    n_made = 0
    for c, cut in cutters.items():
        cuts[c] = np.asarray(cut.cuts(), np.int64)
        base[c] = n_made
        n_made += len(cuts[c]) - 1  # cuts are strictly increasing: no empty unit
    # pass 3: each unit's traces (runs), work and window
    runs: list[list[np.ndarray]] = [[] for _ in range(n_made)]
    work = np.zeros(n_made)
    box = np.tile(np.array([np.inf, -np.inf, np.inf, -np.inf]), (n_made, 1))
    seen = dict.fromkeys(cutters, 0)
    for _, ids, cols in stream():
        w = bins_in_aperture(grid, cols["mx"], cols["my"], aperture).astype(np.float64)
        fi, fj = grid_coords(grid, cols["mx"], cols["my"])
        cls = classes(cols)
        for c in np.unique(cls):
            c = int(c)
            m = np.flatnonzero(cls == c)
            q = seen[c] + np.arange(m.size)
            seen[c] += m.size
            uid = base[c] + np.searchsorted(cuts[c], q, side="right") - 1
            for u in np.unique(uid):
                sub = m[uid == u]
                if sorted_ids:
                    runs[u].append(to_runs(ids[sub]))
                else:  # the unit's pieces in trace order, joined now and then
                    runs[u].append(to_runs(np.sort(ids[sub])))
                    if len(runs[u]) > 64:
                        runs[u] = [_joined_runs(runs[u])]
                work[u] += float(w[sub].sum())  # whole bin counts: exact in any order
                box[u] = (min(box[u, 0], fi[sub].min()), max(box[u, 1], fi[sub].max()),
                          min(box[u, 2], fj[sub].min()), max(box[u, 3], fj[sub].max()))
    units = []
    for c in cutters:
        for u in range(base[c], base[c] + len(cuts[c]) - 1):
            win = window_of(grid, box[u, :2], box[u, 2:], aperture)
            r = merge_runs(np.concatenate(runs[u])) if sorted_ids else _joined_runs(runs[u])
            units.append(CompactUnit.of_runs(u, r, float(work[u]), win, c))
            runs[u] = None
    return units



def plan_shard_streamed(grid: BinGrid, nt: int, ns: int, source, aperture: float,
                        mem_per_rank: int | str = "2G", *, traces: np.ndarray | None = None,
                        offset_edges: np.ndarray | None = None, strategy: str = "auto",
                        tile: int | None = None, n_units: int = 256,
                        min_unit_traces: int = 32) -> Plan | None:
    """:func:`~seis_hpc.engine.decomposition.plan_job`'s plan (shard or, when the shard plan
    does not fit, tile), the same units bit for bit, from the index streamed in chunks:
    memory one chunk, the units' runs and a few numbers per unit, not the survey.

    The shard units cut the traces in shot order (``source_id``, then ``byte_offset``)
    by their cumulative work. An index of a file sorted by shot (as recorded) is streamed
    as it is; one whose rows are not in that order (a spatially blocked index) is put in
    shot order first by an external sort (:class:`_ShotOrder`: temporary files of 40-56 B
    a trace in ``TMPDIR``, memory one bucket of :data:`SPILL_ROWS` rows). Strategies other
    than ``auto`` and ``shard``, and sources without ``mx``, ``my`` and ``source_id``, give
    None.

    Parameters are those of :func:`plan_tiles_streamed` and ``plan_job``; ``traces`` the
    trace numbers of a part (increasing), default all.
    """
    from seis_hpc.geometry import offset_classes

    if strategy not in ("auto", "shard"):
        return None
    budget = parse_size(mem_per_rank)
    keys = set(source.keys()) if hasattr(source, "keys") else set()
    if not {"mx", "my", "source_id"} <= keys:
        return None
    has_order = "byte_offset" in keys
    names = ["mx", "my", "source_id"] + (["byte_offset"] if has_order else []) + (
        ["offset"] if offset_edges is not None else [])
    n_classes = 0 if offset_edges is None else len(offset_edges) - 1

    def classes(cols):
        if offset_edges is None:
            return np.full(len(cols["mx"]), -1, np.int64)
        return np.asarray(offset_classes(np.abs(cols["offset"]), offset_edges), np.int64)

    kw = dict(k_units_of=lambda n: int(max(1, min(n_units, n // max(min_unit_traces, 1)))),
              classes=classes, has_order=has_order)
    units = _shard_units(grid, lambda: _shard_chunks(source, traces, names), aperture,
                         sorted_ids=True, **kw)
    if units is None:  # not in shot order (a blocked index): put in shot order through files
        spill = _ShotOrder(source, traces, names)
        try:
            units = _shard_units(grid, spill, aperture, sorted_ids=False, **kw)
        finally:
            spill.close()
    img = image_bytes(grid.n_bins, nt, n_classes)
    one = image_bytes(grid.n_bins, nt)
    max_tr = max(u.n_traces for u in units)
    bytes_shard = (BASE_BYTES + img + 2 * one + 4 * max_tr * ns + REDUCE_SLAB_BYTES
                   + UNIT_TRACE_BYTES * max_tr)
    chunks = midpoint_chunks(source, traces=traces)
    sizer = TileSizer(lambda t: tile_units_streamed(grid, chunks, aperture, t), grid, nt,
                      n_classes, ns)
    if tile is None:
        tile = sizer.choose(budget)
    bytes_tile = sizer.bytes(tile, tile)
    if strategy == "auto" and bytes_shard > budget:
        if bytes_tile > budget:
            raise SeisError(f"memory per rank {format_size(budget)} is too small even for a "
                            f"{tile}-bin tile ({format_size(bytes_tile)}); raise "
                            "--mem-per-rank")
        return Plan("tile", sizer.units(tile), grid, nt, n_classes, tile, bytes_shard,
                    bytes_tile, budget, "the image does not fit one rank: output tiles")
    reason = ("a rank holds the whole image: input sharding + reduction" if strategy == "auto"
              else "chosen by the user")
    return Plan("shard", units, grid, nt, n_classes, 0, bytes_shard, bytes_tile, budget,
                reason)

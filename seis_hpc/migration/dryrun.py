"""The plan of a PSTM job for N ranks without computing it (``seis-hpc pstm --dry-run``).

The index is streamed ``chunk`` rows at a time (never held whole: the planner's memory is a
midpoint fold map of the image grid and its margin, one chunk, and a few numbers per shot),
and the plan uses the cost and memory model of :mod:`seis_hpc.engine.decomposition`:

* **evaluations**: one evaluation is one (trace, output sample) pair inside the aperture (the
  kernel benchmark's unit): the sum over traces of
  :func:`~seis_hpc.engine.decomposition.bins_in_aperture` times the output samples with
  t > 0; exact per trace up to ``exact_limit`` traces, above it counted for each midpoint's
  nearest bin centre (a look-up in a table made by one FFT convolution), scaled by the
  exact / binned ratio on a sample of 200,000 traces (the ratio estimator: exact when the
  sample is every trace);
* **strategy and tile** as :func:`~seis_hpc.engine.decomposition.plan_job` chooses them from
  ``--mem-per-rank``, with the trace geometry held per unit (a rank holds the trace numbers
  and source/receiver coordinates of the unit it computes, 40 B a trace, instead of every
  trace's coordinates), so memory per rank is bounded by the traces within the aperture of
  one unit, not by the survey;
* **tile units**: the traces of a tile (midpoints within aperture + half the tile diagonal
  of its centre) and its evaluations are counted from the fold map (midpoints at their
  nearest bin centre: exact to within the traces less than half a bin from the aperture's
  edge), so that the read volume (with re-reads) and the balance come without holding
  trace lists;
* **shard units**: whole shots in shot order cut into units of equal estimated work;
* **balance**: max / mean of the work per rank under the longest-first assignment
  (:func:`~seis_hpc.engine.decomposition.assign_longest_first`);
* **rank 0**: the memory of a rank plus the peak memory of this planning process (rank 0
  plans the same way, streaming);
* **core-hours**: evaluations / rate, the rate measured by :func:`calibrate_rate` (a short
  run of the kernel here with the job's parameters) unless given.
"""

from __future__ import annotations

import math
import os
import resource
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from seis_hpc.engine.decomposition import (
    BASE_BYTES,
    REDUCE_SLAB_BYTES,
    TRACE_CHUNK,
    UNIT_TRACE_BYTES,
    assign_longest_first,
    bins_in_aperture,
    format_size,
    grid_coords,
    image_bytes,
    parse_size,
)
from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid, offset_classes

TILE_CANDIDATES = (64, 32, 16, 8, 4, 2, 1)


def _peak_rss() -> int:
    """Peak resident memory of this process so far (bytes; Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class _Source:
    """The columns of the traces, ``chunk`` rows at a time: an index file streamed, or an
    in-memory index (a SEG-Y scanned because it had no binned index)."""

    def __init__(self, path=None, idx=None):
        self.path, self.idx = path, idx

    def chunks(self, names, chunk: int) -> Iterator[dict[str, np.ndarray]]:
        if self.path is not None:
            from seis_hpc.io.blocked import iter_rows

            for _, cols in iter_rows(self.path, names, chunk):
                yield cols
            return
        n = self.idx.n_traces
        full = {k: self.idx[k] for k in names}
        for a in range(0, n, chunk):
            yield {k: v[a:a + chunk] for k, v in full.items()}


def _open(inp, index, bin_grid):
    """(attrs, grid, source, ns, dt, t_start, n_traces) of the input, streaming when it is
    an index file with a bin grid (written by ``seis-hpc index`` or ``synth``)."""
    import h5py

    from seis_hpc.geometry import load_bin_grid
    from seis_hpc.io.index import TraceIndex

    if bin_grid is not None and not isinstance(bin_grid, BinGrid):
        bin_grid = load_bin_grid(bin_grid)
    path = index if index is not None else inp
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", os.fspath(path))
    if os.path.isfile(path) and h5py.is_hdf5(path):
        idx = TraceIndex.open(path)
        has_grid = "grid_x0" in idx.attrs and idx.attrs.get("geometry")
        if bin_grid is not None or has_grid:
            grid = bin_grid or BinGrid.from_attrs(idx.attrs)
            return idx, grid, _Source(path=path)
    from seis_hpc.survey import Survey

    sv = Survey.open(inp, index, save=False, grid=bin_grid)
    return sv.index, sv.grid, _Source(idx=sv.index)


def _disc_rows(bin_i: float, bin_j: float, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Row offsets k and half widths (columns) of the bins whose centre lies within
    ``radius`` m of a bin centre: |k| <= radius / bin_i, columns |l| <= hw[k]."""
    r = int(math.floor(radius / bin_i + 1e-9))
    k = np.arange(-r, r + 1)
    h2 = radius * radius - (k * bin_i) ** 2
    hw = np.floor(np.sqrt(np.maximum(h2, 0.0)) / bin_j + 1e-9).astype(np.int64)
    return k, hw


class _FoldMap:
    """Midpoint counts per bin of the grid extended by ``margin`` bins each way (traces
    further off the grid reach no tile)."""

    def __init__(self, grid: BinGrid, mi: int, mj: int):
        self.grid, self.mi, self.mj = grid, mi, mj
        self.ni = grid.n_inline + 2 * mi
        self.nj = grid.n_crossline + 2 * mj
        self.count = np.zeros(self.ni * self.nj, np.int64)

    @property
    def nbytes(self) -> int:
        return int(self.count.nbytes)

    def add(self, fi: np.ndarray, fj: np.ndarray) -> None:
        i = np.rint(fi).astype(np.int64) + self.mi
        j = np.rint(fj).astype(np.int64) + self.mj
        ok = (i >= 0) & (i < self.ni) & (j >= 0) & (j < self.nj)
        self.count += np.bincount(i[ok] * self.nj + j[ok], minlength=self.count.size)

    def disc_counts(self, ci: np.ndarray, cj: np.ndarray, radius) -> np.ndarray:
        """Traces whose (binned) midpoint lies within ``radius`` m (one for all, or one per
        point) of the points (ci, cj) (fractional grid row and column; tile centres)."""
        g = self.grid
        fold = self.count.reshape(self.ni, self.nj)
        # prefix sums along the rows: the count of columns [a, b] is P[b + 1] - P[a]
        pref = np.zeros((self.ni, self.nj + 1), np.int64)
        np.cumsum(fold, axis=1, out=pref[:, 1:])
        out = np.zeros(len(ci), np.int64)
        ci = np.asarray(ci, np.float64) + self.mi
        cj = np.asarray(cj, np.float64) + self.mj
        radius = np.broadcast_to(np.asarray(radius, np.float64), ci.shape)
        r_i = float(radius.max()) / g.bin_crossline
        for k in range(int(math.floor(ci.min() - r_i)), int(math.ceil(ci.max() + r_i)) + 1):
            if k < 0 or k >= self.ni:
                continue
            dy = (k - ci) * g.bin_crossline
            h2 = radius * radius - dy * dy
            ok = h2 >= 0
            hw = np.sqrt(np.where(ok, h2, 0.0)) / g.bin_inline
            lo = np.clip(np.ceil(cj - hw - 1e-9), 0, self.nj).astype(np.int64)
            hi = np.clip(np.floor(cj + hw + 1e-9) + 1, 0, self.nj).astype(np.int64)
            row = pref[k]
            out += np.where(ok & (hi > lo), row[hi] - row[np.minimum(lo, hi)], 0)
        return out

    def _disc(self, aperture: float) -> np.ndarray:
        """1 on the bins whose centre lies within ``aperture`` m of the centre bin."""
        g = self.grid
        k, hw = _disc_rows(g.bin_crossline, g.bin_inline, aperture)
        r_j = int(hw.max())
        disc = np.zeros((len(k), 2 * r_j + 1))
        for row, h in enumerate(hw):
            disc[row, r_j - h:r_j + h + 1] = 1.0
        return disc

    def bins_reached(self, aperture: float) -> np.ndarray:
        """For every cell of the map, the grid bins within ``aperture`` m of its centre
        (:func:`~seis_hpc.engine.decomposition.bins_in_aperture` of a midpoint there), shape
        ``(ni, nj)``; exact for midpoints on bin centres."""
        from scipy.signal import fftconvolve

        g = self.grid
        if not np.isfinite(aperture):
            return np.full((self.ni, self.nj), float(g.n_bins))
        ones = np.zeros((self.ni, self.nj))
        ones[self.mi:self.mi + g.n_inline, self.mj:self.mj + g.n_crossline] = 1.0
        return np.rint(fftconvolve(ones, self._disc(aperture), mode="same"))

    def lookup(self, table: np.ndarray, fi: np.ndarray, fj: np.ndarray) -> np.ndarray:
        """``table`` (a map-shaped array) at the nearest cell of each point; 0 off the map."""
        i = np.rint(fi).astype(np.int64) + self.mi
        j = np.rint(fj).astype(np.int64) + self.mj
        ok = (i >= 0) & (i < self.ni) & (j >= 0) & (j < self.nj)
        return np.where(ok, table[np.where(ok, i, 0), np.where(ok, j, 0)], 0.0)

    def coverage(self, aperture: float) -> np.ndarray:
        """For every bin of the grid, the traces whose (binned) midpoint lies within
        ``aperture`` m of its centre, shape ``grid.shape`` (3D: (n_inline, n_crossline))."""
        from scipy.signal import fftconvolve

        g = self.grid
        fold = self.count.reshape(self.ni, self.nj).astype(np.float64)
        if not np.isfinite(aperture):
            return np.full((g.n_inline, g.n_crossline), float(fold.sum()))
        disc = self._disc(aperture)
        # the margin is at least the aperture: every trace within it of a bin is counted
        full = fftconvolve(fold, disc, mode="same")
        return np.rint(full[self.mi:self.mi + g.n_inline, self.mj:self.mj + g.n_crossline])


def calibrate_rate(kernel_args: dict, vrms: np.ndarray, time: np.ndarray, dt_in: float,
                   ns_in: int, bin_inline: float, bin_crossline: float, repeat: int = 3
                   ) -> float:
    """Evaluations per second of one core of this machine for the job's kernel parameters.

    A fixed small problem is migrated with one thread, the best of ``repeat`` runs counting:
    12 x 12 output points on the job's bin spacing, the job's output time axis and velocity
    function, and 48 traces with offsets up to 3 km whose midpoints are spread evenly over
    the aperture's disc (at most 5 km) around the points, so that the share of evaluations
    the angle limit cuts short is about that of the job.

    Parameters
    ----------
    kernel_args : dict
        Keyword arguments of :func:`seis_hpc.migration.pstm.pstm` (aperture, angle, ...).
    vrms : numpy.ndarray
        Vrms (m/s) on ``time``.
    time : numpy.ndarray
        Output times (s).
    dt_in : float
        Input sample interval (s).
    ns_in : int
        Input samples per trace.
    bin_inline, bin_crossline : float
        Bin sizes (m).

    Returns
    -------
    float
        Evaluations (trace, output sample pairs inside the aperture) per second per core.
    """
    from seis_hpc.migration.pstm import pstm

    rng = np.random.default_rng(0)
    n_tr, n_side = 48, 12
    gx, gy = np.meshgrid(np.arange(n_side) * bin_inline, np.arange(n_side) * bin_crossline)
    pts = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float64)
    radius = min(float(kernel_args.get("aperture", np.inf)), 5000.0)
    rad = radius * np.sqrt(rng.uniform(0, 1, n_tr))  # even over the disc's area
    ang = rng.uniform(0, 2 * np.pi, n_tr)
    mx = 0.5 * n_side * bin_inline + rad * np.cos(ang)
    my = 0.5 * n_side * bin_crossline + rad * np.sin(ang)
    off = rng.uniform(100.0, 3000.0, n_tr)
    az = rng.uniform(0, 2 * np.pi, n_tr)
    sx, sy = mx - 0.5 * off * np.sin(az), my - 0.5 * off * np.cos(az)
    rx, ry = mx + 0.5 * off * np.sin(az), my + 0.5 * off * np.cos(az)
    data = rng.standard_normal((n_tr, ns_in)).astype(np.float32)
    v = np.ascontiguousarray(np.broadcast_to(np.asarray(vrms, np.float32), (len(pts), len(time))))
    args = dict(kernel_args)
    args["threads"] = 1
    args.pop("backend", None)
    ap = float(args.get("aperture", np.inf))
    d = np.hypot(pts[:, 0, None] - mx[None], pts[:, 1, None] - my[None])
    n_eval = int((d <= ap).sum()) * int((np.asarray(time) > 0).sum())
    best = np.inf
    for _ in range(repeat):
        t0 = _time.perf_counter()
        pstm(data, dt_in, sx, sy, rx, ry, pts, time, v, dims=3, dx_aa=bin_inline, **args)
        best = min(best, _time.perf_counter() - t0)
    if n_eval == 0 or best <= 0:
        raise SeisError("rate calibration: no evaluation inside the aperture; give --rate")
    return n_eval / best


def _lpt_balance(work: np.ndarray, n_ranks: int) -> float:
    """Max / mean work per rank under the longest-first assignment (1 = perfect)."""
    if len(work) == 0:
        return 1.0
    per = [float(work[ids].sum()) for ids in assign_longest_first(list(work), n_ranks)]
    mean = float(np.mean(per))
    return max(per) / mean if mean > 0 else 1.0


def _shard_cuts(work: np.ndarray, traces: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Whole shots (in shot order) cut into ``k`` runs of about equal work: (start, end)."""
    cum = np.cumsum(work)
    total = cum[-1] if len(cum) else 0.0
    cuts = [0]
    for m in range(1, k):
        c = int(np.searchsorted(cum, m * total / k)) + 1
        if cuts[-1] < c < len(work):
            cuts.append(c)
    cuts.append(len(work))
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def dry_run(survey, velocity, *, ranks: int, index=None, bin_grid=None, grid=None,
            tmax: float | None = None, dt: float | None = None, gathers: bool = False,
            offset_classes_spec=None, aperture: float = float("inf"), max_angle: float = 60.0,
            taper: float = 0.1, antialias: bool = True, weights: str = "spreading+obliquity",
            interp: str = "linear", stretch_mute: float | None = None,
            mem_per_rank: str | int = "2G", strategy: str = "auto", tile: int | None = None,
            units: int = 256, rate: float | None = None, chunk: int = 1 << 20,
            exact_limit: int = 2_000_000, log: Callable[[str], None] | None = None) -> dict:
    """Plan a PSTM job for ``ranks`` ranks without computing it (see the module text).

    Parameters are those of :func:`seis_hpc.migration.job.migrate` (``survey`` a SEG-Y/SU
    file or a trace index, blocked or not; ``velocity`` a vrms file), plus:

    ranks : int
        MPI ranks of the planned job.
    rate : float, optional
        Kernel rate (evaluations/s per core); default measured here by
        :func:`calibrate_rate`.
    chunk : int
        Rows of the index read at a time.
    exact_limit : int
        Up to this many traces the bins in aperture are counted per trace
        (:func:`~seis_hpc.engine.decomposition.bins_in_aperture`, 243 grid rows a trace at
        3 km and 25 m); above it, from each midpoint's nearest bin centre (one look-up a
        trace), scaled by the exact / binned ratio of a sample of 200,000 traces (whose
        binned count's relative error is ``evaluations_sample_relative_error``).
    log : callable, optional
        Progress lines.

    Returns
    -------
    dict
        ``traces, strategy, tile, units, evaluations, max_rank_memory_bytes,
        rank0_memory_bytes, read_bytes, reads_per_trace, core_hours, rate, rate_source,
        balance`` and the details (see ``seis-hpc pstm --help``).
    """
    from seis_hpc.migration.job import offset_edges, output_times, select_grid
    from seis_hpc.migration.pstm import PstmParams
    from seis_hpc.velocity.model import open_vrms

    t_start_wall = _time.perf_counter()
    if ranks < 1:
        raise SeisError(f"--ranks must be >= 1 (got {ranks})")
    if rate is not None and not rate > 0:
        raise SeisError(f"--rate must be > 0 evaluations/s (got {rate})")
    if strategy not in ("auto", "shard", "tile"):
        raise SeisError(f"unknown strategy {strategy!r} (auto, shard or tile)")
    if not chunk >= 1:
        raise SeisError(f"chunk must be >= 1 row (got {chunk})")
    budget = parse_size(mem_per_rank)
    params = PstmParams(aperture=aperture, max_angle=max_angle, taper=taper,
                        antialias=antialias, weights=weights, interp=interp,
                        stretch_mute=stretch_mute)
    idx, full_grid, src = _open(survey, index, bin_grid)
    g = select_grid(full_grid, grid)
    ns = int(idx.attrs["ns"])
    trace_bytes = int(idx.attrs.get("trace_bytes", 240 + 4 * ns))
    n_in = int(idx.attrs["n_traces"])
    if n_in == 0:
        raise SeisError("no traces to migrate", survey)
    # offset-class edges need the largest offset first (one pass over one column)
    edges = None
    if gathers or offset_classes_spec:
        top = 0.0
        for cols in src.chunks(["offset"], chunk):
            top = max(top, float(np.abs(cols["offset"]).max()))
        edges = offset_edges(offset_classes_spec or "8", np.array([top]))
    n_classes = 0 if edges is None else len(edges) - 1
    t_axis = output_times(idx, tmax, dt, n_bins=g.n_bins, n_classes=n_classes,
                          mem_per_rank=budget)
    nt = len(t_axis)
    nt_pos = int((t_axis > 0).sum())
    small = select_grid(g, None if g.is_2d else
                        [g.inline0, g.inline0, g.crossline0, g.crossline0])
    vel = open_vrms(velocity, small, t_axis, validate=True)
    params.check(small.points()[:1], t_axis, vel.window(0, 1, 0, 1), float(idx.attrs["dt"]),
                 float(idx.attrs["t_start"]))

    # -- one streaming pass: evaluations, fold map, work per shot ---------------------------
    t_max = max(TILE_CANDIDATES[0], tile or 0)
    reach = aperture + 0.5 * math.hypot(t_max * g.bin_crossline, t_max * g.bin_inline)
    if np.isfinite(aperture):
        mi = int(math.ceil(reach / g.bin_crossline)) + 1
        mj = int(math.ceil(reach / g.bin_inline)) + 1
    else:
        mi = mj = 0
    if g.is_2d:
        mi = 0
    fold = _FoldMap(g, mi, mj)
    exact = n_in <= exact_limit
    # above exact_limit traces: bins in aperture of the trace's nearest bin centre (one look-up
    # a trace), checked against the exact count on every sample_every-th trace
    reached = None if exact else fold.bins_reached(aperture)
    sample_every = max(1, n_in // 200_000)
    sample_exact = sample_binned = 0
    pairs = 0
    n_tr = 0
    shot_work = np.zeros(0)
    shot_tr = np.zeros(0, np.int64)
    names = ["mx", "my", "source_id"] + (["offset"] if edges is not None else [])
    n_cls = max(n_classes, 1)
    chunk_rss = 0
    for cols in src.chunks(names, chunk):
        mx, my = cols["mx"], cols["my"]
        fi, fj = grid_coords(g, mx, my)
        if g.is_2d:
            fi = np.zeros_like(fi)
        if exact:
            w = bins_in_aperture(g, mx, my, aperture)
        else:
            w = fold.lookup(reached, fi, fj)
            # the sample: rows n_tr + k with (n_tr + k) % sample_every == 0
            first = (-n_tr) % sample_every
            sample_exact += int(bins_in_aperture(g, mx[first::sample_every],
                                                 my[first::sample_every], aperture).sum())
            sample_binned += int(w[first::sample_every].sum())
        pairs += int(w.sum())
        fold.add(fi, fj)
        shot = np.asarray(cols["source_id"], np.int64)
        if edges is not None:
            cls = offset_classes(np.abs(cols["offset"]), edges)
            shot = shot * n_cls + np.maximum(cls, 0)
        top = int(shot.max()) + 1
        if top > len(shot_tr):
            shot_work = np.concatenate([shot_work, np.zeros(top - len(shot_work))])
            shot_tr = np.concatenate([shot_tr, np.zeros(top - len(shot_tr), np.int64)])
        shot_work += np.bincount(shot, np.maximum(w, 1e-3), minlength=len(shot_work))
        shot_tr += np.bincount(shot, minlength=len(shot_tr))
        n_tr += len(mx)
        chunk_rss = max(chunk_rss, _peak_rss())
        if log is not None and (n_tr // chunk) % 16 == 0:
            log(f"dry run: {n_tr:,} of {n_in:,} traces read")
    if exact:
        ev_method, ev_check = "exact, per trace", 0.0
    else:
        ev_method = (f"midpoints at their nearest bin centre, scaled by the exact / binned "
                     f"ratio of every {sample_every}-th trace")
        ev_check = (sample_binned - sample_exact) / sample_exact if sample_exact else 0.0
        if sample_binned:
            pairs = int(round(pairs * sample_exact / sample_binned))
        del reached
    evaluations = pairs * nt_pos

    # -- memory of each strategy, as plan_job counts it, with per-unit geometry -------------
    img = image_bytes(g.n_bins, nt, n_classes)
    one = image_bytes(g.n_bins, nt)
    k_units = int(max(1, min(units, n_tr // 32)))
    # shard units: runs of whole shots of equal work, per offset class
    shard_w, shard_n = [], []
    if edges is None:
        runs = [(shot_work, shot_tr)]
    else:
        runs = [(shot_work[c::n_cls], shot_tr[c::n_cls]) for c in range(n_cls)]
    for sw, st in runs:
        keep = st > 0
        sw, st = sw[keep], st[keep]
        if not len(sw):
            continue
        for a, b in _shard_cuts(sw, st, min(k_units, len(sw))):
            shard_w.append(float(sw[a:b].sum()))
            shard_n.append(int(st[a:b].sum()))
    max_shard_tr = max(shard_n)
    bytes_shard = (BASE_BYTES + img + 2 * one + 4 * max_shard_tr * ns + REDUCE_SLAB_BYTES
                   + UNIT_TRACE_BYTES * max_shard_tr)

    tile_cache: dict[int, tuple] = {}

    def tiles_of(t: int):
        """Windows, centres, traces per tile of edge ``t`` (counted on the fold map)."""
        if t not in tile_cache:
            from seis_hpc.engine.decomposition import tile_grid

            wins = np.array(tile_grid(g, t), np.int64).reshape(-1, 4)
            ci = (wins[:, 0] + wins[:, 1] - 1) / 2.0
            cj = (wins[:, 2] + wins[:, 3] - 1) / 2.0
            hd = 0.5 * np.hypot((wins[:, 1] - wins[:, 0] - 1) * g.bin_crossline,
                                (wins[:, 3] - wins[:, 2] - 1) * g.bin_inline)
            if np.isfinite(aperture):
                # as tile_traces: aperture + half the tile's own diagonal, a hair of slack
                ntr = fold.disc_counts(ci, cj, aperture + hd + 1e-6 * max(1.0, aperture))
            else:
                ntr = np.full(len(wins), n_tr, np.int64)
            tile_cache[t] = (wins, ntr)
        return tile_cache[t]

    def tile_bytes(t: int) -> int:
        nb = t if g.is_2d else t * t
        return (BASE_BYTES + image_bytes(nb, nt, n_classes) + 2 * image_bytes(nb, nt)
                + 4 * TRACE_CHUNK * ns + UNIT_TRACE_BYTES * int(tiles_of(t)[1].max()))

    if tile is None:
        tile_e = 1
        for t in TILE_CANDIDATES[:-1]:
            if tile_bytes(t) <= budget:
                tile_e = t
                break
    else:
        if tile < 1:
            raise SeisError(f"tile size must be >= 1 bin (got {tile})")
        tile_e = int(tile)
    bytes_tile = tile_bytes(tile_e)
    if strategy == "auto":
        if bytes_shard <= budget:
            chosen, reason = "shard", "a rank holds the whole image: input sharding + reduction"
        else:
            chosen, reason = "tile", "the image does not fit one rank: output tiles"
    else:
        chosen, reason = strategy, "chosen by the user"
    if chosen == "tile" and bytes_tile > budget:
        raise SeisError(f"memory per rank {format_size(budget)} is too small even for a "
                        f"{tile_e}-bin tile ({format_size(bytes_tile)}); raise --mem-per-rank")

    alternatives: list[dict] = []
    if chosen == "shard":
        unit_work = np.asarray(shard_w) * nt_pos
        unit_traces = np.asarray(shard_n, np.int64)
        read_traces = n_tr
        max_rank = bytes_shard
        parts = {"base": BASE_BYTES, "image_and_gathers": img, "kernel_output_and_velocity":
                 2 * one, "unit_traces_samples": 4 * max_shard_tr * ns,
                 "reduction_slab": REDUCE_SLAB_BYTES,
                 "unit_geometry": UNIT_TRACE_BYTES * max_shard_tr}
        n_units = len(unit_work)
    else:
        wins, ntr_tile = tiles_of(tile_e)
        cov = fold.coverage(aperture)  # traces within the aperture of every bin
        if g.is_2d:
            cov = cov.reshape(1, -1)
        pref = np.zeros((cov.shape[0] + 1, cov.shape[1] + 1))
        pref[1:, 1:] = np.cumsum(np.cumsum(cov, axis=0), axis=1)

        def tile_work(w: np.ndarray) -> np.ndarray:
            i0, i1, j0, j1 = w.T
            return (pref[i1, j1] - pref[i0, j1] - pref[i1, j0] + pref[i0, j0]) * nt_pos

        unit_work = tile_work(wins)
        # smaller tiles that fit: more units (balance), more re-reads
        for t in sorted({tt for tt in TILE_CANDIDATES if 16 <= tt <= 64} | {tile_e},
                        reverse=True):
            if tile_bytes(t) > budget:
                continue
            w_t, n_t = tiles_of(t)
            alternatives.append({"tile": int(t), "units": len(w_t),
                                 "max_rank_memory_bytes": int(tile_bytes(t)),
                                 "reads_per_trace": float(n_t.sum()) / max(n_tr, 1),
                                 "balance": _lpt_balance(tile_work(w_t), ranks)})
        unit_traces = ntr_tile
        read_traces = int(ntr_tile.sum())
        max_rank = bytes_tile
        nb = tile_e if g.is_2d else tile_e * tile_e
        parts = {"base": BASE_BYTES, "tile_image_and_gathers": image_bytes(nb, nt, n_classes),
                 "kernel_output_and_velocity": 2 * image_bytes(nb, nt),
                 "trace_chunk": 4 * TRACE_CHUNK * ns,
                 "unit_geometry": UNIT_TRACE_BYTES * int(ntr_tile.max())}
        n_units = len(wins)
        del cov, pref
    balance = _lpt_balance(np.asarray(unit_work, np.float64), ranks)
    # rank 0 plans as this process just did (its peak memory, measured), then computes units
    # like any rank; counted as if the planning memory were kept (an upper bound)
    planner = max(chunk_rss, _peak_rss())
    if rate is None:
        v_t = np.asarray(vel.window(0, 1, 0, 1), np.float32).reshape(-1)
        kargs = replace(params, threads=None).kernel_args()
        rate_v = calibrate_rate(kargs, v_t, t_axis, float(idx.attrs["dt"]), ns, g.bin_inline,
                                g.bin_crossline)
        rate_source = "measured here (seis_hpc.migration.dryrun.calibrate_rate, 1 thread)"
    else:
        rate_v, rate_source = float(rate), "given (--rate)"
    core_hours = evaluations / rate_v / 3600.0
    per_rank_work = float(np.sum(unit_work)) / ranks
    wall_h = core_hours / ranks * balance if ranks else 0.0
    out = {
        "traces": int(n_tr), "ranks": int(ranks), "strategy": chosen, "reason": reason,
        "tile": int(tile_e) if chosen == "tile" else 0, "units": int(n_units),
        "evaluations": int(evaluations),
        "evaluation": "(trace, output sample) pairs inside the aperture, output t > 0",
        "evaluations_method": ev_method,
        "evaluations_sample_relative_error": float(ev_check),
        "trace_bin_pairs": int(pairs), "output_samples": int(nt),
        "grid": {"n_inline": g.n_inline, "n_crossline": g.n_crossline,
                 "bin_inline_m": g.bin_inline, "bin_crossline_m": g.bin_crossline,
                 "n_bins": g.n_bins},
        "image_bytes": int(img),
        "max_rank_memory_bytes": int(max_rank),
        "rank_memory_parts": {k: int(v) for k, v in parts.items()},
        "rank0_memory_bytes": int(max_rank + planner),
        "rank0_planning_bytes": int(planner),
        "memory_per_rank_budget_bytes": int(budget),
        "bytes_shard": int(bytes_shard), "bytes_tile": int(bytes_tile),
        "max_unit_traces": int(np.max(unit_traces)),
        "read_bytes": int(read_traces) * trace_bytes,
        "input_bytes": int(n_tr) * trace_bytes,
        "reads_per_trace": float(read_traces) / max(n_tr, 1),
        "rate_evaluations_per_s_per_core": float(rate_v), "rate_source": rate_source,
        "core_hours": float(core_hours),
        "balance": float(balance),
        "wall_hours_at_balance": float(wall_h),
        "mean_rank_evaluations": float(per_rank_work),
        "tile_alternatives": alternatives,
        "planning_seconds": round(_time.perf_counter() - t_start_wall, 2),
        "planner_peak_rss_bytes": int(planner),
    }
    return out


def describe(res: dict) -> str:
    """The dry run as text lines."""
    gb = 1e9
    lines = [
        f"dry run: {res['traces']:,} traces on {res['ranks']} ranks",
        f"  strategy {res['strategy']}" + (f", {res['tile']} x {res['tile']} bin tiles"
                                             if res["strategy"] == "tile" else "")
        + f" ({res['reason']}), {res['units']:,} units",
        f"  image {res['grid']['n_inline']} x {res['grid']['n_crossline']} bins x "
        f"{res['output_samples']} samples = {res['image_bytes'] / gb:.2f} GB",
        f"  evaluations {res['evaluations']:.4g} ({res['evaluation']})",
        f"  memory per rank: max {format_size(res['max_rank_memory_bytes'])}, rank 0 "
        f"{format_size(res['rank0_memory_bytes'])} (budget "
        f"{format_size(res['memory_per_rank_budget_bytes'])}); largest unit "
        f"{res['max_unit_traces']:,} traces",
        f"  reads {res['read_bytes'] / gb:.4g} GB ({res['reads_per_trace']:.2f} reads per "
        f"trace of {res['input_bytes'] / gb:.4g} GB)",
        f"  core-hours {res['core_hours']:.4g} at {res['rate_evaluations_per_s_per_core']:.3g} "
        f"evaluations/s/core ({res['rate_source']})",
        f"  balance (max/mean work per rank) {res['balance']:.3f}: about "
        f"{res['wall_hours_at_balance']:.3g} h on {res['ranks']} ranks",
    ]
    for a in res.get("tile_alternatives", []):
        lines.append(f"  --tile {a['tile']}: {a['units']:,} units, balance {a['balance']:.3f}, "
                     f"{a['reads_per_trace']:.1f} reads per trace, max "
                     f"{format_size(a['max_rank_memory_bytes'])} per rank")
    lines += [
        f"  planning {res['planning_seconds']:.1f} s, peak memory "
        f"{format_size(res['planner_peak_rss_bytes'])}",
    ]
    return "\n".join(lines)

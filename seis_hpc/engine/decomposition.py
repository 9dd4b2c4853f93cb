"""Who computes what: work units for PSTM as plain objects, testable without MPI.

Two strategies split a migration into independent *work units*:

``shard``
    Input sharding. Each unit is a set of traces (whole shot records where the balance allows)
    and contributes to the whole image; every rank accumulates a full-size partial image and
    the partial images are summed by an MPI reduction at the end. Needs one image (plus its
    gathers) per rank.
``tile``
    Output tiles. Each unit is a block of ``tile x tile`` bins (inline x crossline; CMPs in
    2D) with the traces whose aperture reaches it: midpoint within ``aperture`` plus half the
    tile's diagonal of the tile centre. A rank only ever holds one tile.

With image gathers, traces are further split into offset classes; in ``shard`` mode a unit
holds traces of one class, in ``tile`` mode a unit computes all classes of its tile.

The estimated work of a trace is the number of image bins within its aperture (times the
number of output samples, a common factor left out). :func:`plan_job` picks the strategy from
a per-rank memory budget. Nothing here imports MPI.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid, offset_classes

# Interpreter, libraries and small buffers of one rank (bytes), counted against the budget.
BASE_BYTES = 256 << 20
# Traces read at a time when a tile's input set is large (bounds the input buffer).
TRACE_CHUNK = 4096
# The reduction of partial images goes in slabs of about this size (bytes).
REDUCE_SLAB_BYTES = 32 << 20


def parse_size(text: str | int) -> int:
    """Bytes in a size such as ``"2G"``, ``"512M"``, ``"1.5GiB"``, ``"800k"`` or ``1000``.

    Suffixes are binary (K = 1024). Raises :class:`SeisError` for anything else.
    """
    if isinstance(text, int | np.integer):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
    if not m:
        raise SeisError(f"memory size {text!r} not understood (use e.g. 2G, 512M)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def format_size(n: float) -> str:
    """``n`` bytes as a short human text (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# -- geometry helpers --------------------------------------------------------------------------
def grid_coords(grid: BinGrid, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (row, column) indices into ``grid.shape`` of world points x, y (m).

    The row is the inline index (0 in 2D), the column the crossline (CMP) index.
    """
    il, xl = grid.world_to_grid(x, y)
    return il - grid.inline0, xl - grid.crossline0


def bins_in_aperture(grid: BinGrid, x, y, aperture: float) -> np.ndarray:
    """Number of bins of ``grid`` whose centre lies within ``aperture`` m of each point (x, y).

    Exact for a disc of radius ``aperture`` on the rotated grid, clipped to the grid. Used as
    the work estimate of a trace at midpoint (x, y).
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    ni, nj = grid.n_inline, grid.n_crossline
    diag = math.hypot(ni * grid.bin_crossline, nj * grid.bin_inline)
    if not np.isfinite(aperture):
        return np.full(x.shape, ni * nj, dtype=np.int64)
    fi, fj = grid_coords(grid, x, y)
    if grid.is_2d:
        fi = np.zeros_like(fi)
    # Points further than one grid diagonal off the grid see nothing; clip for the loop bounds.
    reach_i = int(math.floor(aperture / grid.bin_crossline)) + 1
    count = np.zeros(x.shape, dtype=np.int64)
    if aperture > 4 * diag:
        reach_i = ni
    base = np.floor(fi).astype(np.int64)
    lo_k = max(-reach_i, -ni - 1)
    for k in range(lo_k, reach_i + 2):
        i = base + k
        ok = (i >= 0) & (i < ni)
        dy = (i - fi) * grid.bin_crossline
        h2 = aperture * aperture - dy * dy
        ok &= h2 >= 0
        hw = np.sqrt(np.where(ok, h2, 0.0)) / grid.bin_inline
        jlo = np.maximum(np.ceil(fj - hw), 0)
        jhi = np.minimum(np.floor(fj + hw), nj - 1)
        count += np.where(ok, np.maximum(jhi - jlo + 1, 0), 0).astype(np.int64)
    return count


# -- work units --------------------------------------------------------------------------------
@dataclass
class WorkUnit:
    """One independent piece of a migration.

    Attributes
    ----------
    uid : int
        Unit number, 0-based, stable for a given plan (checkpoint journals refer to it).
    traces : numpy.ndarray
        Trace numbers (0-based, in file order) the unit migrates.
    work : float
        Estimated work: sum over its traces of the bins within aperture (tile: inside the tile).
    window : tuple of int
        ``(i0, i1, j0, j1)``: the block of grid rows (inline index) and columns (crossline
        index), half open, that the unit writes to.
    offset_class : int
        Offset class of all its traces (shard mode with gathers), -1 for mixed or none.
    """

    uid: int
    traces: np.ndarray
    work: float
    window: tuple[int, int, int, int]
    offset_class: int = -1

    @property
    def n_traces(self) -> int:
        """Number of traces."""
        return int(len(self.traces))

    @property
    def n_bins(self) -> int:
        """Number of bins in :attr:`window`."""
        i0, i1, j0, j1 = self.window
        return (i1 - i0) * (j1 - j0)

    def __repr__(self) -> str:
        i0, i1, j0, j1 = self.window
        cls = f", class {self.offset_class}" if self.offset_class >= 0 else ""
        return (f"WorkUnit({self.uid}: {self.n_traces} traces, rows {i0}:{i1}, cols {j0}:{j1}, "
                f"work {self.work:.3g}{cls})")


def window_of(grid: BinGrid, fi: np.ndarray, fj: np.ndarray, reach: float
              ) -> tuple[int, int, int, int]:
    """Grid block covering every bin within ``reach`` m of the points (fi, fj) (grid indices)."""
    if len(fi) == 0:
        return (0, 0, 0, 0)
    if not np.isfinite(reach):
        return (0, grid.n_inline, 0, grid.n_crossline)
    ri = reach / grid.bin_crossline
    rj = reach / grid.bin_inline
    i0 = max(0, int(math.ceil(fi.min() - ri - 1e-9)))
    i1 = min(grid.n_inline, int(math.floor(fi.max() + ri + 1e-9)) + 1)
    j0 = max(0, int(math.ceil(fj.min() - rj - 1e-9)))
    j1 = min(grid.n_crossline, int(math.floor(fj.max() + rj + 1e-9)) + 1)
    if grid.is_2d:
        i0, i1 = 0, 1
    if i1 <= i0 or j1 <= j0:
        return (0, 0, 0, 0)
    return (i0, i1, j0, j1)


def shard_traces(grid: BinGrid, mx, my, shot, aperture: float, n_units: int,
                 trace_order=None, offset_class=None) -> list[WorkUnit]:
    """Split traces into about ``n_units`` units of equal estimated work.

    Traces are taken shot by shot (in ``trace_order`` within a shot, e.g. by byte position);
    a cut between units moves to the nearest shot boundary when that costs less than a quarter
    of a unit's work, so units are whole shot records where the balance allows.

    Parameters
    ----------
    grid : BinGrid
        Image grid.
    mx, my : array_like
        Midpoint coordinates (m) of every trace.
    shot : array_like
        Shot (source) number of every trace.
    aperture : float
        Migration aperture (m), ``inf`` for none.
    n_units : int
        Target number of units (per offset class when ``offset_class`` is given).
    trace_order : array_like, optional
        Sort key within a shot (default: trace number).
    offset_class : array_like, optional
        Offset class of every trace (-1: none); units never mix classes.

    Returns
    -------
    list of WorkUnit
        Every trace appears in exactly one unit; traces with no bin in aperture too (work 0).
    """
    mx = np.asarray(mx, dtype=np.float64)
    my = np.asarray(my, dtype=np.float64)
    n = len(mx)
    shot = np.asarray(shot)
    key2 = np.arange(n) if trace_order is None else np.asarray(trace_order)
    cls = np.full(n, -1, np.int64) if offset_class is None else np.asarray(offset_class)
    work = bins_in_aperture(grid, mx, my, aperture).astype(np.float64)
    fi, fj = grid_coords(grid, mx, my)
    units: list[WorkUnit] = []
    for c in np.unique(cls):
        sel = np.flatnonzero(cls == c)
        sel = sel[np.lexsort((key2[sel], shot[sel]))]
        w = work[sel]
        # Traces with no work still need a unit so that every trace is assigned exactly once.
        cum = np.cumsum(np.maximum(w, 1e-3))
        total = cum[-1]
        k = int(max(1, min(n_units, len(sel))))
        target = total / k
        new_shot = np.flatnonzero(np.r_[True, shot[sel][1:] != shot[sel][:-1]])
        cuts = [0]
        for m in range(1, k):
            c_at = int(np.searchsorted(cum, m * target))
            b = new_shot[np.clip(np.searchsorted(new_shot, c_at), 0, len(new_shot) - 1)]
            bprev = new_shot[max(np.searchsorted(new_shot, c_at) - 1, 0)]
            for cand in sorted((b, bprev), key=lambda t: abs(t - c_at)):
                lost = abs((cum[cand - 1] if cand > 0 else 0.0) - m * target)
                if lost <= 0.25 * target:
                    c_at = int(cand)
                    break
            if c_at > cuts[-1]:
                cuts.append(c_at)
        cuts.append(len(sel))
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            if b <= a:
                continue
            ids = np.sort(sel[a:b])
            units.append(WorkUnit(len(units), ids, float(work[ids].sum()),
                                  window_of(grid, fi[ids], fj[ids], aperture), int(c)))
    return units


def tile_grid(grid: BinGrid, tile: int | tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Blocks ``(i0, i1, j0, j1)`` of ``tile`` inlines x ``tile`` crosslines covering the grid.

    Every bin lies in exactly one block; edge blocks are smaller. In 2D the blocks are runs of
    ``tile`` CMPs.
    """
    ti, tj = (tile, tile) if isinstance(tile, int | np.integer) else tile
    if ti < 1 or tj < 1:
        raise SeisError(f"tile size must be >= 1 bin (got {tile})")
    if grid.is_2d:
        ti = 1
    out = []
    for i0 in range(0, grid.n_inline, ti):
        for j0 in range(0, grid.n_crossline, tj):
            out.append((i0, min(i0 + ti, grid.n_inline), j0, min(j0 + tj, grid.n_crossline)))
    return out


def tile_traces(grid: BinGrid, window: tuple[int, int, int, int], mx, my, aperture: float
                ) -> np.ndarray:
    """Traces whose aperture can reach the tile ``window``.

    A trace belongs to the tile when its midpoint lies within ``aperture`` plus half the tile
    diagonal of the tile centre: a superset of the traces within ``aperture`` of some bin of
    the tile.
    """
    mx = np.asarray(mx, dtype=np.float64)
    if not np.isfinite(aperture):
        return np.arange(len(mx))
    cx, cy, radius = tile_disc(grid, window, aperture)
    d = np.hypot(mx - cx, np.asarray(my, dtype=np.float64) - cy)
    return np.flatnonzero(d <= radius)


def tile_disc(grid: BinGrid, window: tuple[int, int, int, int], aperture: float
              ) -> tuple[float, float, float]:
    """Centre (x, y) and radius (m) of the disc of midpoints whose aperture can reach the
    tile ``window`` (:func:`tile_traces`): ``aperture`` + half the tile's diagonal."""
    i0, i1, j0, j1 = window
    ci, cj = (i0 + i1 - 1) / 2.0, (j0 + j1 - 1) / 2.0
    cx, cy = grid.grid_to_world(grid.inline0 + ci, grid.crossline0 + cj)
    half_diag = 0.5 * math.hypot((i1 - i0 - 1) * grid.bin_crossline,
                                 (j1 - j0 - 1) * grid.bin_inline)
    # A hair of slack so that a trace exactly at the aperture is never lost to rounding.
    return float(cx), float(cy), aperture + half_diag + 1e-6 * max(1.0, aperture)


def tile_units(grid: BinGrid, mx, my, aperture: float, tile: int) -> list[WorkUnit]:
    """One unit per tile (see :func:`tile_grid`) with its traces (see :func:`tile_traces`).

    The work of a tile is estimated as its traces times its bins (an upper bound). Tiles that
    no trace reaches are kept (they are written as zeros).
    """
    units = []
    for w in tile_grid(grid, tile):
        ids = tile_traces(grid, w, mx, my, aperture)
        nb = (w[1] - w[0]) * (w[3] - w[2])
        units.append(WorkUnit(len(units), ids, float(len(ids) * nb), w, -1))
    return units


def assign_longest_first(work: Sequence[float], n_ranks: int) -> list[list[int]]:
    """Longest-processing-time assignment: the largest item to the least loaded rank.

    A pure function, used for PSTM work units (:func:`assign_static`) and for the gathers of a
    flow step (:mod:`seis_hpc.engine.gather_run`).

    Parameters
    ----------
    work : sequence of float
        Estimated work of each item (any unit: bins x traces, trace counts...).
    n_ranks : int
        Number of ranks (>= 1).

    Returns
    -------
    list of list of int
        For each rank, the positions in ``work`` of its items, in order of assignment
        (largest first; equal work in item order).
    """
    load = np.zeros(n_ranks)
    out: list[list[int]] = [[] for _ in range(n_ranks)]
    for i in sorted(range(len(work)), key=lambda i: (-work[i], i)):
        r = int(np.argmin(load))
        out[r].append(i)
        load[r] += work[i]
    return out


def assign_static(units: list[WorkUnit], n_ranks: int) -> list[list[int]]:
    """Longest-processing-time assignment of units to ranks (unit ids, largest first).

    The dynamic scheduler hands out units in the same order (largest first) as ranks become
    free; this static version gives the balance figure that planning reports and tests check.
    """
    return [[units[i].uid for i in mine]
            for mine in assign_longest_first([u.work for u in units], n_ranks)]


def balance(units: list[WorkUnit], n_ranks: int) -> float:
    """Max over mean of the estimated work per rank under :func:`assign_static` (1 = perfect)."""
    works = {u.uid: u.work for u in units}
    per = [sum(works[i] for i in ids) for ids in assign_static(units, n_ranks)]
    mean = float(np.mean(per))
    return float(max(per) / mean) if mean > 0 else 1.0


# -- the plan ----------------------------------------------------------------------------------
@dataclass
class Plan:
    """The decomposition of one PSTM job: strategy, units, and the memory it needs per rank.

    Attributes
    ----------
    strategy : str
        ``"shard"`` (input sharding + reduction) or ``"tile"`` (output tiles).
    units : list of WorkUnit
        The work units; :meth:`order` gives the order the scheduler hands them out.
    grid : BinGrid
        Image grid.
    nt : int
        Output samples per trace.
    n_classes : int
        Offset classes of the image gathers (0: no gathers).
    tile : int
        Tile edge (bins) in ``tile`` mode, 0 otherwise.
    bytes_shard, bytes_tile : int
        Estimated memory per rank of each strategy (bytes).
    budget : int
        The per-rank memory budget the choice was made for (bytes).
    reason : str
        Why this strategy.
    """

    strategy: str
    units: list[WorkUnit]
    grid: BinGrid
    nt: int
    n_classes: int = 0
    tile: int = 0
    bytes_shard: int = 0
    bytes_tile: int = 0
    budget: int = 0
    reason: str = ""
    extra: dict = field(default_factory=dict)

    def order(self) -> list[int]:
        """Unit numbers, largest estimated work first (ties by number): the hand-out order."""
        return [u.uid for u in sorted(self.units, key=lambda u: (-u.work, u.uid))]

    @property
    def n_traces_total(self) -> int:
        """Traces over all units (a trace counts once per tile it reaches)."""
        return int(sum(u.n_traces for u in self.units))

    def describe(self, n_ranks: int | None = None) -> str:
        """A few lines for the log: strategy, units, memory, balance."""
        works = np.array([u.work for u in self.units]) if self.units else np.zeros(1)
        lines = [
            f"plan: {self.strategy} ({self.reason})",
            f"  image {self.grid.describe()}, {self.nt} samples"
            + (f", {self.n_classes} offset classes" if self.n_classes else ""),
            f"  {len(self.units)} units"
            + (f" of {self.tile} x {self.tile} bins" if self.strategy == "tile" else "")
            + f", {self.n_traces_total} traces, work per unit min/mean/max "
            f"{works.min():.3g}/{works.mean():.3g}/{works.max():.3g}",
            f"  memory per rank: shard "
            f"{'>= ' if self.extra.get('bytes_shard_bound') else ''}"
            f"{format_size(self.bytes_shard)}, tile "
            f"{format_size(self.bytes_tile)}, budget {format_size(self.budget)}",
        ]
        if n_ranks:
            lines.append(f"  static balance on {n_ranks} ranks (max/mean work): "
                         f"{balance(self.units, n_ranks):.3f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Plan({self.strategy}, {len(self.units)} units, grid {self.grid.shape} x "
                f"{self.nt}, classes {self.n_classes}, tile {self.tile})")


def image_bytes(n_bins: int, nt: int, n_classes: int = 0) -> int:
    """Bytes of a float32 image of ``n_bins`` x ``nt`` and its ``n_classes`` gathers."""
    return 4 * n_bins * nt * (1 + n_classes)


# Source and receiver coordinates of a trace (sx, sy, rx, ry as float64).
GEOMETRY_BYTES_PER_TRACE = 32
# A rank reads the coordinates of a unit's traces with the unit (issue 19), never every
# trace's: the plan counts, per trace of the largest unit, its number (int64) and its
# coordinates, so a rank's memory is bounded by one unit's traces, not by the survey.
UNIT_TRACE_BYTES = GEOMETRY_BYTES_PER_TRACE + 8


def tile_rank_bytes(grid: BinGrid, tile: int, nt: int, n_classes: int, ns: int,
                    unit_traces: int) -> int:
    """Memory (bytes) of a rank computing one ``tile``-bin tile whose unit reads
    ``unit_traces`` traces of ``ns`` samples: its image (and offset classes), the kernel's
    buffers, a chunk of traces and the unit's trace geometry."""
    nb = tile if grid.is_2d else tile * tile
    return (BASE_BYTES + image_bytes(nb, nt, n_classes) + 2 * image_bytes(nb, nt)
            + 4 * TRACE_CHUNK * ns + UNIT_TRACE_BYTES * unit_traces)


class TileSizer:
    """The tile units of each tile edge (made once each, by ``make_units(edge)``) and the
    memory of a rank computing one tile: what both planners size tiles by."""

    EDGES = (64, 32, 16, 8, 4, 2)  # bins: the largest that fits the budget is taken

    def __init__(self, make_units, grid: BinGrid, nt: int, n_classes: int, ns: int):
        self.make_units, self.grid, self.nt, self.n_classes, self.ns = (
            make_units, grid, nt, n_classes, ns)
        self.tiles: dict[int, list] = {}

    def units(self, t: int) -> list:
        """The units of ``t``-bin tiles."""
        if t not in self.tiles:
            self.tiles[t] = self.make_units(t)
        return self.tiles[t]

    def bytes(self, t: int, reach: int) -> int:
        """Memory of a rank on a ``t``-bin tile, which reaches (about) no more traces than
        the ``reach``-bin tile holding it."""
        most = max((u.n_traces for u in self.units(reach)), default=0)
        return tile_rank_bytes(self.grid, t, self.nt, self.n_classes, self.ns, most)

    def choose(self, budget: int) -> int:
        """The largest tile edge of :attr:`EDGES` that fits ``budget`` bytes, else 1."""
        return next((t for t in self.EDGES if self.bytes(t, 64) <= budget), 1)


def plan_job(grid: BinGrid, nt: int, ns: int, mx, my, shot, aperture: float,
             mem_per_rank: int | str = "2G", *, offset=None, offset_edges=None,
             strategy: str = "auto", tile: int | None = None, n_units: int = 256,
             min_unit_traces: int = 32, trace_order=None) -> Plan:
    """Decompose a PSTM job; pick ``shard`` when a rank can hold the image, else ``tile``.

    Memory per rank (float32 throughout):

    * shard: accumulator image + gathers, the kernel's output for one unit's window and the
      velocity of that window (two more images at most), one unit's traces, a reduction slab,
      plus :data:`BASE_BYTES`;
    * tile: the same for one tile, traces read :data:`TRACE_CHUNK` at a time;
    * both: :data:`UNIT_TRACE_BYTES` per trace of the largest unit (its numbers and
      coordinates; a tile's traces counted for 64-bin tiles while choosing the tile edge,
      an upper bound for smaller ones).

    Parameters
    ----------
    grid : BinGrid
        Image grid.
    nt, ns : int
        Output samples per trace; input samples per trace.
    mx, my, shot : array_like
        Midpoints (m) and shot numbers of the traces.
    aperture : float
        Migration aperture (m), ``inf`` for none.
    mem_per_rank : int or str
        Budget per rank, bytes or a size text (``"2G"``).
    offset, offset_edges : array_like, optional
        Trace offsets (m) and class edges (m) for image gathers.
    strategy : {"auto", "shard", "tile"}
        Force a strategy (``auto``: by the budget).
    tile : int, optional
        Tile edge in bins; default the largest of 64, 32, 16, 8, 4, 2, 1 that fits the budget.
    n_units : int
        Target number of shard units (per offset class), independent of the rank count so
        that a checkpoint can be resumed on a different number of ranks.
    min_unit_traces : int
        Fewest traces per shard unit (bounds the per-unit overhead on small surveys).
    trace_order : array_like, optional
        Read order within a shot (e.g. byte position).
    """
    budget = parse_size(mem_per_rank)
    mx = np.asarray(mx, dtype=np.float64)
    n_tr = len(mx)
    if n_tr == 0:
        raise SeisError("no traces to migrate")
    cls = None
    n_classes = 0
    if offset_edges is not None:
        cls = offset_classes(np.abs(offset), offset_edges)
        n_classes = len(offset_edges) - 1
    k_units = int(max(1, min(n_units, n_tr // max(min_unit_traces, 1))))
    img = image_bytes(grid.n_bins, nt, n_classes)
    one = image_bytes(grid.n_bins, nt)
    shard_units = None
    if strategy in ("auto", "shard"):
        shard_units = shard_traces(grid, mx, my, shot, aperture, k_units, trace_order, cls)
        max_tr = max(u.n_traces for u in shard_units)
    else:
        max_tr = -(-n_tr // k_units)
    bytes_shard = (BASE_BYTES + img + 2 * one + 4 * max_tr * ns + REDUCE_SLAB_BYTES
                   + UNIT_TRACE_BYTES * max_tr)
    sizer = TileSizer(lambda t: tile_units(grid, mx, my, aperture, t), grid, nt, n_classes, ns)
    tiled, tile_bytes = sizer.units, sizer.bytes
    if tile is None:
        tile = sizer.choose(budget)
    bytes_tile = tile_bytes(tile, tile)
    if strategy == "auto":
        if bytes_shard <= budget:
            strategy, reason = "shard", "a rank holds the whole image: input sharding + reduction"
        else:
            strategy, reason = "tile", "the image does not fit one rank: output tiles"
    elif strategy in ("shard", "tile"):
        reason = "chosen by the user"
    else:
        raise SeisError(f"unknown strategy {strategy!r} (auto, shard or tile)")
    if strategy == "tile" and bytes_tile > budget:
        raise SeisError(f"memory per rank {format_size(budget)} is too small even for a "
                        f"{tile}-bin tile ({format_size(bytes_tile)}); raise --mem-per-rank")
    if strategy == "shard":
        units = shard_units if shard_units is not None else shard_traces(
            grid, mx, my, shot, aperture, k_units, trace_order, cls)
        return Plan("shard", units, grid, nt, n_classes, 0, bytes_shard, bytes_tile, budget,
                    reason)
    units = tiled(tile)
    return Plan("tile", units, grid, nt, n_classes, tile, bytes_shard, bytes_tile, budget,
                reason)

"""Velocity analysis: CMP super-gathers, semblance panels, automatic picking, picks tables, Dix.

A processor's velocity analysis, step by step:

1. **Analysis locations** every N CMPs (or every so many metres) where the fold is enough
   (:func:`analysis_locations`); in 3D every N inlines and N crosslines.
2. **Super-gathers**: the traces of a few neighbouring CMPs pooled into one gather
   (:func:`supergather_ids`), so the semblance sees more offsets and less noise.
3. **Semblance panels** over trial stacking velocities
   (:func:`seis_hpc.velocity.semblance.semblance`).
4. **Automatic picking** (:func:`auto_pick`): the path through the panel of highest summed
   coherence under the constraints a processor would impose: Vrms never decreases with time,
   and every interval velocity (Dix) between consecutive picks lies in ``[vint_min,
   vint_max]``; optionally inside a corridor around a reference function. The path is found
   exactly by dynamic programming over time knots; picks are the knots where the path crosses
   a coherent event (a local maximum of the path's semblance above ``min_semblance``).
5. **Picks tables**: editable TOML (:func:`write_picks`, :func:`read_picks`) and Seismic Unix
   par files ``cdp=... tnmo=... vnmo=...`` (:func:`read_su_picks`, :func:`write_su_picks`).
6. **Dix** interval velocities with checks (:func:`dix`).

Times are two-way (s), velocities m/s, distances m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.velocity.picks import PickLocation, Picks, cdp_number

# ---------------------------------------------------------------------------------------------
# Locations and super-gathers


def analysis_locations(grid, fold: np.ndarray, *, every: int | None = None,
                       every_m: float | None = None, min_fold: int = 1
                       ) -> list[tuple[int, int]]:
    """Analysis locations on a regular sub-grid of the bins.

    Parameters
    ----------
    grid : BinGrid
        The survey grid.
    fold : numpy.ndarray
        Traces per bin, shaped ``grid.shape`` (``Survey.fold()``).
    every : int, optional
        Spacing in bins (CMPs along a 2D line; inlines and crosslines in 3D).
    every_m : float, optional
        Spacing in metres instead (converted with the bin sizes, at least one bin).
    min_fold : int
        Locations whose bin holds fewer traces are skipped.

    Returns
    -------
    list of (inline, crossline)
        Bin numbers, inline-major. The sub-grid is centred so the first and last locations
        sit the same distance from the ends of the live part of the grid.
    """
    if every is None and every_m is None:
        raise SeisError("give the analysis spacing: every N CMPs or every_m metres")
    if every is not None and (int(every) != every or every < 1):
        raise SeisError(f"every: analysis spacing must be a whole number >= 1 (got {every})")
    if every_m is not None and not every_m > 0:
        raise SeisError(f"every_m: analysis spacing must be > 0 m (got {every_m})")
    f = np.asarray(fold).reshape(grid.n_inline, grid.n_crossline)
    step_xl = int(every) if every else max(1, int(round(every_m / grid.bin_inline)))
    step_il = int(every) if every else max(1, int(round(every_m / grid.bin_crossline)))
    live = f >= max(min_fold, 1)
    if not live.any():
        raise SeisError(f"no bin has fold >= {min_fold}: nowhere to analyse velocities")
    rows, cols = np.flatnonzero(live.any(axis=1)), np.flatnonzero(live.any(axis=0))

    def axis(lo, hi, step):
        n = (hi - lo) // step
        first = lo + ((hi - lo) - n * step) // 2
        return np.arange(first, hi + 1, step)

    il_axis = [0] if grid.is_2d else axis(rows[0], rows[-1], step_il)
    out = []
    for i in il_axis:
        for j in axis(cols[0], cols[-1], step_xl):
            if live[i, j]:
                out.append((grid.inline0 + int(i), grid.crossline0 + int(j)))
    return out


def choose_supergather(fold: np.ndarray, is_2d: bool, *, min_traces: int = 24,
                       largest: int = 21) -> tuple[int, int]:
    """Super-gather size and minimum bin fold from the fold map.

    The size (CMPs along a 2D line; edge of the square of bins in 3D; odd, at least 3) is the
    smallest that pools ``min_traces`` traces at the typical (median live) fold, so low-fold
    surveys (3D patches, short lines) still give a semblance worth picking instead of
    stopping. The minimum fold of an analysis location is half the typical fold, at most 6.

    Parameters
    ----------
    fold : numpy.ndarray
        Traces per bin.
    is_2d : bool
        2D line.
    min_traces : int
        Traces wanted per super-gather.
    largest : int
        Upper limit of the size.

    Returns
    -------
    (size, min_fold) : (int, int)
    """
    f = np.asarray(fold).ravel()
    live = f[f > 0]
    if live.size == 0:
        raise SeisError("no bin holds a trace: nowhere to analyse velocities")
    typical = float(np.median(live))
    need = min_traces / typical
    n = math.ceil(need) if is_2d else math.ceil(math.sqrt(need))
    size = int(min(max(3, n + (n + 1) % 2), largest if is_2d else max(3, largest // 2 | 1)))
    return size, int(min(6, max(1, typical // 2)))


def supergather_ids(inline: np.ndarray, crossline: np.ndarray, il: int, xl: int, size: int,
                    is_2d: bool) -> np.ndarray:
    """Trace numbers of the super-gather centred on bin (il, xl).

    Parameters
    ----------
    inline, crossline : numpy.ndarray
        Bin numbers of every trace (the survey index's columns).
    il, xl : int
        Centre bin.
    size : int
        CMPs pooled along the line (odd; 2D) or the edge of the square of bins (3D).
    is_2d : bool
        2D line (only crossline = CMP numbers are used).

    Returns
    -------
    numpy.ndarray of int64
        Trace numbers, ascending.
    """
    if int(size) != size or size < 1:
        raise SeisError(f"supergather size must be a whole number >= 1 (got {size})")
    half = (int(size) - 1) // 2
    sel = np.abs(np.asarray(crossline) - xl) <= half
    if not is_2d:
        sel &= np.abs(np.asarray(inline) - il) <= half
    return np.flatnonzero(sel).astype(np.int64)


class Supergathers:
    """:func:`supergather_ids` for many locations: the traces sorted once by bin, so each
    super-gather is a few ranges of that order (one per inline) found by bisection, not a
    pass over every trace of the survey.

    Parameters
    ----------
    inline, crossline : numpy.ndarray
        Bin numbers of every trace.
    is_2d : bool
        2D line (only crossline = CMP numbers are used).
    """

    def __init__(self, inline: np.ndarray, crossline: np.ndarray, is_2d: bool):
        xl = np.asarray(crossline, dtype=np.int64)
        il = np.zeros_like(xl) if is_2d else np.asarray(inline, dtype=np.int64)
        self.order = np.lexsort((xl, il))  # by inline, then crossline; file order within
        self.il, self.xl = il[self.order], xl[self.order]
        self.is_2d = is_2d

    def ids(self, il: int, xl: int, size: int) -> np.ndarray:
        """Trace numbers (ascending) of the super-gather centred on bin (il, xl)."""
        if int(size) != size or size < 1:
            raise SeisError(f"supergather size must be a whole number >= 1 (got {size})")
        half = (int(size) - 1) // 2
        lines = [0] if self.is_2d else range(int(il) - half, int(il) + half + 1)
        parts = []
        for line in lines:
            a = np.searchsorted(self.il, line, side="left")
            b = np.searchsorted(self.il, line, side="right")
            lo = a + np.searchsorted(self.xl[a:b], int(xl) - half, side="left")
            hi = a + np.searchsorted(self.xl[a:b], int(xl) + half, side="right")
            parts.append(self.order[lo:hi])
        return np.sort(np.concatenate(parts)).astype(np.int64)


GATHER_BYTES = 64 << 20  # a group of locations' traces: 56 B a trace (see StreamedSupergathers)


class StreamedSupergathers:
    """The super-gathers of analysis locations, taken in order, from an index whose columns
    are streamed in chunks of rows: nothing is held per trace of the survey (issue 19).

    One pass over the ``inline`` and ``crossline`` columns (``chunk`` rows at a time, 16 B
    a trace read; 8 B in 2D, crosslines only) counts the traces of each bin near the
    locations and notes each chunk's range of bin numbers. Consecutive locations are
    grouped so that their super-gathers' traces fit ``group_bytes`` (56 B a trace: number,
    bin numbers, offset and a :class:`Supergathers` of them); the first location of a group
    asked for reads, in one more pass, the rows of the chunks whose range meets the
    group's, keeping those in its super-gathers (8 B more a trace read, the offsets).
    Passes: one, plus one per group (1.2e6 traces of super-gathers a group with the
    default 64 MB). Memory: one group's traces, one chunk, 8 B per bin of the locations'
    area and 32 B per chunk. A super-gather is the same traces, in the same order, as
    :meth:`Supergathers.ids` over every trace gives.

    Parameters
    ----------
    source : TraceIndex
        With ``inline``, ``crossline`` and ``offset`` columns (on file or in memory).
    is_2d : bool
        2D line (only crossline = CMP numbers are used).
    locations : list of (inline, crossline)
        The analysis locations, in the order they will be asked for.
    size : int
        Super-gather size (bins a side; CMPs in 2D).
    chunk : int, optional
        Rows read at a time (default ``stream_plan.PLAN_CHUNK``, 65,536).
    group_bytes : int, optional
        Most memory of a group's traces (default :data:`GATHER_BYTES`, 64 MB); a location
        with more is a group of its own.
    """

    def __init__(self, source, is_2d: bool, locations, size: int, *,
                 chunk: int | None = None, group_bytes: int | None = None):
        from seis_hpc.engine import stream_plan
        from seis_hpc.io.columns import n_rows

        if int(size) != size or size < 1:
            raise SeisError(f"supergather size must be a whole number >= 1 (got {size})")
        self.source, self.is_2d, self.size = source, bool(is_2d), int(size)
        self.half = (int(size) - 1) // 2
        # half a super-gather across inlines and crosslines (2D: one inline, 0)
        h = self.reach = np.array([0 if self.is_2d else self.half, self.half], np.int64)
        self.chunk = c = max(1, int(chunk or stream_plan.PLAN_CHUNK))
        locs = np.asarray(locations, dtype=np.int64).reshape(-1, 2).copy()
        if self.is_2d:
            locs[:, 0] = 0
        self.locs = locs
        n = n_rows(source)
        self.starts = np.arange(0, n, c, dtype=np.int64)
        nc = self.starts.size
        # each chunk's range of inline and crossline numbers (empty: lo > hi)
        self.lo = np.full((nc, 2), np.iinfo(np.int64).max, dtype=np.int64)
        self.hi = np.full((nc, 2), np.iinfo(np.int64).min, dtype=np.int64)
        self.group = np.zeros(len(locs), dtype=np.int64)
        self.groups: list[tuple[int, int]] = []
        self._loaded = -1
        if not len(locs):
            return
        # traces per bin number in the locations' area, to size the groups
        b0 = locs.min(axis=0) - h
        shape = tuple(int(v) for v in locs.max(axis=0) + h - b0 + 1)
        count = np.zeros(shape, dtype=np.int64)
        for k, (il, xl) in enumerate(self._chunks([], self.starts)):
            if xl.size:
                self.lo[k] = il.min(), xl.min()
                self.hi[k] = il.max(), xl.max()
                r, q = il - b0[0], xl - b0[1]
                ok = (r >= 0) & (r < shape[0]) & (q >= 0) & (q < shape[1])
                count += np.bincount(r[ok] * shape[1] + q[ok],
                                     minlength=count.size).reshape(shape)
        # traces of each location's super-gather (a summed-area table of the counts)
        sat = np.zeros((shape[0] + 1, shape[1] + 1), dtype=np.int64)
        sat[1:, 1:] = count.cumsum(axis=0).cumsum(axis=1)
        r0, q0 = (locs - h - b0).T
        r1, q1 = (locs + h - b0 + 1).T
        per = sat[r1, q1] - sat[r0, q1] - sat[r1, q0] + sat[r0, q0]
        cap = max(1, int(group_bytes or GATHER_BYTES) // 56)
        k0, held = 0, 0
        for k, m in enumerate(per):
            if k > k0 and held + m > cap:
                self.groups.append((k0, k))
                k0, held = k, 0
            held += int(m)
        self.groups.append((k0, len(locs)))
        for g, (a, b) in enumerate(self.groups):
            self.group[a:b] = g

    def _chunks(self, names, starts):
        """(inline numbers (0 in 2D), crossline numbers, columns ``names``) of chunks."""
        from seis_hpc.velocity.stack import column_slices

        need = [*names, "crossline"] + ([] if self.is_2d else ["inline"])
        for _, cols in column_slices(self.source, need, starts, self.chunk):
            xl = np.asarray(cols.pop("crossline"), dtype=np.int64)
            il = np.zeros_like(xl) if self.is_2d else np.asarray(cols.pop("inline"),
                                                                  dtype=np.int64)
            yield (il, xl, cols) if names else (il, xl)

    def _load(self, g: int) -> None:
        a, b = self.groups[g]
        h, locs = self.reach, self.locs[a:b]
        b0 = locs.min(axis=0) - h
        b1 = locs.max(axis=0) + h
        shape = tuple(int(v) for v in b1 - b0 + 1)
        want = np.zeros(shape, dtype=bool)
        for il, xl in locs - b0:
            want[il - h[0]:il + h[0] + 1, xl - h[1]:xl + h[1] + 1] = True
        hit = np.flatnonzero(np.all(self.hi >= b0, axis=1) & np.all(self.lo <= b1, axis=1))
        self._ids = self._il = self._xl = self._off = None  # the last group's, released
        parts = []
        for a0, (il, xl, cols) in zip(self.starts[hit], self._chunks(["offset"],
                                                                     self.starts[hit]),
                                      strict=True):
            r, q = il - b0[0], xl - b0[1]
            ok = (r >= 0) & (r < shape[0]) & (q >= 0) & (q < shape[1])
            ok[ok] = want[r[ok], q[ok]]
            sel = np.flatnonzero(ok)
            if sel.size:
                parts.append((a0 + sel, il[sel], xl[sel],
                              np.asarray(cols["offset"][sel], dtype=np.float64)))
        if parts:
            self._ids, self._il, self._xl, self._off = (np.concatenate(p) for p in
                                                        zip(*parts, strict=True))
        else:
            self._ids, self._il, self._xl = (np.zeros(0, np.int64) for _ in range(3))
            self._off = np.zeros(0, np.float64)
        self._finder = Supergathers(self._il, self._xl, self.is_2d)
        self._loaded = g

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Trace numbers (ascending) and offsets (m, float64) of location ``n``'s
        super-gather."""
        g = int(self.group[n])
        if g != self._loaded:
            self._load(g)
        il, xl = self.locs[n]
        pos = self._finder.ids(int(il), int(xl), self.size)
        return self._ids[pos], self._off[pos]


# ---------------------------------------------------------------------------------------------
# Automatic picking


def _interp_velocity(ref, time: np.ndarray) -> np.ndarray:
    """A reference (t, v) pair of arrays, or a (nt,) array on ``time``, as (nt,) m/s."""
    if isinstance(ref, tuple):
        t, v = (np.asarray(a, dtype=np.float64) for a in ref)
        return np.interp(time, t, v)
    r = np.asarray(ref, dtype=np.float64)
    if r.shape != time.shape:
        raise SeisError(f"reference velocity must be (time, vrms) or one value per sample "
                        f"({time.size}), got shape {r.shape}")
    return r


def auto_pick(panel, time, velocities, *, vint_min: float = 1400.0, vint_max: float = 6000.0,
              reference=None, corridor: float = 0.1, dt_pick: float = 0.012,
              tmin: float | None = None, tmax: float | None = None,
              min_semblance: float = 0.2, min_separation: float = 0.04,
              water: tuple[float, float] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick the highest-coherence Vrms(t) path through a semblance panel, under constraints.

    The panel is reduced to knots every ``dt_pick``: at each knot and trial velocity the best
    semblance within the knot's time cell (and its time). Dynamic programming then finds the
    path ``v(knot)`` maximising the summed squared semblance over all paths with

    * Vrms non-decreasing from knot to knot;
    * every Dix interval velocity between consecutive knots in ``[vint_min, vint_max]``;
    * with a ``reference``, every velocity within ``corridor`` (relative) of it.

    Because the interval bounds hold between consecutive knots they hold between any two
    picks. Picks are the knots where the path's semblance is a local maximum (against its
    neighbours) of at least ``min_semblance``; each pick's velocity is refined between the
    trial velocities by a parabola through the semblance (kept only when the refined picks
    still satisfy the constraints).

    Parameters
    ----------
    panel : array_like, shape (nv, nt)
        Semblance, e.g. from :func:`seis_hpc.velocity.semblance.semblance`.
    time : array_like, shape (nt,)
        Zero-offset two-way times (s) of the panel's columns, regular.
    velocities : array_like, shape (nv,)
        Trial velocities (m/s), increasing.
    vint_min, vint_max : float or sequence of (time, velocity)
        Bounds of the Dix interval velocity (m/s), constant or a function of time (see
        :func:`bound_function`). Below the sea floor in marine data a minimum above the water
        velocity (e.g. ``[(0, 1450), (0.2, 1550)]``) keeps the picker off water-bottom
        multiples.
    reference : tuple of arrays (time, vrms) or array_like (nt,), optional
        Reference Vrms function (s, m/s) to guide the picking.
    corridor : float
        Allowed relative departure from the reference (0.1 = +-10 %).
    dt_pick : float
        Knot spacing (s).
    tmin, tmax : float, optional
        Time range picked (s); default the whole panel.
    min_semblance : float
        Weakest coherence that makes a pick.
    min_separation : float
        Closest spacing of two picks (s): one pick per event, not one per side lobe.
    water : (float, float), optional
        ``(water velocity m/s, water-bottom two-way time s)``: no path velocity below the
        water's (2 % tolerance), and above the water bottom the path stays within 2 % of it.

    Returns
    -------
    time : numpy.ndarray
        Pick times (s), increasing.
    vrms : numpy.ndarray
        Picked velocities (m/s).
    semblance : numpy.ndarray
        Coherence at each pick.

    Raises
    ------
    SeisError
        Bad shapes or bounds, or no path satisfies the constraints.
    """
    s = np.asarray(panel, dtype=np.float64)
    t = np.asarray(time, dtype=np.float64)
    vel = np.asarray(velocities, dtype=np.float64)
    if s.ndim != 2 or s.shape != (vel.size, t.size):
        raise SeisError(f"auto_pick: panel must have shape (nv={vel.size}, nt={t.size}), got "
                        f"{s.shape}")
    if vel.size < 3 or np.any(np.diff(vel) <= 0):
        raise SeisError("auto_pick: need >= 3 increasing trial velocities (m/s)")
    lo_fn, hi_fn = bound_function(vint_min, "vint_min"), bound_function(vint_max, "vint_max")
    if not dt_pick > 0 or t.size < 2:
        raise SeisError(f"auto_pick: dt_pick must be > 0 s (got {dt_pick:g})")
    dt = float(t[1] - t[0])
    lo = 0 if tmin is None else int(np.searchsorted(t, tmin))
    hi = t.size if tmax is None else int(np.searchsorted(t, tmax, side="right"))
    step = max(1, int(round(dt_pick / dt)))
    starts = np.arange(lo, hi, step)
    if starts.size < 2:
        raise SeisError(f"auto_pick: time range {t[lo]:g}..{t[hi - 1]:g} s holds fewer than two "
                        "knots")
    # Knot cells: best semblance (and where) within each cell, per velocity.
    score = np.empty((starts.size, vel.size))
    where = np.empty((starts.size, vel.size), dtype=np.int64)
    for k, a in enumerate(starts):
        cell = s[:, a:min(a + step, hi)]
        j = np.argmax(cell, axis=1)
        where[k] = a + j
        score[k] = cell[np.arange(vel.size), j]
    t_knot = t[starts] + 0.5 * (min(step, hi - lo) - 1) * dt
    t_knot = np.maximum(t_knot, 0.5 * dt)  # Dix needs t > 0
    gain = score ** 2
    if reference is not None:
        vref = _interp_velocity(reference, t)
        ref_k = np.interp(t_knot, t, vref)
        off = np.abs(vel[None, :] / ref_k[:, None] - 1.0) > corridor
        gain = np.where(off, -np.inf, gain)
    if water is not None:
        vw, t_wb = float(water[0]), float(water[1])
        gain = np.where(vel[None, :] < 0.98 * vw, -np.inf, gain)
        in_water = (t_knot < t_wb - 0.5 * dt_pick)[:, None] & (np.abs(vel / vw - 1) > 0.02)[None]
        gain = np.where(in_water, -np.inf, gain)
    # Dynamic programming; allowed[i, j]: velocity i at knot k-1 may precede j at knot k.
    v2 = vel * vel
    best = gain[0].copy()
    back = np.zeros((starts.size, vel.size), dtype=np.int64)
    lower = np.tril(np.ones((vel.size, vel.size), dtype=bool))  # j >= i: monotonic
    onestep = np.eye(vel.size, k=1, dtype=bool)
    for k in range(1, starts.size):
        t1, t2 = t_knot[k - 1], t_knot[k]
        vint2 = (v2[None, :] * t2 - v2[:, None] * t1) / (t2 - t1)
        tm = 0.5 * (t1 + t2)
        # One velocity step up is always allowed: deep down, a step of dv over one knot
        # interval is a larger interval velocity than any bound (a discretisation limit).
        ok = lower.T & (vint2 >= lo_fn(tm) ** 2) & ((vint2 <= hi_fn(tm) ** 2) | onestep)
        cand = np.where(ok, best[:, None], -np.inf)
        back[k] = np.argmax(cand, axis=0)
        best = cand[back[k], np.arange(vel.size)] + gain[k]
    if not np.isfinite(best).any():
        raise SeisError("auto_pick: no velocity path satisfies the constraints (monotonic "
                        f"vrms, interval velocity {vint_min}..{vint_max} m/s"
                        + (f", reference corridor {corridor:g}" if reference is not None
                           else "") + ")")
    path = np.empty(starts.size, dtype=np.int64)
    path[-1] = int(np.argmax(best))
    for k in range(starts.size - 1, 0, -1):
        path[k - 1] = back[k, path[k]]
    ps = score[np.arange(starts.size), path]
    # One pick per event: the path's semblance must be the largest within +-min_separation.
    w = max(1, int(round(min_separation / (step * dt))))
    pad = np.concatenate([np.full(w, -np.inf), ps, np.full(w, -np.inf)])
    is_pick = ps >= min_semblance
    for d in range(1, w + 1):
        is_pick &= (ps >= pad[w - d:w - d + ps.size]) & (ps > pad[w + d:w + d + ps.size])
    ks = np.flatnonzero(is_pick)
    if ks.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    it = where[ks, path[ks]]
    tp = t[it]
    vp = vel[path[ks]].copy()
    refined = vp.copy()
    for n, i in enumerate(path[ks]):
        if 0 < i < vel.size - 1:
            a, b, c = s[i - 1, it[n]], s[i, it[n]], s[i + 1, it[n]]
            den = a - 2 * b + c
            if den < 0:
                frac = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
                refined[n] = vel[i] + frac * (vel[i + 1] - vel[i]) if frac > 0 else \
                    vel[i] + frac * (vel[i] - vel[i - 1])
    # Keep the refinement only where it leaves the picks consistent.
    if np.all(np.diff(refined) >= 0) and _within_bounds(tp, refined, lo_fn, hi_fn):
        vp = refined
    return tp, vp, ps[ks]


def bound_function(bound, name: str):
    """An interval-velocity bound as a function of time (s -> m/s).

    ``bound`` is a number (m/s, every time) or a sequence of ``(time s, velocity m/s)``
    pairs, interpolated linearly and held constant outside, e.g. ``[(0, 1450), (0.2, 1550)]``
    to let the water layer have its own velocity; a callable is returned as is.
    """
    if callable(bound):
        return bound
    if np.ndim(bound) == 0:
        b = float(bound)
        if not (np.isfinite(b) and b > 0):
            raise SeisError(f"{name} must be > 0 m/s (got {bound!r})")
        return lambda t: np.full(np.shape(t), b) if np.ndim(t) else b
    a = np.asarray(bound, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < 1 or np.any(np.diff(a[:, 0]) <= 0) \
            or np.any(a[:, 1] <= 0):
        raise SeisError(f"{name}: give a velocity (m/s) or (time s, velocity m/s) pairs with "
                        f"increasing times and velocities > 0 (got {bound!r})")
    return lambda t: np.interp(t, a[:, 0], a[:, 1])


def _within_bounds(t, v, lo_fn, hi_fn) -> bool:
    if t.size < 2:
        return True
    d = np.diff(v * v * t) / np.diff(t)
    tm = 0.5 * (t[1:] + t[:-1])
    return bool(np.all(d >= lo_fn(tm) ** 2 - 1e-6) and np.all(d <= hi_fn(tm) ** 2 + 1e-6))


# ---------------------------------------------------------------------------------------------
# The whole analysis over a survey


@dataclass
class ScanParams:
    """Parameters of the semblance scan and the picker (SI units).

    Attributes
    ----------
    vmin, vmax, dv : float
        Trial stacking velocities ``vmin, vmin + dv, ..., vmax`` (m/s).
    window : float
        Semblance time window (s).
    stretch_mute : float or None
        NMO stretch limit of the scan (fraction).
    supergather : int
        CMPs pooled per analysis location (2D; 3D: square edge in bins).
    method : str
        Semblance ``"conventional"`` or ``"ab"``.
    vint_min, vint_max, corridor, dt_pick, min_semblance, min_separation, tmin, tmax
        See :func:`auto_pick`.
    min_live : int
        Fewest live traces (after the stretch mute) for a semblance value to count.
    outlier : float or None
        Lateral edit (:func:`reject_outliers`): drop picks further than this fraction from
        the median of the neighbouring locations; None keeps every pick.
    water_velocity : float or None
        Water velocity (m/s): the floor of every Vrms and interval velocity, and the
        velocity above the sea floor; None: not marine data, no water constraints.
    water_bottom : float or None
        Water-bottom two-way time (s); None: detected at each location
        (:func:`water_bottom_time`).
    sediment_min : float or None
        Lowest interval velocity below the sea floor (m/s); default 1.03 x water velocity.
    trend_corridor : float
        Second-pass corridor around the fitted trend (relative).
    trend_vint : float
        Interval velocities within this fraction of the trend's (relative).
    multiple_window : float
        Half-width (s) of the time bands of water-bottom multiples and peg-legs.
    multiple_speedup : float
        A pick in a multiple band no faster than this times the water velocity is a multiple.
    extrapolate : {"trend", "constant"}
        Below the deepest kept pick: the trend's interval velocity (growing with time) or a
        constant interval velocity (the trend's at that pick).
    min_support : float
        Picks that fewer than this fraction of the neighbouring locations share are dropped
        (:func:`lateral_support`; with 5 locations or more); 0 keeps them.
    """

    vmin: float = 1400.0
    vmax: float = 4000.0
    dv: float = 10.0
    window: float = 0.024
    stretch_mute: float | None = 0.5
    supergather: int = 3
    method: str = "conventional"
    vint_min: float | list = 1400.0
    vint_max: float | list = 6000.0
    corridor: float = 0.1
    dt_pick: float = 0.012
    min_semblance: float = 0.2
    min_separation: float = 0.04
    min_live: int = 8
    outlier: float | None = 0.04
    tmin: float | None = None
    tmax: float | None = None
    water_velocity: float | None = 1500.0
    water_bottom: float | None = None
    sediment_min: float | None = None
    trend_corridor: float = 0.06
    trend_vint: float = 0.3
    multiple_window: float = 0.024
    multiple_speedup: float = 1.05
    min_support: float = 0.25
    extrapolate: str = "trend"

    def velocities(self) -> np.ndarray:
        """The trial velocities (m/s)."""
        if not (0 < self.vmin < self.vmax and self.dv > 0):
            raise SeisError(f"velocity scan needs 0 < vmin < vmax and dv > 0 (got {self.vmin:g}, "
                            f"{self.vmax:g}, {self.dv:g} m/s)")
        n = int(math.floor((self.vmax - self.vmin) / self.dv + 1e-9)) + 1
        return self.vmin + self.dv * np.arange(n)


class _PanelStore:
    """Semblance panels (float32, all one shape) in an unnamed scratch file (``TMPDIR``),
    read back one at a time by number: the picker's second pass needs every location's
    panel, which in memory would grow with the survey."""

    def __init__(self):
        import tempfile

        self.file = tempfile.TemporaryFile(prefix="seis_hpc_velan_")
        self.shape: tuple[int, ...] = ()
        self.count = 0

    def put(self, panel: np.ndarray) -> int:
        """Store ``panel``; returns its number."""
        a = np.ascontiguousarray(panel, dtype=np.float32)
        if self.count and a.shape != self.shape:
            raise ValueError(f"panel shape {a.shape} differs from {self.shape}")
        self.shape = a.shape
        self.file.write(a.tobytes())
        self.count += 1
        return self.count - 1

    def get(self, k: int) -> np.ndarray:
        """Panel number ``k`` (a fresh array)."""
        import os

        self.file.flush()
        n = 4 * math.prod(self.shape)
        buf = bytearray(os.pread(self.file.fileno(), n, k * n))
        return np.frombuffer(buf, dtype=np.float32).reshape(self.shape)


def velocity_analysis(source, inline, crossline, grid, locations, params: ScanParams,
                      reference=None, progress=None, qc: PickingQC | None = None) -> Picks:
    """Semblance scan and automatic picks at each analysis location, guided by physics.

    1. A semblance panel per location (its super-gather) and, when ``params.water_velocity``
       is set, the water-bottom time (``params.water_bottom`` or detected from the near
       offsets, :func:`water_bottom_time`).
    2. A first pass of :func:`auto_pick` with the water as floor (no Vrms below the water
       velocity, Vrms = water velocity above the sea floor, sediment interval velocities at
       least ``params.sediment_min``); picks on the water-bottom multiple train are dropped.
    3. A smooth trend (:func:`fit_trend`: water over sediments whose interval velocity grows
       linearly with time) fitted robustly to all the first-pass picks.
    4. A second pass inside ``params.trend_corridor`` of the trend (or ``params.corridor``
       of a given ``reference``), with interval velocities within
       ``params.trend_vint`` (relative) of the trend's. Picks are then screened
       (:func:`screen_picks`): water-bottom multiples, peg-legs (slow events at a primary's
       time plus multiples of the water-bottom time), picks pinned at the corridor's edge and
       intervals that Dix finds unphysical; then the lateral edit (:func:`reject_outliers`).
    5. Each location starts with the sea floor at the water velocity, and below its deepest
       kept pick the Vrms continues with the trend's interval velocity (``params.extrapolate``;
       knots every 0.1 s to the end of the record, semblance 0), rather than picking noise.

    The counts of rejected picks by reason are in ``picks.params`` (``rejected_<reason>``).

    Parameters
    ----------
    source : object
        Trace source with ``read_traces(ids)``, ``dt``, ``t_start``, ``ns`` and ``["offset"]``
        (a :class:`~seis_hpc.io.index.TraceIndex`, or an in-memory source).
    inline, crossline : numpy.ndarray or None
        Bin numbers of every trace; None (both) to stream the source's ``inline``,
        ``crossline`` and ``offset`` columns in chunks of rows (:class:`StreamedSupergathers`:
        nothing held per trace of the survey; the same picks).
    grid : BinGrid
        Survey grid (for CDP numbers and coordinates).
    locations : list of (inline, crossline)
        Where to analyse (:func:`analysis_locations`).
    params : ScanParams
        Scan and picking parameters.
    reference : optional
        Reference Vrms (see :func:`auto_pick`); replaces the fitted trend as the corridor's
        centre.
    progress : callable, optional
        Called with (done, total) after each location.
    qc : PickingQC, optional
        Filled with what the picker saw and did at (up to ``qc.max_locations`` of) the
        locations: panel, super-gather, corridor, water bottom, every pick with its fate.

    Returns
    -------
    Picks
    """
    from seis_hpc.velocity.semblance import semblance

    vel = params.velocities()
    dt, t0, ns = float(source.dt), float(source.t_start), int(source.ns)
    time = t0 + dt * np.arange(ns)
    vw = params.water_velocity
    # (il, xl, panel, water-bottom time); the panels wait in a scratch file for the second
    # pass, so memory holds one panel, not one per location (issue 19)
    scans = []
    panels = _PanelStore()
    if inline is None and crossline is None:
        take = StreamedSupergathers(source, grid.is_2d, locations, params.supergather).take
    else:
        offset = np.asarray(source["offset"], dtype=np.float64)
        gathers = Supergathers(inline, crossline, grid.is_2d)

        def take(n):
            ids = gathers.ids(*locations[n], params.supergather)
            return ids, offset[ids]
    chosen = set() if qc is None else qc.choose(len(locations))
    if qc is not None:
        qc.time, qc.velocities, qc.water_velocity = time, vel, vw
    for n, (il, xl) in enumerate(locations):
        ids, off = take(n)
        if ids.size >= 2:
            g = source.read_traces(ids)
            panel = semblance(g, off, dt, vel, t_start=t0, window=params.window,
                              method=params.method, stretch_mute=params.stretch_mute)
            # Coherence of a handful of traces means nothing: blank where too few are live.
            panel[live_traces(off, time, vel, params.stretch_mute) < params.min_live] = 0
            t_wb = None
            if vw:
                t_wb = params.water_bottom if params.water_bottom is not None else \
                    water_bottom_time(g, off, dt, t0, vw)
                if params.water_bottom is None and t_wb is not None:
                    # The sea floor has the water's moveout: the most coherent velocity
                    # there must be the water's, else it is no sea floor.
                    k = int(round((t_wb - t0) / dt))
                    cell = panel[:, max(k - 4, 0):k + 5]
                    if cell.size == 0 or abs(vel[int(np.argmax(cell.max(axis=1)))] / vw - 1) \
                            > 0.04:
                        t_wb = None
            panel = panel.astype(np.float32)
            scans.append((il, xl, panels.put(panel), t_wb))
            if n in chosen:
                x, y = grid.grid_to_world(il, xl)
                qc.locations[(il, xl)] = LocationQC(
                    il, xl, cdp_number(grid, il, xl), float(x), float(y), panel,
                    g.astype(np.float32), off.copy())
        if progress is not None:
            progress(n + 1, len(locations))
    if not scans:
        raise SeisError("velocity analysis: no analysis location has two traces")
    # Where the sea floor was not found (no strong event), use the survey's median ...
    found = [s[3] for s in scans if s[3] is not None]
    t_wb_all = float(np.median(found)) if found else None
    if vw and t_wb_all is None:
        vw = None  # no water bottom anywhere: not marine data, pick without the water
        if qc is not None:
            qc.water_velocity = None
    # ... and where a detection is far from it (low-fold edges with only far offsets).
    scans = [(il, xl, p, (tw if tw is not None and abs(tw / t_wb_all - 1) <= 0.2
                          else t_wb_all) if vw else None)
             for il, xl, p, tw in scans]
    counts = {k: 0 for k in REASONS}

    def pick(panel, t_wb, ref=None, corridor=None, lo=None, hi=None):
        lo = lo or _sediment_floor(params, vw, t_wb)
        return auto_pick(panel, time, vel, vint_min=lo, vint_max=hi or params.vint_max,
                         reference=ref, corridor=corridor or params.corridor,
                         dt_pick=params.dt_pick, tmin=params.tmin, tmax=params.tmax,
                         min_semblance=params.min_semblance,
                         min_separation=params.min_separation,
                         water=(vw, t_wb) if vw else None)

    # Pass 1: physics only; its picks (less the multiples) define the trend.
    first = []
    for _il, _xl, k, t_wb in scans:
        tp, vp, sp = pick(panels.get(k), t_wb, ref=reference)
        if vw:
            keep = ~_multiple_band(tp, t_wb, params) | (vp > params.multiple_speedup * vw)
            tp, vp = tp[keep], vp[keep]
        first.append((tp, vp, t_wb))
    trend = None
    if vw and reference is None:
        xy = np.array([grid.grid_to_world(il, xl) for il, xl, _, _ in scans], dtype=np.float64)
        sup = lateral_support([(tp, vp) for tp, vp, _ in first], xy)
        trend = fit_trend([(tp, vp, tw, w) for (tp, vp, tw), w in zip(first, sup, strict=True)],
                          vw, vint_max=params.vint_max)
    out = []
    scale = [1.0] * len(scans)
    if trend is not None:
        # Lateral variation: each location's trend is scaled by the median ratio of its own
        # laterally supported first-pass picks to the trend (within +-10 %).
        for n, ((tp, vp, t_wb), w) in enumerate(zip(first, sup, strict=True)):
            ok = (w >= 0.5) & (tp > t_wb + 0.03)
            if ok.sum() >= 2:
                r = vp[ok] / trend.vrms(tp[ok], t_wb)
                scale[n] = float(np.clip(np.median(r), 0.9, 1.1))
    for (il, xl, k, t_wb), sc in zip(scans, scale, strict=True):
        panel = panels.get(k)
        if trend is not None:
            # Scale the sediments' interval velocities, not the water.
            tr2t = trend.vrms(time, t_wb) ** 2 * time
            w_wb = vw * vw * min(t_wb, time[-1])
            ref = np.sqrt(np.where(time > t_wb, (w_wb + sc * sc * (tr2t - w_wb))
                                   / np.maximum(time, 1e-12), vw * vw))

            def tv(t, t_wb=t_wb, sc=sc):
                return sc * trend.vint(t, t_wb)

            def lo_fn(t, tv=tv, t_wb=t_wb):
                base = _sediment_floor(params, vw, t_wb)(t)
                return np.maximum(base, np.where(np.asarray(t) > t_wb + 0.02,
                                                 (1 - params.trend_vint) * tv(t), 0.0))

            def hi_fn(t, tv=tv, t_wb=t_wb):
                return np.minimum(bound_function(params.vint_max, "vint_max")(t),
                                  np.where(np.asarray(t) > t_wb + 0.02,
                                           (1 + params.trend_vint) * tv(t), np.inf))

            corridor = params.trend_corridor
            try:
                tp, vp, sp = pick(panel, t_wb, ref=ref, corridor=corridor, lo=lo_fn, hi=hi_fn)
            except SeisError:  # the trend does not fit here: physics only, as the first pass
                ref, corridor = None, params.corridor
                tp, vp, sp = pick(panel, t_wb)
        else:
            ref = None if reference is None else _interp_velocity(reference, time)
            corridor = params.corridor
            tp, vp, sp = pick(panel, t_wb, ref=reference)
        rec = None if qc is None else qc.locations.get((il, xl))
        fate = None if rec is None else []
        if rec is not None:
            rec.water_bottom = t_wb
            rec.candidates = [[float(a), float(b), ""] for a, b in zip(tp, vp, strict=True)]
            if ref is not None:
                r = np.asarray(ref, dtype=np.float64)
                rec.corridor = (time, r * (1 - corridor), r * (1 + corridor))
        tp, vp, sp, why = screen_picks(tp, vp, sp, time=time, ref=ref, corridor=corridor,
                                       t_wb=t_wb, params=params, water_velocity=vw,
                                       reasons=fate)
        if rec is not None:
            for c, f in zip(rec.candidates, fate, strict=True):
                c[2] = f
        for k, c in why.items():
            counts[k] += c
        if tp.size:
            x, y = grid.grid_to_world(il, xl)
            out.append(PickLocation(il, xl, cdp_number(grid, il, xl), float(x), float(y), tp, vp,
                                    sp))
    if not out:
        raise SeisError("velocity analysis found no coherent event to pick at any location "
                        f"(min_semblance {params.min_semblance:g})")
    picks = Picks(out, grid.is_2d, params={k: v for k, v in vars(params).items()
                                           if not isinstance(v, (list, tuple))})
    if params.min_support and len(picks.locations) >= 5:
        before = picks
        picks, counts["no lateral support"] = _drop_unsupported(picks, params.min_support,
                                                                 min_time=t_wb_all)
        if qc is not None:
            qc.mark_dropped(before, picks, "no lateral support")
    if params.outlier is not None:
        n0 = sum(p.time.size for p in picks.locations)
        before = picks
        picks = reject_outliers(picks, params.outlier)
        counts["lateral outlier"] = n0 - sum(p.time.size for p in picks.locations)
        if qc is not None:
            qc.mark_dropped(before, picks, "lateral outlier")
    if vw:
        scales = {(il, xl): sc for (il, xl, _, _), sc in zip(scans, scale, strict=True)}
        picks = _anchor_and_extrapolate(picks, scans, time, trend, vw, params.extrapolate,
                                        scales)
        picks.params["water_velocity"] = vw
        picks.params["water_bottom_s"] = round(t_wb_all, 4)
    if trend is not None:
        picks.params["trend_vint0_mps"] = round(trend.vint0, 1)
        picks.params["trend_gradient_mps_per_s"] = round(trend.gradient, 1)
    for k, c in counts.items():
        picks.params["rejected_" + k.replace(" ", "_").replace("-", "_")] = int(c)
    if qc is not None:
        for p in picks.locations:
            rec = qc.locations.get((p.inline, p.crossline))
            if rec is not None:
                rec.final = (p.time.copy(), p.vrms.copy(), p.semblance.copy())
    return picks


@dataclass
class LocationQC:
    """What the picker saw and did at one analysis location (for the QC pictures).

    Attributes
    ----------
    inline, crossline, cdp : int
        The location's bin and CDP number.
    x, y : float
        Bin centre (m).
    panel : numpy.ndarray, shape (nv, nt)
        The semblance panel picked.
    gather : numpy.ndarray, shape (ntr, nt)
        The super-gather.
    offset : numpy.ndarray, shape (ntr,)
        Its offsets (m).
    water_bottom : float or None
        Water-bottom time used (s).
    corridor : (time, low, high) or None
        The corridor of the second pass (s, m/s, m/s).
    candidates : list of [t, v, reason]
        Every pick of the second pass (s, m/s) and why it was rejected ("" when kept).
    final : (time, vrms, semblance) or None
        The location's picks in the output (semblance 0: extrapolated knots); None when it
        kept none.
    """

    inline: int
    crossline: int
    cdp: int
    x: float
    y: float
    panel: np.ndarray
    gather: np.ndarray | None = None
    offset: np.ndarray | None = None
    water_bottom: float | None = None
    corridor: tuple | None = None
    candidates: list = field(default_factory=list)
    final: tuple | None = None

    def accepted(self) -> np.ndarray:
        """Picks in the output that were picked (not extrapolated), shape (n, 2): (s, m/s)."""
        if self.final is None:
            return np.zeros((0, 2))
        t, v, s = self.final
        keep = ~(s == 0)
        return np.column_stack([t[keep], v[keep]])

    def extrapolated(self) -> np.ndarray:
        """Knots below the deepest pick (extrapolated), shape (n, 2): (s, m/s)."""
        if self.final is None:
            return np.zeros((0, 2))
        t, v, s = self.final
        return np.column_stack([t[s == 0], v[s == 0]])

    def rejected(self) -> list[tuple[float, float, str]]:
        """Rejected picks: (time s, velocity m/s, reason)."""
        return [(t, v, why) for t, v, why in self.candidates if why]


@dataclass
class PickingQC:
    """Collects :class:`LocationQC` records during :func:`velocity_analysis`.

    Attributes
    ----------
    max_locations : int
        Most locations recorded (evenly spread over the analysis locations), which bounds
        the memory the panels and super-gathers take.
    locations : dict
        ``(inline, crossline) -> LocationQC``.
    time, velocities : numpy.ndarray
        The panels' time (s) and velocity (m/s) axes.
    water_velocity : float or None
        The water velocity used (m/s).
    """

    max_locations: int = 60
    locations: dict = field(default_factory=dict)
    time: np.ndarray | None = None
    velocities: np.ndarray | None = None
    water_velocity: float | None = None

    def choose(self, n: int) -> set[int]:
        """Indices of the locations to record among ``n``."""
        if n <= self.max_locations:
            return set(range(n))
        return {int(round(i)) for i in np.linspace(0, n - 1, self.max_locations)}

    def mark_dropped(self, before: Picks, after: Picks, reason: str) -> None:
        """Give ``reason`` to the kept candidates of ``before`` that ``after`` lost."""
        kept = {(p.inline, p.crossline): p for p in after.locations}
        for p in before.locations:
            rec = self.locations.get((p.inline, p.crossline))
            if rec is None:
                continue
            q = kept.get((p.inline, p.crossline))
            for t, v in zip(p.time, p.vrms, strict=True):
                if q is not None and np.any((q.time == t) & (q.vrms == v)):
                    continue
                for c in rec.candidates:
                    if not c[2] and c[0] == t and c[1] == v:
                        c[2] = reason


#: Reasons a pick is rejected, as counted in ``Picks.params["rejected_<reason>"]``.
REASONS = ("water-bottom multiple", "peg-leg", "corridor edge", "above sea floor",
           "unphysical interval", "no lateral support", "lateral outlier")


def _drop_unsupported(picks: Picks, min_support: float, min_time=None) -> tuple[Picks, int]:
    """Drop picks that fewer than ``min_support`` of the neighbours share
    (:func:`lateral_support`); returns the new picks and how many were dropped."""
    locs = picks.locations
    xy = np.array([[p.x, p.y] for p in locs])
    sup = lateral_support([(p.time, p.vrms) for p in locs], xy)
    out, n = [], 0
    for p, s in zip(locs, sup, strict=True):
        keep = s >= min_support
        if min_time is not None:
            keep |= p.time <= min_time + 0.02
        n += int((~keep).sum())
        if keep.any():
            out.append(PickLocation(p.inline, p.crossline, p.cdp, p.x, p.y, p.time[keep],
                                    p.vrms[keep], p.semblance[keep]))
    return Picks(out, picks.is_2d, dict(picks.params)), n


def rejection_summary(picks: Picks) -> str:
    """One line: how many picks were rejected, and why (from ``picks.params``)."""
    parts = []
    for k in REASONS:
        n = picks.params.get("rejected_" + k.replace(" ", "_").replace("-", "_"), 0)
        if n:
            parts.append(f"{n} {k}")
    total = sum(picks.params.get("rejected_" + k.replace(" ", "_").replace("-", "_"), 0)
                for k in REASONS)
    return f"{total} picks rejected" + (f" ({', '.join(parts)})" if parts else "")


def _sediment_floor(params, vw, t_wb):
    """Lowest interval velocity as a function of time: the water's above the sea floor,
    ``params.sediment_min`` below it, never below ``params.vint_min``."""
    base = bound_function(params.vint_min, "vint_min")
    if not vw or t_wb is None:
        return base
    sed = params.sediment_min if params.sediment_min else 1.03 * vw

    def lo(t):
        t = np.asarray(t, dtype=np.float64)
        return np.where(t > t_wb + 0.02, np.maximum(base(t), sed),
                        np.minimum(base(t), 0.97 * vw))
    return lo


def _multiple_band(tp, t_wb, params) -> np.ndarray:
    """Picks within ``params.multiple_window`` of a water-bottom multiple time k t_wb, k >= 2."""
    tp = np.asarray(tp, dtype=np.float64)
    if t_wb is None or t_wb <= 0 or tp.size == 0:
        return np.zeros(tp.shape, bool)
    k = np.rint(tp / t_wb)
    return (k >= 2) & (np.abs(tp - k * t_wb) <= params.multiple_window)


def water_bottom_time(gather, offset, dt: float, t_start: float = 0.0,
                      water_velocity: float = 1500.0, near_fraction: float = 0.3,
                      threshold: float = 0.3, max_spread: float = 0.008) -> float | None:
    """Water-bottom two-way zero-offset time (s) detected from the near offsets.

    On each trace among the nearest ``near_fraction`` of offsets, the first sample after the
    direct wave (``|x| / water_velocity + 30 ms``) whose amplitude reaches ``threshold`` of
    the trace's largest is found, then the peak within 16 ms of it; its time is moved out to
    zero offset at the water velocity. The median over the traces is returned.

    Parameters
    ----------
    gather : numpy.ndarray, shape (ntr, ns)
        Traces.
    offset : numpy.ndarray, shape (ntr,)
        Source-receiver offsets (m).
    dt, t_start : float
        Sample interval and first time (s).
    water_velocity : float
        m/s.
    near_fraction : float
        Fraction of the traces (nearest offsets) used.
    threshold : float
        Relative amplitude of the first strong event.
    max_spread : float
        Largest interquartile range (s) of the traces' zero-offset times: beyond it the event
        has no water moveout and None is returned.

    Returns
    -------
    float or None
        The time (s), or None when no trace has a strong event.
    """
    g = np.abs(np.asarray(gather, dtype=np.float64))
    x = np.abs(np.asarray(offset, dtype=np.float64))
    if g.ndim != 2 or g.shape[0] == 0:
        return None
    near = np.argsort(x, kind="stable")[:max(1, int(round(near_fraction * x.size)))]
    ns = g.shape[1]
    time = t_start + dt * np.arange(ns)
    found = []
    for i in near:
        a = g[i].copy()
        a[time < x[i] / water_velocity + 0.03] = 0.0  # past the direct wave
        peak = a.max()
        if not peak > 0:
            continue
        k = int(np.argmax(a >= threshold * peak))
        k = k + int(np.argmax(a[k:k + max(1, int(round(0.016 / dt)))]))
        tt = time[k] ** 2 - (x[i] / water_velocity) ** 2
        if tt > 0:
            found.append(math.sqrt(tt))
    if not found:
        return None
    q1, q3 = np.percentile(found, [25, 75])
    # The sea floor has the water's moveout: its zero-offset times agree; a deeper event
    # moved out at the water velocity does not.
    return float(np.median(found)) if q3 - q1 <= max_spread else None


@dataclass
class Trend:
    """A smooth Vrms trend: water over sediments whose interval velocity grows linearly.

    ``vint(t) = water_velocity`` above the sea floor (``t <= t_wb``), then
    ``min(vint0 + gradient (t - t_wb), vint_max)`` (m/s; t two-way, s).
    """

    water_velocity: float
    water_bottom: float
    vint0: float
    gradient: float
    vint_max: float = 6000.0

    def vint(self, t, t_wb: float | None = None) -> np.ndarray:
        """Interval velocity (m/s) at times ``t`` (s); ``t_wb`` overrides the sea floor."""
        tw = self.water_bottom if t_wb is None else t_wb
        t = np.asarray(t, dtype=np.float64)
        return np.where(t <= tw, self.water_velocity,
                        np.minimum(self.vint0 + self.gradient * (t - tw), self.vint_max))

    def vrms(self, t, t_wb: float | None = None) -> np.ndarray:
        """Vrms (m/s) at times ``t`` (s) for a sea floor at ``t_wb`` (default the trend's)."""
        tw = self.water_bottom if t_wb is None else t_wb
        t = np.asarray(t, dtype=np.float64)
        s = np.clip(t - tw, 0.0, None)
        a, b, vw = self.vint0, self.gradient, self.water_velocity
        # Time where the linear growth reaches vint_max, then constant.
        sc = (self.vint_max - a) / b if b > 0 else np.inf
        s1 = np.minimum(s, sc)
        w = (vw * vw * np.minimum(t, tw) + a * a * s1 + a * b * s1 ** 2 + b * b * s1 ** 3 / 3
             + self.vint_max ** 2 * np.clip(s - sc, 0.0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(t > 0, np.sqrt(w / np.where(t > 0, t, 1.0)), vw)


def fit_trend(picks, water_velocity: float, vint_max: float = 6000.0) -> Trend:
    """Fit a :class:`Trend` to picks robustly (least absolute relative error).

    Parameters
    ----------
    picks : list of (time, vrms, t_wb) or (time, vrms, t_wb, weight)
        Per location: pick times (s), Vrms (m/s), the water-bottom time (s) and optionally a
        weight per pick (e.g. :func:`lateral_support`, so that events seen at neighbouring
        locations outweigh diffraction tails).
    water_velocity : float
        m/s.
    vint_max : float
        Cap of the trend's interval velocity (m/s).

    Returns
    -------
    Trend
        Fitted by a grid search over ``vint0`` (water velocity .. 4,000 m/s, 10 m/s steps)
        and ``gradient`` (0 .. 2,000 m/s per s); picks further than 10 % from a first fit are
        dropped and the fit repeated (diffraction tails, multiples).
    """
    vw = float(water_velocity)
    tt, vv, tw, ww = [], [], [], []
    for item in picks:
        tp, vp, t_wb = (np.asarray(item[0]), np.asarray(item[1]), item[2])
        wt = np.asarray(item[3]) if len(item) > 3 else np.ones(tp.size)
        sel = tp > t_wb + 0.03
        tt.append(tp[sel])
        vv.append(vp[sel])
        tw.append(np.full(int(sel.sum()), t_wb))
        ww.append(wt[sel])
    t, v, w, wgt = (np.concatenate(a) if a else np.zeros(0) for a in (tt, vv, tw, ww))
    if wgt.size and wgt.max() <= 0:
        wgt = np.ones_like(wgt)
    t_wb = float(np.median(w)) if w.size else 0.0
    if t.size < 2:
        return Trend(vw, t_wb, 1.1 * vw, 500.0, vint_max)
    a_grid = np.arange(vw, 4000.0 + 1e-9, 10.0)
    b_grid = np.arange(0.0, 2000.0 + 1e-9, 10.0)
    keep = np.ones(t.size, bool)
    best = (1.1 * vw, 500.0)
    for _ in range(2):
        tk, vk, wk, gk = t[keep], v[keep], w[keep], wgt[keep]
        s = tk - wk
        cost = np.empty((a_grid.size, b_grid.size))
        for i, a in enumerate(a_grid):
            b = b_grid[:, None]
            model = np.sqrt((vw * vw * wk + a * a * s + a * b * s ** 2 + b * b * s ** 3 / 3)
                            / tk)
            cost[i] = (gk * np.abs(model / vk - 1.0)).sum(axis=1)
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        best = (float(a_grid[i]), float(b_grid[j]))
        tr = Trend(vw, t_wb, best[0], best[1], vint_max)
        fit = np.array([tr.vrms(ti, wi) for ti, wi in zip(t, w, strict=True)])
        keep = np.abs(v / fit - 1.0) <= 0.10
        if keep.sum() < 2:
            break
    return Trend(vw, t_wb, best[0], best[1], vint_max)


def lateral_support(picks, xy, *, radius: float | None = None, dt: float = 0.024,
                    dv: float = 0.03) -> list[np.ndarray]:
    """Fraction of the neighbouring locations that picked the same event, per pick.

    A neighbour (within ``radius`` m; default 2.5 x the median spacing of the locations)
    supports a pick when it has a pick within ``dt`` seconds and ``dv`` (relative) of it.
    Primaries and multiples are seen at every location; diffraction tails move in time and
    velocity from one location to the next, and noise is random.

    Parameters
    ----------
    picks : list of (time, vrms)
        Per location (s, m/s).
    xy : numpy.ndarray, shape (nloc, 2)
        Location coordinates (m).

    Returns
    -------
    list of numpy.ndarray
        Per location, the support (0..1) of each pick; 1 where a location has no neighbour.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    n = len(picks)
    if n < 2:
        return [np.ones(np.size(p[0])) for p in picks]
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    if radius is None:
        radius = 2.5 * float(np.median(np.sort(d, axis=1)[:, 1]))
    out = []
    for i, (tp, vp) in enumerate(picks):
        tp, vp = np.asarray(tp, dtype=np.float64), np.asarray(vp, dtype=np.float64)
        nb = [j for j in np.flatnonzero(d[i] <= radius) if j != i]
        if not nb:
            out.append(np.ones(tp.size))
            continue
        hits = np.zeros(tp.size)
        for j in nb:
            tj, vj = (np.asarray(a, dtype=np.float64) for a in picks[j][:2])
            if tj.size:
                close = (np.abs(tp[:, None] - tj[None, :]) <= dt) & \
                    (np.abs(vp[:, None] / vj[None, :] - 1.0) <= dv)
                hits += close.any(axis=1)
        out.append(hits / len(nb))
    return out


def screen_picks(tp, vp, sp, *, time, ref, corridor, t_wb, params, water_velocity,
                 reasons: list | None = None):
    """Reject picks a processor would not keep.

    * above the sea floor (the water-bottom pick itself is replaced by the water velocity);
    * on the water-bottom multiple train: within ``params.multiple_window`` of ``k t_wb``
      (k >= 2) and slower than the corridor's centre by more than half the corridor, or
      close to the water velocity;
    * peg-legs: within the window of ``t_p + k t_wb`` (k = 1..3) for a kept pick at ``t_p``
      and slower than the corridor's centre by more than half the corridor;
    * pinned at the edge of the corridor (the event wants a velocity outside it);
    * unphysical: the Dix interval velocity from the previous kept pick outside
      ``params.vint_min .. params.vint_max`` or imaginary.

    With ``reasons`` (a list), the reason of each input pick is appended to it ("" for a
    kept pick), for the QC pictures.

    Returns
    -------
    (time, vrms, semblance, counts)
        The kept picks and a dict of rejections by reason (see :data:`REASONS`).
    """
    why = {k: 0 for k in REASONS}
    tp, vp, sp = (np.asarray(a, dtype=np.float64) for a in (tp, vp, sp))
    if tp.size == 0:
        return tp, vp, sp, why
    reason = [""] * tp.size

    def mark(sel, name):
        for i in np.flatnonzero(sel):
            reason[i] = reason[i] or name
    centre = None if ref is None else np.interp(tp, time, ref)
    keep = np.ones(tp.size, bool)
    vw = water_velocity
    if vw and t_wb is not None:
        above = tp <= t_wb + 0.02
        why["above sea floor"] += int(above.sum())
        mark(above, "above sea floor")
        keep &= ~above
        slow = vp <= params.multiple_speedup * vw
        if centre is not None:
            slow |= vp < centre * (1 - 0.5 * corridor)
        mult = keep & _multiple_band(tp, t_wb, params) & slow
        why["water-bottom multiple"] += int(mult.sum())
        mark(mult, "water-bottom multiple")
        keep &= ~mult
        if centre is not None:
            for i in np.flatnonzero(keep):
                prim = tp[keep & (tp < tp[i] - 0.5 * t_wb)]
                lag = (tp[i] - prim) / t_wb
                peg = np.any((np.rint(lag) >= 1) & (np.rint(lag) <= 3)
                             & (np.abs(tp[i] - prim - np.rint(lag) * t_wb)
                                <= params.multiple_window))
                if peg and vp[i] < centre[i] * (1 - 0.5 * corridor):
                    keep[i] = False
                    why["peg-leg"] += 1
                    reason[i] = "peg-leg"
    if centre is not None:
        dv = params.dv
        edge = keep & ((vp <= centre * (1 - corridor) + 1.5 * dv)
                       | (vp >= centre * (1 + corridor) - 1.5 * dv))
        why["corridor edge"] += int(edge.sum())
        mark(edge, "corridor edge")
        keep &= ~edge
    # Dix from the previous kept pick (the water bottom at the water velocity first).
    lo = bound_function(params.vint_min, "vint_min")
    hi = bound_function(params.vint_max, "vint_max")
    prev_t, prev_w = (t_wb, vw * vw * t_wb) if vw and t_wb is not None else (0.0, 0.0)
    for i in np.flatnonzero(keep):
        if tp[i] <= prev_t:
            continue
        d = (vp[i] ** 2 * tp[i] - prev_w) / (tp[i] - prev_t)
        tm = 0.5 * (tp[i] + prev_t)
        if prev_t > 0 and not (lo(tm) ** 2 <= d <= hi(tm) ** 2):
            keep[i] = False
            why["unphysical interval"] += 1
            reason[i] = "unphysical interval"
            continue
        prev_t, prev_w = tp[i], vp[i] ** 2 * tp[i]
    if reasons is not None:
        reasons.extend(reason)
    return tp[keep], vp[keep], sp[keep], why


def _anchor_and_extrapolate(picks: Picks, scans, time, trend, vw,
                            mode: str = "trend", scales: dict | None = None) -> Picks:
    """Start every location with the sea floor at the water velocity; below its deepest
    pick continue with the trend's interval velocity (``mode="trend"``: growing with time as
    the trend's does) or at a constant one (``"constant"``: the trend's at that pick), as knots
    every 0.1 s with semblance 0."""
    t_end = float(time[-1])
    where = {(il, xl): tw for il, xl, _, tw in scans}
    out = []
    for p in picks.locations:
        t_wb = where.get((p.inline, p.crossline))
        t, v, s = list(p.time), list(p.vrms), list(p.semblance)
        # A location whose first pick is deep (a low-fold edge: shallow events muted) says
        # nothing about the shallow section: the field takes it from its neighbours there.
        if t_wb is not None and t_wb > 0 and t and t_wb < t[0] <= t_wb + 0.4:
            t, v, s = [t_wb] + t, [vw] + v, [1.0] + s
        if trend is not None and t and t[-1] < t_end - 0.05:
            w, tk = v[-1] ** 2 * t[-1], t[-1]
            sc2 = (scales or {}).get((p.inline, p.crossline), 1.0) ** 2
            vd2 = sc2 * float(trend.vint(tk, t_wb)) ** 2
            for tn in np.append(np.arange(tk + 0.1, t_end - 0.05, 0.1), t_end):
                if mode == "constant":
                    w += vd2 * (tn - tk)
                else:
                    ts = np.linspace(tk, tn, 9)
                    vi2 = sc2 * trend.vint(ts, t_wb) ** 2
                    w += float(np.sum(0.5 * (vi2[1:] + vi2[:-1]) * np.diff(ts)))
                t.append(float(tn))
                v.append(math.sqrt(w / tn))
                s.append(0.0)
                tk = tn
        out.append(PickLocation(p.inline, p.crossline, p.cdp, p.x, p.y, np.round(t, 4),
                                np.round(v, 1), s))
    return Picks(out, picks.is_2d, dict(picks.params))


def reject_outliers(picks: Picks, tolerance: float = 0.04, radius: float | None = None
                    ) -> Picks:
    """Lateral edit: drop picks that disagree with the neighbouring locations.

    Each location's picks are compared with the median, over its neighbours, of their
    velocity functions (Vrms interpolated in ``V^2 t``, see
    :func:`seis_hpc.velocity.picks.vrms_function`) at the same times; a pick further than
    ``tolerance`` (relative) from it is dropped. Catches what a semblance path cannot tell
    from a primary: diffraction tails and migrating side lobes.

    Parameters
    ----------
    picks : Picks
        The picks.
    tolerance : float
        Largest relative departure kept (0.04 = 4 %).
    radius : float, optional
        Neighbours within this distance (m); default 2.5 x the median spacing of the
        locations (the two nearest on each side along a line).

    Returns
    -------
    Picks
        A new set; a location that loses every pick is left out.
    """
    from seis_hpc.velocity.picks import vrms_function

    locs = picks.locations
    if len(locs) < 3:
        return picks
    xy = np.array([[p.x, p.y] for p in locs])
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    if radius is None:
        near = np.sort(d, axis=1)[:, 1]
        radius = 2.5 * float(np.median(near))
    out = []
    for i, p in enumerate(locs):
        nb = [j for j in np.flatnonzero(d[i] <= radius) if j != i]
        if len(nb) < 2:
            out.append(p)
            continue
        ref = np.median([vrms_function(locs[j].time, locs[j].vrms, p.time) for j in nb],
                        axis=0)
        keep = np.abs(p.vrms / ref - 1.0) <= tolerance
        if keep.any():
            out.append(PickLocation(p.inline, p.crossline, p.cdp, p.x, p.y, p.time[keep],
                                    p.vrms[keep], p.semblance[keep]))
    return Picks(out, picks.is_2d, dict(picks.params))


def live_traces(offset, time, velocities, stretch_mute: float | None) -> np.ndarray:
    """Traces left after the NMO stretch mute, per trial velocity and zero-offset time.

    A trace at offset ``x`` is live at ``t0`` for velocity ``v`` when its stretch
    ``sqrt(1 + x^2 / (v t0)^2) - 1`` is at most ``stretch_mute``, i.e. ``|x| <= v t0
    sqrt((1 + s)^2 - 1)``.

    Returns
    -------
    numpy.ndarray of int64, shape (nv, nt)
    """
    x = np.sort(np.abs(np.asarray(offset, dtype=np.float64)))
    t = np.asarray(time, dtype=np.float64)
    v = np.asarray(velocities, dtype=np.float64)
    if stretch_mute is None:
        return np.full((v.size, t.size), x.size, dtype=np.int64)
    reach = v[:, None] * np.maximum(t, 0.0)[None, :] * math.sqrt((1 + stretch_mute) ** 2 - 1)
    return np.searchsorted(x, reach, side="right").astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Tables: TOML and Seismic Unix par files



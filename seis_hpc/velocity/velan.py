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
from dataclasses import dataclass

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
              min_semblance: float = 0.2, min_separation: float = 0.04
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
    # Dynamic programming; allowed[i, j]: velocity i at knot k-1 may precede j at knot k.
    v2 = vel * vel
    best = gain[0].copy()
    back = np.zeros((starts.size, vel.size), dtype=np.int64)
    lower = np.tril(np.ones((vel.size, vel.size), dtype=bool))  # j >= i: monotonic
    for k in range(1, starts.size):
        t1, t2 = t_knot[k - 1], t_knot[k]
        vint2 = (v2[None, :] * t2 - v2[:, None] * t1) / (t2 - t1)
        tm = 0.5 * (t1 + t2)
        ok = lower.T & (vint2 >= lo_fn(tm) ** 2) & (vint2 <= hi_fn(tm) ** 2)
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
    to let the water layer have its own velocity.
    """
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

    def velocities(self) -> np.ndarray:
        """The trial velocities (m/s)."""
        if not (0 < self.vmin < self.vmax and self.dv > 0):
            raise SeisError(f"velocity scan needs 0 < vmin < vmax and dv > 0 (got {self.vmin:g}, "
                            f"{self.vmax:g}, {self.dv:g} m/s)")
        n = int(math.floor((self.vmax - self.vmin) / self.dv + 1e-9)) + 1
        return self.vmin + self.dv * np.arange(n)


def velocity_analysis(source, inline, crossline, grid, locations, params: ScanParams,
                      reference=None, progress=None) -> Picks:
    """Semblance scan and automatic picks at each analysis location.

    Parameters
    ----------
    source : object
        Trace source with ``read_traces(ids)``, ``dt``, ``t_start``, ``ns`` and ``["offset"]``
        (a :class:`~seis_hpc.io.index.TraceIndex`, or an in-memory source).
    inline, crossline : numpy.ndarray
        Bin numbers of every trace.
    grid : BinGrid
        Survey grid (for CDP numbers and coordinates).
    locations : list of (inline, crossline)
        Where to analyse (:func:`analysis_locations`).
    params : ScanParams
        Scan and picking parameters.
    reference : optional
        Reference Vrms (see :func:`auto_pick`).
    progress : callable, optional
        Called with (done, total) after each location.

    Returns
    -------
    Picks
    """
    from seis_hpc.velocity.semblance import semblance

    vel = params.velocities()
    offset = np.asarray(source["offset"], dtype=np.float64)
    dt, t0, ns = float(source.dt), float(source.t_start), int(source.ns)
    time = t0 + dt * np.arange(ns)
    out = []
    for n, (il, xl) in enumerate(locations):
        ids = supergather_ids(inline, crossline, il, xl, params.supergather, grid.is_2d)
        if ids.size < 2:
            continue
        g = source.read_traces(ids)
        panel = semblance(g, offset[ids], dt, vel, t_start=t0, window=params.window,
                          method=params.method, stretch_mute=params.stretch_mute)
        # Coherence of a handful of traces means nothing: blank where too few are live.
        panel[live_traces(offset[ids], time, vel, params.stretch_mute) < params.min_live] = 0.0
        tp, vp, sp = auto_pick(panel, time, vel, vint_min=params.vint_min,
                               vint_max=params.vint_max, reference=reference,
                               corridor=params.corridor, dt_pick=params.dt_pick,
                               tmin=params.tmin, tmax=params.tmax,
                               min_semblance=params.min_semblance,
                               min_separation=params.min_separation)
        if tp.size:
            x, y = grid.grid_to_world(il, xl)
            out.append(PickLocation(il, xl, cdp_number(grid, il, xl), float(x), float(y), tp, vp,
                                    sp))
        if progress is not None:
            progress(n + 1, len(locations))
    if not out:
        raise SeisError("velocity analysis found no coherent event to pick at any location "
                        f"(min_semblance {params.min_semblance:g})")
    picks = Picks(out, grid.is_2d, params={k: v for k, v in vars(params).items()
                                           if not isinstance(v, (list, tuple))})
    if params.outlier is not None:
        picks = reject_outliers(picks, params.outlier)
    return picks


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



"""Velocity analysis: CMP super-gathers, semblance panels, automatic picking, picks tables, Dix.

A processor's velocity analysis, step by step:

1. **Analysis locations** every N CMPs (or every so many metres) where the fold is enough
   (:func:`analysis_locations`); in 3D every N inlines and N crosslines.
2. **Super-gathers**: the traces of a few neighbouring CMPs pooled into one gather
   (:func:`supergather_ids`), so the semblance sees more offsets and less noise.
3. **Semblance panels** over trial stacking velocities (:func:`seis_hpc.semblance.semblance`).
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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seis_hpc.errors import SeisError

try:  # tomllib is 3.11+; tomli is its backport (a dependency on older Pythons)
    import tomllib as _toml
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as _toml


# ---------------------------------------------------------------------------------------------
# Picks


@dataclass
class PickLocation:
    """The picks of one analysis location.

    Attributes
    ----------
    inline, crossline : int
        Bin of the location (2D: inline 0 and crossline = CMP number).
    cdp : int
        CDP number (2D: the CMP number; 3D: bin serial number from 1, inline-major).
    x, y : float
        Bin centre (m).
    time : numpy.ndarray
        Pick times, two-way (s), strictly increasing.
    vrms : numpy.ndarray
        Picked RMS (stacking) velocities (m/s).
    semblance : numpy.ndarray
        Coherence at each pick (NaN for imported picks).
    """

    inline: int
    crossline: int
    cdp: int
    x: float
    y: float
    time: np.ndarray
    vrms: np.ndarray
    semblance: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self):
        self.time = np.asarray(self.time, dtype=np.float64)
        self.vrms = np.asarray(self.vrms, dtype=np.float64)
        if self.semblance is None or len(self.semblance) != len(self.time):
            self.semblance = np.full(len(self.time), np.nan)
        self.semblance = np.asarray(self.semblance, dtype=np.float64)


@dataclass
class Picks:
    """Velocity picks of a survey: one :class:`PickLocation` per analysis location.

    Attributes
    ----------
    locations : list of PickLocation
        Ordered by inline, then crossline.
    is_2d : bool
        True for a 2D line (locations are CMPs).
    params : dict
        How the picks were made (scan and picking parameters), written to the table.
    """

    locations: list[PickLocation]
    is_2d: bool = True
    params: dict = field(default_factory=dict)

    def check(self, path=None, vint_min: float | None = None,
              vint_max: float | None = None) -> None:
        """Check every location: increasing times, positive velocities, sane Dix intervals.

        Raises
        ------
        SeisError
            Naming the location (CDP) and the offending pick.
        """
        if not self.locations:
            raise SeisError("no velocity picks", path)
        for loc in self.locations:
            where = f"cdp {loc.cdp}"
            if loc.time.size == 0:
                raise SeisError(f"{where}: no picks", path)
            if loc.time.shape != loc.vrms.shape:
                raise SeisError(f"{where}: {loc.time.size} times but {loc.vrms.size} "
                                "velocities", path)
            dix(loc.time, loc.vrms, vint_min=vint_min, vint_max=vint_max,
                where=where, path=path)


# ---------------------------------------------------------------------------------------------
# Dix


def dix(time, vrms, *, vint_min: float | None = None, vint_max: float | None = None,
        where: str = "picks", path=None) -> np.ndarray:
    """Dix interval velocities between consecutive picks, with checks.

    ``vint_k^2 = (V_k^2 t_k - V_{k-1}^2 t_{k-1}) / (t_k - t_{k-1})``; the first interval runs
    from t = 0 (its interval velocity is the first Vrms).

    Parameters
    ----------
    time : array_like, shape (n,)
        Two-way times (s), strictly increasing, >= 0.
    vrms : array_like, shape (n,)
        RMS velocities (m/s), > 0.
    vint_min, vint_max : float, optional
        Bounds (m/s) for every interval after the first; None: only "real and > 0" is
        checked.
    where : str
        Prefix of the error message (e.g. ``"cdp 120"``).
    path : path-like, optional
        The file the picks came from, for the message.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Interval velocity (m/s) of the layer ending at each pick.

    Raises
    ------
    SeisError
        Times not increasing or negative, velocities not finite and > 0, a negative squared
        interval velocity (V^2 t decreasing: physically impossible), or an interval velocity
        outside the bounds (absurd) -- naming the pick.
    """
    t = np.asarray(time, dtype=np.float64).ravel()
    v = np.asarray(vrms, dtype=np.float64).ravel()
    if t.shape != v.shape or t.size == 0:
        raise SeisError(f"{where}: need as many times as velocities (got {t.size} and "
                        f"{v.size})", path)
    if not (np.isfinite(t).all() and np.isfinite(v).all()):
        raise SeisError(f"{where}: pick times and velocities must be finite", path)
    if t[0] < 0 or np.any(np.diff(t) <= 0):
        k = 0 if t[0] < 0 else int(np.argmax(np.diff(t) <= 0)) + 1
        raise SeisError(f"{where}: pick times must be >= 0 s and increase (pick {k + 1} at "
                        f"{t[k]:g} s)", path)
    if np.any(v <= 0):
        k = int(np.argmax(v <= 0))
        raise SeisError(f"{where}: vrms must be > 0 m/s (pick {k + 1}: {v[k]:g})", path)
    v2t = v * v * t
    vint = np.empty_like(v)
    vint[0] = v[0]
    if t.size > 1:
        d = np.diff(v2t) / np.diff(t)
        if np.any(d <= 0):
            k = int(np.argmax(d <= 0)) + 1
            raise SeisError(f"{where}: Dix interval velocity between {t[k - 1]:g} s and "
                            f"{t[k]:g} s is imaginary (vrms {v[k - 1]:g} -> {v[k]:g} m/s "
                            "falls too fast)", path)
        vint[1:] = np.sqrt(d)
    for k in range(1, t.size):
        lo_bad = vint_min is not None and vint[k] < vint_min
        hi_bad = vint_max is not None and vint[k] > vint_max
        if lo_bad or hi_bad:
            raise SeisError(f"{where}: Dix interval velocity {vint[k]:.0f} m/s between "
                            f"{t[k - 1]:g} s and {t[k]:g} s is outside "
                            f"{vint_min or 0:g}..{vint_max or np.inf:g} m/s", path)
    return vint


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
        Semblance, e.g. from :func:`seis_hpc.semblance.semblance`.
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
    from seis_hpc.semblance import semblance

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
    :func:`seis_hpc.velocity_field.vrms_function`) at the same times; a pick further than
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
    from seis_hpc.velocity_field import vrms_function

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


def cdp_number(grid, il, xl) -> int:
    """CDP number of a bin: 2D the CMP number; 3D the bin serial number from 1, inline-major
    (as :class:`~seis_hpc.survey.Survey` numbers the ``cmp`` column)."""
    if grid.is_2d:
        return int(xl)
    return int((il - grid.inline0) * grid.n_crossline + (xl - grid.crossline0) + 1)


def bin_of_cdp(grid, cdp: int) -> tuple[int, int]:
    """Inverse of :func:`cdp_number`; raises when the CDP is outside the grid."""
    cdp = int(cdp)
    if grid.is_2d:
        if not grid.crossline0 <= cdp < grid.crossline0 + grid.n_crossline:
            raise SeisError(f"cdp {cdp} is outside the line (CMP {grid.crossline0}.."
                            f"{grid.crossline0 + grid.n_crossline - 1})")
        return grid.inline0, cdp
    if not 1 <= cdp <= grid.n_bins:
        raise SeisError(f"cdp {cdp} is outside the grid (1..{grid.n_bins})")
    i, j = divmod(cdp - 1, grid.n_crossline)
    return grid.inline0 + i, grid.crossline0 + j


# ---------------------------------------------------------------------------------------------
# Tables: TOML and Seismic Unix par files


def _fmt_list(values, fmt: str) -> str:
    return "[" + ", ".join(format(float(v), fmt) for v in values) + "]"


def write_picks(path: str | os.PathLike, picks: Picks) -> None:
    """Write picks as an editable TOML table (atomically).

    One ``[[location]]`` table per analysis location with ``cdp``, ``inline``, ``crossline``,
    ``x``, ``y`` (m), ``time`` (s), ``vrms`` (m/s) and ``semblance``; the scan parameters in
    ``[params]``. Edit the times and velocities and give the file back to ``seis-hpc velan
    --picks``.
    """
    from seis_hpc.io.atomic import atomic_output

    lines = ["# seis_hpc velocity picks: two-way time (s), RMS velocity (m/s).",
             "# Edit time/vrms freely (same length, times increasing); delete a [[location]]",
             "# to drop it. Read back with: seis-hpc velan GATHERS --picks THIS_FILE ...",
             f"is_2d = {'true' if picks.is_2d else 'false'}", ""]
    if picks.params:
        lines.append("[params]")
        for k, v in picks.params.items():
            if v is None:
                continue
            lines.append(f"{k} = {v!r}" if isinstance(v, (int, float)) else f'{k} = "{v}"')
        lines.append("")
    for loc in picks.locations:
        lines += ["[[location]]", f"cdp = {loc.cdp}", f"inline = {loc.inline}",
                  f"crossline = {loc.crossline}", f"x = {loc.x:.2f}", f"y = {loc.y:.2f}",
                  f"time = {_fmt_list(loc.time, '.4f')}", f"vrms = {_fmt_list(loc.vrms, '.1f')}"]
        if np.isfinite(loc.semblance).all():
            lines.append(f"semblance = {_fmt_list(loc.semblance, '.3f')}")
        lines.append("")
    with atomic_output(path) as tmp:
        Path(tmp).write_text("\n".join(lines))


def read_picks(path: str | os.PathLike, grid=None) -> Picks:
    """Read a picks table: TOML (:func:`write_picks`) or an SU par file (by content).

    Parameters
    ----------
    path : path-like
        The table.
    grid : BinGrid, optional
        Needed for SU files (to place CDP numbers) and used to fill missing bins/coordinates.

    Raises
    ------
    SeisError
        Unreadable file, missing or mismatched fields, bad picks (see :func:`dix`), naming the
        file and the location.
    """
    from seis_hpc.limits import read_text

    text = read_text(path, "picks table (TOML or SU par file)")
    if re.search(r"^\s*(cdp|tnmo|vnmo)\s*=", text, flags=re.MULTILINE) and \
            "[[location]]" not in text:
        if grid is None:
            raise SeisError("an SU par file needs the survey grid to place its CDPs", path)
        return read_su_picks(path, grid)
    try:
        doc = _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        raise SeisError(f"not a valid TOML picks table ({exc})", path) from None
    locs = doc.get("location")
    if not isinstance(locs, list) or not locs:
        raise SeisError("no [[location]] tables in the picks file", path)
    out = []
    for n, d in enumerate(locs, start=1):
        where = f"location {n}"
        for key in ("time", "vrms"):
            if key not in d:
                raise SeisError(f"{where}: missing '{key}'", path)
        try:
            t = np.asarray(d["time"], dtype=np.float64)
            v = np.asarray(d["vrms"], dtype=np.float64)
        except (TypeError, ValueError):
            raise SeisError(f"{where}: time and vrms must be lists of numbers", path) from None
        if t.ndim != 1 or t.shape != v.shape:
            raise SeisError(f"{where}: time and vrms must be lists of the same length "
                            f"(got {t.size} and {v.size})", path)
        if "cdp" in d and grid is not None and not ("inline" in d and "crossline" in d):
            il, xl = bin_of_cdp(grid, d["cdp"])
        elif "inline" in d and "crossline" in d:
            il, xl = int(d["inline"]), int(d["crossline"])
        elif "cdp" in d and doc.get("is_2d", True):
            il, xl = 0, int(d["cdp"])
        else:
            raise SeisError(f"{where}: give cdp, or inline and crossline", path)
        cdp = int(d.get("cdp", cdp_number(grid, il, xl) if grid is not None else xl))
        if grid is not None and ("x" not in d or "y" not in d):
            x, y = (float(a) for a in grid.grid_to_world(il, xl))
        else:
            x, y = float(d.get("x", 0.0)), float(d.get("y", 0.0))
        out.append(PickLocation(il, xl, cdp, x, y, t, v, d.get("semblance")))
    picks = Picks(sorted(out, key=lambda p: (p.inline, p.crossline)),
                  bool(doc.get("is_2d", grid.is_2d if grid is not None else True)),
                  params=dict(doc.get("params", {})))
    picks.check(path)
    return picks


def _su_values(value: str, key: str, line: int, path) -> list[float]:
    try:
        return [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise SeisError(f"line {line}: {key}= must be comma-separated numbers (got "
                        f"{value!r})", path) from None


def read_su_picks(path: str | os.PathLike, grid) -> Picks:
    """Read a Seismic Unix velocity par file (as ``sunmo par=`` takes and ``velan`` writes).

    Two layouts are accepted: SU's own, ``cdp=c1,c2,...`` followed by one ``tnmo=``/``vnmo=``
    pair per CDP in order; and one location per line, ``cdp=c tnmo=t1,t2 vnmo=v1,v2``. Times
    in s, velocities in m/s; ``#`` starts a comment.

    Parameters
    ----------
    path : path-like
        The par file.
    grid : BinGrid
        Survey grid: CDP numbers are placed with :func:`bin_of_cdp`.
    """
    cdps: list[int] = []
    tn: list[list[float]] = []
    vn: list[list[float]] = []
    from seis_hpc.limits import read_text

    for n, raw in enumerate(read_text(path, "SU par file").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        for tok in line.split():
            if "=" not in tok:
                raise SeisError(f"line {n}: expected key=value, got {tok!r}", path)
            key, val = tok.split("=", 1)
            key = key.strip().lower()
            if key == "cdp":
                vals = _su_values(val, key, n, path)
                if any(c != int(c) for c in vals):
                    raise SeisError(f"line {n}: cdp numbers must be whole numbers", path)
                cdps += [int(c) for c in vals]
            elif key == "tnmo":
                tn.append(_su_values(val, key, n, path))
            elif key == "vnmo":
                vn.append(_su_values(val, key, n, path))
            else:
                raise SeisError(f"line {n}: unknown key {key!r} (expected cdp, tnmo, vnmo)",
                                path)
    if not cdps:
        cdps = [grid.crossline0 if grid.is_2d else 1]  # one function for the whole survey
    if len(tn) != len(cdps) or len(vn) != len(cdps):
        raise SeisError(f"{len(cdps)} cdp numbers but {len(tn)} tnmo= and {len(vn)} vnmo= "
                        "lines (need one pair per cdp)", path)
    out = []
    for c, t, v in zip(cdps, tn, vn, strict=True):
        if len(t) != len(v):
            raise SeisError(f"cdp {c}: {len(t)} tnmo values but {len(v)} vnmo values", path)
        try:
            il, xl = bin_of_cdp(grid, c)
        except SeisError as exc:
            raise SeisError(exc.detail, path) from None
        x, y = grid.grid_to_world(il, xl)
        out.append(PickLocation(il, xl, c, float(x), float(y), t, v))
    picks = Picks(sorted(out, key=lambda p: (p.inline, p.crossline)), grid.is_2d)
    picks.check(path)
    return picks


def write_su_picks(path: str | os.PathLike, picks: Picks) -> None:
    """Write picks as a Seismic Unix par file (``cdp=`` list, then ``tnmo=``/``vnmo=`` per
    CDP), readable by ``sunmo par=`` and by :func:`read_su_picks`."""
    from seis_hpc.io.atomic import atomic_output

    lines = ["cdp=" + ",".join(str(p.cdp) for p in picks.locations)]
    for p in picks.locations:
        lines.append("tnmo=" + ",".join(f"{t:.4f}" for t in p.time))
        lines.append("vnmo=" + ",".join(f"{v:.1f}" for v in p.vrms))
    with atomic_output(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")

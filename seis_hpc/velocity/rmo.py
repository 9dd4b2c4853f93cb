"""Residual moveout (RMO) on offset-class image gathers, and the velocity update it gives.

After PSTM with velocity ``v_m``, a flat event of true stacking velocity ``v`` images at
offset ``h`` at the time ``tau(h)`` with (DSR traveltime at the stationary point)

.. math::

    \\tau(h)^2 = \\tau_0^2 + (\\gamma^2 - 1) \\frac{h^2}{v_m^2}, \\qquad \\gamma = v_m / v,

so gathers curve up for a too slow velocity (gamma < 1) and down for a too fast one. The
residual semblance scans the curvature parameter ``gamma`` (dimensionless, 1 = flat) at every
``tau_0``; picks of gamma on coherent events give ``v_new = v_m / gamma`` there. The ratio
``1 / gamma`` is interpolated between picks and locations and smoothed
(:func:`seis_hpc.velocity.field.field_from_picks`) and multiplies the old field. Iterating
migration and update converges to gamma = 1 everywhere (flat gathers), which is how PSTM
velocities are built in practice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seis_hpc.errors import SeisError


@dataclass
class RmoParams:
    """Parameters of the residual scan and picks.

    Attributes
    ----------
    gamma_min, gamma_max, dgamma : float
        Scanned curvature parameters ``v_m / v`` (dimensionless).
    window : float
        Semblance time window (s).
    min_semblance : float
        Weakest coherence that makes a pick.
    min_separation : float
        Closest spacing of picks in time (s).
    min_live : int
        Fewest live offset classes for a semblance value.
    smooth_m, smooth_s : float
        Smoothing lengths (m, s) of the update ratio.
    tmin : float
        No picks above this time (s), e.g. the water-bottom multiples' zone.
    """

    gamma_min: float = 0.85
    gamma_max: float = 1.15
    dgamma: float = 0.0025
    window: float = 0.024
    min_semblance: float = 0.5
    min_separation: float = 0.04
    min_live: int = 4
    smooth_m: float = 0.0
    smooth_s: float = 0.0
    tmin: float = 0.0

    def gammas(self) -> np.ndarray:
        """The scanned gamma values."""
        if not (0 < self.gamma_min < 1 < self.gamma_max and self.dgamma > 0):
            raise SeisError("RMO scan needs 0 < gamma_min < 1 < gamma_max and dgamma > 0 (got "
                            f"{self.gamma_min:g}, {self.gamma_max:g}, {self.dgamma:g})")
        n = int(np.floor((self.gamma_max - self.gamma_min) / self.dgamma + 1e-9)) + 1
        return self.gamma_min + self.dgamma * np.arange(n)


def _window_sum(a: np.ndarray, half: int) -> np.ndarray:
    if half <= 0:
        return a
    c = np.cumsum(np.pad(a, [(0, 0)] * (a.ndim - 1) + [(half + 1, half)]), axis=-1)
    return c[..., 2 * half + 1:] - c[..., :-(2 * half + 1)]


def residual_semblance(gather, offsets, time, vrms, gammas, *, window: float = 0.024,
                       min_live: int = 4) -> np.ndarray:
    """Semblance of an offset-class image gather along residual-moveout curves.

    Parameters
    ----------
    gather : array_like, shape (n_class, nt)
        Image gather of one location: one migrated trace per offset class.
    offsets : array_like, shape (n_class,)
        Offset (m) representing each class (its mean trace offset, or its centre).
    time : array_like, shape (nt,)
        Image times tau_0 (s), regular.
    vrms : array_like, shape (nt,)
        Migration velocity ``v_m`` (m/s) of this location.
    gammas : array_like, shape (ng,)
        Curvature parameters ``v_m / v`` to scan.
    window : float
        Time window (s) over which the energies are summed.
    min_live : int
        Fewest classes live (non-zero) at a sample for its semblance to count.

    Returns
    -------
    numpy.ndarray, shape (ng, nt)
        Conventional semblance in [0, 1]; 0 where fewer than ``min_live`` classes are live
        or the window's energy is below 1e-3 of the gather's strongest window.
    """
    g = np.asarray(gather, dtype=np.float64)
    h = np.asarray(offsets, dtype=np.float64)
    t = np.asarray(time, dtype=np.float64)
    v = np.asarray(vrms, dtype=np.float64)
    gm = np.atleast_1d(np.asarray(gammas, dtype=np.float64))
    if g.ndim != 2 or g.shape != (h.size, t.size) or v.shape != t.shape:
        raise SeisError(f"residual_semblance: gather {g.shape}, offsets {h.shape}, time "
                        f"{t.shape} and vrms {v.shape} do not agree")
    if not np.all(np.isfinite(g)):
        raise SeisError("residual_semblance: gather has NaN or infinite samples")
    dt = float(t[1] - t[0])
    nt = t.size
    half = int(round(0.5 * window / dt))
    out = np.zeros((gm.size, nt))
    rows = np.arange(h.size)[:, None]
    # Coherence of (numerically) no energy means nothing: blank windows far below the peak.
    floor = 1e-3 * float(_window_sum((g * g).sum(axis=0)[None, :], half).max())
    for k, gam in enumerate(gm):
        arg = t[None, :] ** 2 + (gam * gam - 1.0) * (h[:, None] / v[None, :]) ** 2
        u = (np.sqrt(np.maximum(arg, 0.0)) - t[0]) / dt
        ok = (arg > 0) & (u >= 0) & (u <= nt - 1)
        i0 = np.clip(np.floor(u).astype(np.int64), 0, nt - 2)
        f = np.clip(u - i0, 0.0, 1.0)
        c = np.where(ok, (1 - f) * g[rows, i0] + f * g[rows, i0 + 1], 0.0)
        live = ok & (c != 0.0)
        n = live.sum(axis=0)
        num = _window_sum(np.where(n > 0, c.sum(axis=0) ** 2 / np.maximum(n, 1), 0.0), half)
        den = _window_sum((c * c).sum(axis=0), half)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.where(den > 0, num / den, 0.0)
        s[(n < min_live) | (den <= floor)] = 0.0
        out[k] = np.clip(s, 0.0, 1.0)
    return out


def pick_gamma(panel, gammas, time, *, min_semblance: float = 0.5, min_separation: float = 0.04
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick gamma on coherent events of a residual-semblance panel.

    At each time the best gamma (refined by a parabola); picks are the times where that
    semblance is at least ``min_semblance`` and the largest within ``min_separation``.

    Returns
    -------
    time, gamma, semblance : numpy.ndarray
        The picks.
    """
    s = np.asarray(panel, dtype=np.float64)
    gm = np.asarray(gammas, dtype=np.float64)
    t = np.asarray(time, dtype=np.float64)
    best = np.argmax(s, axis=0)
    peak = s[best, np.arange(t.size)]
    w = max(1, int(round(min_separation / (t[1] - t[0]))))
    pad = np.concatenate([np.full(w, -np.inf), peak, np.full(w, -np.inf)])
    keep = peak >= min_semblance
    for d in range(1, w + 1):
        keep &= (peak >= pad[w - d:w - d + t.size]) & (peak > pad[w + d:w + d + t.size])
    it = np.flatnonzero(keep)
    g = gm[best[it]].astype(np.float64)
    for n, j in enumerate(it):
        i = best[j]
        if 0 < i < gm.size - 1:
            a, b, c = s[i - 1, j], s[i, j], s[i + 1, j]
            den = a - 2 * b + c
            if den < 0:
                g[n] += float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) * (gm[1] - gm[0])
    return t[it], g, peak[it]


def class_offsets(offset, edges) -> np.ndarray:
    """Mean |offset| (m) of the traces in each offset class (the centre for an empty class)."""
    from seis_hpc.geometry import offset_classes

    e = np.asarray(edges, dtype=np.float64)
    off = np.abs(np.asarray(offset, dtype=np.float64))
    cls = offset_classes(off, e)
    ok = cls >= 0
    n = np.bincount(cls[ok], minlength=e.size - 1)
    s = np.bincount(cls[ok], weights=off[ok], minlength=e.size - 1)
    centre = 0.5 * (e[1:] + e[:-1])
    return np.where(n > 0, s / np.maximum(n, 1), centre)


def rmo_update(gathers, offsets, time, vrms_at, locations, grid, vrms_field, params: RmoParams
               ) -> tuple[np.ndarray, list]:
    """One velocity update from image gathers at analysis locations.

    Parameters
    ----------
    gathers : array_like, shape (n_class, n_loc, nt)
        Image gathers at the locations.
    offsets : array_like, shape (n_class,)
        Representative offset of each class (m), e.g. :func:`class_offsets`.
    time : array_like, shape (nt,)
        Image times (s).
    vrms_at : array_like, shape (n_loc, nt)
        Migration velocity at the locations (m/s).
    locations : list of (inline, crossline)
        The locations' bins.
    grid : BinGrid
        Grid of ``vrms_field``.
    vrms_field : numpy.ndarray, shape ``grid.shape + (nt,)``
        The velocity used for the migration (m/s).
    params : RmoParams
        Scan, pick and smoothing parameters.

    Returns
    -------
    new_field : numpy.ndarray, float32, ``grid.shape + (nt,)``
        ``vrms_field`` times the interpolated, smoothed ratio ``1 / gamma``.
    picks : list of (inline, crossline, time, gamma, semblance)
        The gamma picks per location (for QC and logs).
    """
    from seis_hpc.velocity.field import field_from_picks
    from seis_hpc.velocity.picks import PickLocation, Picks, cdp_number

    g = np.asarray(gathers)
    t = np.asarray(time, dtype=np.float64)
    va = np.asarray(vrms_at, dtype=np.float64)
    if g.ndim != 3 or g.shape[1] != len(locations) or va.shape != (len(locations), t.size):
        raise SeisError(f"rmo_update: gathers {g.shape}, vrms {va.shape} and {len(locations)} "
                        "locations do not agree")
    gm = params.gammas()
    ratio_locs, report = [], []
    for n, (il, xl) in enumerate(locations):
        panel = residual_semblance(g[:, n], offsets, t, va[n], gm, window=params.window,
                                   min_live=params.min_live)
        tp, gp, sp = pick_gamma(panel, gm, t, min_semblance=params.min_semblance,
                                min_separation=params.min_separation)
        keep = tp >= params.tmin
        tp, gp, sp = tp[keep], gp[keep], sp[keep]
        report.append((il, xl, tp, gp, sp))
        if tp.size:
            x, y = grid.grid_to_world(il, xl)
            ratio_locs.append(PickLocation(il, xl, cdp_number(grid, il, xl), float(x), float(y),
                                           tp, 1.0 / gp, sp))
    field = np.asarray(vrms_field, dtype=np.float64)
    if not ratio_locs:
        return field.astype(np.float32), report
    ratio = field_from_picks(Picks(ratio_locs, grid.is_2d), grid, t, smooth_m=params.smooth_m,
                             smooth_s=params.smooth_s, interp="linear")
    return (field * ratio).astype(np.float32), report

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
    water_bottom : float or None
        Water-bottom two-way time (s). When given, the velocity above it is kept (the
        water), and picks that want a slower velocity (gamma > 1) on the water-bottom
        multiple train (``k t_wb``, k >= 2) or on peg-legs (an earlier event's time plus
        ``k t_wb``) are not used: multiples are not flattened.
    multiple_window : float
        Half-width (s) of those multiple bands.
    min_gain : float
        An update is kept at a pick only where it raises the flatness (residual semblance
        at the applied gamma against gamma = 1) by at least this much.
    min_flatness : float
        Locations whose gathers are less flat than this fraction of the median location's
        (partial gathers at the ends of a line) are not used (with 3 locations or more).
    vint_min, vint_max : float
        The updated field's Dix interval velocities are kept within these (m/s).
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
    min_gain: float = 0.01
    min_flatness: float = 0.8
    water_bottom: float | None = None
    multiple_window: float = 0.04
    vint_min: float = 1400.0
    vint_max: float = 6000.0

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
        ``vrms_field`` times the interpolated, smoothed ratio ``1 / gamma`` of the picks that
        flatten their gather (see :class:`RmoParams` ``min_gain``), with every Dix interval
        velocity within ``vint_min..vint_max``.
    picks : list of (inline, crossline, time, gamma, semblance, flat_before, flat_after)
        The kept gamma picks per location and the gather's flatness (:func:`flatness`)
        before and, predicted, after the update (for QC and logs).
    """
    from seis_hpc.velocity.field import bound_dix, field_from_picks
    from seis_hpc.velocity.picks import PickLocation, Picks, cdp_number

    g = np.asarray(gathers)
    t = np.asarray(time, dtype=np.float64)
    va = np.asarray(vrms_at, dtype=np.float64)
    if g.ndim != 3 or g.shape[1] != len(locations) or va.shape != (len(locations), t.size):
        raise SeisError(f"rmo_update: gathers {g.shape}, vrms {va.shape} and {len(locations)} "
                        "locations do not agree")
    gm = params.gammas()
    panels, picks = [], []
    for n in range(len(locations)):
        panel = residual_semblance(g[:, n], offsets, t, va[n], gm, window=params.window,
                                   min_live=params.min_live)
        tp, gp, sp = pick_gamma(panel, gm, t, min_semblance=params.min_semblance,
                                min_separation=params.min_separation)
        keep = tp >= params.tmin
        panels.append(panel)
        picks.append([tp[keep], gp[keep], sp[keep]])
    shape_in = np.shape(vrms_field)
    field = np.asarray(vrms_field, dtype=np.float64).reshape(grid.shape + (t.size,))
    # Row of each location in the fields flattened to (bins, nt).
    ij = [(il - grid.inline0) * grid.n_crossline + (xl - grid.crossline0)
          for il, xl in locations]
    events = [(np.max(p, axis=0) >= params.min_semblance) & (t >= params.tmin)
              for p in panels]
    before = [flatness(p, gm, np.ones(t.size), ev) for p, ev in zip(panels, events,
                                                                   strict=True)]
    # Keep a pick only where the smoothed, interpolated update flattens the gather there;
    # a pick that does not becomes a pin (gamma = 1: no change there), so neither it nor its
    # neighbours' updates move that event. Pins change the interpolation: check again.
    # Gathers much less flat than the line's typical one are partial (migration edges, missing
    # offsets): their residual moveout is no velocity error, their picks are not used.
    typical = np.nanmedian(before) if np.isfinite(before).any() else np.nan
    for n in range(len(picks)):
        if len(picks) >= 3 and np.isfinite(typical) and \
                not before[n] >= params.min_flatness * typical:
            picks[n] = [a[:0] for a in picks[n]]
    # Events (weaker ones too) that may have peg-legs below them.
    ev_times = [pick_gamma(p, gm, t, min_semblance=0.5 * params.min_semblance,
                           min_separation=0.5 * params.min_separation)[0] for p in panels]
    pinned = [_multiple_picks(tp, gp, params, et)
              for (tp, gp, _), et in zip(picks, ev_times, strict=True)]
    if params.water_bottom:
        # The water is known: no change above the sea floor.
        for n, (tp, gp, sp) in enumerate(picks):
            tw = float(params.water_bottom)
            picks[n] = [np.append(tw, tp), np.append(1.0, gp), np.append(1.0, sp)]
            pinned[n] = np.append(True, pinned[n])
    ratio = np.ones(field.shape)
    for _ in range(5):
        locs = []
        for (il, xl), (tp, gp, sp), pin in zip(locations, picks, pinned, strict=True):
            if tp.size:
                x, y = grid.grid_to_world(il, xl)
                locs.append(PickLocation(il, xl, cdp_number(grid, il, xl), float(x), float(y),
                                         tp, np.where(pin, 1.0, 1.0 / gp), sp))
        if not locs:
            break
        ratio = field_from_picks(Picks(locs, grid.is_2d), grid, t, smooth_m=params.smooth_m,
                                 smooth_s=params.smooth_s, interp="linear")
        changed = 0
        for n, (tp, gp, _sp) in enumerate(picks):
            if not tp.size:
                continue
            s1 = _semblance_at(panels[n], gm, np.ones(t.size))
            s2 = _semblance_at(panels[n], gm, 1.0 / ratio.reshape(-1, t.size)[ij[n]])
            it = np.clip(np.rint((tp - t[0]) / (t[1] - t[0])).astype(np.int64), 0, t.size - 1)
            # A pin holds when the update would not flatten the event by min_gain.
            bad = (s2[it] < s1[it] + params.min_gain) & ~pinned[n] & \
                (np.abs(ratio.reshape(-1, t.size)[ij[n]][it] - 1.0) > 1e-4)
            # The update must stay physical: Dix between consecutive picks of the updated
            # function real and within the bounds, else the larger change of the pair is
            # pinned.
            cand = (field.reshape(-1, t.size)[ij[n]] * ratio.reshape(-1, t.size)[ij[n]])[it]
            if tp.size > 1:
                d = np.diff(cand ** 2 * tp) / np.maximum(np.diff(tp), 1e-9)
                wrong = (d < params.vint_min ** 2) | (d > params.vint_max ** 2)
                for q in np.flatnonzero(wrong):
                    pair = [q, q + 1]
                    free = [i for i in pair if not pinned[n][i] and not bad[i]]
                    if free:
                        bad[max(free, key=lambda i: abs(1.0 / gp[i] - 1.0))] = True
            # ... and the location as a whole must get flatter, or none of its picks counts.
            if flatness(panels[n], gm, 1.0 / ratio.reshape(-1, t.size)[ij[n]], events[n]) \
                    < before[n]:
                bad |= ~pinned[n]
            changed += int(bad.sum())
            pinned[n] |= bad
        if not changed:
            break
    picks = [[tp[~pin], gp[~pin], sp[~pin]] for (tp, gp, sp), pin in zip(picks, pinned,
                                                                          strict=True)]
    new = bound_dix(field * ratio, t, params.vint_min, params.vint_max)
    report = []
    for n, (il, xl) in enumerate(locations):
        gam = field.reshape(-1, t.size)[ij[n]] / np.maximum(
            new.reshape(-1, t.size)[ij[n]], 1e-9)
        after = flatness(panels[n], gm, gam, events[n])
        tp, gp, sp = picks[n]
        report.append((il, xl, tp, gp, sp, before[n], after))
    return new.reshape(shape_in).astype(np.float32), report


def rmo_fold(survey, grid, fraction: float = 0.5) -> np.ndarray:
    """Fold of the image ``grid`` (a part of the survey's grid, same bin numbers) with the
    bins below ``fraction`` of the survey's largest fold set to 0: RMO is analysed only where
    the image gathers hold most offsets (not at the tapering ends of a line, whose partial
    gathers show residual moveout that is no velocity error)."""
    sg = survey.grid
    full = np.asarray(survey.fold()).reshape(sg.n_inline, sg.n_crossline)
    i0, j0 = grid.inline0 - sg.inline0, grid.crossline0 - sg.crossline0
    f = full[i0:i0 + grid.n_inline, j0:j0 + grid.n_crossline]
    return np.where(f >= fraction * full.max(), f, 0)


def detect_water_bottom(index, water_velocity: float = 1500.0, n: int = 200) -> float | None:
    """Water-bottom two-way time (s) from the ``n`` nearest-offset traces of a survey index
    (:func:`seis_hpc.velocity.velan.water_bottom_time`); None when there is no sea floor."""
    from seis_hpc.velocity.velan import water_bottom_time

    off = np.abs(np.asarray(index["offset"], dtype=np.float64))
    ids = np.sort(np.argsort(off, kind="stable")[:n])
    return water_bottom_time(index.read_traces(ids), off[ids], float(index.dt),
                             float(index.t_start), water_velocity, near_fraction=1.0)


def _multiple_picks(tp, gp, params, events=()) -> np.ndarray:
    """Picks on water-bottom multiples or peg-legs (below an earlier pick or event of
    ``events``, s) that want a slower velocity."""
    tp, gp = np.asarray(tp, dtype=np.float64), np.asarray(gp, dtype=np.float64)
    out = np.zeros(tp.size, bool)
    tw = params.water_bottom
    if not tw or tp.size == 0:
        return out
    w = params.multiple_window
    k = np.rint(tp / tw)
    out |= (k >= 2) & (np.abs(tp - k * tw) <= w)
    ev = np.concatenate([tp, np.asarray(events, dtype=np.float64)])
    for i in range(tp.size):
        e = ev[ev < tp[i] - 0.5 * tw]
        lag = (tp[i] - e) / tw
        out[i] |= bool(np.any((np.rint(lag) >= 1) & (np.rint(lag) <= 3)
                              & (np.abs(tp[i] - e - np.rint(lag) * tw) <= w)))
    return out & (gp > 1.0 + 0.5 * params.dgamma)


def _semblance_at(panel, gammas, gamma) -> np.ndarray:
    """The residual semblance at one gamma per time sample (linear between scanned ones)."""
    gm = np.asarray(gammas, dtype=np.float64)
    u = np.clip((np.asarray(gamma, dtype=np.float64) - gm[0]) / (gm[1] - gm[0]), 0,
                gm.size - 1)
    i0 = np.minimum(np.floor(u).astype(np.int64), gm.size - 2)
    f = u - i0
    cols = np.arange(panel.shape[1])
    return (1 - f) * panel[i0, cols] + f * panel[i0 + 1, cols]


def flatness(panel, gammas, gamma, mask) -> float:
    """How flat an image gather is with a velocity ``v_m / gamma``: the mean residual
    semblance at ``gamma`` (one per time sample) over the event samples ``mask``.

    With ``gamma = 1`` this is the flatness of the gather as migrated; with the ratio of the
    migration velocity to an updated one it predicts the flatness after migrating with the
    update (the residual moveout of the current gather at that gamma). NaN without events.
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return float("nan")
    return float(_semblance_at(panel, gammas, gamma)[m].mean())

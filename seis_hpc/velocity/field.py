"""Velocity picks to a smooth RMS-velocity field on the image grid, and back to tables.

* In time, each location's picks become a function on the output time axis by linear
  interpolation of ``V^2 t`` (so the interval velocity is constant between picks, the Dix
  model), holding Vrms constant above the first pick and below the last.
* Laterally, the functions are interpolated linearly between locations: along the line in
  2D; on the Delaunay triangles of the locations in 3D (nearest location outside them).
* The field is then smoothed by a running mean applied twice (a triangle) of length
  ``smooth_m`` (m) along each lateral axis and ``smooth_s`` (s) in time.

The result is written as the ``vrms`` volume of the seis_hpc HDF5 format
(:mod:`seis_hpc.io.volume`), which ``seis-hpc pstm``/``stack`` read, or exported as a Seismic
Unix par file.
"""

from __future__ import annotations

import os

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.velocity.picks import vrms_function


def _lateral(pos: np.ndarray, f: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Interpolate functions ``f`` (nloc, nt) given at points ``pos`` (nloc, 2) m to ``q``.

    Collinear points (a 2D line, one row of 3D locations): linear along the line, constant
    beyond its ends. Otherwise linear on the Delaunay triangles, nearest point outside them.
    """
    if len(pos) == 1:
        return np.repeat(f, q.shape[0], axis=0)
    c = pos.mean(axis=0)
    _, sv, vt = np.linalg.svd(pos - c, full_matrices=False)
    if sv.size < 2 or sv[1] <= 1e-6 * max(sv[0], 1e-12):
        s = (pos - c) @ vt[0]
        sq = (q - c) @ vt[0]
        order = np.argsort(s, kind="stable")
        s, f = s[order], f[order]
        k = np.clip(np.searchsorted(s, sq, side="right") - 1, 0, len(s) - 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.clip((sq - s[k]) / (s[k + 1] - s[k]), 0.0, 1.0)
        w = np.nan_to_num(w)[:, None]
        return (1 - w) * f[k] + w * f[k + 1]
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    lin = LinearNDInterpolator(pos, f)(q)
    near = NearestNDInterpolator(pos, f)(q)
    return np.where(np.isnan(lin), near, lin)


def _smooth(a: np.ndarray, axis: int, n: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    if n <= 1 or a.shape[axis] < 2:
        return a
    for _ in range(2):
        a = uniform_filter1d(a, n, axis=axis, mode="nearest")
    return a


def _odd(length: float, step: float) -> int:
    n = int(round(length / step)) if step > 0 else 1
    return max(1, n + (n + 1) % 2)


def bound_dix(vrms, time, vint_min: float = 1400.0, vint_max: float = 6000.0
              ) -> np.ndarray:
    """Make a Vrms field physical: every Dix interval velocity within the bounds.

    Walking down each trace, the increment of ``V^2 t`` between consecutive samples (the
    interval velocity squared times the sample interval) is clamped to
    ``[vint_min^2, vint_max^2] * dt``; samples already physical are unchanged. Because every
    sample step is bounded, so is every longer interval (e.g. the 20 ms Dix steps of QC).

    Parameters
    ----------
    vrms : numpy.ndarray, shape (..., nt)
        RMS velocity (m/s).
    time : array_like, shape (nt,)
        Two-way times (s), increasing.
    vint_min, vint_max : float
        Interval-velocity bounds (m/s).

    Returns
    -------
    numpy.ndarray
        The bounded field, same shape, float64.
    """
    t = np.asarray(time, dtype=np.float64)
    v = np.array(vrms, dtype=np.float64)
    if t.size < 2:
        return v
    # A hair inside the bounds so resampling and float32 storage keep them.
    lo, hi = (1.002 * vint_min) ** 2, (0.998 * vint_max) ** 2
    start = int(np.searchsorted(t, 0.0, side="right"))  # V^2 t is 0 at t = 0
    flat = v.reshape(-1, t.size)
    w = flat[:, start] ** 2 * t[start] if start < t.size else None
    for k in range(start + 1, t.size):
        dtk = t[k] - t[k - 1]
        w = w + np.clip(flat[:, k] ** 2 * t[k] - w, lo * dtk, hi * dtk)
        flat[:, k] = np.sqrt(w / t[k])
    return flat.reshape(v.shape)


def field_from_picks(picks, grid, time, *, smooth_m: float = 0.0, smooth_s: float = 0.0,
                     interp: str = "v2t", vint_bounds: tuple[float, float] | None = None
                     ) -> np.ndarray:
    """Interpolate picks to a smooth Vrms field on ``grid`` x ``time``.

    Parameters
    ----------
    picks : seis_hpc.velocity.picks.Picks
        Picks at analysis locations (bins of ``grid``).
    grid : BinGrid
        Image grid.
    time : array_like, shape (nt,)
        Output two-way times (s), regular.
    smooth_m : float
        Lateral smoothing length (m): running mean of this length, applied twice.
    smooth_s : float
        Smoothing length in time (s), likewise.
    interp : {"v2t", "linear"}
        Interpolation in time (see :func:`vrms_function`).
    vint_bounds : (float, float), optional
        Interval-velocity bounds (m/s) applied after smoothing (:func:`bound_dix`), so the
        field is physical everywhere.

    Returns
    -------
    numpy.ndarray, float32, shape ``grid.shape + (nt,)``
        Vrms (m/s).
    """
    if smooth_m < 0 or smooth_s < 0:
        raise SeisError(f"smoothing lengths must be >= 0 (got {smooth_m:g} m, {smooth_s:g} s)")
    t = np.asarray(time, dtype=np.float64)
    locs = picks.locations
    if not locs:
        raise SeisError("no velocity picks to interpolate")
    if interp not in ("v2t", "linear"):
        raise SeisError(f"interp must be 'v2t' or 'linear' (got {interp!r})")
    funcs = np.array([vrms_function(p.time, p.vrms, t, interp) for p in locs])
    # A location speaks for the times between its first and last pick; at each time the
    # lateral interpolation uses the locations that picked around it (all where none did).
    valid = np.array([(t >= p.time[0]) & (t <= p.time[-1]) for p in locs])
    # Above every first pick, the locations picked shallowest speak (their first value held):
    # a low-fold edge whose first pick is deep says nothing about the shallow section.
    first = np.array([p.time[0] for p in locs])
    none = ~valid.any(axis=0)
    valid[:, none] = (first <= first.min() + 0.05)[:, None]
    valid[:, ~valid.any(axis=0)] = True
    il = np.array([p.inline for p in locs], dtype=np.float64)
    xl = np.array([p.crossline for p in locs], dtype=np.float64)
    # Positions in metres, so rectangular bins do not skew the interpolation.
    pos = np.column_stack([il * grid.bin_crossline, xl * grid.bin_inline])
    gi, gx = np.meshgrid(grid.inlines() * grid.bin_crossline,
                         grid.crosslines() * grid.bin_inline, indexing="ij")
    q = np.column_stack([gi.ravel(), gx.ravel()])
    out = np.empty((q.shape[0], t.size))
    patterns, which = np.unique(valid.T, axis=0, return_inverse=True)
    for n, pat in enumerate(patterns):
        cols = np.flatnonzero(which.ravel() == n)
        out[:, cols] = _lateral(pos[pat], funcs[pat][:, cols], q)
    out = out.reshape(grid.shape + (t.size,))
    dt = float(t[1] - t[0]) if t.size > 1 else 1.0
    if grid.is_2d:
        out = _smooth(out, 0, _odd(smooth_m, grid.bin_inline))
        out = _smooth(out, 1, _odd(smooth_s, dt))
    else:
        out = _smooth(out, 0, _odd(smooth_m, grid.bin_crossline))
        out = _smooth(out, 1, _odd(smooth_m, grid.bin_inline))
        out = _smooth(out, 2, _odd(smooth_s, dt))
    if vint_bounds is not None:
        out = bound_dix(out, t, *vint_bounds)
    return np.ascontiguousarray(out, dtype=np.float32)


def write_vrms(path: str | os.PathLike, vrms: np.ndarray, grid, time, *, config: str = "",
               history=(), attrs: dict | None = None) -> None:
    """Write a Vrms field as the ``vrms`` volume of the seis_hpc HDF5 format (atomically).

    Parameters
    ----------
    path : path-like
        Output file (``seis-hpc pstm --velocity`` and ``seis-hpc stack --velocity`` read it).
    vrms : numpy.ndarray, shape ``grid.shape + (nt,)``
        RMS velocity (m/s), finite and > 0.
    grid : BinGrid
        Its grid.
    time : array_like, shape (nt,)
        Two-way times (s).
    config, history, attrs
        Provenance written with the volume.
    """
    from seis_hpc.io.volume import Volume, write_volume

    v = np.asarray(vrms, dtype=np.float32)
    if not np.all(np.isfinite(v)) or (v.size and v.min() <= 0):
        raise SeisError("vrms field must be finite and > 0 m/s", path)
    write_volume(path, Volume(v, grid, np.asarray(time, dtype=np.float64), "vrms",
                              config=config, history=list(history), attrs=dict(attrs or {})))


def table_from_field(vrms: np.ndarray, grid, time, *, every: int = 10, dt_table: float = 0.1):
    """Sample a Vrms field into picks (every ``every`` bins, every ``dt_table`` s) for export.

    Returns
    -------
    seis_hpc.velocity.picks.Picks
    """
    from seis_hpc.velocity.picks import PickLocation, Picks, cdp_number

    if int(every) != every or every < 1:
        raise SeisError(f"every must be a whole number >= 1 (got {every})")
    if not dt_table > 0:
        raise SeisError(f"dt_table must be > 0 s (got {dt_table})")
    t = np.asarray(time, dtype=np.float64)
    v = np.asarray(vrms).reshape(grid.n_inline, grid.n_crossline, t.size)
    step = max(1, int(round(dt_table / (t[1] - t[0])))) if t.size > 1 else 1
    it = np.arange(0, t.size, step)
    if it[-1] != t.size - 1:
        it = np.append(it, t.size - 1)
    tt = np.maximum(t[it], 0.0)
    locs = []
    for i in range(0, grid.n_inline, 1 if grid.is_2d else int(every)):
        for j in range(0, grid.n_crossline, int(every)):
            il, xl = grid.inline0 + i, grid.crossline0 + j
            x, y = grid.grid_to_world(il, xl)
            locs.append(PickLocation(il, xl, cdp_number(grid, il, xl), float(x), float(y), tt,
                                     v[i, j, it].astype(np.float64)))
    return Picks(locs, grid.is_2d)

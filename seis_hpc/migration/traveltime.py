"""Double-square-root (DSR) traveltimes of prestack time migration, exact and sparse in t0.

Straight rays in an RMS-velocity medium: for an output point x at two-way vertical time t0,

    t = sqrt(t0^2/4 + |s - x|^2 / v^2) + sqrt(t0^2/4 + |r - x|^2 / v^2),   v = Vrms(x, t0)

with s and r the source and receiver positions (m). With ``eta`` (VTI, Alkhalifah & Tsvankin
1995) each leg follows the non-hyperbolic moveout of a symmetric reflection with one-way
zero-offset time a = t0/2 and horizontal distance d:

    t_leg^2 = a^2 + d^2/v^2 - 2 eta d^4 / (v^2 [a^2 v^2 + (1 + 2 eta) d^2])

(the two-way formula with offset 2d and time 2a, halved), v being the NMO velocity.

Sparse t0: where it pays, traveltimes are evaluated exactly on a set of knots of the output
time axis and interpolated linearly between them. The knots are chosen from a curvature
bound so that the interpolation error stays under ``tol`` data samples (see
:func:`sparse_knots`).
"""

from __future__ import annotations

import math

import numpy as np

from seis_hpc.errors import SeisError

# Linear interpolation between knots h apart errs by at most h^2/8 * max|d2t/dt0^2|. For one
# leg t = sqrt(u), u = a^2 + d^2 S (a = t0/2, S = 1/v^2, d the horizontal distance):
#     d2t/dt0^2 = [(1/2 + d^2 S'') u - (a + d^2 S')^2 / 2] / (2 u^(3/2))
# which in constant velocity peaks over d at 1 / (6 sqrt(3) a). The knots bound it over a grid
# of distances and every output point's velocity function (S', S'' by finite differences).
N_DISTANCES = 48



def as_coordinates(name: str, values, n: int | None = None) -> np.ndarray:
    """``values`` as a finite float64 1-D array (length ``n`` when given) or SeisError."""
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"({n},)" if n is not None else "1-D"
        raise SeisError(f"{name}: expected shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise SeisError(f"{name}: trace {bad}: value is not finite")
    return arr


def check_points(points) -> np.ndarray:
    """Output positions as a finite (npts, 2) float64 array (m) or SeisError."""
    pts = np.ascontiguousarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise SeisError(f"points: expected shape (npts, 2) of x, y in m, got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise SeisError("points: coordinates are not finite")
    return pts


def check_time_axis(time) -> np.ndarray:
    """Output two-way times as a finite, increasing float64 array (s) or SeisError."""
    t = as_coordinates("time", time)
    if t.size == 0:
        raise SeisError("time: the output time axis is empty")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        raise SeisError("time: the output time axis must increase")
    return t


def inverse_slowness2(vrms, npts: int, nt: int) -> np.ndarray:
    """``1 / vrms^2`` (s^2/m^2) as float64 (npts, nt) after checking ``vrms`` (m/s)."""
    v = np.asarray(vrms)
    if v.shape != (npts, nt):
        raise SeisError(f"vrms: expected shape (npts, nt) = ({npts}, {nt}), got {v.shape}")
    v = v.astype(np.float64)
    if not np.all(np.isfinite(v) & (v > 0)):
        bad = np.argwhere(~(np.isfinite(v) & (v > 0)))[0]
        raise SeisError(f"vrms: point {bad[0]}, sample {bad[1]}: velocity must be > 0 m/s")
    return np.ascontiguousarray(1.0 / (v * v))


def check_geometry(points, time, vrms, sx, sy, rx, ry):
    """Validate the inputs every traveltime-based operator shares.

    Returns ``(points, time, sx, sy, rx, ry, iv2)``: points float64 (npts, 2) m, the regular
    output time axis (s), coordinates float64 (ntr,) m and 1/Vrms^2 (npts, nt) in s^2/m^2.
    Raises :class:`SeisError` naming the offending field.
    """
    pts = check_points(points)
    t = check_time_axis(time)
    sx = as_coordinates("sx", sx)
    ntr = sx.size
    sy, rx, ry = (as_coordinates(n, v, ntr) for n, v in (("sy", sy), ("rx", rx), ("ry", ry)))
    return pts, t, sx, sy, rx, ry, inverse_slowness2(vrms, pts.shape[0], t.size)


def leg_curvature(time, iv2=None, d_max: float = 0.0) -> np.ndarray:
    """Upper estimate of |d2t/dt0^2| (1/s) of the DSR (both legs) at each output sample.

    Parameters
    ----------
    time : numpy.ndarray, shape (nt,)
        Output times t0 (s).
    iv2 : numpy.ndarray, shape (npts, nt), optional
        ``1/vrms^2`` (s^2/m^2); without it the constant-velocity bound is returned.
    d_max : float
        Largest horizontal source or receiver distance (m) to an output point.

    Returns
    -------
    numpy.ndarray, shape (nt,)
        The maximum over points and over distances 0..d_max of the curvature of the sum of the
        two legs (inf where t0 <= 0).
    """
    a = 0.5 * time
    with np.errstate(divide="ignore"):
        bound = np.where(a > 0, 2.0 / (6.0 * math.sqrt(3.0) * np.where(a > 0, a, 1.0)), np.inf)
    if iv2 is None or time.size < 3 or not d_max > 0:
        return bound
    s1 = np.gradient(iv2, time, axis=1)
    s2 = np.gradient(s1, time, axis=1)
    dist = np.concatenate([[0.0], np.geomspace(1.0, d_max, N_DISTANCES)])
    kappa = np.zeros(time.size)
    for d in dist:
        d2 = d * d
        u = a[None] ** 2 + d2 * iv2
        with np.errstate(divide="ignore", invalid="ignore"):
            c = ((0.5 + d2 * s2) * u - 0.5 * (a[None] + d2 * s1) ** 2) / (2.0 * u**1.5)
        kappa = np.maximum(kappa, np.nan_to_num(np.abs(c), nan=np.inf).max(axis=0))
    # the distance grid is finite: take the constant-velocity bound as a floor
    return np.where(a > 0, 2.0 * np.maximum(kappa, 0.5 * bound), np.inf)


def sparse_knots(time, dt: float, sparse_t0: int | str = "auto", tol: float = 0.1, *,
                 iv2=None, d_max: float = 0.0) -> np.ndarray:
    """Indices of the output samples where traveltimes are evaluated exactly.

    Parameters
    ----------
    time : array_like, shape (nt,)
        Output two-way times t0 (s), increasing.
    dt : float
        Data sample interval (s): the error bound is ``tol * dt``.
    sparse_t0 : int or "auto"
        ``K``: every K-th output sample (K >= 1). ``"auto"``: knots placed greedily so that
        ``h^2 / 8 * max curvature`` over each knot interval (h its length, the curvature from
        :func:`leg_curvature`) stays under ``tol * dt``: dense at early times, sparse later;
        every t0 <= 0 sample is a knot. Note that "auto" bounds the error of the traveltime
        of every point-trace pair, while a fixed ``K`` guarantees nothing.
    tol : float
        Maximum interpolation error (data samples) of the automatic choice.
    iv2 : numpy.ndarray, shape (npts, nt), optional
        ``1/vrms^2`` (s^2/m^2), so that velocity variations enter the curvature.
    d_max : float
        Largest horizontal distance (m) from an output point to a source or receiver.

    Returns
    -------
    numpy.ndarray of int32
        Increasing sample indices including 0 and the last sample.
    """
    t = check_time_axis(time)
    nt = t.size
    if isinstance(sparse_t0, str):
        if sparse_t0 != "auto":
            raise SeisError(f"sparse_t0: expected an integer >= 1 or 'auto', got {sparse_t0!r}")
        if not dt > 0:
            raise SeisError(f"dt: sample interval must be > 0 s (got {dt})")
        kappa = leg_curvature(t, iv2, d_max)
        knots = [0]
        j = 0
        while j < nt - 1:
            nxt = j + 1
            worst = max(kappa[j], kappa[nxt])
            while nxt + 1 < nt:
                worst_next = max(worst, kappa[nxt + 1])
                if (t[nxt + 1] - t[j]) ** 2 / 8.0 * worst_next > tol * dt:
                    break
                nxt += 1
                worst = worst_next
            knots.append(nxt)
            j = nxt
        return np.asarray(knots, dtype=np.int32)
    k = int(sparse_t0)
    if k != sparse_t0 or k < 1:
        raise SeisError(f"sparse_t0: expected an integer >= 1 or 'auto', got {sparse_t0!r}")
    knots = list(range(0, nt, k))
    if knots[-1] != nt - 1:
        knots.append(nt - 1)
    return np.asarray(knots, dtype=np.int32)


def max_distance(points, sx, sy, rx, ry) -> float:
    """Largest horizontal distance (m) between an output point and a source or receiver,
    bounded from the bounding boxes (cheap, never an underestimate)."""
    if points.shape[0] == 0 or sx.size == 0:
        return 0.0
    xs = np.concatenate([sx, rx])
    ys = np.concatenate([sy, ry])
    dx = max(abs(points[:, 0].max() - xs.min()), abs(xs.max() - points[:, 0].min()))
    dy = max(abs(points[:, 1].max() - ys.min()), abs(ys.max() - points[:, 1].min()))
    return float(math.hypot(dx, dy))


def interpolate_on_knots(values: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Replace ``values[..., j]`` between knots by linear interpolation of the knot values."""
    nt = values.shape[-1]
    j = np.arange(nt)
    seg = np.clip(np.searchsorted(knots, j, side="right") - 1, 0, len(knots) - 2)
    jl, jr = knots[seg], knots[seg + 1]
    g = (j - jl) / (jr - jl)
    return values[..., jl] + g * (values[..., jr] - values[..., jl])


def dsr_traveltime(points, time, vrms, sx, sy, rx, ry, eta=None, backend="numpy", *,
                   sparse_t0: int | str | None = None, dt: float | None = None,
                   threads: int | None = None) -> np.ndarray:
    """DSR traveltimes from every trace to every output sample.

    Parameters
    ----------
    points : array_like, shape (npts, 2)
        Output positions x, y (m).
    time : array_like, shape (nt,)
        Output two-way vertical times t0 (s).
    vrms : array_like, shape (npts, nt)
        RMS (VTI: NMO) velocity (m/s) at each output sample.
    sx, sy, rx, ry : array_like, shape (ntr,)
        Source and receiver coordinates (m).
    eta : float or array_like (npts, nt), optional
        Anellipticity; None or 0 gives the isotropic DSR.
    backend : {"numpy", "cython"}
        Implementation (identical results to rounding).
    sparse_t0 : int or "auto", optional
        Evaluate exactly only on :func:`sparse_knots` and interpolate linearly between.
    dt : float, optional
        Data sample interval (s); required with ``sparse_t0="auto"``.
    threads : int, optional
        OpenMP threads of the cython backend (None: the OpenMP default).

    Returns
    -------
    numpy.ndarray, float64, shape (ntr, npts, nt)
        Two-way traveltimes (s).
    """
    pts, t, sx, sy, rx, ry, iv2 = check_geometry(points, time, vrms, sx, sy, rx, ry)
    a2 = (0.5 * t) ** 2
    eta_arr = None
    if eta is not None:
        eta_arr = np.ascontiguousarray(np.broadcast_to(np.asarray(eta, dtype=np.float64),
                                                       iv2.shape))
        if not np.all(np.isfinite(eta_arr) & (eta_arr > -0.5)):
            raise SeisError("eta: anellipticity must be finite and > -0.5")
    if backend == "numpy":
        tt = dsr_numpy(pts, a2, iv2, sx, sy, rx, ry, eta_arr)
    elif backend == "cython":
        from seis_hpc.kernels import openmp
        from seis_hpc.kernels import pstm as kern

        tt = np.empty((sx.size, pts.shape[0], t.size))
        dummy = np.zeros((1, 1)) if eta_arr is None else eta_arr
        kern.dsr_traveltime(pts, a2, iv2, sx, sy, rx, ry, dummy, tt, int(eta_arr is not None),
                            int(threads or openmp.max_threads()))
    else:
        raise SeisError(f"backend: expected 'numpy' or 'cython', got {backend!r}")
    if sparse_t0 is not None:
        if sparse_t0 == "auto" and dt is None:
            raise SeisError("dt: the data sample interval is needed with sparse_t0='auto'")
        knots = sparse_knots(t, dt if dt is not None else 1.0, sparse_t0, iv2=iv2,
                             d_max=max_distance(pts, sx, sy, rx, ry))
        tt = interpolate_on_knots(tt, knots)
    return tt


def dsr_numpy(points, a2, iv2, sx, sy, rx, ry, eta=None) -> np.ndarray:
    """Exact DSR / VTI traveltimes (s), shape (ntr, npts, nt)."""
    ds2 = (points[None, :, 0] - sx[:, None]) ** 2 + (points[None, :, 1] - sy[:, None]) ** 2
    dr2 = (points[None, :, 0] - rx[:, None]) ** 2 + (points[None, :, 1] - ry[:, None]) ** 2

    def leg(d2):
        t2 = a2[None, None, :] + d2[:, :, None] * iv2[None]
        if eta is not None:
            den = a2[None, None, :] / iv2[None] + (1 + 2 * eta[None]) * d2[:, :, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                corr = np.where(den > 0, 2 * eta[None] * d2[:, :, None] ** 2 * iv2[None] / den,
                                0.0)
            t2 = t2 - corr
        return np.sqrt(np.maximum(t2, 0.0))

    return leg(ds2) + leg(dr2)

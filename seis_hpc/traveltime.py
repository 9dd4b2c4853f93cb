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
# DSR leg in constant velocity d2t/dt0^2 = (d^2/v^2) / (4 t_leg^3), whose maximum over all
# distances d is 1 / (6 sqrt(3) a) with a = t0/2, so for the two legs
# |d2t/dt0^2| <= 2 / (3 sqrt(3) t0). Velocity varying with t0 adds curvature; the safety
# factor covers RMS velocities with realistic gradients (measured in tests/test_traveltime.py).
CURVATURE_SAFETY = 4.0


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


def sparse_knots(time, dt: float, sparse_t0: int | str = "auto", tol: float = 0.1,
                 safety: float = CURVATURE_SAFETY) -> np.ndarray:
    """Indices of the output samples where traveltimes are evaluated exactly.

    Parameters
    ----------
    time : array_like, shape (nt,)
        Output two-way times t0 (s), increasing.
    dt : float
        Data sample interval (s): the error bound is ``tol * dt``.
    sparse_t0 : int or "auto"
        ``K``: every K-th output sample (K >= 1). ``"auto"``: knots spaced by
        ``h(t0) = sqrt(8 tol dt / kappa(t0))`` with the curvature bound
        ``kappa = safety * 2 / (3 sqrt(3) t0)``, so knots are dense at early times and sparse
        later (t0 <= 0 samples are all knots).
    tol : float
        Maximum interpolation error (data samples) of the automatic choice.
    safety : float
        Factor on the constant-velocity curvature bound (covers velocity gradients).

    Returns
    -------
    numpy.ndarray of int32
        Increasing sample indices, always including the first sample with t0 > 0 and the last
        sample; an empty array would mean exact evaluation and is never returned.
    """
    t = check_time_axis(time)
    nt = t.size
    if isinstance(sparse_t0, str):
        if sparse_t0 != "auto":
            raise SeisError(f"sparse_t0: expected an integer >= 1 or 'auto', got {sparse_t0!r}")
        if not dt > 0:
            raise SeisError(f"dt: sample interval must be > 0 s (got {dt})")
        knots = []
        j = 0
        while j < nt - 1:
            knots.append(j)
            if t[j] <= 0:
                j += 1
                continue
            h = math.sqrt(8.0 * tol * dt * 3.0 * math.sqrt(3.0) * t[j] / (2.0 * safety))
            nxt = int(np.searchsorted(t, t[j] + h, side="right")) - 1
            j = max(j + 1, nxt)
        knots.append(nt - 1)
        return np.asarray(knots, dtype=np.int32)
    k = int(sparse_t0)
    if k != sparse_t0 or k < 1:
        raise SeisError(f"sparse_t0: expected an integer >= 1 or 'auto', got {sparse_t0!r}")
    first = int(np.searchsorted(t, 0.0, side="right"))
    knots = list(range(first)) + list(range(first, nt, k))
    if not knots or knots[-1] != nt - 1:
        knots.append(nt - 1)
    return np.asarray(knots, dtype=np.int32)


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
    pts = check_points(points)
    t = check_time_axis(time)
    sx = as_coordinates("sx", sx)
    ntr = sx.size
    sy, rx, ry = (as_coordinates(n, v, ntr) for n, v in (("sy", sy), ("rx", rx), ("ry", ry)))
    iv2 = inverse_slowness2(vrms, pts.shape[0], t.size)
    a2 = (0.5 * t) ** 2
    eta_arr = None
    if eta is not None:
        eta_arr = np.ascontiguousarray(np.broadcast_to(np.asarray(eta, dtype=np.float64),
                                                       iv2.shape))
        if not np.all(np.isfinite(eta_arr) & (eta_arr > -0.5)):
            raise SeisError("eta: anellipticity must be finite and > -0.5")
    if backend == "numpy":
        from seis_hpc import _reference

        tt = _reference.dsr_numpy(pts, a2, iv2, sx, sy, rx, ry, eta_arr)
    elif backend == "cython":
        from seis_hpc.kernels import openmp
        from seis_hpc.kernels import pstm as kern

        tt = np.empty((ntr, pts.shape[0], t.size))
        dummy = np.zeros((1, 1)) if eta_arr is None else eta_arr
        kern.dsr_traveltime(pts, a2, iv2, sx, sy, rx, ry, dummy, tt, int(eta_arr is not None),
                            int(threads or openmp.max_threads()))
    else:
        raise SeisError(f"backend: expected 'numpy' or 'cython', got {backend!r}")
    if sparse_t0 is not None:
        if sparse_t0 == "auto" and dt is None:
            raise SeisError("dt: the data sample interval is needed with sparse_t0='auto'")
        knots = sparse_knots(t, dt if dt is not None else 1.0, sparse_t0)
        tt = interpolate_on_knots(tt, knots)
    return tt

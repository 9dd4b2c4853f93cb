"""Semblance velocity scans of CMP gathers: conventional and AB (trend-aware) semblance.

For each trial velocity the gather is NMO-corrected (see :mod:`seis_hpc.velocity.nmo`) and, at every
zero-offset time, the live corrected samples ``c_i`` are fitted by a model across offset:

* ``"conventional"`` (Taner and Koehler 1969): a constant, the mean of the live traces;
* ``"ab"`` (Sarkar et al. 2002; Fomel 2009): ``A + B φ_i`` with ``φ_i = (x_i / max|x|)²``, a
  least-squares intercept and gradient per time sample, so an amplitude trend with offset,
  polarity reversals included, does not cancel the coherence.

Semblance is the fitted energy over the total energy, each summed over a time window:

.. math::

    S(t_0, v) = \\frac{\\sum_{w} \\sum_i \\hat c_i^2}{\\sum_{w} \\sum_i c_i^2} \\in [0, 1].

For the conventional fit ``Σ ĉ² = (Σ c)² / N`` with ``N`` the live fold of the sample.
"""

from __future__ import annotations

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.velocity.nmo import (
    BACKENDS,
    INTERP,
    check_choice,
    check_gather,
    check_offset,
    check_scalar,
    check_stretch,
    nmo_kernels,
    nmo_numpy,
)

METHODS = ("conventional", "ab")


def _check_velocities(velocities, where: str) -> np.ndarray:
    v = np.atleast_1d(np.asarray(velocities, dtype=np.float64))
    if v.ndim != 1 or v.size < 1:
        raise SeisError(f"{where}: velocities must be a 1-D list of trial velocities (m/s), "
                        f"got shape {v.shape}")
    bad = ~(np.isfinite(v) & (v > 0.0))
    if bad.any():
        k = int(np.argmax(bad))
        raise SeisError(f"{where}: velocities must be finite and > 0 m/s, got {v[k]:g} at "
                        f"index {k}")
    return np.ascontiguousarray(v)


def _window_sum(a: np.ndarray, half: int) -> np.ndarray:
    """Sum of a[:, j - half : j + half + 1] (clipped at the ends), added in time order."""
    ns = a.shape[1]
    pad = np.zeros((a.shape[0], ns + 2 * half))
    pad[:, half:half + ns] = a
    out = np.zeros_like(a)
    for w in range(2 * half + 1):
        out += pad[:, w:w + ns]
    return out


def _semblance_numpy(g, x, vel, dt, t_start, smax, interp, half, ab):
    ntr, ns = g.shape
    x2 = x * x
    xmax = x2.max()
    phi = (x2 / xmax if xmax > 0.0 else np.zeros_like(x2))[:, None]
    num = np.empty((vel.size, ns))
    den = np.empty((vel.size, ns))
    for k, v in enumerate(vel):
        c, live = nmo_numpy(g, x, np.full((ntr, ns), v), None, dt, t_start, smax, interp)
        c = c.astype(np.float64)
        n = live.sum(axis=0).astype(np.float64)
        r0 = c.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = np.where(n > 0.0, r0 * r0 / n, 0.0)
            if ab:
                s1 = (phi * live).sum(axis=0)
                s2 = (phi * phi * live).sum(axis=0)
                r1 = (phi * c).sum(axis=0)
                det = n * s2 - s1 * s1
                full = (s2 * r0 * r0 - 2.0 * s1 * r0 * r1 + n * r1 * r1) / det
                fit = np.where((n > 0.0) & (det > 1e-9 * n * s2), full, fit)
        num[k] = fit
        den[k] = (c * c).sum(axis=0)
    a_num = _window_sum(num, half)
    a_den = _window_sum(den, half)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(a_den > 0.0, a_num / a_den, 0.0)
    return np.clip(s, 0.0, 1.0)


def semblance(
    gather,
    offset,
    dt: float,
    velocities,
    *,
    t_start: float = 0.0,
    window: float = 0.02,
    method: str = "conventional",
    stretch_mute: float | None = None,
    interp: str = "linear",
    backend: str = "cython",
) -> np.ndarray:
    """Semblance of a CMP gather along NMO hyperbolae for a list of constant trial velocities.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces of one CMP (float32), with moveout (not NMO-corrected).
    offset : array_like, shape (ntr,)
        Offset of each trace (m).
    dt : float
        Sample interval (s), > 0.
    velocities : array_like, shape (nv,)
        Trial NMO velocities (m/s), > 0.
    t_start : float, optional
        Time of the first sample (s).
    window : float, optional
        Length of the time window the energies are summed over (s): ``2 h + 1`` samples with
        ``h = round(window / (2 dt))``; 0 gives sample-by-sample semblance.
    method : {"conventional", "ab"}, optional
        Constant fit across offset, or the intercept-plus-gradient (AB) fit.
    stretch_mute : float or None, optional
        Exclude samples whose NMO stretch exceeds this fraction (see
        :func:`seis_hpc.velocity.nmo.nmo_correct`); ``None`` (default) keeps every sample inside the
        trace.
    interp : {"linear", "cubic"}, optional
        Interpolation of the input traces.
    backend : {"cython", "numpy"}, optional
        Compiled kernel, or the NumPy reference.

    Returns
    -------
    numpy.ndarray, float64, shape (nv, ns)
        Coherence in [0, 1] for each trial velocity and zero-offset time ``t_start + j dt``;
        0 where the window holds no energy.

    Raises
    ------
    SeisError
        On a bad shape, a non-positive ``dt`` or velocity, a negative window, or an unknown
        option.
    """
    where = "semblance"
    g = check_gather(gather, where)
    x = check_offset(offset, g.shape[0], where)
    dt = check_scalar(dt, "dt", where, unit="s")
    t_start = check_scalar(t_start, "t_start", where, unit="s", positive=False)
    vel = _check_velocities(velocities, where)
    window = check_scalar(window, "window", where, unit="s", positive=False)
    if window < 0.0:
        raise SeisError(f"{where}: window must be >= 0 s, got {window:g}")
    check_choice(method, METHODS, "method", where)
    check_choice(interp, tuple(INTERP), "interp", where)
    check_choice(backend, BACKENDS, "backend", where)
    smax = check_stretch(stretch_mute, where)
    half = int(round(0.5 * window / dt))
    ab = method == "ab"
    if backend == "numpy":
        return _semblance_numpy(g, x, vel, dt, t_start, smax, INTERP[interp], half, ab)
    nv, ns = vel.size, g.shape[1]
    out = np.empty((nv, ns))
    num = np.empty((nv, ns))
    den = np.empty((nv, ns))
    nmo_kernels().semblance_scan(g, x, vel, dt, t_start, smax, INTERP[interp], half, int(ab), out,
                              num, den)
    return out

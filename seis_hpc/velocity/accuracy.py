"""Accuracy of a Vrms field against a known truth, and its physical soundness (Dix).

Used by the tests and by ``docs/measure_velocity.py`` on the synthetic lines whose truth
(``truth.json`` of ``seis-hpc synth``) gives the exact Vrms(t0).
"""

from __future__ import annotations

import numpy as np


def dix_unphysical(vrms, time, *, step: float = 0.02, vint_min: float = 1400.0,
                   vint_max: float = 6000.0) -> int:
    """Number of unphysical Dix interval-velocity samples of a field.

    The field is resampled every ``step`` seconds (from ``step``); between consecutive samples
    the interval velocity ``sqrt(d(V^2 t)/dt)`` is unphysical when imaginary (``V^2 t``
    decreasing) or outside ``[vint_min, vint_max]``.

    Parameters
    ----------
    vrms : array_like, shape (nloc, nt) or (nt,)
        RMS velocity (m/s).
    time : array_like, shape (nt,)
        Two-way times (s).
    step : float
        Dix sampling interval (s).
    vint_min, vint_max : float
        Physical bounds of the interval velocity (m/s).

    Returns
    -------
    int
        Count over every location and interval.
    """
    return int(interval_velocity(vrms, time, step=step, vint_min=vint_min,
                                 vint_max=vint_max)[2].sum())


def interval_velocity(vrms, time, *, step: float = 0.02, vint_min: float = 1400.0,
                      vint_max: float = 6000.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dix interval velocities of a Vrms field every ``step`` seconds, and which are unphysical.

    The field is resampled at ``step, 2 step, ...`` (as
    :func:`dix_unphysical` counts) and
    ``vint = sqrt(d(V^2 t) / dt)`` taken between consecutive samples.

    Parameters
    ----------
    vrms : array_like, shape (n_x, nt)
        RMS velocity (m/s) of each trace of a section.
    time : array_like, shape (nt,)
        Two-way times (s).
    step : float
        Dix interval (s).
    vint_min, vint_max : float
        Physical bounds (m/s).

    Returns
    -------
    t_mid : numpy.ndarray, shape (m,)
        Middle of each interval (s).
    vint : numpy.ndarray, shape (n_x, m)
        Interval velocity (m/s); NaN where imaginary (``V^2 t`` decreasing).
    bad : numpy.ndarray of bool, shape (n_x, m)
        Imaginary or outside ``[vint_min, vint_max]``.
    """
    v = np.atleast_2d(np.asarray(vrms, dtype=np.float64))
    t = np.asarray(time, dtype=np.float64)
    ts = np.arange(step, t[-1] + 1e-9, step)
    vs = np.array([np.interp(ts, t, row) for row in v])
    d = np.diff(vs * vs * ts, axis=1) / step
    bad = (d <= 0) | (d < vint_min ** 2) | (d > vint_max ** 2)
    with np.errstate(invalid="ignore"):
        vint = np.where(d > 0, np.sqrt(np.maximum(d, 0.0)), np.nan)
    return 0.5 * (ts[1:] + ts[:-1]), vint, bad


def vrms_errors(vrms, time, true_vrms, t0: float, t1: float) -> dict:
    """Relative Vrms error statistics between times ``t0`` and ``t1`` (s).

    Parameters
    ----------
    vrms, true_vrms : array_like, shape (nloc, nt)
        Estimated and true RMS velocity (m/s) on the same locations and times.
    time : array_like, shape (nt,)
        Two-way times (s).

    Returns
    -------
    dict
        ``median``, ``p99`` and ``max`` of ``|v / v_true - 1|`` (fractions), and ``n``.
    """
    t = np.asarray(time, dtype=np.float64)
    sel = (t >= t0) & (t <= t1)
    e = np.abs(np.asarray(vrms, dtype=np.float64)[:, sel]
               / np.asarray(true_vrms, dtype=np.float64)[:, sel] - 1.0).ravel()
    return {"median": float(np.median(e)), "p99": float(np.percentile(e, 99)),
            "max": float(e.max()), "n": int(e.size)}

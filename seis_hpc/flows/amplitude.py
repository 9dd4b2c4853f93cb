"""Amplitude recovery: spherical divergence, AGC, trace equalisation, and their inverses.

Every gain is returned with what undoes it: :func:`spherical_divergence` takes ``inverse=True``;
:func:`agc` and :func:`equalise` return the scalars they applied, and :func:`remove_gain`
divides them out, so true amplitudes can be restored before true-amplitude migration.
Times in s, velocities in m/s.
"""

from __future__ import annotations

import numpy as np

from seis_hpc.errors import SeisError


def divergence_gain(ns: int, dt: float, *, t_start: float = 0.0, velocity=None,
                    power: float | None = None) -> np.ndarray:
    """Spherical-divergence gain ``g(t)`` per sample.

    ``g = t * (v(t) / v(0))**2`` (Newman 1973) when ``velocity`` is given, else ``t**power``;
    ``t`` is clamped to ``dt`` so the first sample is finite.

    Parameters
    ----------
    ns : int
        Samples per trace.
    dt : float
        Sample interval (s).
    t_start : float
        Time of the first sample (s).
    velocity : float or array_like, shape (ns,), optional
        RMS velocity (m/s) at each sample.
    power : float, optional
        Exponent of ``t`` when no velocity is given (default 2).

    Returns
    -------
    numpy.ndarray
        float64 gain, shape ``(ns,)``.
    """
    if not dt > 0:
        raise SeisError(f"divergence: sample interval must be > 0 s (got {dt})")
    t = np.maximum(t_start + dt * np.arange(ns), dt)
    if velocity is not None:
        v = np.broadcast_to(np.asarray(velocity, np.float64), (ns,))
        if not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise SeisError("divergence: velocity must be finite and > 0 m/s")
        return t * (v / v[0]) ** 2
    p = 2.0 if power is None else float(power)
    return t ** p


def spherical_divergence(gather, dt: float, *, t_start: float = 0.0, velocity=None,
                         power: float | None = None, inverse: bool = False) -> np.ndarray:
    """Multiply traces by the divergence gain (or divide, ``inverse=True``).

    Parameters are those of :func:`divergence_gain`; ``gather`` is ``(ntr, ns)``.

    Returns
    -------
    numpy.ndarray
        float32 ``(ntr, ns)``.
    """
    g = np.asarray(gather, np.float64)
    gain = divergence_gain(g.shape[1], dt, t_start=t_start, velocity=velocity, power=power)
    return (g / gain if inverse else g * gain).astype(np.float32)


def agc(gather, dt: float, window: float, *, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Automatic gain control: divide each sample by the RMS in a centred window.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces.
    dt : float
        Sample interval (s).
    window : float
        Window length (s).
    eps : float
        Floor of the RMS, relative to the gather's largest RMS (keeps dead zones finite).

    Returns
    -------
    out : numpy.ndarray
        float32 gained traces.
    scale : numpy.ndarray
        float32 scalars applied (``out = gather * scale``); :func:`remove_gain` undoes it.
    """
    from scipy.ndimage import uniform_filter1d

    if not window > 0 or not dt > 0:
        raise SeisError(f"agc: window and sample interval must be > 0 s (got {window}, {dt})")
    g = np.asarray(gather, np.float64)
    n = max(1, int(round(window / dt)))
    rms = np.sqrt(uniform_filter1d(g * g, n, axis=-1, mode="nearest"))
    floor = eps * max(float(rms.max()), 1e-30)
    scale = 1.0 / np.maximum(rms, floor)
    return (g * scale).astype(np.float32), scale.astype(np.float32)


def equalise(gather, dt: float, *, t_start: float = 0.0, window=None, target: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray]:
    """Trace equalisation: scale each trace to RMS ``target`` in a time window.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces.
    dt : float
        Sample interval (s).
    t_start : float
        Time of the first sample (s).
    window : (float, float), optional
        Start and end time of the RMS window (s); default the whole trace.
    target : float
        RMS after scaling.

    Returns
    -------
    out : numpy.ndarray
        float32 traces.
    scale : numpy.ndarray
        float64 ``(ntr,)`` scalar of each trace (1 for dead traces).
    """
    g = np.asarray(gather, np.float64)
    ns = g.shape[1]
    a, b = 0, ns
    if window is not None:
        a = int(np.clip(round((window[0] - t_start) / dt), 0, ns))
        b = int(np.clip(round((window[1] - t_start) / dt) + 1, 0, ns))
        if b <= a:
            raise SeisError(f"equalise: empty window {window} s")
    rms = np.sqrt(np.mean(g[:, a:b] ** 2, axis=1))
    scale = np.where(rms > 0, target / np.where(rms > 0, rms, 1.0), 1.0)
    return (g * scale[:, None]).astype(np.float32), scale


def remove_gain(gather, scale) -> np.ndarray:
    """Undo :func:`agc` or :func:`equalise`: divide by the scalars they returned.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Gained traces.
    scale : array_like, shape (ntr, ns) or (ntr,)
        The scalars.

    Returns
    -------
    numpy.ndarray
        float32 traces with the gain removed.
    """
    g = np.asarray(gather, np.float64)
    s = np.asarray(scale, np.float64)
    if s.ndim == 1:
        s = s[:, None]
    return (g / s).astype(np.float32)

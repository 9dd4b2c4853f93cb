"""Top and bottom mutes from time-offset tables (arrays only).

A mute table gives the mute time at a few offsets (linear in between, constant beyond its
ends), optionally for several values of a key (CDP or FFID) along the line, interpolated
linearly between keys (constant beyond the first and last). A top mute zeroes every sample
before its time and ramps up over ``taper`` seconds after it (half a cosine); a bottom mute
ramps down over ``taper`` seconds before its time and zeroes every sample after it.
"""

from __future__ import annotations

import numpy as np


def table_times(offset, key, knots) -> np.ndarray:
    """Mute time (s) of every trace from a table.

    Parameters
    ----------
    offset : array_like, shape (ntr,)
        Offsets (m); their absolute values are used.
    key : array_like, shape (ntr,) or None
        Key value (CDP or FFID) of every trace; ignored for a table with one function.
    knots : list of (key, offsets, times)
        The table: for each key value (None for a table without key), increasing offsets (m)
        and their times (s). Sorted by key.

    Returns
    -------
    numpy.ndarray
        float64 ``(ntr,)`` times (s).
    """
    x = np.abs(np.asarray(offset, np.float64))
    per_key = np.array([np.interp(x, off, t) for _, off, t in knots])  # (nkey, ntr)
    if len(knots) == 1:
        return per_key[0]
    keys = np.array([k for k, _, _ in knots], np.float64)
    kv = np.asarray(key, np.float64)
    j = np.clip(np.searchsorted(keys, kv, side="right") - 1, 0, len(keys) - 2)
    w = np.clip((kv - keys[j]) / (keys[j + 1] - keys[j]), 0.0, 1.0)
    cols = np.arange(len(x))
    return per_key[j, cols] * (1 - w) + per_key[j + 1, cols] * w


def mute_weights(ns: int, dt: float, *, t_start: float = 0.0, top=None, bottom=None,
                 taper: float = 0.0) -> np.ndarray:
    """Mute weights (0 muted .. 1 kept) for every trace and sample.

    Parameters
    ----------
    ns : int
        Samples per trace.
    dt : float
        Sample interval (s).
    t_start : float
        Time of the first sample (s).
    top, bottom : array_like, shape (ntr,), optional
        Top-mute and bottom-mute times (s) of every trace.
    taper : float
        Taper length (s): 0 below ``top`` rising to 1 at ``top + taper``; 1 at
        ``bottom - taper`` falling to 0 at ``bottom``. 0 is a hard mute (the sample at
        ``top`` is kept, the one at ``bottom`` too).

    Returns
    -------
    numpy.ndarray
        float32 ``(ntr, ns)``.
    """
    t = t_start + dt * np.arange(ns)
    ref = top if top is not None else bottom
    n = 1 if ref is None else len(np.atleast_1d(ref))
    w = np.ones((n, ns))
    if top is not None:
        s = t[None, :] - np.asarray(top, np.float64)[:, None]
        w *= _ramp(s, taper)
    if bottom is not None:
        s = np.asarray(bottom, np.float64)[:, None] - t[None, :]
        w *= _ramp(s, taper)
    return w.astype(np.float32)


def _ramp(s: np.ndarray, taper: float) -> np.ndarray:
    """0 for s < 0, half a cosine from 0 to 1 over [0, taper], 1 after (s, taper in s)."""
    if taper <= 0:
        return (s >= 0).astype(np.float64)
    u = np.clip(s / taper, 0.0, 1.0)
    return np.where(s < 0, 0.0, 0.5 - 0.5 * np.cos(np.pi * u))


def apply_mute(gather, dt: float, *, t_start: float = 0.0, top=None, bottom=None,
               taper: float = 0.0) -> np.ndarray:
    """The gather with top and/or bottom mutes applied (see :func:`mute_weights`)."""
    g = np.asarray(gather, np.float32)
    return g * mute_weights(g.shape[1], dt, t_start=t_start, top=top, bottom=bottom,
                            taper=taper)

"""Static time shifts: by shot, by source and receiver station, and tidal (arrays only).

A static ``shift`` (s) moves a trace's samples later by ``shift``: ``out(t) = in(t - shift)``
(negative shifts move events earlier). Shifts are applied exactly for band-limited traces
(a linear phase in frequency, on a zero-padded trace so nothing wraps around).

Tidal statics: the sources and receivers of a marine line ride on the sea surface, so a tide
``h`` (m above the datum) lengthens the two-way water path by ``2 h``; the correction to the
datum is ``-2 h / v_water`` (s).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft


def shift_traces(gather, dt: float, shifts) -> np.ndarray:
    """Shift every trace by its static.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces.
    dt : float
        Sample interval (s).
    shifts : array_like, shape (ntr,) or float
        Time shift of each trace (s); positive moves events later.

    Returns
    -------
    numpy.ndarray
        float32 ``(ntr, ns)``; samples shifted in from outside the trace are zero.
    """
    g = np.asarray(gather, np.float32)
    ntr, ns = g.shape
    s = np.broadcast_to(np.asarray(shifts, np.float64), (ntr,))
    if ntr == 0 or not np.any(s):
        return g.copy()
    n = sfft.next_fast_len(ns + int(np.ceil(np.abs(s).max() / dt)) + 16)
    f = sfft.rfftfreq(n, dt)
    spec = sfft.rfft(g, n=n, axis=1) * np.exp(-2j * np.pi * f[None, :] * s[:, None])
    return sfft.irfft(spec, n=n, axis=1)[:, :ns].astype(np.float32)


def tidal_shift(shot_time, tide_time, tide_height, vwater: float = 1500.0) -> np.ndarray:
    """Tidal static (s) at each shot time, from a tide table.

    Parameters
    ----------
    shot_time : array_like
        Shot times (s, any common epoch, e.g. POSIX seconds).
    tide_time : array_like
        Times of the tide table (s, same epoch), increasing.
    tide_height : array_like
        Tide heights (m above the datum) at ``tide_time``; linear in between.
    vwater : float
        Water velocity (m/s).

    Returns
    -------
    numpy.ndarray
        float64 shifts ``-2 h / vwater`` (s).
    """
    h = np.interp(np.asarray(shot_time, np.float64), np.asarray(tide_time, np.float64),
                  np.asarray(tide_height, np.float64))
    return -2.0 * h / float(vwater)


def line_azimuth(x, y) -> float:
    """Azimuth (deg from north, in [0, 180)) of the straight line best fitting points (m)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    c = np.cov(np.vstack([x - x.mean(), y - y.mean()]))
    w, v = np.linalg.eigh(c)
    ex, ey = v[:, -1]
    return float(np.degrees(np.arctan2(ex, ey)) % 180.0)


def station_numbers(x, y, interval: float, azimuth: float) -> np.ndarray:
    """Station number of each position: ``round(u / interval)``, ``u`` the distance (m)
    along the line of ``azimuth`` (deg from north) from the coordinate origin,
    ``u = x sin(az) + y cos(az)``."""
    a = np.radians(azimuth)
    u = np.asarray(x, np.float64) * np.sin(a) + np.asarray(y, np.float64) * np.cos(a)
    return np.rint(u / interval).astype(np.int64)

"""F-K fan filter: reject apparent velocities below ``vmin`` (linear noise: ground roll,
direct and refracted waves, guided waves) on shot or CMP gathers (arrays only).

The traces are placed on a regular grid of their positions (offsets), the gather is padded in
time and space (against wrap-around), transformed to frequency-wavenumber, multiplied by a fan
that keeps ``|f / k| >= vmin * (1 + taper)``, rejects ``|f / k| <= vmin`` and falls as half a
cosine in slowness between the two, and transformed back; empty grid slots (gaps) are filled
with zeros before and dropped after.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from seis_hpc.errors import SeisError


def regular_slots(x, *, tolerance: float = 0.25) -> tuple[np.ndarray, float]:
    """Slot of every trace on a regular grid of positions, and the spacing.

    Parameters
    ----------
    x : array_like, shape (ntr,)
        Trace positions along the line (m), e.g. offsets.
    tolerance : float
        Largest distance of a trace from its slot, as a fraction of the spacing.

    Returns
    -------
    slots : numpy.ndarray
        int64 slot numbers from 0.
    dx : float
        Spacing (m): the median of the positive steps between sorted positions.

    Raises
    ------
    SeisError
        Fewer than two distinct positions, or positions off a regular grid.
    """
    x = np.asarray(x, np.float64)
    steps = np.diff(np.sort(x))
    steps = steps[steps > 1e-6 * max(1.0, np.abs(x).max(initial=0))]
    if len(steps) == 0:
        raise SeisError("fk: the gather needs at least two trace positions")
    dx = float(np.median(steps))
    slots = np.rint((x - x.min()) / dx).astype(np.int64)
    miss = np.abs(x - x.min() - slots * dx)
    if miss.max() > tolerance * dx:
        i = int(np.argmax(miss))
        raise SeisError(f"fk: trace positions are not regular (spacing {dx:g} m, trace {i} at "
                        f"{x[i]:g} m is {miss[i]:g} m off the grid)")
    return slots, dx


def fan_filter(gather, dt: float, x, vmin: float, *, taper: float = 0.2,
               pad: float = 1.0) -> np.ndarray:
    """Reject apparent velocities below ``vmin`` in a gather.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Shot or CMP gather.
    dt : float
        Sample interval (s).
    x : array_like, shape (ntr,)
        Trace positions (m) along the gather (offsets); must lie on a regular grid
        (see :func:`regular_slots`), gaps allowed.
    vmin : float
        Apparent velocity (m/s) at and below which energy is rejected.
    taper : float
        Width of the fan's edge as a fraction of ``vmin``: velocities above
        ``vmin * (1 + taper)`` are kept whole.
    pad : float
        Padding in time and space, as a fraction of the gather's size.

    Returns
    -------
    numpy.ndarray
        float32 ``(ntr, ns)``.
    """
    g = np.asarray(gather, np.float32)
    ntr, ns = g.shape
    if vmin <= 0 or taper < 0:
        raise SeisError(f"fk: need vmin > 0 and taper >= 0 (got {vmin} m/s, {taper})")
    xs = np.asarray(x, np.float64)
    if ntr < 2 or np.ptp(xs) <= 1e-6 * max(1.0, np.abs(xs).max()):
        return g.copy()  # one position: no wavenumbers to filter
    slots, dx = regular_slots(xs)
    nx = int(slots.max()) + 1
    grid = np.zeros((nx, ns), np.float64)
    count = np.zeros(nx)
    np.add.at(grid, slots, g)
    np.add.at(count, slots, 1.0)
    grid[count > 1] /= count[count > 1, None]  # coincident traces: their mean
    nxf = sfft.next_fast_len(int(np.ceil(nx * (1 + pad))))
    ntf = sfft.next_fast_len(int(np.ceil(ns * (1 + pad))))
    spec = sfft.fft(sfft.rfft(grid, n=ntf, axis=1), n=nxf, axis=0)
    f = sfft.rfftfreq(ntf, dt)  # Hz
    k = sfft.fftfreq(nxf, dx)  # cycles/m
    spec *= fan(f, k, vmin, taper)
    out = sfft.irfft(sfft.ifft(spec, axis=0)[:nx], n=ntf, axis=1)[:, :ns]
    return out[slots].astype(np.float32)


def fan(f, k, vmin: float, taper: float = 0.2) -> np.ndarray:
    """Fan weights ``(len(k), len(f))``: 1 where ``|f/k| >= vmin (1 + taper)``, 0 where
    ``|f/k| <= vmin``, half a cosine in slowness ``|k/f|`` between (f Hz, k cycles/m)."""
    af = np.abs(np.asarray(f, np.float64))[None, :]
    ak = np.abs(np.asarray(k, np.float64))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(af > 0, ak / np.where(af > 0, af, 1.0), np.where(ak > 0, np.inf, 0.0))
    p_rej = 1.0 / vmin
    p_pass = 1.0 / (vmin * (1.0 + taper))
    if taper <= 0:
        return (p < p_rej).astype(np.float64)
    u = np.clip((p - p_pass) / (p_rej - p_pass), 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * u)

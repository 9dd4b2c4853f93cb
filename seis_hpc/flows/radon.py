"""Parabolic Radon demultiple of NMO-corrected CMP gathers (high-resolution, sparse).

After NMO with the primaries' velocity the primaries are flat and the multiples (slower) keep a
residual moveout close to a parabola ``dt(x) = q (x / x_ref)^2`` (``q`` in s at the reference
offset ``x_ref``, m). The gather is decomposed over ``q`` by least squares, made sparse by
iterative reweighting (Sacchi and Ulrych 1995); the part with ``q > q_cut`` is modelled back
and subtracted, and the gather is returned with its moveout (inverse NMO). Near offsets, where
all events are flat, cannot be separated: Radon attenuates multiples by their far-offset
moveout.
"""

from __future__ import annotations

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.flows.decon import radon_apply, radon_solve


def radon_demultiple(gather, dt: float, offset, vnmo, *, q_cut: float = 0.015,
                     q_max: float = 0.3, n_q: int = 101, x_ref: float | None = None,
                     damping: float = 0.05, iterations: int = 2, t_start: float = 0.0,
                     stretch_mute: float | None = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Attenuate multiples in a CMP gather by parabolic Radon.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        CMP gather (no NMO applied).
    dt : float
        Sample interval (s).
    offset : array_like, shape (ntr,)
        Offsets (m).
    vnmo : float or array_like, shape (ns,)
        Primaries' NMO velocity (m/s) at each zero-offset time.
    q_cut : float
        Residual moveout (s at ``x_ref``) above which energy is multiple.
    q_max : float
        Largest residual moveout modelled (s); ``-q_max/4`` is the smallest.
    n_q : int
        Number of parabolas.
    x_ref : float, optional
        Reference offset (m); default the largest offset.
    damping : float
        Damping of the least squares.
    iterations : int
        Reweighting iterations (0: plain damped least squares).
    t_start : float
        Time of the first sample (s).
    stretch_mute : float or None
        NMO stretch mute (fraction) applied before the transform.

    Returns
    -------
    primaries : numpy.ndarray
        float32 gather with the multiples subtracted (moveout restored).
    multiples : numpy.ndarray
        float32 multiple model that was subtracted.
    """
    from seis_hpc.velocity.nmo import inverse_nmo, nmo_correct

    g = np.asarray(gather, np.float32)
    x = np.abs(np.asarray(offset, np.float64))
    if g.shape[0] < 3:
        return g.copy(), np.zeros_like(g)
    if not 0 < q_cut < q_max:
        raise SeisError(f"radon: need 0 < q_cut < q_max (got {q_cut}, {q_max} s)")
    xr = float(x_ref or x.max() or 1.0)
    flat = nmo_correct(g, x, dt, vnmo, t_start=t_start, stretch_mute=stretch_mute)
    q = np.linspace(-q_max / 4, q_max, n_q)
    xn = x / xr
    m = radon_solve(flat, dt, xn, q, damping, power=2, sparse_iterations=iterations)
    m[q <= q_cut] = 0.0
    mult_flat = radon_apply(m, dt, xn, q, power=2)
    mult = inverse_nmo(mult_flat, x, dt, vnmo, t_start=t_start)
    return (g - mult).astype(np.float32), mult

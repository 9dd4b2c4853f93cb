"""Normal-moveout correction of CMP gathers, its inverse, and the NMO stack.

A reflection at zero-offset two-way time ``t0`` arrives at offset ``x`` at

.. math::

    t(x)^2 = t_0^2 + \\frac{x^2}{v^2}
             - \\frac{2 \\eta x^4}{v^2 \\left[t_0^2 v^2 + (1 + 2\\eta) x^2\\right]}

(the last term, Alkhalifah and Tsvankin 1995, only when ``eta`` is given). NMO correction
moves the sample at ``t`` to ``t0``; inverse NMO moves it back. ``v`` is the NMO (stacking)
velocity as a function of ``t0``, per trace or shared by the gather.

Every function has ``backend="cython"`` (the compiled kernel ``seis_hpc.kernels.nmo``) and
``backend="numpy"`` (the reference the kernel is tested against). Bad parameters raise
:class:`~seis_hpc.errors.SeisError` with a one-line message.
"""

from __future__ import annotations

import numpy as np

from seis_hpc.errors import SeisError

INTERP = {"linear": 0, "cubic": 1}
BACKENDS = ("cython", "numpy")


# ---------------------------------------------------------------------------------------------
# Validation shared with seis_hpc.velocity.semblance
# ---------------------------------------------------------------------------------------------


def check_gather(gather, where: str) -> np.ndarray:
    """A gather (ntr, ns) of finite real samples as C-contiguous float32; SeisError naming
    ``where``, the trace and the sample otherwise."""
    g = np.asarray(gather)
    if g.ndim != 2:
        raise SeisError(f"{where}: gather must be 2-D (ntr, ns), got shape {g.shape}")
    if g.shape[0] < 1 or g.shape[1] < 2:
        raise SeisError(f"{where}: gather needs >= 1 trace and >= 2 samples, got {g.shape}")
    if not np.issubdtype(g.dtype, np.number) or np.iscomplexobj(g):
        raise SeisError(f"{where}: gather must hold real numbers, got dtype {g.dtype}")
    g = np.ascontiguousarray(g, dtype=np.float32)
    bad = ~np.isfinite(g)
    if bad.any():
        tr, it = np.argwhere(bad)[0]
        raise SeisError(f"{where}: gather trace {tr}, sample {it} is not finite")
    return g


def check_offset(offset, ntr: int, where: str) -> np.ndarray:
    """Offsets (m), one finite value per trace, as float64 of shape (ntr,)."""
    x = np.asarray(offset, dtype=np.float64)
    if x.shape != (ntr,):
        raise SeisError(f"{where}: offset must have shape ({ntr},) (one per trace), got {x.shape}")
    if not np.isfinite(x).all():
        raise SeisError(f"{where}: offset of trace {int(np.argmin(np.isfinite(x)))} is not finite")
    return np.ascontiguousarray(x)


def check_scalar(value, name: str, where: str, *, unit: str, positive: bool = True) -> float:
    """``value`` as a finite float (> 0 when ``positive``); the error names ``name`` and its
    ``unit``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SeisError(f"{where}: {name} must be a number ({unit}), got {value!r}") from None
    if not np.isfinite(v) or (positive and v <= 0.0):
        need = "a finite number > 0" if positive else "a finite number"
        raise SeisError(f"{where}: {name} must be {need} ({unit}), got {v:g}")
    return v


def _check_field(values, ntr: int, ns: int, name: str, where: str) -> np.ndarray:
    """Scalar, (ns,) or (ntr, ns) -> (1, ns) or (ntr, ns) float64 (broadcast later, no copy)."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(ns, float(a))
    if a.shape not in ((ns,), (ntr, ns)):
        raise SeisError(
            f"{where}: {name} must have shape ({ns},) or ({ntr}, {ns}) to match the gather, "
            f"got {a.shape}"
        )
    return a.reshape(-1, ns)


def _where_bad(a: np.ndarray, bad: np.ndarray, ntr: int) -> str:
    """``"<value> at trace T, sample J"`` for the first bad entry (no trace for a shared row)."""
    tr, it = np.argwhere(bad)[0]
    at = f"trace {tr}, sample {it}" if a.shape[0] == ntr and ntr > 1 else f"sample {it}"
    return f"{a[tr, it]:g} at {at}"


def _check_velocity(vnmo, ntr: int, ns: int, where: str) -> np.ndarray:
    v = _check_field(vnmo, ntr, ns, "vnmo", where)
    bad = ~(np.isfinite(v) & (v > 0.0))
    if bad.any():
        raise SeisError(f"{where}: vnmo must be finite and > 0 m/s, got {_where_bad(v, bad, ntr)}")
    return v


def _check_eta(eta, ntr: int, ns: int, where: str) -> np.ndarray | None:
    if eta is None:
        return None
    e = _check_field(eta, ntr, ns, "eta", where)
    bad = ~(np.isfinite(e) & (e > -0.5))
    if bad.any():
        raise SeisError(f"{where}: eta must be finite and > -0.5, got {_where_bad(e, bad, ntr)}")
    return e


def check_choice(value, choices, name: str, where: str):
    """``value`` when it is one of ``choices``; else SeisError naming ``name``."""
    if value not in choices:
        raise SeisError(f"{where}: {name} must be one of {', '.join(map(repr, choices))}, "
                        f"got {value!r}")
    return value


def check_stretch(stretch_mute, where: str) -> float:
    """Stretch limit as a float; 0 means no stretch mute (the kernels' convention)."""
    if stretch_mute is None:
        return 0.0
    return check_scalar(stretch_mute, "stretch_mute", where, unit="fraction, or None for off")


def nmo_kernels():
    """The compiled NMO kernels (:mod:`seis_hpc.kernels.nmo`); SeisError when not built."""
    try:
        from seis_hpc.kernels import nmo as knmo
    except ImportError as exc:  # pragma: no cover - only on a checkout that was never built
        raise SeisError(f"Cython kernel seis_hpc.kernels.nmo is not built ({exc}); run "
                        "`make build`, or pass backend='numpy'") from None
    return knmo


# ---------------------------------------------------------------------------------------------
# NumPy reference (the definition the Cython kernels are tested against)
# ---------------------------------------------------------------------------------------------


def _input_samples(offset, v, eta, dt, t_start, ns) -> np.ndarray:
    """(ntr, ns) fractional input sample u = (t - t_start)/dt feeding each output t0 sample."""
    t0 = t_start + np.arange(ns) * dt
    x2 = (offset * offset)[:, None]
    v2 = v * v
    t2 = t0 * t0 + x2 / v2
    if eta is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            quart = 2.0 * eta * x2 * x2 / (v2 * (t0 * t0 * v2 + (1.0 + 2.0 * eta) * x2))
        t2 = t2 - np.where(x2 > 0.0, quart, 0.0)
    return (np.sqrt(np.maximum(t2, 0.0)) - t_start) / dt


def _sample_np(g: np.ndarray, u: np.ndarray, interp: int) -> np.ndarray:
    """Interpolate each row of ``g`` at fractional samples ``u`` (rows of u match rows of g)."""
    ntr, ns = g.shape
    uc = np.clip(u, 0.0, ns - 1)
    i0 = np.floor(uc).astype(np.intp)
    f = uc - i0
    top = i0 >= ns - 1
    i0[top] = ns - 1
    f[top] = 0.0
    rows = np.arange(ntr)[:, None]
    gd = g.astype(np.float64)

    def at(idx):
        return gd[rows, np.clip(idx, 0, ns - 1)]

    if interp == 0:
        return (1.0 - f) * at(i0) + f * at(i0 + 1)
    a = -0.5
    fm, f1, f2 = 1.0 + f, 1.0 - f, 2.0 - f
    w0 = a * fm**3 - 5.0 * a * fm**2 + 8.0 * a * fm - 4.0 * a
    w1 = (a + 2.0) * f**3 - (a + 3.0) * f**2 + 1.0
    w2 = (a + 2.0) * f1**3 - (a + 3.0) * f1**2 + 1.0
    w3 = a * f2**3 - 5.0 * a * f2**2 + 8.0 * a * f2 - 4.0 * a
    return w0 * at(i0 - 1) + w1 * at(i0) + w2 * at(i0 + 1) + w3 * at(i0 + 2)


def nmo_numpy(g, offset, v, eta, dt, t_start, smax, interp):
    """NMO of gather ``g`` (ntr, ns) in NumPy, the reference of the Cython kernel: offsets
    (m), vnmo ``v`` (m/s) and ``eta`` per sample, ``dt`` and ``t_start`` (s), stretch limit
    ``smax`` (fraction; 0: none), ``interp`` (kernel code)."""
    ns = g.shape[1]
    u = _input_samples(offset, v, eta, dt, t_start, ns)
    slope = np.gradient(u, axis=1)  # centred inside, one-sided at the ends, as the kernel
    live = (u >= 0.0) & (u <= ns - 1) & (slope > 0.0)
    if smax > 0.0:
        with np.errstate(divide="ignore"):
            live &= 1.0 / slope - 1.0 <= smax
    out = np.where(live, _sample_np(g, u, interp), 0.0).astype(np.float32)
    return out, live


def _inverse_numpy(g, offset, v, eta, dt, t_start, interp):
    ntr, ns = g.shape
    u = _input_samples(offset, v, eta, dt, t_start, ns)
    k = np.arange(ns, dtype=np.float64)
    t0_idx = np.zeros((ntr, ns))
    valid = np.zeros((ntr, ns), dtype=bool)
    for i in range(ntr):
        # First branch of t(t0): j = (first m >= 1 with u[m] > k) - 1, as the kernel walks it.
        j = np.searchsorted(np.maximum.accumulate(u[i, 1:]), k, side="right")
        ok = j < ns - 1
        jc = np.minimum(j, ns - 2)
        ok &= u[i, jc] <= k
        lo, hi = u[i, jc], u[i, jc + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            t0_idx[i] = np.where(ok, jc + (k - lo) / (hi - lo), 0.0)
        valid[i] = ok
    return np.where(valid, _sample_np(g, t0_idx, interp), 0.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def _prepare(where, gather, offset, dt, vnmo, t_start, eta, interp, backend):
    g = check_gather(gather, where)
    ntr, ns = g.shape
    x = check_offset(offset, ntr, where)
    dt = check_scalar(dt, "dt", where, unit="s")
    t_start = check_scalar(t_start, "t_start", where, unit="s", positive=False)
    v = _check_velocity(vnmo, ntr, ns, where)
    e = _check_eta(eta, ntr, ns, where)
    check_choice(interp, tuple(INTERP), "interp", where)
    check_choice(backend, BACKENDS, "backend", where)
    # Read-only (ntr, ns) views: a shared velocity function costs no copy (stride 0).
    v = np.broadcast_to(v, (ntr, ns))
    e = None if e is None else np.broadcast_to(e, (ntr, ns))
    return g, x, dt, v, e, t_start


def _nmo(where, gather, offset, dt, vnmo, t_start, stretch_mute, eta, interp, backend):
    g, x, dt, v, e, t_start = _prepare(where, gather, offset, dt, vnmo, t_start, eta, interp,
                                       backend)
    smax = check_stretch(stretch_mute, where)
    if backend == "numpy":
        return nmo_numpy(g, x, v, e, dt, t_start, smax, INTERP[interp])
    out = np.empty_like(g)
    live = np.empty_like(g)
    nmo_kernels().nmo_correct(g, x, v, v if e is None else e, int(e is not None), dt, t_start,
                           smax, INTERP[interp], out, live)
    return out, live


def nmo_correct(
    gather,
    offset,
    dt: float,
    vnmo,
    *,
    t_start: float = 0.0,
    stretch_mute: float | None = 0.3,
    eta=None,
    interp: str = "linear",
    backend: str = "cython",
) -> np.ndarray:
    """Normal-moveout correct a CMP gather: output sample at ``t0`` takes the input at ``t(x)``.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces of one CMP, converted to float32.
    offset : array_like, shape (ntr,)
        Source-receiver offset of each trace (m); the sign is ignored.
    dt : float
        Sample interval (s), > 0.
    vnmo : float or array_like, shape (ns,) or (ntr, ns)
        NMO velocity (m/s) at each zero-offset time ``t0 = t_start + j dt``, > 0.
    t_start : float, optional
        Time of the first sample (s).
    stretch_mute : float or None, optional
        Zero the samples whose NMO stretch exceeds this fraction (default 0.3 = 30 %). The
        stretch is ``1 / (dt/dt0) - 1``, the relative lengthening of a wavelet moved to ``t0``
        (equal to ``(t - t0)/t0`` for a constant velocity); ``dt/dt0`` is the slope of the
        traveltime map by centred differences. A non-positive slope (the map folds) is always
        muted. ``None`` turns the limit off. The mute edge is hard (no taper).
    eta : float or array_like, shape (ns,) or (ntr, ns), optional
        Anellipticity for the quartic (VTI) moveout term; ``None`` for hyperbolic moveout.
        Must be > -0.5.
    interp : {"linear", "cubic"}, optional
        Interpolation of the input trace: linear, or cubic convolution (Keys, a = -0.5).
    backend : {"cython", "numpy"}, optional
        Compiled kernel, or the NumPy reference.

    Returns
    -------
    numpy.ndarray, float32, shape (ntr, ns)
        The corrected gather; muted samples and those whose ``t`` falls outside the trace are 0.

    Raises
    ------
    SeisError
        On a bad shape, a non-positive ``dt`` or velocity, non-finite samples, or an unknown
        option.
    """
    out, _ = _nmo("nmo_correct", gather, offset, dt, vnmo, t_start, stretch_mute, eta, interp,
                  backend)
    return out


def inverse_nmo(
    gather,
    offset,
    dt: float,
    vnmo,
    *,
    t_start: float = 0.0,
    eta=None,
    interp: str = "linear",
    backend: str = "cython",
) -> np.ndarray:
    """Undo NMO: output sample at time ``t`` takes the input at the ``t0`` whose moveout is ``t``.

    The map ``t0 -> t`` of :func:`nmo_correct` is inverted per trace by linear interpolation
    of the sampled map; where it is not monotonic (a strong velocity inversion) its first
    increasing branch is used. Samples earlier than ``t(t0 = t_start)`` or later than
    ``t(t0_last)`` are 0. ``inverse_nmo(nmo_correct(d))`` recovers ``d`` where the
    correction did not mute, within the interpolation error.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        NMO-corrected traces (float32).
    offset : array_like, shape (ntr,)
        Offset of each trace (m).
    dt : float
        Sample interval (s), > 0.
    vnmo : float or array_like, shape (ns,) or (ntr, ns)
        NMO velocity (m/s) at each zero-offset time, > 0.
    t_start : float, optional
        Time of the first sample (s).
    eta : float or array_like, optional
        Anellipticity, as in :func:`nmo_correct`.
    interp : {"linear", "cubic"}, optional
        Interpolation of the input trace.
    backend : {"cython", "numpy"}, optional
        Compiled kernel, or the NumPy reference.

    Returns
    -------
    numpy.ndarray, float32, shape (ntr, ns)
        The gather with moveout restored.
    """
    where = "inverse_nmo"
    g, x, dt, v, e, t_start = _prepare(where, gather, offset, dt, vnmo, t_start, eta, interp,
                                       backend)
    if backend == "numpy":
        return _inverse_numpy(g, x, v, e, dt, t_start, INTERP[interp])
    out = np.empty_like(g)
    nmo_kernels().inverse_nmo(g, x, v, v if e is None else e, int(e is not None), dt, t_start,
                           INTERP[interp], out)
    return out


def nmo_stack(
    gather,
    offset,
    dt: float,
    vnmo,
    *,
    t_start: float = 0.0,
    stretch_mute: float | None = 0.3,
    eta=None,
    interp: str = "linear",
    backend: str = "cython",
) -> np.ndarray:
    """NMO-correct a CMP gather and stack it, normalised by the live fold of each sample.

    A sample counts towards the fold when it survived the NMO (inside the trace, not
    stretch-muted) and is non-zero after correction, so top-muted zones and dead traces do not
    dilute the stack (as Seismic Unix ``sustack`` counts non-zero values).

    Parameters
    ----------
    gather, offset, dt, vnmo, t_start, stretch_mute, eta, interp, backend
        As in :func:`nmo_correct`.

    Returns
    -------
    numpy.ndarray, float32, shape (ns,)
        Mean of the live corrected samples at each ``t0``; 0 where the fold is 0.
    """
    out, live = _nmo("nmo_stack", gather, offset, dt, vnmo, t_start, stretch_mute, eta, interp,
                     backend)
    fold = ((live != 0) & (out != 0.0)).sum(axis=0)
    total = out.sum(axis=0, dtype=np.float64)
    return np.where(fold > 0, total / np.maximum(fold, 1), 0.0).astype(np.float32)

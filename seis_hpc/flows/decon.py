"""Predictive (gap) deconvolution against water-layer reverberations, in t-x and in tau-p.

The prediction distance comes from the water-bottom two-way time ``t_wb`` (s), picked from the
first strong arrival (:func:`pick_first_arrival`, :func:`water_bottom_time`). A flat water
layer with velocity ``v_w`` (m/s) repeats its reverberation with period

* ``sqrt(4 t_wb^2 + x^2 / v_w^2) - sqrt(t_wb^2 + x^2 / v_w^2)`` on a trace at offset ``x``
  (m) in t-x (first multiple minus the water-bottom arrival; only nearly periodic), and
* exactly ``t_wb * sqrt(1 - p^2 v_w^2)`` on the trace of slowness ``p`` (s/m) in tau-p, where
  the decon is therefore more accurate.

In tau-p the multiples predicted by the decon are transformed back and subtracted from the
input, so what the decon does not touch is returned exactly.
"""

from __future__ import annotations

import numpy as np

from seis_hpc.errors import SeisError

WATER_VELOCITY = 1500.0  # m/s


def pick_first_arrival(gather, dt: float, *, threshold: float = 0.5, t_start: float = 0.0
                       ) -> np.ndarray:
    """Time (s) of the first strong arrival on each trace: the first sample reaching
    ``threshold`` x the trace's peak, moved to the largest magnitude in the next 20 ms.
    NaN for dead traces."""
    g = np.abs(np.asarray(gather, np.float64))
    peak = g.max(axis=1)
    first = np.argmax(g >= threshold * peak[:, None], axis=1)
    reach = max(1, int(round(0.02 / dt)))
    idx = first[:, None] + np.arange(reach + 1)[None, :]
    idx = np.minimum(idx, g.shape[1] - 1)
    k = first + np.argmax(np.take_along_axis(g, idx, axis=1), axis=1)
    t = t_start + k * dt
    return np.where(peak > 0, t, np.nan)


def water_bottom_time(gather, offset, dt: float, *, velocity: float = WATER_VELOCITY,
                      t_start: float = 0.0, threshold: float = 0.5) -> float:
    """Zero-offset water-bottom two-way time (s) from the first strong arrivals of a gather.

    Each pick ``t`` at offset ``x`` (m) gives ``sqrt(t^2 - x^2 / v^2)``; the median over the
    live traces is returned.

    Raises
    ------
    SeisError
        When no trace has an arrival.
    """
    t = pick_first_arrival(gather, dt, threshold=threshold, t_start=t_start)
    x = np.asarray(offset, np.float64)
    t0sq = t ** 2 - (x / velocity) ** 2
    ok = np.isfinite(t0sq) & (t0sq > 0)
    if not ok.any():
        raise SeisError("decon: no first arrival found to pick the water bottom")
    return float(np.median(np.sqrt(t0sq[ok])))


def predictive_decon(gather, dt: float, gap, length: float, *, white: float = 0.01,
                     window=None, t_start: float = 0.0) -> np.ndarray:
    """Wiener predictive deconvolution of each trace.

    The filter ``a`` of ``length`` s predicts the sample ``gap`` s ahead from the past
    (``R a = r[gap:gap + n]``, R the autocorrelation Toeplitz matrix with ``white`` relative
    white noise); the output is the prediction error ``x[t] - sum_k a_k x[t - gap - k]``.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces.
    dt : float
        Sample interval (s).
    gap : float or array_like, shape (ntr,)
        Prediction distance (s), per trace or one for all.
    length : float
        Operator length (s).
    white : float
        White-noise fraction added to the zero lag.
    window : (float, float), optional
        Design window (s); default the whole trace.
    t_start : float
        Time of the first sample (s).

    Returns
    -------
    numpy.ndarray
        float32 traces.
    """
    from scipy.linalg import solve_toeplitz

    g = np.asarray(gather, np.float64)
    ntr, ns = g.shape
    gaps = np.broadcast_to(np.asarray(gap, np.float64), (ntr,))
    n = max(1, int(round(length / dt)))
    a0, a1 = 0, ns
    if window is not None:
        a0 = int(np.clip(round((window[0] - t_start) / dt), 0, ns))
        a1 = int(np.clip(round((window[1] - t_start) / dt), 0, ns))
    out = g.copy()
    for i in range(ntr):
        if not np.isfinite(gaps[i]) or gaps[i] <= 0:
            continue
        alpha = max(1, int(round(gaps[i] / dt)))
        x = g[i, a0:a1]
        r = np.correlate(x, x, mode="full")[len(x) - 1:]
        if len(r) < alpha + n or r[0] <= 0:
            continue
        col = r[:n].copy()
        col[0] *= 1.0 + white
        a = solve_toeplitz(col, r[alpha:alpha + n])
        pred = np.convolve(g[i], a)[:ns]
        out[i, alpha:] -= pred[:ns - alpha]
    return out.astype(np.float32)


def tx_gaps(offset, t_wb: float, velocity: float = WATER_VELOCITY) -> np.ndarray:
    """Reverberation period (s) at each offset (m) for a water layer of two-way time t_wb."""
    x2 = (np.asarray(offset, np.float64) / velocity) ** 2
    return np.sqrt(4 * t_wb ** 2 + x2) - np.sqrt(t_wb ** 2 + x2)


def taup_forward(gather, dt: float, offset, p, *, damping: float = 0.01) -> np.ndarray:
    """Least-squares linear Radon (tau-p) transform, frequency by frequency.

    ``d(x, t) = sum_p m(p, t - p x)``; ``m`` minimises ``|L m - d|^2 + damping |m|^2`` (damping
    relative to the largest eigenvalue's scale, the trace of ``L^H L`` / n_p).

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces.
    dt : float
        Sample interval (s).
    offset : array_like, shape (ntr,)
        Signed offsets (m).
    p : array_like, shape (np,)
        Slownesses (s/m).

    Returns
    -------
    numpy.ndarray
        float32 ``(np, ns)``.
    """
    return radon_solve(gather, dt, np.asarray(offset, np.float64), np.asarray(p, np.float64),
                       damping, power=1)


def taup_inverse(model, dt: float, offset, p) -> np.ndarray:
    """Forward-model traces at ``offset`` (m) from a tau-p panel: ``d = L m``."""
    return radon_apply(model, dt, np.asarray(offset, np.float64), np.asarray(p, np.float64),
                       power=1)


def radon_solve(gather, dt, x, q, damping, power, sparse_iterations: int = 0,
                chunk: int = 64, fmax: float = 90.0):
    """Damped (optionally reweighted) least-squares Radon of ``gather`` over ``q``; all
    frequencies of a chunk solved at once.

    Per frequency the model is ``m = W^2 L^H (L W^2 L^H + lam I)^-1 d`` (``W`` the reweighting,
    ``lam = damping * trace / n_q``): the same as ``W (W L^H L W + lam I)^-1 W L^H d`` but
    solved in the data space, an ``n_x``-square system instead of an ``n_q``-square one,
    when there are fewer traces than parabolas (a CMP gather: 24-60 traces, ~100 q), which
    makes the transform ~20x cheaper.
    """
    from scipy.fft import irfft, next_fast_len, rfft

    g = np.asarray(gather, np.float64)
    nx, ns = g.shape
    nq = len(q)
    nfft = next_fast_len(2 * ns, real=True)
    spec = rfft(g, nfft, axis=1)
    w = 2 * np.pi * np.fft.rfftfreq(nfft, dt)
    m = np.zeros((nq, len(w)), complex)
    data_space = nx < nq
    dq = np.diff(q)
    regular = nq > 1 and np.allclose(dq, dq[0], rtol=1e-9, atol=0)
    eye = np.eye(nx if data_space else nq)
    xp = x[:, None] ** power * q[None, :]
    kmax = int(np.searchsorted(w, 2 * np.pi * fmax, side="right"))  # no signal above fmax
    for k0 in range(1, kmax, chunk):
        ks = slice(k0, min(kmax, k0 + chunk))
        L = _phase_shifts(w[ks], xp)  # (nk, nx, nq)
        Lh = np.conj(np.swapaxes(L, 1, 2))  # a view: L^H y is computed as (y^H L)^H
        d = spec[:, ks].T[..., None]  # (nk, nx, 1)
        wts = None
        mk = np.zeros((L.shape[0], nq), complex)  # the model of the previous pass
        for it in range(sparse_iterations + 1):
            if it:
                # Iteratively reweighted (Sacchi and Ulrych 1995): small coefficients damped
                # more.
                wts = np.abs(mk) + 1e-3 * np.abs(mk).max(axis=1, keepdims=True) + 1e-30
            if data_space:
                if wts is None and regular:
                    A = _gram_regular(w[ks], x ** power, q)
                else:
                    LW = L if wts is None else L * (wts ** 2)[:, None, :]
                    A = LW @ Lh  # L W^2 L^H, (nk, nx, nx)
                lam = damping * np.real(np.trace(A, axis1=1, axis2=2)) / nq
                y = np.linalg.solve(A + lam[:, None, None] * eye, d)
                mk = np.conj(np.conj(np.swapaxes(y, 1, 2)) @ L)[:, 0, :] * \
                    (1.0 if wts is None else wts ** 2)
            else:
                Lw = L if wts is None else L * wts[:, None, :]
                Lwh = np.conj(np.swapaxes(Lw, 1, 2))
                A = Lwh @ Lw
                lam = damping * np.real(np.trace(A, axis1=1, axis2=2)) / nq
                mk = np.linalg.solve(A + lam[:, None, None] * eye, Lwh @ d)[..., 0]
                if wts is not None:
                    mk = wts * mk
        m[:, ks] = mk.T
    return irfft(m, nfft, axis=1)[:, :ns].astype(np.float32)


def _gram_regular(w, a, q) -> np.ndarray:
    """``L L^H`` for ``L[x, j] = exp(-i w a[x] q[j])`` and equally spaced ``q``, in closed
    form: ``exp(-i w q_mid D) sin(n theta / 2) / sin(theta / 2)``, ``D = a[x] - a[x']``,
    ``theta = w dq D`` (a geometric sum: ``n_x^2`` terms per frequency instead of
    ``n_x^2 n_q``). Returns ``(len(w), n_x, n_x)``."""
    n = len(q)
    dq = (q[-1] - q[0]) / (n - 1)
    qm = 0.5 * (q[0] + q[-1])
    diff = a[:, None] - a[None, :]
    # Regular offsets give few distinct differences (2 n_x - 1): evaluate those only.
    scale = max(float(np.abs(diff).max()), 1e-300)
    uniq, inv = np.unique(np.round(diff / scale, 12), return_inverse=True)
    dd = (uniq * scale)[None, :]
    half = 0.5 * np.asarray(w)[:, None] * dq * dd
    sh = np.sin(half)
    small = np.abs(sh) < 1e-9
    # sin(n h) / sin(h), its limit n cos(n h) / cos(h) where sin(h) = 0
    dirichlet = np.where(small, n * np.cos(n * half) / np.cos(half),
                         np.sin(n * half) / np.where(small, 1.0, sh))
    g = np.exp(-1j * np.asarray(w)[:, None] * qm * dd) * dirichlet
    out = g[:, inv.reshape(diff.shape)]
    return out


def _phase_shifts(w, xp) -> np.ndarray:
    """``exp(-i w[k] xp)`` for equally spaced ``w`` (rad/s), ``(len(w),) + xp.shape``: one
    complex exponential, then products (a complex ``exp`` per element is the slow part)."""
    out = np.empty((len(w),) + xp.shape, complex)
    out[0] = np.exp(-1j * w[0] * xp)
    if len(w) > 1:
        step = np.exp(-1j * (w[1] - w[0]) * xp)
        for j in range(1, len(w)):
            np.multiply(out[j - 1], step, out=out[j])
    return out


def radon_apply(model, dt, x, q, power, fmax: float = 90.0):
    """Traces at positions ``x`` (m; offset, raised to ``power``) from the Radon model
    (nq, ns) over ``q`` (s/m^power), sample interval ``dt`` (s), up to ``fmax`` (Hz)."""
    from scipy.fft import irfft, next_fast_len, rfft

    m = np.asarray(model, np.float64)
    ns = m.shape[1]
    nfft = next_fast_len(2 * ns, real=True)
    spec = rfft(m, nfft, axis=1)
    w = 2 * np.pi * np.fft.rfftfreq(nfft, dt)
    xp = x[:, None] ** power * q[None, :]
    kmax = int(np.searchsorted(w, 2 * np.pi * fmax, side="right"))
    d = np.zeros((len(x), len(w)), complex)
    for k0 in range(0, kmax, 64):
        ks = slice(k0, min(kmax, k0 + 64))
        d[:, ks] = (_phase_shifts(w[ks], xp) @ spec[:, ks].T[..., None])[..., 0].T
    return irfft(d, nfft, axis=1)[:, :ns].astype(np.float32)


def taup_decon(gather, dt: float, offset, t_wb: float, *, velocity: float = WATER_VELOCITY,
               n_p: int | None = None, length: float = 0.06, white: float = 0.01,
               damping: float = 0.01, tolerance: float = 0.008) -> np.ndarray:
    """Predictive deconvolution in tau-p with the exact water-layer period per slowness.

    The gather goes to tau-p (:func:`taup_forward`, slownesses up to ``1 / velocity``), each
    p-trace is deconvolved with gap ``t_wb * sqrt(1 - p^2 v^2) - tolerance`` (the operator,
    ``length`` s long, picks up the exact lag), and the removed part (the predicted multiples)
    is modelled back to the offsets and subtracted from the input.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Shot or CMP gather.
    dt : float
        Sample interval (s).
    offset : array_like, shape (ntr,)
        Offsets (m).
    t_wb : float
        Water-bottom two-way time at zero offset (s).
    velocity : float
        Water velocity (m/s).
    n_p : int, optional
        Number of slownesses (default 2 x traces).
    length, white : float
        Decon operator length (s) and white noise.
    damping : float
        Damping of the least-squares tau-p transform.
    tolerance : float
        The gap is shortened by this much (s) so a slightly wrong t_wb is still predicted.

    Returns
    -------
    numpy.ndarray
        float32 gather with the water-layer multiples attenuated.
    """
    g = np.asarray(gather, np.float32)
    x = np.asarray(offset, np.float64)
    if not t_wb > 0:
        raise SeisError(f"decon: water-bottom time must be > 0 s (got {t_wb})")
    n_p = n_p or 2 * g.shape[0]
    p = np.linspace(0.0, 0.98 / velocity, n_p) if np.all(x >= 0) else \
        np.linspace(-0.98 / velocity, 0.98 / velocity, n_p)
    m = taup_forward(g, dt, x, p, damping=damping)
    period = t_wb * np.sqrt(np.clip(1 - (p * velocity) ** 2, 0.0, 1.0))
    dec = predictive_decon(m, dt, np.maximum(period - tolerance, dt), length, white=white)
    mult = taup_inverse(m - dec, dt, x, p)
    # The finite spread makes the transform's predicted multiples leak along straight lines
    # t = tau + p x to every offset, up to above the water bottom at near offsets (a faint
    # event the input does not have). No water-layer multiple arrives before the first-order
    # one, t = sqrt((2 t_wb)^2 + (x / v)^2): the model is muted above it (half-cosine over
    # the tolerance plus 20 ms, so a slightly early t_wb still keeps the whole multiple).
    ns = g.shape[1]
    t = dt * np.arange(ns)
    t_m1 = np.sqrt((2 * t_wb) ** 2 + (x / velocity) ** 2)[:, None]
    ramp = tolerance + 0.02
    u = np.clip((t[None, :] - (t_m1 - ramp)) / ramp, 0.0, 1.0)
    mult = mult * (0.5 - 0.5 * np.cos(np.pi * u))
    return (g - mult).astype(np.float32)


def tx_decon(gather, dt: float, offset, t_wb: float, *, velocity: float = WATER_VELOCITY,
             length: float = 0.06, white: float = 0.01, tolerance: float = 0.008) -> np.ndarray:
    """Predictive deconvolution in t-x with the reverberation period of each offset
    (:func:`tx_gaps`) less ``tolerance`` (s) as the prediction distance."""
    gaps = tx_gaps(offset, t_wb, velocity) - tolerance
    return predictive_decon(gather, dt, np.maximum(gaps, dt), length, white=white)

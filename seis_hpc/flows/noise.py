"""Noise suppression: zero-phase bandpass, swell-noise attenuation, f-x(y) deconvolution.

Frequencies in Hz, times in s. All filters are zero phase (no event moves in time).
"""

from __future__ import annotations

import numpy as np

from seis_hpc.errors import SeisError


def bandpass(gather, dt: float, corners) -> np.ndarray:
    """Zero-phase trapezoid (Ormsby) bandpass in the frequency domain.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces.
    dt : float
        Sample interval (s).
    corners : sequence of 4 float
        ``f1 <= f2 <= f3 <= f4`` (Hz): zero below ``f1``, cosine ramp to one at ``f2``, one to
        ``f3``, ramp to zero at ``f4``. ``f4`` above Nyquist keeps the top (a low-cut).

    Returns
    -------
    numpy.ndarray
        float32 filtered traces.
    """
    from scipy.fft import irfft, next_fast_len, rfft

    f1, f2, f3, f4 = (float(c) for c in corners)
    if not (0 <= f1 <= f2 <= f3 <= f4):
        raise SeisError(f"bandpass: corners must satisfy 0 <= f1 <= f2 <= f3 <= f4 Hz "
                        f"(got {f1:g}, {f2:g}, {f3:g}, {f4:g})")
    g = np.asarray(gather, np.float64)
    ns = g.shape[-1]
    nfft = next_fast_len(2 * ns, real=True)  # padding keeps the filter from wrapping around
    f = np.fft.rfftfreq(nfft, dt)
    resp = np.ones_like(f)
    if f2 > f1:
        resp = np.where(f < f2, 0.5 * (1 - np.cos(np.pi * np.clip((f - f1) / (f2 - f1), 0, 1))),
                        resp)
    else:
        resp = np.where(f < f1, 0.0, resp)
    if f4 > f3:
        resp = np.where(f > f3, 0.5 * (1 + np.cos(np.pi * np.clip((f - f3) / (f4 - f3), 0, 1))),
                        resp)
    else:
        resp = np.where(f > f4, 0.0, resp)
    return irfft(rfft(g, nfft, axis=-1) * resp, nfft, axis=-1)[..., :ns].astype(np.float32)


def lowcut(gather, dt: float, f1: float, f2: float) -> np.ndarray:
    """Zero-phase low-cut: zero below ``f1`` Hz, cosine ramp to one at ``f2`` Hz."""
    return bandpass(gather, dt, (f1, f2, 1e9, 1e9))


def swell_attenuate(gather, dt: float, *, fmax: float = 15.0, window: float = 0.256,
                    neighbours: int = 10, threshold: float = 3.0, passes: int = 2
                    ) -> np.ndarray:
    """Swell-noise attenuation by time-frequency thresholding against neighbouring traces.

    The traces are split at ``fmax`` (zero-phase, cosine ramp to ``fmax + 5`` Hz) into a low
    band and the rest; only the low band is treated, so the window's spectral leakage cannot
    spread the swell above it. The low band goes into short-time spectra (Hann windows of
    ``window`` s, 75 % overlap); each time-frequency amplitude is compared with the median
    of the same cell over the ``2 * neighbours + 1`` nearest traces; where it exceeds
    ``threshold`` times that median it is scaled down to the median (phase kept). Only the
    change is transformed back and added, so cells that were not outliers are returned
    exactly.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces in acquisition order (neighbours = adjacent channels).
    dt : float
        Sample interval (s).
    fmax : float
        Highest frequency treated (Hz); swell lies below about 15 Hz.
    window : float
        Short-time window length (s).
    neighbours : int
        Traces on each side in the median; more than the widest swell burst.
    threshold : float
        Outlier ratio to the neighbours' median amplitude.
    passes : int
        Repetitions (the inverse short-time transform of a modified spectrum only partly
        honours the modification; a second pass removes most of what is left).

    Returns
    -------
    numpy.ndarray
        float32 traces.
    """

    g = np.asarray(gather, np.float64)
    for _ in range(max(1, int(passes))):
        g = _swell_pass(g, dt, fmax, window, neighbours, threshold)
    return g.astype(np.float32)


def _swell_pass(g: np.ndarray, dt: float, fmax: float, window: float, neighbours: int,
                threshold: float) -> np.ndarray:
    from scipy.signal import istft, stft

    ntr, ns = g.shape
    if threshold <= 1 or neighbours < 1 or not fmax > 0:
        raise SeisError(f"swell: need threshold > 1, neighbours >= 1, fmax > 0 Hz (got "
                        f"{threshold}, {neighbours}, {fmax})")
    nper = int(min(ns, max(8, round(window / dt))))
    nover = 3 * nper // 4
    lowband = bandpass(g, dt, (0.0, 0.0, fmax, fmax + 5.0)).astype(np.float64)
    f, _, spec = stft(lowband, fs=1.0 / dt, nperseg=nper, noverlap=nover, axis=-1,
                      boundary="even", padded=True)
    low = f <= fmax + 5.0
    amp = np.abs(spec[:, low, :])
    med = _neighbour_median(amp, neighbours)
    outlier = amp > threshold * med
    if not outlier.any():
        return g
    factor = np.where(outlier, med / np.where(amp > 0, amp, 1.0), 1.0)
    delta = np.zeros_like(spec)
    delta[:, low, :] = spec[:, low, :] * (factor - 1.0)
    _, change = istft(delta, fs=1.0 / dt, nperseg=nper, noverlap=nover, boundary=True,
                      time_axis=-1, freq_axis=-2)
    return g + change[:, :ns]


def _neighbour_median(a: np.ndarray, n: int) -> np.ndarray:
    """Median over axis 0 of ``2n + 1`` consecutive rows around each row; near the ends the
    window slides inward (never padded with copies, which would let an edge burst vote for
    itself)."""
    ntr = a.shape[0]
    w = min(ntr, 2 * n + 1)
    start = np.clip(np.arange(ntr) - n, 0, ntr - w)
    view = np.lib.stride_tricks.sliding_window_view(a, w, axis=0)  # (ntr - w + 1, ..., w)
    uniq, inv = np.unique(start, return_inverse=True)
    return np.median(view[uniq], axis=-1)[inv.ravel()]


def fx_decon(gather, dt: float, *, fmin: float = 2.0, fmax: float | None = None,
             traces: int = 20, length: int = 4, mu: float = 0.01) -> np.ndarray:
    """Random-noise attenuation by f-x prediction (Canales 1984, forward and backward).

    In spatial windows of ``traces`` traces (half overlap, Hann-blended), at each frequency a
    complex prediction filter of ``length`` coefficients is fitted by damped least squares to
    predict each trace from its neighbours; the forward and backward predictions are
    averaged. Linear events are predictable, random noise is not.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Traces, evenly spaced.
    dt : float
        Sample interval (s).
    fmin, fmax : float
        Frequency band treated (Hz); outside it the data pass unchanged. ``fmax`` default
        Nyquist.
    traces : int
        Spatial window (traces).
    length : int
        Prediction filter length (traces).
    mu : float
        Damping, relative to the trace of the normal matrix.

    Returns
    -------
    numpy.ndarray
        float32 traces.
    """
    from scipy.fft import irfft, rfft

    g = np.asarray(gather, np.float64)
    ntr, ns = g.shape
    if ntr < 2 * length + 1:
        return g.astype(np.float32)
    spec = rfft(g, axis=1)
    f = np.fft.rfftfreq(ns, dt)
    band = np.flatnonzero((f >= fmin) & (f <= (fmax if fmax else f[-1])))
    out = spec.copy()
    tw = max(2 * length + 1, min(traces, ntr))
    starts = list(range(0, max(1, ntr - tw + 1), max(1, tw // 2)))
    if starts[-1] + tw < ntr:
        starts.append(ntr - tw)
    num = np.zeros((ntr, len(band)), complex)
    den = np.zeros(ntr)
    for s in starts:
        w = np.hanning(tw + 2)[1:-1]
        x = spec[s:s + tw, band].T  # (nf, tw)
        pred = _fx_predict(x, length, mu)
        num[s:s + tw] += (w[:, None] * pred.T)
        den[s:s + tw] += w
    out[:, band] = num / den[:, None]
    return irfft(out, ns, axis=1).astype(np.float32)


def _fx_predict(x: np.ndarray, L: int, mu: float) -> np.ndarray:
    """Forward and backward L-term prediction of each row of ``x`` (nf, n), averaged."""
    nf, n = x.shape
    # Forward: x[j] ~ sum_k a_k x[j-1-k]; rows j = L..n-1.
    idx = np.arange(L, n)[:, None] - 1 - np.arange(L)[None, :]
    A = x[:, idx]  # (nf, n-L, L)
    y = x[:, L:]
    AhA = np.conj(np.swapaxes(A, 1, 2)) @ A
    reg = mu * np.real(np.trace(AhA, axis1=1, axis2=2))[:, None, None] / L + 1e-30
    a = np.linalg.solve(AhA + reg * np.eye(L), np.conj(np.swapaxes(A, 1, 2)) @ y[..., None])
    fwd = np.array(x, copy=True)
    fwd[:, L:] = (A @ a)[..., 0]
    # Backward: the same on the reversed sequence, conjugate filter (stationary plane waves).
    xr = x[:, ::-1]
    B = xr[:, idx]
    bwd = np.array(xr, copy=True)
    bwd[:, L:] = (B @ np.conj(a))[..., 0]
    bwd = bwd[:, ::-1]
    both = np.where(np.arange(n) < L, bwd, np.where(np.arange(n) >= n - L, fwd, 0.5 * (fwd + bwd)))
    return both


def fxy_decon(cube, dt: float, **kwargs) -> np.ndarray:
    """f-xy random-noise attenuation of a 3D gather ``(n_inline, n_crossline, ns)``.

    Approximated by f-x prediction along the crosslines, then along the inlines (two
    orthogonal 1D passes, not a 2D prediction filter); keywords as :func:`fx_decon`.

    Returns
    -------
    numpy.ndarray
        float32 cube.
    """
    c = np.asarray(cube, np.float32)
    a = np.stack([fx_decon(c[i], dt, **kwargs) for i in range(c.shape[0])])
    b = np.stack([fx_decon(a[:, j], dt, **kwargs) for j in range(c.shape[1])], axis=1)
    return b

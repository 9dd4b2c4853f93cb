"""2D surface-related multiple elimination: prediction by autoconvolution, adaptive subtraction.

Prediction (Verschuur et al. 1992, one pass, no source-wavelet estimate): for every source
position ``s`` and receiver position ``r`` on a 2D line,

.. math::

    M(s, r, \\omega) = \\Delta x \\sum_k D(s, k, \\omega)\\, D(k, r, \\omega)

where ``k`` runs over every surface position: each surface-related multiple is a recorded event
from ``s`` to ``k`` followed by a recorded event from ``k`` to ``r``. The predicted multiples
carry the squared wavelet, the wrong sign and the 2D stationary-phase amplitude and phase; the
matching filters of :func:`adaptive_subtract` absorb all three.

The sum needs a source at every receiver position. :func:`regularise` builds that from a
towed-streamer line (sources every ``n`` receiver intervals, one-sided spread, a gap of near
offsets):

1. positions along the line are snapped to the receiver grid (interval ``dx``, m); sources off
   that grid are refused;
2. the missing near offsets ``0 <= h < near offset`` are extrapolated from the nearest live
   trace of the same shot by NMO with ``velocity`` (m/s; water velocity by default, exact for
   the water-bottom reflection and its multiples);
3. source positions between two shots are interpolated along common offset (mean of the two
   neighbouring shots at the same offset: exact for flat layers, a small error for dips);
4. reciprocity ``D(k, r) = D(r, k)`` supplies the other side of the split spread.

Limitations: the line must be straight, with sources on the receiver grid; positions beyond
the first and last shots have no sources, so the predictions of the shots within one streamer
length of the line ends are incomplete (weaker; adaptive subtraction compensates in part);
cross-line dip and 3D effects are ignored; the far-offset truncation of the sum is tapered,
not extrapolated.
"""

from __future__ import annotations

import numpy as np

from seis_hpc.errors import SeisError

WATER_VELOCITY = 1500.0  # m/s


def line_coordinate(x, y, x0: float, y0: float, azimuth_deg: float) -> np.ndarray:
    """Distance along a straight line (m) of the points ``(x, y)`` (m).

    Parameters
    ----------
    x, y : array_like
        Coordinates (m).
    x0, y0 : float
        A point on the line (m).
    azimuth_deg : float
        Line direction, degrees clockwise from north.
    """
    a = np.radians(azimuth_deg)
    dx = np.asarray(x, np.float64) - x0
    dy = np.asarray(y, np.float64) - y0
    return dx * np.sin(a) + dy * np.cos(a)


def fit_line(x, y) -> tuple[float, float, float]:
    """Principal axis of points (m): ``(x0, y0, azimuth_deg)`` with ``(x0, y0)`` their mean."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x0, y0 = float(x.mean()), float(y.mean())
    c = np.cov(np.vstack([x - x0, y - y0])) if len(x) > 1 else np.eye(2)
    w, v = np.linalg.eigh(np.atleast_2d(c))
    ex, ey = v[:, int(np.argmax(w))]
    return x0, y0, float(np.degrees(np.arctan2(ex, ey)) % 180.0)


class Regular:
    """A 2D line regularised for SRME.

    Attributes
    ----------
    cube : numpy.ndarray
        float32 ``(n_pos, n_off, ns)``: trace of the source at grid position ``j`` and the
        receiver at ``j - i`` (``i`` = offset index, offset ``i * dx * direction``).
    have_source : numpy.ndarray
        bool ``(n_pos,)``: a recorded or interpolated source at the position.
    dx : float
        Grid interval (m).
    direction : int
        +1 when receivers lie at larger line coordinates than their source, else -1.
    src_j, rec_j : numpy.ndarray
        Grid positions of the input traces' sources and receivers.
    """

    def __init__(self, cube, have_source, dx, direction, src_j, rec_j):
        self.cube = cube
        self.have_source = have_source
        self.dx = dx
        self.direction = direction
        self.src_j = src_j
        self.rec_j = rec_j

    @property
    def n_pos(self) -> int:
        """Number of surface positions."""
        return self.cube.shape[0]


def _nmo_shift(trace: np.ndarray, h_from: float, h_to: np.ndarray, dt: float, v: np.ndarray
               ) -> np.ndarray:
    """Copies of ``trace`` (offset ``h_from``, m) moved to offsets ``h_to`` (m) by NMO."""
    from seis_hpc.velocity.nmo import inverse_nmo, nmo_correct

    g = np.repeat(trace[None, :], len(h_to), axis=0)
    flat = nmo_correct(g, np.full(len(h_to), h_from), dt, v, stretch_mute=None)
    return inverse_nmo(flat, h_to, dt, v)


def regularise(data, src_u, rec_u, shot, dt: float, *, dx: float | None = None,
               velocity=WATER_VELOCITY, taper: float = 0.1) -> Regular:
    """Put a towed-streamer 2D line on a regular source x receiver grid (see module notes).

    Parameters
    ----------
    data : array_like, shape (ntr, ns)
        Every trace of the line (float32).
    src_u, rec_u : array_like, shape (ntr,)
        Source and receiver positions along the line (m).
    shot : array_like, shape (ntr,)
        Shot number of each trace (traces of one shot share it).
    dt : float
        Sample interval (s).
    dx : float, optional
        Grid interval (m); default the median receiver interval.
    velocity : float or array_like, shape (ns,)
        NMO velocity (m/s) for the near-offset extrapolation.
    taper : float
        Fraction of the largest offset tapered (cosine) to zero at the far end.

    Returns
    -------
    Regular
    """
    d = np.asarray(data, dtype=np.float32)
    su = np.asarray(src_u, np.float64)
    ru = np.asarray(rec_u, np.float64)
    shot = np.asarray(shot)
    ntr, ns = d.shape
    if dx is None:
        steps = []
        for s in np.unique(shot):
            r = np.sort(ru[shot == s])
            steps.append(np.diff(r))
        st = np.concatenate(steps) if steps else np.zeros(0)
        st = st[st > 1e-6]
        if st.size == 0:
            raise SeisError("srme: cannot measure the receiver interval (one receiver per shot)")
        dx = float(np.median(st))
    if not dx > 0:
        raise SeisError(f"srme: grid interval must be > 0 m (got {dx})")
    u0 = float(min(su.min(), ru.min()))
    sj_f = (su - u0) / dx
    rj_f = (ru - u0) / dx
    sj = np.rint(sj_f).astype(np.int64)
    rj = np.rint(rj_f).astype(np.int64)
    worst = int(np.argmax(np.abs(sj_f - sj)))
    if abs(sj_f[worst] - sj[worst]) > 0.25:
        raise SeisError(f"srme: trace {worst}: source is {abs(sj_f[worst] - sj[worst]) * dx:.2f} "
                        f"m off the {dx:g} m receiver grid (SRME needs sources on it)")
    direction = 1 if np.median(rj - sj) >= 0 else -1
    off = (rj - sj) * direction
    if (off < 0).any():
        bad = int(np.flatnonzero(off < 0)[0])
        raise SeisError(f"srme: trace {bad}: receiver on the other side of the source "
                        "(split spread is not supported; give one-sided shots)")
    n_off = int(off.max()) + 1
    n_pos = int(max(sj.max(), rj.max())) + 1
    cube = np.zeros((n_pos, n_off, ns), np.float32)
    have = np.zeros(n_pos, bool)
    cube[sj, off] = d
    have[np.unique(sj)] = True
    vel = np.broadcast_to(np.asarray(velocity, np.float32), (ns,)).copy()
    # Near offsets: NMO-extrapolate the nearest live trace of each shot.
    for j in np.flatnonzero(have):
        live = np.flatnonzero(np.abs(cube[j]).max(axis=1) > 0)
        if live.size == 0:
            continue
        i0 = int(live[0])
        if i0 > 0:
            cube[j, :i0] = _nmo_shift(cube[j, i0], i0 * dx, np.arange(i0) * dx, dt, vel)
    # Interpolate missing sources between two recorded ones, along common offset.
    src_pos = np.flatnonzero(have)
    for a, b in zip(src_pos[:-1], src_pos[1:], strict=False):
        gap = int(b - a)
        for k in range(1, gap):
            w = k / gap
            cube[a + k] = (1.0 - w) * cube[a] + w * cube[b]
            have[a + k] = True
    if taper > 0 and n_off > 2:
        n_t = max(1, int(round(taper * n_off)))
        ramp = 0.5 * (1 + np.cos(np.pi * (np.arange(n_t) + 1) / (n_t + 1)))
        cube[:, n_off - n_t:] *= ramp[None, :, None].astype(np.float32)
    return Regular(cube, have, dx, direction, sj, rj)


def predict(reg: Regular, dt: float, *, fmax: float | None = None, freq_range=None,
            want=None, signature=None) -> np.ndarray:
    """Predict the surface-related multiples of the input traces by autoconvolution.

    Parameters
    ----------
    reg : Regular
        The regularised line (:func:`regularise`).
    dt : float
        Sample interval (s).
    fmax : float, optional
        Highest frequency predicted (Hz); default Nyquist.
    freq_range : tuple of int, optional
        ``(k0, k1)``: compute only these frequency samples of the padded FFT (to split the work
        over ranks); the others are zero. Default all up to ``fmax``.
    want : array_like of int, optional
        Input traces to predict (default all).
    signature : array_like, optional
        Spectrum (``nfft // 2 + 1``) multiplied into the prediction, normally
        :func:`signature_filter` of the estimated wavelet.

    Returns
    -------
    numpy.ndarray
        complex64 spectra ``(len(want), nfft // 2 + 1)`` of the predicted multiples
        (``nfft`` from :func:`fft_length`); :func:`to_time` turns them into traces.
    """
    n_pos, n_off, ns = reg.cube.shape
    nfft = fft_length(ns)
    nf = nfft // 2 + 1
    freqs = np.fft.rfftfreq(nfft, dt)
    kmax = nf if fmax is None else int(np.searchsorted(freqs, fmax, side="right"))
    k0, k1 = (0, kmax) if freq_range is None else (max(0, freq_range[0]),
                                                   min(kmax, freq_range[1]))
    want = np.arange(len(reg.src_j)) if want is None else np.asarray(want, np.int64)
    out = np.zeros((len(want), nf), np.complex64)
    if k1 <= k0:
        return out
    from scipy.fft import rfft

    # Spectrum of every (source, offset) trace, only the frequencies asked for.
    spec = rfft(reg.cube, n=nfft, axis=2)[:, :, k0:k1].astype(np.complex64)
    src = np.repeat(np.arange(n_pos), n_off)
    rec = src + reg.direction * np.tile(np.arange(n_off), n_pos)
    keep = (rec >= 0) & (rec < n_pos) & np.repeat(reg.have_source, n_off)
    src, rec = src[keep], rec[keep]
    flat = spec.reshape(n_pos * n_off, -1)[keep]
    sw, rw = reg.src_j[want], reg.rec_j[want]
    rows, row_of = np.unique(sw, return_inverse=True)
    mat = np.zeros((n_pos, n_pos), np.complex64)
    for q in range(k1 - k0):
        # Reciprocity D(k, r) = D(r, k) fills the other side of the one-sided spread; the
        # recorded side is written after it (the two meet only at zero offset).
        mat[rec, src] = flat[:, q]
        mat[src, rec] = flat[:, q]
        prod = mat[rows] @ mat  # only the rows of the wanted traces' sources
        out[:, k0 + q] = prod[row_of.ravel(), rw] * reg.dx
    if signature is not None:
        out[:, k0:k1] *= np.asarray(signature)[k0:k1].astype(np.complex64)
    return out


def estimate_wavelet(data, dt: float, *, length: float = 0.1, threshold: float = 0.5
                     ) -> np.ndarray:
    """Estimate the source wavelet from the first strong arrival (the water-bottom reflection).

    On each trace the first sample whose magnitude reaches ``threshold`` times the trace's
    peak is refined to the largest magnitude within the next quarter ``length``; windows of
    ``length`` s centred there are aligned by that pick and sign and averaged. The result is
    the wavelet times the water-bottom reflection coefficient: SRME needs its shape only.

    Parameters
    ----------
    data : array_like, shape (ntr, ns)
        Near-offset traces (s), where the water-bottom reflection is isolated.
    dt : float
        Sample interval (s).
    length : float
        Wavelet length (s).
    threshold : float
        Fraction of the trace peak that marks the first strong arrival.

    Returns
    -------
    numpy.ndarray
        float64, odd length ``2 * round(length / 2 / dt) + 1``, centred on time 0.
    """
    d = np.asarray(data, np.float64)
    half = max(1, int(round(length / 2 / dt)))
    acc = np.zeros(2 * half + 1)
    n = 0
    for tr in d:
        peak = np.abs(tr).max()
        if not peak > 0:
            continue
        first = int(np.argmax(np.abs(tr) >= threshold * peak))
        seg = np.abs(tr[first:first + max(1, half // 2) + 1])
        k = first + int(np.argmax(seg))
        if k - half < 0 or k + half + 1 > len(tr):
            continue
        win = tr[k - half:k + half + 1]
        acc += np.sign(tr[k]) * win
        n += 1
    if n == 0:
        raise SeisError("srme: no trace with an isolated first arrival to estimate the wavelet")
    return acc / n * np.hanning(2 * half + 3)[1:-1]


def signature_filter(wavelet, dt: float, nfft: int, *, white: float = 1e-3) -> np.ndarray:
    """Spectrum applied to the autoconvolution: inverse source wavelet times the 2D correction.

    ``conj(W) / (|W|^2 + white max|W|^2) * sqrt(i omega)``: the prediction carries the
    wavelet twice (removed once by the stabilised inverse), and the sum over a line of
    positions instead of a surface leaves the stationary-phase factor
    ``sqrt(2 pi / (i omega ...))`` (removed by ``sqrt(i omega)``).

    Parameters
    ----------
    wavelet : array_like
        Centred wavelet (time 0 at its middle sample), e.g. from :func:`estimate_wavelet`.
    dt : float
        Sample interval (s).
    nfft : int
        FFT length of the prediction.
    white : float
        Stabilisation (fraction of the peak power).

    Returns
    -------
    numpy.ndarray
        complex128, ``nfft // 2 + 1`` values.
    """
    from scipy.fft import rfft

    w = np.asarray(wavelet, np.float64)
    padded = np.zeros(nfft)
    padded[:len(w)] = w
    spec = rfft(np.roll(padded, -(len(w) // 2)))
    omega = 2 * np.pi * np.fft.rfftfreq(nfft, dt)
    power = np.abs(spec) ** 2
    return np.conj(spec) / (power + white * power.max()) * np.sqrt(1j * omega)


def fft_length(ns: int) -> int:
    """FFT length for autoconvolution without wrap-around: ``>= 2 ns``, fast for FFT."""
    from scipy.fft import next_fast_len

    return next_fast_len(2 * ns, real=True)


def to_time(spectra: np.ndarray, ns: int) -> np.ndarray:
    """Traces (float32 ``(n, ns)``) from the spectra of :func:`predict`."""
    from scipy.fft import irfft

    nfft = 2 * (spectra.shape[1] - 1)
    return irfft(spectra, n=nfft, axis=1)[:, :ns].astype(np.float32)


def adaptive_subtract(data, model, dt: float, *, window: float = 0.3, traces: int = 16,
                      filter_length: float = 0.04, eps: float = 1e-3
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Subtract a multiple model from a gather with windowed least-squares matching filters.

    In each window (``window`` s x ``traces`` traces, overlapping by half in both directions,
    blended with Hann weights that sum to one) one filter ``f`` of ``filter_length`` s, centred
    (non-causal), minimises ``|d - m * f|^2 + eps |m|^2 |f|^2`` over the window's traces.

    Parameters
    ----------
    data, model : array_like, shape (ntr, ns)
        Recorded traces and predicted multiples.
    dt : float
        Sample interval (s).
    window : float
        Window length (s).
    traces : int
        Window width (traces).
    filter_length : float
        Matching-filter length (s).
    eps : float
        Relative damping (pre-whitening) of the normal equations.

    Returns
    -------
    primaries : numpy.ndarray
        ``data - matched model`` (float32).
    matched : numpy.ndarray
        The matched multiple model that was subtracted (float32).
    """
    from scipy.fft import irfft, next_fast_len, rfft

    d = np.asarray(data, np.float64)
    m = np.asarray(model, np.float64)
    ntr, ns = d.shape
    nw = min(ns, max(4, int(round(window / dt))))
    nf = max(1, int(round(filter_length / dt)) | 1)  # odd: lags -half..half
    half = nf // 2
    tw = max(1, min(traces, ntr))
    t_starts = _starts(ns, nw)
    x_starts = _starts(ntr, tw)
    taper_t = _taper(nw)
    nfft = next_fast_len(nw + nf, real=True)
    lags = np.arange(nf)
    num = np.zeros_like(d)
    den = np.zeros_like(d)
    # Model traces padded by `half` on both sides, so every lag reads real samples.
    mp = np.pad(m, ((0, 0), (half, half)))
    for x0 in x_starts:
        xs = slice(x0, min(ntr, x0 + tw))
        tx = _taper(xs.stop - xs.start)
        # Every time window of these traces at once: (n_windows, n_traces, nw).
        dw = np.stack([d[xs, t0:t0 + nw] for t0 in t_starts])
        mw = np.stack([m[xs, t0:t0 + nw] for t0 in t_starts])
        fd, fm = rfft(dw, nfft, axis=2), rfft(mw, nfft, axis=2)
        # Normal equations R f = c per window: R the model autocorrelation (Toeplitz), c the
        # data-model cross-correlation, both summed over the window's traces.
        auto = irfft((fm * np.conj(fm)).sum(axis=1), nfft, axis=1)
        cross = irfft((fd * np.conj(fm)).sum(axis=1), nfft, axis=1)
        r = auto[:, np.abs(lags[:, None] - lags[None, :])]
        c = cross[:, (lags - half) % nfft]
        r[:, lags, lags] += eps * auto[:, :1] + 1e-30
        f = np.linalg.solve(r, c[..., None])[..., 0]  # (n_windows, nf)
        for w, t0 in enumerate(t_starts):
            ts = slice(t0, t0 + nw)
            # out[t] = sum_k f[k] m[t - (k - half)], read from the whole padded traces.
            shifted = np.zeros((xs.stop - xs.start, nw))
            for k in range(nf):
                lo = t0 + half - (k - half)
                shifted += f[w, k] * mp[xs, lo:lo + nw]
            weight = tx[:, None] * taper_t[None, :]
            num[xs, ts] += weight * shifted
            den[xs, ts] += weight
    matched = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return (d - matched).astype(np.float32), matched.astype(np.float32)


def _starts(n: int, w: int) -> list[int]:
    """Window starts every ``w // 2`` covering ``0..n``."""
    if w >= n:
        return [0]
    step = max(1, w // 2)
    s = list(range(0, n - w + 1, step))
    if s[-1] + w < n:
        s.append(n - w)
    return s


def _taper(n: int) -> np.ndarray:
    """Hann weights of a window of ``n`` samples (never zero, so every sample is covered)."""
    return np.hanning(n + 2)[1:-1] if n > 1 else np.ones(n)

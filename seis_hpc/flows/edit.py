"""Bad-trace editing: find dead, NaN/Inf, spiky, noisy and reversed-polarity traces; kill,
despike or flip them, and say why.

Two stages, so that a trace is judged against its neighbours in the shot *and* in the CMP:

1. :func:`trace_attributes` on each shot gather (traces in channel order): finiteness, dead
   (all zero or constant), spike samples (a sample whose difference from the 5-sample running
   median exceeds ``spike_ratio`` times the median peak amplitude of the neighbouring traces),
   band RMS above ``fmin`` Hz after despiking (the swell band below is left to the swell
   step), and the polarity score (median, over the 2 + 2 nearest channels, of the normalised
   cross-correlation at the lag of largest magnitude within ``max_lag`` s per channel of
   distance; undecided where the nearest neighbours on either side do not share coherent
   events);
2. :func:`classify` over the whole survey: a trace is *noisy* when its band RMS exceeds
   ``noisy_ratio`` times the median of its live neighbours both in its shot (by channel) and
   in its CMP (by offset; shot only when its CMP has no other live trace), and *reversed*
   when its polarity score is below ``reversed_corr``.

Swell: a noisy trace whose excess over its shot neighbours is ``SWELL_DOMINANCE`` times larger
below ``fmin`` than above it is labelled ``swell`` and left unchanged for the swell step.

The step (:class:`seis_hpc.flows.impl.Edit`) makes the same decisions in memory that does
not grow with the survey: :func:`shot_rows` per shot gather into a scratch file of rows,
:func:`cmp_medians` per band of CMP numbers (:func:`cmp_bands`), then :func:`decide` trace by
trace; :func:`classify` is the whole survey in memory (the reference it is tested against).

Actions: NaN/Inf, dead and noisy traces are killed (zeroed), traces with more than
``max_spikes`` spike samples too; other spiky traces are despiked (each spike sample and its
two neighbours replaced by linear interpolation); reversed traces are flipped.
"""

from __future__ import annotations

import numpy as np

OK, KILL, DESPIKE, FLIP, SWELL = 0, 1, 2, 3, 4
ACTIONS = {KILL: "kill", DESPIKE: "despike", FLIP: "flip", SWELL: "swell"}
# A noisy trace whose excess over its neighbours is this many times larger below fmin than
# above it is swell-contaminated: labelled, left unchanged for the swell step.
SWELL_DOMINANCE = 2.0


def spike_mask(gather, *, spike_ratio: float = 4.0, neighbours: int = 4) -> np.ndarray:
    """Boolean mask of spike samples (see the module notes); NaN/Inf samples count as 0."""
    from scipy.ndimage import median_filter

    g = np.nan_to_num(np.asarray(gather, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    resid = np.abs(g - median_filter(g, size=(1, 5), mode="nearest"))
    peak = np.abs(g).max(axis=1)
    level = _neighbour_stat(peak, neighbours, np.median)
    return resid > spike_ratio * np.maximum(level, 1e-30)[:, None]


def despike(gather, mask) -> np.ndarray:
    """Replace each masked sample and its two neighbours by linear interpolation along time."""
    g = np.array(gather, dtype=np.float64, copy=True)
    m = np.asarray(mask, bool)
    wide = m.copy()
    wide[:, 1:] |= m[:, :-1]
    wide[:, :-1] |= m[:, 1:]
    t = np.arange(g.shape[1])
    for i in np.flatnonzero(wide.any(axis=1)):
        good = ~wide[i]
        if good.sum() >= 2:
            g[i, ~good] = np.interp(t[~good], t[good], g[i, good])
        else:
            g[i] = 0.0
    return g.astype(np.float32)


def _neighbour_stat(values: np.ndarray, n: int, fn) -> np.ndarray:
    """fn over the up-to-2n nearest other entries (indices i-n..i+n without i), NaN ignored."""
    v = np.asarray(values, np.float64)
    out = np.full(len(v), np.nan)
    for i in range(len(v)):
        nb = np.r_[v[max(0, i - n):i], v[i + 1:i + 1 + n]]
        nb = nb[np.isfinite(nb)]
        if nb.size:
            out[i] = fn(nb)
    return out


def _polarity(g: np.ndarray, live: np.ndarray, dt: float, max_lag: float, n: int = 2,
              coherent: float = 0.5) -> np.ndarray:
    """Median signed peak correlation of each trace with its n + n nearest live channels,
    where those neighbours share coherent events; NaN (undecided) where they do not.

    The lag searched grows with the channel distance (``max_lag`` per channel), so steep
    events (refractions at far offsets) are compared at their own moveout, not at a side
    lobe. A trace is judged only when its nearest live neighbours on either side correlate
    with each other at ``coherent`` or more (their events agree): a sign alone, against
    neighbours that disagree among themselves, says nothing about polarity.
    """
    from scipy.fft import irfft, next_fast_len, rfft

    ntr, ns = g.shape
    nfft = next_fast_len(2 * ns, real=True)
    spec = rfft(g, nfft, axis=1)
    norm = np.sqrt(np.sum(g * g, axis=1))
    lag1 = max(1, int(round(max_lag / dt)))

    def peak(i, j):
        lag = min(lag1 * abs(i - j), nfft // 2 - 1)
        lags = np.r_[np.arange(0, lag + 1), np.arange(nfft - lag, nfft)]
        cc = irfft(spec[i] * np.conj(spec[j]), nfft)[lags] / (norm[i] * norm[j])
        return cc[np.argmax(np.abs(cc))]

    score = np.full(ntr, np.nan)
    for i in range(ntr):
        if not live[i]:
            continue
        left = [j for j in range(i - 1, max(-1, i - n - 1), -1) if live[j]]
        right = [j for j in range(i + 1, min(ntr, i + n + 1)) if live[j]]
        if left and right and peak(left[0], right[0]) < coherent:
            continue  # the neighbours' events disagree: undecided
        if not left and len(right) >= 2 and peak(right[0], right[1]) < coherent:
            continue
        if not right and len(left) >= 2 and peak(left[0], left[1]) < coherent:
            continue
        vals = [peak(i, j) for j in left + right]
        if vals:
            score[i] = float(np.median(vals))
    return score


def trace_attributes(gather, dt: float, *, spike_ratio: float = 4.0, fmin: float = 20.0,
                     neighbours: int = 4, max_lag: float = 0.012) -> dict[str, np.ndarray]:
    """Per-trace attributes of one shot gather (traces in channel order).

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Raw traces (NaN/Inf allowed).
    dt : float
        Sample interval (s).
    spike_ratio : float
        Spike threshold (see the module notes).
    fmin : float
        Lower edge of the band whose RMS judges noisy traces (Hz).
    neighbours : int
        Channels on each side for the spike level.
    max_lag : float
        Largest lag of the polarity correlation (s).

    Returns
    -------
    dict
        ``finite`` (int8), ``dead`` (int8), ``spikes`` (int64 count), ``band_rms``
        (float64), ``low_rms`` (float64, RMS below ``fmin``: the swell band), ``polarity``
        (float64, NaN when undecided).
    """
    from seis_hpc.flows.noise import bandpass

    g = np.asarray(gather, np.float64)
    finite = np.isfinite(g).all(axis=1)
    g0 = np.where(np.isfinite(g), g, 0.0)
    dead = finite & (np.ptp(g0, axis=1) == 0)
    mask = spike_mask(g0, spike_ratio=spike_ratio, neighbours=neighbours)
    mask[~finite | dead] = False
    clean = despike(g0, mask).astype(np.float64)
    band = bandpass(clean, dt, (fmin, fmin + 5.0, 1e9, 1e9)).astype(np.float64)
    band_rms = np.sqrt(np.mean(band ** 2, axis=1))
    low_rms = np.sqrt(np.maximum(np.mean(clean ** 2, axis=1) - band_rms ** 2, 0.0))
    live = finite & ~dead
    return {"finite": finite.astype(np.int8), "dead": dead.astype(np.int8),
            "spikes": mask.sum(axis=1).astype(np.int64), "band_rms": band_rms,
            "low_rms": low_rms,
            "polarity": _polarity(clean, live, dt, max_lag)}


def levels(attrs: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Live traces and the natural logs of their band and swell-band RMS (NaN elsewhere).

    Returns
    -------
    live : numpy.ndarray of bool
    logr, logl : numpy.ndarray of float64
        log band RMS and log RMS below fmin (``logl`` None without ``low_rms``).
    """
    live = attrs["finite"].astype(bool) & ~attrs["dead"].astype(bool)
    logr = np.where(live & (attrs["band_rms"] > 0),
                    np.log(np.maximum(attrs["band_rms"], 1e-300)), np.nan)
    logl = None
    if "low_rms" in attrs:
        logl = np.where(live & (attrs["low_rms"] > 0),
                        np.log(np.maximum(attrs["low_rms"], 1e-300)), np.nan)
    return live, logr, logl


def classify(attrs: dict, cols: dict, *, noisy_ratio: float = 3.0, reversed_corr: float = -0.3,
             max_spikes: int = 20, neighbours: int = 6) -> tuple[np.ndarray, list[str]]:
    """Decide the action for every trace of the survey (all of it in memory: the reference
    that the step, which streams, reproduces exactly).

    Parameters
    ----------
    attrs : dict
        :func:`trace_attributes` of every trace, in file order.
    cols : dict
        Index columns of every trace: ``source_id``, ``channel``, ``cmp``, ``offset``.
    noisy_ratio : float
        Band-RMS ratio to the neighbours' median above which a trace is noisy.
    reversed_corr : float
        Polarity score below which a trace is reversed.
    max_spikes : int
        More spike samples than this: kill instead of despike.
    neighbours : int
        Traces on each side compared in the shot and in the CMP.

    Returns
    -------
    action : numpy.ndarray
        int8 per trace: 0 keep, 1 kill, 2 despike, 3 flip, 4 swell (labelled, unchanged).
    reason : list of str
        Why (empty for kept traces).
    """
    _, logr, logl = levels(attrs)
    rows = {"finite": attrs["finite"], "dead": attrs["dead"], "spikes": attrs["spikes"],
            "polarity": attrs["polarity"], "logr": logr,
            "shot_med": _grouped_median(logr, cols["source_id"], cols["channel"], neighbours),
            "cmp_med": _grouped_median(logr, cols["cmp"], cols["offset"], neighbours)}
    if logl is not None:
        rows.update(logl=logl,
                    low_med=_grouped_median(logl, cols["source_id"], cols["channel"], neighbours),
                    low_cmp=_grouped_median(logl, cols["cmp"], cols["offset"], neighbours))
    return decide(rows, noisy_ratio=noisy_ratio, reversed_corr=reversed_corr,
                  max_spikes=max_spikes)


def decide(rows: dict, *, noisy_ratio: float = 3.0, reversed_corr: float = -0.3,
           max_spikes: int = 20) -> tuple[np.ndarray, list[str]]:
    """The actions of any set of traces from their own attributes and their neighbours'
    medians (trace by trace: no trace looks at another here).

    Parameters
    ----------
    rows : dict
        Per trace: ``finite``, ``dead`` (0/1), ``spikes`` (count), ``polarity``; ``logr``
        (log band RMS, :func:`levels`) and its median over the shot neighbours
        ``shot_med`` and the CMP neighbours ``cmp_med`` (NaN: none); optionally the same
        for the swell band: ``logl``, ``low_med``, ``low_cmp``.
    noisy_ratio, reversed_corr, max_spikes
        As :func:`classify`.

    Returns
    -------
    action, reason
        As :func:`classify`.
    """
    finite = np.asarray(rows["finite"]).astype(bool)
    dead = np.asarray(rows["dead"]).astype(bool)
    n = len(finite)
    live = finite & ~dead
    logr, shot_med, cmp_med = rows["logr"], rows["shot_med"], rows["cmp_med"]
    lim = np.log(noisy_ratio)
    over_shot = logr - shot_med > lim
    over_cmp = np.where(np.isfinite(cmp_med), logr - cmp_med > lim, True)
    noisy = live & over_shot & over_cmp
    # Swell: the excess lives below fmin (leaking above it); the swell step repairs it.
    swell = np.zeros(n, bool)
    if rows.get("logl") is not None:
        logl, low_med, low_cmp = rows["logl"], rows["low_med"], rows["low_cmp"]
        dom = np.log(SWELL_DOMINANCE)
        # In the shot, or in the CMP (other shots: clean of this shot's swell burst).
        swell = noisy & ((logl - low_med > logr - shot_med + dom)
                         | (np.isfinite(low_cmp) & (logl - low_cmp > logr - cmp_med + dom)))
        noisy &= ~swell
    pol = rows["polarity"]
    reversed_ = live & ~noisy & np.isfinite(pol) & (pol < reversed_corr)
    # (a swell trace's polarity is judged on its swell-free band in the swell step's output)
    spikes = np.asarray(rows["spikes"]).astype(np.int64)
    action = np.zeros(n, np.int8)
    reason = [""] * n
    for i in np.flatnonzero(~finite):
        action[i], reason[i] = KILL, "NaN/Inf samples"
    for i in np.flatnonzero(dead):
        action[i], reason[i] = KILL, "dead (zero or constant)"
    for i in np.flatnonzero(noisy):
        action[i] = KILL
        reason[i] = (f"noisy: band RMS {np.exp(logr[i] - shot_med[i]):.1f}x shot neighbours"
                     + (f", {np.exp(logr[i] - cmp_med[i]):.1f}x CMP neighbours"
                        if np.isfinite(cmp_med[i]) else ""))
    for i in np.flatnonzero(swell):
        action[i] = SWELL
        ref, hi, where = (low_cmp[i], cmp_med[i], "CMP") if np.isfinite(low_cmp[i]) and \
            logl[i] - low_cmp[i] > logl[i] - low_med[i] else (low_med[i], shot_med[i], "shot")
        reason[i] = (f"swell: RMS below fmin {np.exp(logl[i] - ref):.1f}x {where} "
                     f"neighbours (above: {np.exp(logr[i] - hi):.1f}x); left to the "
                     "swell step")
    for i in np.flatnonzero(live & ~noisy & ~swell & (spikes > 0)):
        if spikes[i] > max_spikes:
            action[i], reason[i] = KILL, f"{int(spikes[i])} spike samples (> {max_spikes})"
        else:
            action[i], reason[i] = DESPIKE, f"{int(spikes[i])} spike samples"
    for i in np.flatnonzero(reversed_ & ~swell):
        if action[i] == DESPIKE:
            reason[i] += f"; also reversed polarity (score {pol[i]:.2f}), not flipped"
        else:
            action[i], reason[i] = FLIP, f"reversed polarity (score {pol[i]:.2f})"
    return action, reason


def _grouped_median(v: np.ndarray, label, order, n: int) -> np.ndarray:
    """Median of the up-to-2n nearest others (by ``order``) within each ``label`` group."""
    label = np.asarray(label)
    out = np.full(len(v), np.nan)
    srt = np.lexsort((np.asarray(order), label))
    cuts = np.flatnonzero(np.diff(label[srt])) + 1
    for grp in np.split(srt, cuts):
        out[grp] = _neighbour_stat(v[grp], n, np.median)
    return out


def apply_edits(gather, action, spikes_mask=None) -> np.ndarray:
    """Apply per-trace actions to a gather: kill (zero), despike, flip.

    Parameters
    ----------
    gather : array_like, shape (ntr, ns)
        Raw traces.
    action : array_like of int, shape (ntr,)
        From :func:`classify`.
    spikes_mask : array_like of bool, shape (ntr, ns), optional
        Spike samples (:func:`spike_mask`); needed for despiking.
    """
    g = np.where(np.isfinite(gather), gather, 0.0).astype(np.float32)
    action = np.asarray(action)
    if spikes_mask is not None:
        rows = action == DESPIKE
        if rows.any():
            fixed = despike(g, spikes_mask)
            g[rows] = fixed[rows]
    g[action == KILL] = 0.0
    g[action == FLIP] *= -1.0
    return g


# -- the survey in bounded memory (the step; classify above is the all-in-memory reference) --

# Columns of the step's scratch rows (one float64 row per trace; see seis_hpc.flows.rowfile).
ROW = ("finite", "dead", "spikes", "polarity", "logr", "logl", "shot_med", "low_med",
       "cmp_med", "low_cmp")
_COL = {k: j for j, k in enumerate(ROW)}
# Index rows streamed at a time, and the most traces whose CMP medians are made at once
# (about 280 B a trace while they are: 75 MB).
CHUNK = 1 << 20
BAND_TRACES = 1 << 18
# Scratch rows decided at a time for the report (about 250 B a row with the decisions).
REPORT_CHUNK = 1 << 16


def shot_rows(attrs: dict, neighbours: int = 6) -> np.ndarray:
    """Scratch rows (``len(ROW)`` columns) of one shot gather, traces in channel order: its
    attributes, levels and shot medians; the CMP medians NaN (made later, by CMP bands).
    Exactly what :func:`classify` computes for these traces from the whole survey."""
    _, logr, logl = levels(attrs)
    rows = np.full((len(logr), len(ROW)), np.nan)
    for k in ("finite", "dead", "spikes", "polarity"):
        rows[:, _COL[k]] = attrs[k]
    rows[:, _COL["logr"]] = logr
    rows[:, _COL["logl"]] = logl
    rows[:, _COL["shot_med"]] = _neighbour_stat(logr, neighbours, np.median)
    rows[:, _COL["low_med"]] = _neighbour_stat(logl, neighbours, np.median)
    return rows


def row_dict(rows: np.ndarray) -> dict:
    """Scratch rows as the ``rows`` argument of :func:`decide`."""
    return {k: rows[:, j] for j, k in enumerate(ROW)}


def cmp_bands(index, limit: int = BAND_TRACES, chunk: int = CHUNK
              ) -> tuple[list[tuple[int, int]], list[int]]:
    """Consecutive ranges of CMP numbers holding at most ``limit`` traces each (a CMP with
    more is a range alone), from the index's ``cmp`` column streamed ``chunk`` rows at a time.

    Returns
    -------
    bands : list of (int, int)
        First and last CMP number of each range.
    counts : list of int
        Traces in each.
    """
    n = index.n_traces
    vals = np.zeros(0, np.int64)
    counts = np.zeros(0, np.int64)
    for a in range(0, n, chunk):
        c = index.take(["cmp"], np.arange(a, min(n, a + chunk)))["cmp"]
        u, k = np.unique(c, return_counts=True)
        vals, inv = np.unique(np.r_[vals, u], return_inverse=True)
        counts = np.bincount(inv.ravel(), weights=np.r_[counts, k]).astype(np.int64)
    bands, sizes = [], []
    start, total = 0, 0
    for j, c in enumerate(counts.tolist()):
        if total and total + c > limit:
            bands.append((int(vals[start]), int(vals[j - 1])))
            sizes.append(total)
            start, total = j, 0
        total += c
    if total:
        bands.append((int(vals[start]), int(vals[-1])))
        sizes.append(total)
    return bands, sizes


def band_traces(index, band: tuple[int, int], chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """Trace numbers (ascending), ``cmp`` and ``offset`` of the traces whose CMP lies in
    ``band`` (inclusive), the index streamed ``chunk`` rows at a time."""
    n = index.n_traces
    parts = []
    for a in range(0, n, chunk):
        ids = np.arange(a, min(n, a + chunk))
        c = index.take(["cmp"], ids)["cmp"]
        keep = (c >= band[0]) & (c <= band[1])
        if keep.any():
            ids = ids[keep]
            parts.append((ids, c[keep], index.take(["offset"], ids)["offset"]))
    if not parts:
        return {"ids": np.zeros(0, np.int64), "cmp": np.zeros(0, np.int64),
                "offset": np.zeros(0)}
    return {k: np.concatenate([p[j] for p in parts])
            for j, k in enumerate(("ids", "cmp", "offset"))}


def cmp_medians(rows: np.ndarray, cmp, offset, neighbours: int = 6) -> np.ndarray:
    """``cmp_med`` and ``low_cmp`` (two columns) of traces holding every trace of their CMPs
    (``rows`` scratch rows, traces in file order: ties in offset keep it, as in
    :func:`classify`)."""
    return np.column_stack([
        _grouped_median(rows[:, _COL["logr"]], cmp, offset, neighbours),
        _grouped_median(rows[:, _COL["logl"]], cmp, offset, neighbours)])

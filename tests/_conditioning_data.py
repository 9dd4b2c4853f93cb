"""Small marine2d lines with known truth for the conditioning tests (shared, cached)."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
from scipy.signal import fftconvolve

from seis_hpc.synth import Noise, _add_events, make_survey, preset, ricker

# Flat reflectors only: synth models peg-legs of flat reflectors alone, so "with minus
# without the free surface" is exactly the multiples.
REFLECTORS = ((300.0, 0.0, 0.15), (1000.0, 0.0, 0.15))


def small_preset(shots=40, channels=48, record=1.2, noise=None, multiples=True):
    p = preset("marine2d")
    acq = replace(p.acquisition, shots_per_line=shots, n_channels=channels,
                  record_length=record, dt=0.002)
    ev = replace(p.events, diffractors=(), reflectors=REFLECTORS, multiples=multiples)
    return replace(p, acquisition=acq, events=ev, noise=noise or Noise())


@functools.lru_cache(maxsize=8)
def line(shots=40, channels=48, record=1.2, multiples=True, noise=None):
    """(data, headers, truth) of a small line (cached)."""
    return make_survey(small_preset(shots, channels, record, noise, multiples))


@functools.lru_cache(maxsize=2)
def primaries_and_multiples(shots=40, channels=48, record=1.2):
    """(data with multiples, primaries, multiples, headers, truth).

    Primaries = the survey without the free surface plus the water-bottom reflection (which
    synth switches on together with the multiples), modelled the way synth models it.
    """
    d1, h, truth = line(shots, channels, record, True)
    d0, _, _ = line(shots, channels, record, False)
    dt = truth["dt_s"]
    off = np.hypot(h["GroupX"] - h["SourceX"], h["GroupY"] - h["SourceY"])
    t_wb = truth["water_bottom_t0_s"]
    vw = truth["medium"]["layers"][0][1]
    spikes = np.zeros_like(d1)
    _add_events(spikes, np.sqrt(t_wb ** 2 + (off / vw) ** 2),
                np.full(len(off), truth["medium"]["water_bottom_reflectivity"], np.float32), dt)
    w = ricker(truth["wavelet_peak_hz"], dt)
    wb = fftconvolve(spikes, w[None, :], mode="same", axes=1).astype(np.float32)
    prim = d0 + wb
    return d1, prim, d1 - prim, h, truth


def offsets(h):
    return np.hypot(h["GroupX"] - h["SourceX"], h["GroupY"] - h["SourceY"])


def window_mask(times, t_event, half):
    """(ntr, ns) mask of samples within ``half`` s of ``t_event`` (ntr,) s."""
    return np.abs(times[None, :] - np.asarray(t_event)[:, None]) < half


def db(a, b):
    return float(10 * np.log10(a / b))

"""Noise suppression on synthetic data with known clean traces."""

from dataclasses import replace

import numpy as np
import pytest
from _conditioning_data import db, small_preset

from seis_hpc.flows import noise
from seis_hpc.synth import Noise, make_survey


def test_bandpass_zero_phase_and_band():
    dt, ns = 0.002, 1000
    t = np.arange(ns) * dt
    lo, mid, hi = (np.sin(2 * np.pi * f * t) for f in (3.0, 30.0, 120.0))
    out = noise.bandpass(np.vstack([lo, mid, hi]), dt, (8, 12, 60, 80))
    core = slice(200, 800)
    assert np.sqrt(np.mean(out[0, core] ** 2)) < 0.01
    assert np.sqrt(np.mean(out[1, core] ** 2)) == pytest.approx(np.sqrt(0.5), rel=0.01)
    assert np.sqrt(np.mean(out[2, core] ** 2)) < 0.01
    spike = np.zeros((1, ns))
    spike[0, 500] = 1.0
    f = noise.bandpass(spike, dt, (5, 10, 40, 60))
    assert int(np.argmax(f[0])) == 500
    np.testing.assert_allclose(f[0, 500 - 50:500], f[0, 501:551][::-1], atol=1e-6)


@pytest.fixture(scope="module")
def swell_line():
    p = small_preset(shots=12, channels=96, record=1.2)
    clean, h, _ = make_survey(p)
    noisy, _, truth = make_survey(replace(p, noise=Noise(swell_bursts=8, seed=3)))
    return clean, noisy, h, truth


def test_swell_attenuation_10db_primaries_1db(swell_line):
    clean, noisy, h, truth = swell_line
    ffid = h["FieldRecord"]
    out = np.empty_like(noisy)
    for s in np.unique(ffid):
        i = np.flatnonzero(ffid == s)
        out[i] = noise.swell_attenuate(noisy[i], 0.002)
    sw = np.array(truth["noise"]["swell"])
    good = np.setdiff1d(np.arange(len(ffid)), sw)
    gain = db(np.sum((noisy[sw] - clean[sw]) ** 2), np.sum((out[sw] - clean[sw]) ** 2))
    assert gain >= 10.0, gain
    # Primaries: amplitude of the clean signal in the output (projection), in dB.
    for rows in (sw, good):
        amp = 20 * np.log10(np.sum(out[rows] * clean[rows]) / np.sum(clean[rows] ** 2))
        assert abs(amp) < 1.0, amp
    # Traces without swell are returned (almost) untouched.
    assert db(np.sum(clean[good] ** 2), np.sum((out[good] - clean[good]) ** 2)) > 30


def test_fx_decon_random_noise(swell_line):
    clean, _, h, _ = swell_line
    rng = np.random.default_rng(1)
    noisy = clean + rng.normal(0, clean.std() * 0.5, clean.shape).astype(np.float32)
    ffid = h["FieldRecord"]
    out = np.empty_like(noisy)
    for s in np.unique(ffid):
        i = np.flatnonzero(ffid == s)
        out[i] = noise.fx_decon(noisy[i], 0.002)
    gain = db(np.sum((noisy - clean) ** 2), np.sum((out - clean) ** 2))
    assert gain >= 3.0, gain
    amp = 20 * np.log10(np.sum(out * clean) / np.sum(clean ** 2))
    assert abs(amp) < 1.0, amp


def test_fxy_decon_plane_wave_cube():
    dt, ns = 0.004, 200
    il, xl = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    t0 = 0.3 + 0.004 * il + 0.002 * xl
    from seis_hpc.synth import ricker

    w = ricker(25, dt)
    cube = np.zeros((16, 16, ns))
    for i in range(16):
        for j in range(16):
            k = int(round(t0[i, j] / dt))
            cube[i, j, k - len(w) // 2:k + len(w) // 2 + 1] = w
    rng = np.random.default_rng(4)
    noisy = cube + rng.normal(0, 0.2, cube.shape)
    out = noise.fxy_decon(noisy, dt, traces=10, length=3)
    assert db(np.sum((noisy - cube) ** 2), np.sum((out - cube) ** 2)) > 3.0
    # The plane wave keeps its times and polarity: aligned on the true event times, the
    # mean output trace peaks at lag 0 (measured 0.59: the 3-sample filter passes ~60 % of
    # the wavelet with the noise it removes).
    k0 = np.rint(t0 / dt).astype(int)
    lags = np.arange(-10, 11)
    aligned = np.array([out[il, xl, k0 + lag].mean() for lag in lags])
    assert lags[np.argmax(aligned)] == 0 and 0.5 < aligned.max() < 1.05, aligned

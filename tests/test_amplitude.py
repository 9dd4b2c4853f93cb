"""Amplitude recovery: divergence gain restores reflection coefficients of events decaying as
1/(t v^2); every gain has an exact inverse."""

import numpy as np
import pytest

from seis_hpc.cli import main
from seis_hpc.flows import amplitude
from seis_hpc.io.segy import write_segy
from seis_hpc.survey import open_traces


def test_divergence_recovers_reflectivity():
    dt, ns = 0.002, 1001
    t = np.arange(ns) * dt
    v = 1500.0 + 500.0 * t  # m/s
    refl = {200: 0.3, 450: -0.15, 800: 0.1}
    tr = np.zeros((1, ns))
    for k, r in refl.items():
        tr[0, k] = r / (t[k] * (v[k] / v[0]) ** 2)  # spherical spreading of the wavefront
    out = amplitude.spherical_divergence(tr, dt, velocity=v)
    for k, r in refl.items():
        assert out[0, k] == pytest.approx(r, rel=1e-5)
    back = amplitude.spherical_divergence(out, dt, velocity=v, inverse=True)
    np.testing.assert_allclose(back, tr, rtol=1e-5, atol=1e-12)


def test_power_gain_and_inverse():
    dt = 0.004
    g = np.random.default_rng(0).normal(size=(3, 250)).astype(np.float32)
    out = amplitude.spherical_divergence(g, dt, power=2.0)
    assert out[0, 100] == pytest.approx(g[0, 100] * (100 * dt) ** 2, rel=1e-5)
    np.testing.assert_allclose(amplitude.spherical_divergence(out, dt, power=2.0, inverse=True),
                               g, rtol=1e-5, atol=1e-6)


def test_agc_balances_and_inverts():
    dt = 0.002
    rng = np.random.default_rng(1)
    g = rng.normal(size=(4, 2000)) * np.exp(-np.arange(2000) * dt * 3)[None, :]
    out, scale = amplitude.agc(g, dt, 0.2)
    rms_early = np.sqrt(np.mean(out[:, 200:400] ** 2))
    rms_late = np.sqrt(np.mean(out[:, 1600:1800] ** 2))
    assert rms_early == pytest.approx(1.0, rel=0.15)
    assert rms_late == pytest.approx(1.0, rel=0.15)
    np.testing.assert_allclose(amplitude.remove_gain(out, scale), g, rtol=1e-4, atol=1e-9)


def test_equalise_and_inverse():
    g = np.random.default_rng(2).normal(size=(5, 300)) * np.arange(1, 6)[:, None]
    out, scale = amplitude.equalise(g, 0.002, window=(0.1, 0.5), target=2.0)
    rms = np.sqrt(np.mean(out[:, 50:251].astype(float) ** 2, axis=1))
    np.testing.assert_allclose(rms, 2.0, rtol=1e-4)
    np.testing.assert_allclose(amplitude.remove_gain(out, scale), g, rtol=1e-5, atol=1e-6)


def test_gain_command_round_trip(tmp_path):
    dt = 0.002
    g = np.random.default_rng(3).normal(size=(6, 400)).astype(np.float32)
    hdr = {"FieldRecord": np.repeat([1, 2], 3), "TraceNumber": np.tile([1, 2, 3], 2),
           "SourceX": np.repeat([0.0, 25.0], 3), "GroupX": np.tile([-50.0, -62.5, -75.0], 2)
           + np.repeat([0.0, 25.0], 3), "SourceY": 0.0, "GroupY": 0.0}
    write_segy(tmp_path / "in.sgy", g, hdr, dt)
    csv = tmp_path / "v.csv"
    csv.write_text("time_s,vrms_mps\n0,1500\n1,2500\n")
    assert main(["gain", str(tmp_path / "in.sgy"), "--out", str(tmp_path / "g.sgy"),
                 "--velocity", str(csv)]) == 0
    assert main(["gain", str(tmp_path / "g.sgy"), "--out", str(tmp_path / "back.sgy"),
                 "--velocity", str(csv), "--inverse"]) == 0
    gained = open_traces(tmp_path / "g.sgy").read(np.arange(6))
    back = open_traces(tmp_path / "back.sgy").read(np.arange(6))
    t = np.maximum(np.arange(400) * dt, dt)
    v = np.interp(np.arange(400) * dt, [0, 1], [1500, 2500])
    np.testing.assert_allclose(gained, g * t * (v / 1500) ** 2, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(back, g, rtol=1e-4, atol=1e-6)

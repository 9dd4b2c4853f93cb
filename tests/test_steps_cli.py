"""Every conditioning step run as a user runs it, through the command line
(``seis-hpc STEP IN.sgy --out OUT.sgy``) and as a flow step (``seis-hpc run FLOW.toml``), on
small SEG-Y files with known truth: the output values must change the way the step's truth says
(dB of noise or multiple removed, primaries kept, target RMS, band limits). The two ways of
running must give the same samples. Figures and limits follow the unit tests
(test_noise.py, test_demultiple.py, test_amplitude.py), measured here on smaller inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from _conditioning_data import db, offsets, primaries_and_multiples, small_preset, window_mask

from seis_hpc.io.segy import write_segy
from seis_hpc.survey import open_traces
from seis_hpc.synth import Medium, Noise, make_survey, vrms_function

DT = 0.002


def _seis(*args) -> None:
    e = {k: v for k, v in os.environ.items() if k != "SEIS_HPC_RUNDIR"}
    p = subprocess.run([sys.executable, "-m", "seis_hpc", *map(str, args)], env=e,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]


def _read(path: Path) -> np.ndarray:
    rd = open_traces(path)
    return rd.read(np.arange(rd.index.n_traces))


def _toml(v) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def run_both(src: Path, step: str, params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(command-line output, flow output) of ``step`` with ``params`` on ``src``."""
    params = params or {}
    cli_out = src.with_name(f"{src.stem}_{step}_cli.sgy")
    flags = []
    for k, v in params.items():
        flags += [f"--{k.replace('_', '-')}",
                  ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)]
    _seis(step, src, "--out", cli_out, *flags)
    flow = src.with_name(f"{src.stem}_{step}.toml")
    body = "".join(f"{k} = {_toml(v)}\n" for k, v in params.items())
    flow.write_text(f'[flow]\nname = "{step}"\ninput = "{src.name}"\n'
                    f'output = "{src.stem}_{step}_flow.sgy"\n'
                    f'[[step]]\nname = "{step}"\n{body}')
    _seis("run", flow)
    a, b = _read(cli_out), _read(src.with_name(f"{src.stem}_{step}_flow.sgy"))
    np.testing.assert_array_equal(a, b)  # one step, two ways of running it: same samples
    return a, b


def _write(path: Path, data, headers) -> Path:
    write_segy(path, np.asarray(data, np.float32), headers, DT)
    return path


def _headers(n_shots: int, n_ch: int) -> dict:
    """A plain 2D spread: shots 25 m apart, channels 12.5 m apart behind the source."""
    s = np.repeat(np.arange(n_shots) * 25.0, n_ch)
    return {"FieldRecord": np.repeat(np.arange(1, n_shots + 1), n_ch),
            "TraceNumber": np.tile(np.arange(1, n_ch + 1), n_shots),
            "SourceX": s, "GroupX": s - 50.0 - 12.5 * np.tile(np.arange(n_ch), n_shots),
            "SourceY": 0.0, "GroupY": 0.0}


# -- amplitude -------------------------------------------------------------------------------

def test_agc_gives_unit_rms_everywhere(tmp_path):
    # White noise decaying by 3 Np/s (24 dB from top to bottom): AGC with a 0.2 s window
    # must bring the RMS to 1 early and late (as test_amplitude.py: within 15 %).
    rng = np.random.default_rng(1)
    ns = 1000
    g = rng.normal(size=(8, ns)) * np.exp(-3 * np.arange(ns) * DT)[None, :] * 40.0
    src = _write(tmp_path / "decay.sgy", g, _headers(2, 4))
    for out in run_both(src, "agc", {"window": 0.2}):
        for win in (slice(150, 300), slice(700, 850)):
            rms = np.sqrt(np.mean(out[:, win].astype(float) ** 2))
            assert rms == pytest.approx(1.0, rel=0.15), (win, rms)


def test_equalise_gives_target_rms_in_window(tmp_path):
    rng = np.random.default_rng(2)
    g = rng.normal(size=(8, 400)) * np.arange(1, 9)[:, None] * 3.0
    src = _write(tmp_path / "uneven.sgy", g, _headers(2, 4))
    for out in run_both(src, "equalise", {"tmin": 0.1, "tmax": 0.5, "target": 2.5}):
        rms = np.sqrt(np.mean(out[:, 50:251].astype(float) ** 2, axis=1))
        np.testing.assert_allclose(rms, 2.5, rtol=1e-4)
        # one scalar per trace: the shape of each trace is kept
        np.testing.assert_allclose(out / out[:, 100:101], g / g[:, 100:101], rtol=1e-3)


# -- noise -----------------------------------------------------------------------------------

def test_bandpass_keeps_the_band_and_removes_the_rest(tmp_path):
    # White noise: the output/input amplitude spectrum must follow the trapezoid
    # 10-15-40-50 Hz: 1 in the pass band, < -40 dB outside the corners.
    rng = np.random.default_rng(3)
    ns = 1000
    g = rng.normal(size=(8, ns))
    src = _write(tmp_path / "white.sgy", g, _headers(2, 4))
    f = np.fft.rfftfreq(4 * ns, DT)
    win = np.hanning(ns)  # the taper spreads leakage less than the box would
    for out in run_both(src, "bandpass", {"corners": [10, 15, 40, 50]}):
        spec_in = np.abs(np.fft.rfft(g * win, 4 * ns, axis=1)) ** 2
        spec_out = np.abs(np.fft.rfft(out * win, 4 * ns, axis=1)) ** 2
        ratio = 10 * np.log10(spec_out.sum(0) / spec_in.sum(0))
        band = (f > 17) & (f < 38)
        assert np.abs(ratio[band]).max() < 0.5, np.abs(ratio[band]).max()
        for stop in ((f > 2) & (f < 6), (f > 60) & (f < 240)):
            assert ratio[stop].max() < -40.0, ratio[stop].max()


@pytest.fixture(scope="module")
def swell_line(tmp_path_factory):
    root = tmp_path_factory.mktemp("swell")
    p = small_preset(shots=2, channels=96, record=1.0)
    clean, h, _ = make_survey(p)
    noisy, _, truth = make_survey(replace(p, noise=Noise(swell_bursts=4, seed=3)))
    return _write(root / "swell.sgy", noisy, h), clean, noisy, truth


def test_swell_removes_10db_keeps_primaries(swell_line):
    src, clean, noisy, truth = swell_line
    sw = np.array(truth["noise"]["swell"])
    assert len(sw) > 10
    good = np.setdiff1d(np.arange(len(clean)), sw)
    for out in run_both(src, "swell", {"fmax": 15}):
        gain = db(np.sum((noisy[sw] - clean[sw]) ** 2), np.sum((out[sw] - clean[sw]) ** 2))
        assert gain >= 10.0, gain
        for rows in (sw, good):
            amp = 20 * np.log10(np.sum(out[rows] * clean[rows]) / np.sum(clean[rows] ** 2))
            assert abs(amp) < 1.0, amp
        assert db(np.sum(clean[good] ** 2), np.sum((out[good] - clean[good]) ** 2)) > 30


def test_fxdecon_removes_random_noise_keeps_primaries(tmp_path):
    clean, h, _ = make_survey(small_preset(shots=3, channels=48, record=0.8))
    rng = np.random.default_rng(1)
    noisy = clean + rng.normal(0, clean.std() * 0.5, clean.shape).astype(np.float32)
    src = _write(tmp_path / "random.sgy", noisy, h)
    for out in run_both(src, "fxdecon"):
        gain = db(np.sum((noisy - clean) ** 2), np.sum((out - clean) ** 2))
        assert gain >= 3.0, gain
        amp = 20 * np.log10(np.sum(out * clean) / np.sum(clean ** 2))
        assert abs(amp) < 1.0, amp


# -- multiples -------------------------------------------------------------------------------

def _truth_windows(h, truth, ns):
    """Masks of the first water-bottom multiple and of each primary (+-30 ms)."""
    t = np.arange(ns) * DT
    x = offsets(h)
    t_wb, vw = truth["water_bottom_t0_s"], truth["medium"]["layers"][0][1]
    m1 = window_mask(t, np.sqrt((2 * t_wb) ** 2 + (x / vw) ** 2), 0.03)
    prim = [window_mask(t, np.sqrt(r["t0_s"] ** 2 + (x / r["vrms_mps"]) ** 2), 0.03)
            for r in truth["reflectors"] if r["t0_s"] < t[-1] - 0.05]
    return m1, prim


def _measure(out, prim, mult, m1, prim_win, rows):
    """(WB multiple reduction dB, [primary energy change dB]) over ``rows``."""
    rows = np.asarray(rows)[:, None]
    red = db(np.sum((mult * m1 * rows) ** 2), np.sum(((out - prim) * m1 * rows) ** 2))
    kept = [db(np.sum((out * w * rows) ** 2), np.sum((prim * w * rows) ** 2))
            for w in prim_win]
    return red, kept


@pytest.fixture(scope="module")
def multiples_line(tmp_path_factory):
    root = tmp_path_factory.mktemp("mult")
    d, prim, mult, h, truth = primaries_and_multiples(4, 48, 1.2)
    return _write(root / "shots.sgy", d, h), d, prim, mult, h, truth


@pytest.mark.parametrize("domain,limit", [("taup", 6.0), ("tx", 5.0)])
def test_decon_removes_water_layer_multiple(multiples_line, domain, limit):
    src, d, prim, mult, h, truth = multiples_line
    m1, pw = _truth_windows(h, truth, d.shape[1])
    rows = np.ones(len(d), bool) if domain == "taup" else h["TraceNumber"] <= 8
    for out in run_both(src, "decon", {"domain": domain}):
        red, kept = _measure(out, prim, mult, m1, pw, rows)
        assert red >= limit, red
        assert all(abs(k) < 1.0 for k in kept), kept


def test_srme_removes_water_bottom_multiple(tmp_path):
    shots, channels = 34, 24
    d, prim, mult, h, truth = primaries_and_multiples(shots, channels, 1.0)
    src = _write(tmp_path / "line.sgy", d, h)
    m1, pw = _truth_windows(h, truth, d.shape[1])
    ffid = h["FieldRecord"]
    # shots with a full streamer length of shots behind them (sources under every receiver)
    rows = np.isin(ffid, np.unique(ffid)[channels // 2 + 2:])
    for out in run_both(src, "srme"):
        red, kept = _measure(out, prim, mult, m1, pw, rows)
        assert red >= 20.0, red
        assert all(abs(k) < 1.0 for k in kept), kept


def test_radon_removes_multiple_on_cmp_gathers(tmp_path):
    # Four consecutive full-fold CMPs of a line (the four CMP positions relative to the
    # shots), written alone: four Radon gathers keep the test short.
    d, prim, mult, h, truth = primaries_and_multiples(12, 48, 1.2)
    cdp = h["CDP"]
    cs, counts = np.unique(cdp, return_counts=True)
    keep = np.flatnonzero(np.isin(cdp, cs[counts == counts.max()][:4]))
    sub = {k: (v[keep] if np.ndim(v) else v) for k, v in h.items()}
    src = _write(tmp_path / "cmps.sgy", d[keep], sub)
    t, vr = vrms_function(Medium(), d.shape[1] * DT, DT)
    vel = tmp_path / "vrms.csv"
    rows = zip(t, vr, strict=True)
    vel.write_text("time_s,vrms_mps\n" + "".join(f"{a:.4f},{b:.2f}\n" for a, b in rows))
    m1, pw = _truth_windows(sub, truth, d.shape[1])
    for out in run_both(src, "radon", {"velocity": str(vel)}):
        red, kept = _measure(out, prim[keep], mult[keep], m1, pw, np.ones(len(keep), bool))
        assert red >= 5.0, red
        assert all(abs(k) < 1.0 for k in kept), kept

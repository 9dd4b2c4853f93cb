"""The built-in synthetic surveys: events where the truth says, headers that describe them."""

import json

import numpy as np
import pytest

from seis_hpc.synth import (
    diffractor_wavelet,
    ghost_wavelet,
    make_survey,
    preset,
    ricker,
    vertical_time,
    vrms_function,
)


def test_vrms_of_layered_medium_matches_dix_forward():
    p = preset("marine2d")
    t, v = vrms_function(p.medium, 2.0, 0.002)
    # In the water layer Vrms is the water velocity; below, the time-weighted RMS of layers.
    t_wb = float(vertical_time(p.medium, 100.0))
    assert t_wb == pytest.approx(2 * 100 / 1500)
    assert v[t < t_wb - 1e-9] == pytest.approx(1500.0)
    t400 = float(vertical_time(p.medium, 400.0))
    expect = np.sqrt((1500**2 * t_wb + 1700**2 * (t400 - t_wb)) / t400)
    assert np.interp(t400, t, v) == pytest.approx(expect, rel=2e-3)


def test_ricker_is_zero_phase_and_centred():
    w = ricker(30.0, 0.002)
    assert len(w) % 2 == 1 and np.argmax(w) == len(w) // 2 and w.max() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1])


def _pick(trace, t_expect, dt, half=0.012):
    i0, i1 = int((t_expect - half) / dt), int((t_expect + half) / dt) + 1
    return (i0 + np.argmax(np.abs(trace[i0:i1]))) * dt


def test_marine2d_reflections_and_multiples_at_truth_times():
    from dataclasses import replace

    p = preset("marine2d")
    # Diffractions cross the reflections on far traces; time the reflections without them.
    data, hdr, truth = make_survey(replace(p, events=replace(p.events, diffractors=())))
    acq = truth["acquisition"]
    n_ch = acq["n_channels"]
    assert data.shape == (acq["shots_per_line"] * n_ch, truth["ns"])
    assert truth["ns"] == 1501 and truth["dt_s"] == 0.002  # 3.0 s at 2 ms
    h = np.hypot(hdr["GroupX"] - hdr["SourceX"], hdr["GroupY"] - hdr["SourceY"])
    dt = truth["dt_s"]
    # Deep flat reflector on the near and far trace of a mid-line shot: hyperbolic time.
    ref = truth["reflectors"][2]
    shot = 60 * n_ch
    for tr in (shot, shot + n_ch - 1):
        t_exp = np.sqrt(ref["t0_s"] ** 2 + (h[tr] / ref["vrms_mps"]) ** 2)
        assert abs(_pick(data[tr], t_exp, dt) - t_exp) <= dt
    # First water-bottom multiple at twice the water-bottom time, opposite polarity.
    t_wb = truth["water_bottom_t0_s"]
    near = shot
    t1 = np.sqrt(t_wb**2 + (h[near] / 1500) ** 2)
    t2 = np.sqrt((2 * t_wb) ** 2 + (h[near] / 1500) ** 2)
    a1 = data[near, int(round(t1 / dt))]
    a2 = data[near, int(round(t2 / dt))]
    assert np.sign(a1) == -np.sign(a2)
    # Headers: CMP interval is half the group interval; offsets agree with coordinates.
    assert np.all(np.abs(hdr["offset"] - h) <= 0.5)
    assert truth["grid"]["bin_inline"] == pytest.approx(6.25)


def _pick_wavelet(trace, t_expect, dt, tw, w, half=0.012):
    """Time (s) where ``w`` (on times ``tw`` s, same dt) best correlates with ``trace``."""
    i0 = int(round(t_expect / dt))
    k0 = int(round(tw[0] / dt))
    best = max(range(-int(half / dt), int(half / dt) + 1),
               key=lambda m: np.dot(trace[i0 + m + k0:i0 + m + k0 + len(w)], w))
    return (i0 + best) * dt


def test_tiny3d_diffractor_apex_at_truth():
    data, hdr, truth = make_survey(preset("tiny3d"))
    d = truth["diffractors"][0]
    mx = 0.5 * (hdr["SourceX"] + hdr["GroupX"])
    my = 0.5 * (hdr["SourceY"] + hdr["GroupY"])
    h = np.hypot(hdr["GroupX"] - hdr["SourceX"], hdr["GroupY"] - hdr["SourceY"])
    # the trace whose source and receiver are closest to the diffractor: DSR time check
    k = int(np.argmin(np.hypot(mx - d["x"], my - d["y"]) + 0.01 * h))
    t_axis, vr = vrms_function(preset("tiny3d").medium, 1.0, truth["dt_s"])
    v = np.interp(d["t0_s"], t_axis, vr)
    ds = np.hypot(hdr["SourceX"][k] - d["x"], hdr["SourceY"][k] - d["y"])
    dr = np.hypot(hdr["GroupX"][k] - d["x"], hdr["GroupY"][k] - d["y"])
    half2 = d["t0_s"] ** 2 / 4
    t_exp = np.sqrt(half2 + (ds / v) ** 2) + np.sqrt(half2 + (dr / v) ** 2)
    # the diffraction wavelet: the Ricker through the adjoint rho filter (in 3D d/dt)
    tw, w = diffractor_wavelet(truth["wavelet_peak_hz"], truth["dt_s"], dims=3)
    keep = np.abs(tw) <= 0.1
    assert abs(_pick_wavelet(data[k], t_exp, truth["dt_s"], tw[keep], w[keep]) - t_exp) \
        <= truth["dt_s"]
    assert len(set(hdr["EnergySourcePoint"])) == 2  # flip-flop
    assert set(hdr["INLINE_3D"]) and set(hdr["CROSSLINE_3D"])


def test_ghosts_follow_depth_and_emergence_angle():
    """marine2d-ghost: each trace of the seafloor reflection is the Ricker with its source and
    receiver ghosts (-1, delays 2 z cos(theta) / 1500 m/s, sin(theta) = h / (1500 m/s t))
    to the accuracy of the spike placement (linear interpolation between samples): correlation
    with the analytic wavelet measured 0.99994 on the near trace (50 m), 0.998 on the far one
    (1237.5 m, 56 degrees), where the vertical-incidence ghost fits at -0.31. The truth keeps
    the primary's time and says where the largest lobe is."""
    from dataclasses import replace

    from seis_hpc.synth import wavelet_peak

    p = preset("marine2d-ghost")
    acq = replace(p.acquisition, shots_per_line=1, record_length=1.0)
    ev = replace(p.events, diffractors=(), reflectors=(), multiple_orders=0)
    data, hdr, truth = make_survey(replace(p, acquisition=acq, events=ev))
    assert truth["ghosts"]["source_depth_m"] == 6.0 and truth["ghosts"]["receiver_depth_m"] == 8.0
    dt, t_wb = truth["dt_s"], truth["water_bottom_t0_s"]
    t = np.arange(truth["ns"]) * dt
    h = np.hypot(hdr["GroupX"] - hdr["SourceX"], hdr["GroupY"] - hdr["SourceY"])
    for tr in (0, len(h) - 1):
        te = np.sqrt(t_wb**2 + (h[tr] / 1500.0) ** 2)
        cos = np.sqrt(1 - (h[tr] / (1500.0 * te)) ** 2)
        fits = []
        for c in (cos, 1.0):
            tw, w = ghost_wavelet(30.0, dt, cos_s=c, cos_r=c, oversample=50)
            model = np.interp(t, te + tw, w, left=0.0, right=0.0)
            win = (t > te - 0.06) & (t < te + 0.08)
            x, y = data[tr, win], model[win]
            fits.append(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))
        assert fits[0] > 0.995, (tr, fits)
        if h[tr] > 1000:
            assert fits[1] < 0.5, fits  # the angle matters on the far trace
    assert wavelet_peak(truth) == pytest.approx((0.00933, -1.0), abs=1e-4)
    # without ghosts the zero-phase Ricker, peak at the truth time
    assert wavelet_peak(make_survey(preset("tiny3d"))[2]) == (0.0, 1.0)


def test_noise_is_planted_where_truth_says():
    from dataclasses import replace

    from seis_hpc.synth import Noise

    p = replace(preset("tiny3d"), noise=Noise(dead=5, spikes=4, swell_bursts=2, seed=3))
    data, _, truth = make_survey(p)
    clean, _, _ = make_survey(preset("tiny3d"))
    n = truth["noise"]
    assert len(n["dead"]) == 5 and len(n["spikes"]) == 4 and len(n["swell"]) >= 8
    assert np.all(data[n["dead"]] == 0)
    spiky = np.abs(data[n["spikes"]]).max(axis=1)
    assert np.all(spiky > 5 * np.abs(clean).max())
    untouched = np.setdiff1d(np.arange(len(data)), n["dead"] + n["spikes"] + n["swell"])
    np.testing.assert_array_equal(data[untouched], clean[untouched])


def test_synth_command_writes_segy_truth_and_velocity(tmp_path):
    from seis_hpc.cli import main

    assert main(["synth", "--preset", "tiny3d", "--out", str(tmp_path / "s")]) == 0
    truth = json.loads((tmp_path / "s" / "truth.json").read_text())
    lines = (tmp_path / "s" / "velocity.csv").read_text().splitlines()
    assert lines[0] == "time_s,vrms_mps" and len(lines) > 10
    import segyio

    with segyio.open(tmp_path / "s" / "shots.sgy", ignore_geometry=True) as f:
        assert f.tracecount == truth["n_traces"]
        assert len(f.samples) == truth["ns"]
        assert f.header[0][segyio.TraceField.SourceGroupScalar] == -100
        sx = f.header[0][segyio.TraceField.SourceX] / 100.0
        assert sx == pytest.approx(truth["acquisition"]["x0"], abs=30)  # flip-flop: +-25 m


def test_synth_shortens_the_line_and_record(tmp_path, capsys):
    """--shots, --channels, --record-length: a short line of the preset (the README flow's
    test), the geometry of the preset otherwise; impossible values are one-line errors."""
    from seis_hpc.cli import main

    out = tmp_path / "s"
    assert main(["synth", "--preset", "marine2d", "--out", str(out), "--shots", "5",
                 "--channels", "12", "--record-length", "1.0"]) == 0
    truth = json.loads((out / "truth.json").read_text())
    acq = truth["acquisition"]
    assert (acq["shots_per_line"], acq["n_channels"], acq["record_length"]) == (5, 12, 1.0)
    assert acq["group_interval"] == 12.5 and acq["shot_interval"] == 25.0  # the preset's
    assert truth["n_traces"] == 5 * 12 and truth["ns"] == 501  # 0..1 s at 2 ms
    # the deepest diffractor (t0 1.19 s) is below the record: left out of data and truth alike
    t0 = [d["t0_s"] for d in truth["diffractors"]]
    assert len(t0) == 2 and max(t0) < 1.0, t0
    capsys.readouterr()
    for bad in (["--shots", "0"], ["--channels", "-3"], ["--record-length", "0.01"]):
        assert main(["synth", "--preset", "marine2d", "--out", str(tmp_path / "b"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"seis-hpc: error: {bad[0]}") and err.count("\n") == 1, err
    assert not (tmp_path / "b").exists()


def test_unknown_preset_is_a_clear_error(capsys):
    from seis_hpc.cli import main

    assert main(["synth", "--preset", "nope", "--out", "x"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["tiny3d", "marine3d-small"])
def test_survey_geometry_recovers_the_designed_grid(tmp_path, name):
    """Ingest of the synthetic SEG-Y finds the bin grid the survey was designed on."""
    from seis_hpc.survey import Survey
    from seis_hpc.synth import write_survey

    truth = write_survey(preset(name), tmp_path)
    g = Survey.open(tmp_path / "shots.sgy").grid
    t = truth["grid"]
    assert (g.n_inline, g.n_crossline) == (t["n_inline"], t["n_crossline"])
    assert g.azimuth == pytest.approx(t["azimuth"], abs=0.01)
    assert g.bin_inline == pytest.approx(t["bin_inline"], abs=1e-3)
    assert g.bin_crossline == pytest.approx(t["bin_crossline"], abs=1e-3)
    x, y = g.grid_to_world(g.inline0, g.crossline0)
    assert (x, y) == pytest.approx((t["x0"], t["y0"]), abs=0.05)


def test_synth_command_ghosts_flag(tmp_path):
    """``--ghosts`` adds the ghosts to any preset (here tiny3d, whose diffraction then carries
    them: the trace changes and the truth says so); the default stays without."""
    from seis_hpc.cli import main

    assert main(["synth", "--preset", "tiny3d", "--ghosts", "--out", str(tmp_path / "g")]) == 0
    truth = json.loads((tmp_path / "g" / "truth.json").read_text())
    assert truth["ghosts"] == {"source_depth_m": 6.0, "receiver_depth_m": 8.0,
                               "free_surface_coefficient": -1.0, "water_velocity_mps": 1500.0}
    assert main(["synth", "--preset", "tiny3d", "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "truth.json").read_text())["ghosts"] is None
    import segyio

    with segyio.open(tmp_path / "g" / "shots.sgy", ignore_geometry=True) as f, \
            segyio.open(tmp_path / "p" / "shots.sgy", ignore_geometry=True) as h:
        g, p = f.trace.raw[:], h.trace.raw[:]
    assert np.abs(g - p).max() > 0.5 * np.abs(p).max()

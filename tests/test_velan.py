"""Velocity analysis: Dix, the constrained automatic picker, picks tables, and the automatic
Vrms against the known truth of synthetic lines (marine2d and the v(x, z) preset)."""

from __future__ import annotations

import numpy as np
import pytest
import velocity_line as vl

from seis_hpc import synth
from seis_hpc.cli import main
from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.io.volume import read_volume
from seis_hpc.survey import Survey
from seis_hpc.velocity.field import field_from_picks
from seis_hpc.velocity.picks import (
    PickLocation,
    Picks,
    dix,
    read_picks,
    vrms_function,
    write_picks,
    write_su_picks,
)
from seis_hpc.velocity.velan import (
    ScanParams,
    analysis_locations,
    auto_pick,
    supergather_ids,
    velocity_analysis,
)

# Below the sea floor (t > 0.2 s) interval velocities above the water's: off the multiples.
VINT_MIN = [(0.0, 1450.0), (0.2, 1450.0), (0.21, 1550.0)]
T_CHECK = (0.3, 1.25)  # s: from above the first primary to below the last


def test_dix_recovers_layer_velocities_and_refuses_impossible_picks():
    med = synth.Medium()
    t, v = synth.vrms_function(med, 2.0, 0.002)
    tops = synth.vertical_time(med, [l[0] for l in med.layers])
    # Picks at the layer bottoms: Dix returns each layer's velocity exactly.
    tp = np.append(tops[1:], 2.0)
    vp = np.interp(tp, t, v)
    vint = dix(tp, vp)
    np.testing.assert_allclose(vint, [l[1] for l in med.layers], rtol=2e-3)
    with pytest.raises(SeisError, match="imaginary"):
        dix([0.5, 1.0], [2000.0, 1400.0])  # V^2 t decreases: negative squared interval
    with pytest.raises(SeisError, match="outside"):
        dix([0.5, 0.52], [2000.0, 2300.0], vint_max=6000.0)  # ~7000 m/s over 20 ms
    with pytest.raises(SeisError, match="increase"):
        dix([0.5, 0.5], [2000.0, 2100.0])


def _panel(events, time, vel, width=0.006, vwidth=20.0):
    t, v = np.meshgrid(time, vel)
    p = np.zeros_like(t)
    for t0, v0, s in events:
        p += s * np.exp(-((t - t0) / width) ** 2 - ((v - v0) / vwidth) ** 2)
    return p


def test_auto_pick_follows_constraints_not_the_strongest_decoy():
    time = np.arange(0, 1.5, 0.002)
    vel = np.arange(1400, 3000, 10.0)
    prim = [(0.4, 1650, 0.9), (0.8, 1800, 0.9), (1.2, 2000, 0.9)]
    # A slow event (a multiple) between primaries: picking it would make Vrms decrease.
    decoy = [(1.0, 1500, 1.0)]
    tp, vp, sp = auto_pick(_panel(prim + decoy, time, vel), time, vel, vint_min=1450,
                           vint_max=5000)
    np.testing.assert_allclose(tp, [0.4, 0.8, 1.2], atol=0.003)
    np.testing.assert_allclose(vp, [1650, 1800, 2000], atol=3.0)
    assert np.all(np.diff(vp) >= 0)
    dix(tp, vp, vint_min=1450, vint_max=5000)
    # Interval bounds: a jump to 2600 m/s over 0.1 s needs ~5600 m/s, outside 1450..4000.
    fast = [(0.4, 1650, 0.9), (0.5, 2600, 1.0), (1.2, 2000, 0.9)]
    tp, vp, _ = auto_pick(_panel(fast, time, vel), time, vel, vint_min=1450, vint_max=4000)
    assert 0.5 not in np.round(tp, 2)
    dix(tp, vp, vint_min=1450, vint_max=4000)
    # Reference-guided: an event outside the corridor is not picked.
    ref = (np.array([0.0, 1.5]), np.array([1600.0, 2100.0]))
    wrong = [(0.4, 1650, 0.9), (0.8, 2200, 1.0), (1.2, 2000, 0.9)]
    tp, vp, _ = auto_pick(_panel(wrong, time, vel), time, vel, reference=ref, corridor=0.08)
    assert np.all(np.abs(vp / np.interp(tp, *ref) - 1) <= 0.08)
    assert 0.8 not in np.round(tp, 2)


def test_auto_pick_time_dependent_bound_and_bad_input():
    time = np.arange(0, 1.0, 0.002)
    vel = np.arange(1400, 3000, 10.0)
    p = _panel([(0.13, 1500, 1.0), (0.27, 1500, 1.0), (0.6, 1700, 1.0)], time, vel)
    tp, vp, _ = auto_pick(p, time, vel, vint_min=[(0, 1450), (0.2, 1450), (0.21, 1550)])
    # Water bottom kept (1500 above 0.2 s), its multiple at 0.27 s rejected (interval 1500).
    assert 0.13 in np.round(tp, 2) and 0.27 not in np.round(tp, 2)
    with pytest.raises(SeisError, match="panel must have shape"):
        auto_pick(p[:, :10], time, vel)
    with pytest.raises(SeisError, match="vint_min"):
        auto_pick(p, time, vel, vint_min=-5)


def test_locations_and_supergathers():
    grid = BinGrid.line(0.0, 0.0, 0.0, 6.25, 1, 101)
    fold = np.zeros(101, dtype=np.int64)
    fold[10:91] = 24
    locs = analysis_locations(grid, fold, every=20, min_fold=20)
    assert [xl for _, xl in locs] == [11, 31, 51, 71, 91]
    assert [xl for _, xl in analysis_locations(grid, fold, every_m=250.0, min_fold=20)] == \
        [11, 51, 91]
    xl = np.repeat(np.arange(1, 102), 3)
    ids = supergather_ids(np.zeros_like(xl), xl, 0, 50, 3, True)
    assert set(xl[ids]) == {49, 50, 51}
    with pytest.raises(SeisError):
        analysis_locations(grid, fold, every=0)


def test_picks_toml_and_su_tables_round_trip(tmp_path):
    grid = BinGrid.line(1000.0, 2000.0, 30.0, 6.25, 1, 400)
    locs = [PickLocation(0, c, c, 0.0, 0.0, [0.3, 0.7, 1.1], [1600.0 + c, 1750.0, 1900.0],
                         [0.9, 0.8, 0.95]) for c in (50, 150)]
    picks = Picks(locs, True, {"vmin": 1400.0})
    write_picks(tmp_path / "p.toml", picks)
    back = read_picks(tmp_path / "p.toml", grid)
    assert [p.cdp for p in back.locations] == [50, 150]
    np.testing.assert_allclose(back.locations[0].vrms, locs[0].vrms)
    np.testing.assert_allclose(back.locations[1].semblance, [0.9, 0.8, 0.95])
    write_su_picks(tmp_path / "v.par", picks)
    su = read_picks(tmp_path / "v.par", grid)
    np.testing.assert_allclose(su.locations[1].time, [0.3, 0.7, 1.1])
    np.testing.assert_allclose(su.locations[1].vrms, [1750.0, 1750.0, 1900.0])
    # One location per line, as often typed by hand.
    (tmp_path / "h.par").write_text("cdp=60 tnmo=0.2,1.0 vnmo=1500,1800\n")
    (one,) = read_picks(tmp_path / "h.par", grid).locations
    assert (one.crossline, one.cdp) == (60, 60)
    x, y = grid.grid_to_world(0, 60)
    assert (one.x, one.y) == pytest.approx((float(x), float(y)))
    for text, msg in (("cdp=60,70 tnmo=0.2 vnmo=1500\n", "one pair per cdp"),
                      ("cdp=60 tnmo=0.2,0.1 vnmo=1500,1600\n", "increase"),
                      ("cdp=9999 tnmo=0.2 vnmo=1500\n", "outside the line"),
                      ("cdp=60 tnmo=0.5,1.0 vnmo=2000,1400\n", "imaginary"),
                      ("cdp=60 tnmo=0.2 vnmo=abc\n", "numbers")):
        (tmp_path / "bad.par").write_text(text)
        with pytest.raises(SeisError, match=msg):
            read_picks(tmp_path / "bad.par", grid)


def test_vrms_function_is_the_dix_model_between_picks():
    t = np.linspace(0.0, 2.0, 1001)
    v = vrms_function([0.5, 1.0], [1600.0, 2000.0], t)
    assert v[t < 0.5] == pytest.approx(1600.0) and v[t > 1.0] == pytest.approx(2000.0)
    mid = (t > 0.5) & (t < 1.0)
    # Constant interval velocity between picks: V^2 t is linear in t there.
    np.testing.assert_allclose(np.diff(v[mid] ** 2 * t[mid], 2), 0.0, atol=1e-3)


def _field_error(name):
    path, truth = vl.line(name)
    survey = Survey.open(path)
    idx, grid = survey.index, survey.grid
    locs = analysis_locations(grid, survey.fold(), every=20, min_fold=6)
    picks = velocity_analysis(idx, idx["inline"], idx["crossline"], grid, locs,
                              ScanParams(vint_min=VINT_MIN, vmax=3000.0))
    time = idx.times()
    field = field_from_picks(picks, grid, time, smooth_m=250.0, smooth_s=0.05)
    true = vl.true_vrms(truth, time, grid.crosslines())
    full = survey.fold() >= 20
    sel = (time >= T_CHECK[0]) & (time <= T_CHECK[1])
    return np.abs(field / true - 1)[full][:, sel], full


def test_automatic_vrms_within_3_percent_on_the_vxz_line():
    err, full = _field_error("marine2d-vxz")
    assert full.sum() > 150
    assert err.max() <= 0.03, f"worst Vrms error {100 * err.max():.2f} %"


def test_velan_command_marine2d_within_3_percent(tmp_path):
    path, truth = vl.line("marine2d")
    out, picks, su = tmp_path / "v.h5", tmp_path / "p.toml", tmp_path / "v.par"
    rc = main(["velan", str(path), "--out", str(out), "--picks", str(picks), "--every", "20",
               "--vint-min", "0:1450,0.2:1450,0.21:1550", "--vmax", "3000",
               "--su-table", str(su)])
    assert rc == 0
    vol = read_volume(out)
    assert vol.name == "vrms" and vol.grid.is_2d
    survey = Survey.open(path)
    full = survey.fold() >= 20
    true = vl.true_vrms(truth, vol.time, vol.grid.crosslines())
    sel = (vol.time >= T_CHECK[0]) & (vol.time <= T_CHECK[1])
    err = np.abs(vol.data / true - 1)[full][:, sel]
    assert err.max() <= 0.03, f"worst Vrms error {100 * err.max():.2f} %"
    # The picks table and the SU export read back and agree with the field.
    back = read_picks(picks, vol.grid)
    for loc in back.locations:
        j = loc.crossline - vol.grid.crossline0
        if full[j]:
            inside = (loc.time >= T_CHECK[0]) & (loc.time <= T_CHECK[1])
            tr = vl.true_vrms(truth, loc.time[inside], [loc.crossline])[0]
            assert np.all(np.abs(loc.vrms[inside] / tr - 1) <= 0.05)
    table = read_picks(su, vol.grid)
    for loc in table.locations:
        j = loc.crossline - vol.grid.crossline0
        np.testing.assert_allclose(loc.vrms, np.interp(loc.time, vol.time, vol.data[j]),
                                   rtol=2e-4)
    # Edited picks come back in: a 5 % faster table gives a 5 % faster field.
    text = picks.read_text()
    fast = read_picks(picks, vol.grid)
    for loc in fast.locations:
        loc.vrms = loc.vrms * 1.05
    from seis_hpc.velocity.picks import write_picks as wp

    wp(tmp_path / "fast.toml", fast)
    assert picks.read_text() == text
    rc = main(["velan", str(path), "--out", str(tmp_path / "f.h5"), "--use-picks",
               str(tmp_path / "fast.toml")])
    assert rc == 0
    np.testing.assert_allclose(read_volume(tmp_path / "f.h5").data, vol.data * 1.05, rtol=2e-3)


def test_velan_command_bad_input_writes_nothing(tmp_path, capsys):
    path, _ = vl.line("marine2d")
    out = tmp_path / "v.h5"
    (tmp_path / "bad.toml").write_text("[[location]]\ncdp = 100\ntime = [0.5, 0.4]\n"
                                       "vrms = [1600, 1700]\n")
    for extra in (["--use-picks", str(tmp_path / "bad.toml")], ["--vmin", "3000", "--vmax",
                                                                "2000"],
                  ["--every", "0"]):
        rc = main(["velan", str(path), "--out", str(out), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("seis-hpc: error:"), err
        assert not out.exists()


def test_velan_3d_survey_through_the_command(tmp_path):
    """3D path: analysis on the inline/crossline grid of the 3D synthetic, Vrms field on the
    grid. This patch has fold 4 and a 400 m cable: at the reflector (0.85 s) a 3 % velocity
    error moves the far trace by ~2 ms, below what 4 traces resolve, so the 3 % target of
    the 2D line (fold >= 20) is asserted for the median, and 10 % everywhere."""
    from seis_hpc.cli import main
    from seis_hpc.io.volume import read_volume
    from seis_hpc.synth import preset, write_survey

    truth = write_survey(preset("marine3d-small"), tmp_path)
    out = tmp_path / "vel.h5"
    assert main(["velan", str(tmp_path / "shots.sgy"), "--out", str(out), "--every", "4",
                 "--min-fold", "3"]) == 0
    v = read_volume(out)
    assert v.name == "vrms" and v.dims() == ("inline", "crossline", "time")
    assert v.grid.n_inline == truth["grid"]["n_inline"]
    r = truth["reflectors"][0]
    err = np.abs(v.data[:, :, int(round(r["t0_s"] / v.dt))] / r["vrms_mps"] - 1)
    assert np.median(err) < 0.03
    assert err.max() < 0.10


# -- beyond hyperbolas: ray-traced traveltimes through layers --------------------------------
#
# The synthetic's reflections are exact hyperbolas in Vrms, which the semblance scan fits
# exactly. Real layered media are not: here each reflection time is ray traced through the
# layers of synth.Medium (one ray parameter p per offset, found by bisection on
# x(p) = 2 sum h_i p v_i / sqrt(1 - p^2 v_i^2)), with offsets to twice the reflector depth.

LAYERS = np.array([l[1] for l in synth.Medium().layers])
TOPS = np.array([l[0] for l in synth.Medium().layers])
REFLECTOR_DEPTHS = (400.0, 900.0, 1600.0)  # m: layer bottoms
DT_V, NS_V = 0.004, 650
OFFSETS = np.arange(50.0, 3201.0, 50.0)


def _layered_times(depth, offsets, scale=1.0):
    """Two-way reflection times (s) from the base at ``depth`` m, velocities times ``scale``."""
    h = np.diff(np.append(TOPS[TOPS < depth], depth))
    v = LAYERS[:len(h)] * scale
    x = np.asarray(offsets, np.float64)[:, None]
    lo, hi = np.zeros_like(x), np.full_like(x, (1 - 1e-12) / v.max())
    for _ in range(80):  # bisection on p: x(p) increases with p
        p = 0.5 * (lo + hi)
        xp = 2 * np.sum(h * p * v / np.sqrt(1 - (p * v) ** 2), axis=1, keepdims=True)
        lo, hi = np.where(xp < x, p, lo), np.where(xp < x, hi, p)
    p = 0.5 * (lo + hi)
    return 2 * np.sum(h / (v * np.sqrt(1 - (p * v) ** 2)), axis=1)


def _true_t0_vrms(depth, scale=1.0):
    h = np.diff(np.append(TOPS[TOPS < depth], depth))
    v = LAYERS[:len(h)] * scale
    t = 2 * h / v
    return t.sum(), np.sqrt(np.sum(v * v * t) / t.sum())


class _Gathers:
    """An in-memory trace source for velocity_analysis."""

    def __init__(self, data, offset):
        self.data, self.offset = data, offset
        self.dt, self.t_start, self.ns = DT_V, 0.0, data.shape[1]

    def __getitem__(self, key):
        assert key == "offset"
        return self.offset

    def read_traces(self, ids):
        return self.data[ids]


def _layered_line(n_cmp, scale_of_cmp):
    from scipy.signal import fftconvolve

    ntr = len(OFFSETS)
    data = np.zeros((n_cmp * ntr, NS_V), np.float32)
    for c in range(n_cmp):
        rows = slice(c * ntr, (c + 1) * ntr)
        for z in REFLECTOR_DEPTHS:
            synth._add_events(data[rows], _layered_times(z, OFFSETS, scale_of_cmp(c)),
                              np.ones(ntr, np.float32), DT_V)
    data = fftconvolve(data, synth.ricker(20.0, DT_V)[None, :], mode="same", axes=1)
    xl = np.repeat(np.arange(1, n_cmp + 1), ntr)
    return _Gathers(data.astype(np.float32), np.tile(OFFSETS, n_cmp)), xl


def _picked_errors(n_cmp, scale_of_cmp, locations):
    src, xl = _layered_line(n_cmp, scale_of_cmp)
    grid = BinGrid.line(0.0, 0.0, 0.0, 12.5, 1, n_cmp)
    picks = velocity_analysis(src, np.zeros_like(xl), xl, grid, [(0, c) for c in locations],
                              ScanParams(vmin=1400.0, vmax=3000.0, dv=20.0, supergather=1,
                                         outlier=None))
    errs = []
    for loc in picks.locations:
        f = scale_of_cmp(loc.crossline - 1)
        for z in REFLECTOR_DEPTHS:
            t0, vr = _true_t0_vrms(z, f)
            k = np.argmin(np.abs(loc.time - t0))
            # the long-spread best-fit hyperbola has its apex up to ~30 ms off t0
            assert abs(loc.time[k] - t0) < 0.035, (loc.crossline, z, loc.time, t0)
            errs.append(loc.vrms[k] / vr - 1)
    assert len(errs) == len(locations) * len(REFLECTOR_DEPTHS)
    return np.array(errs)


def test_velocity_analysis_on_ray_traced_layered_moveout():
    # Offsets to 2x depth: the moveout is non-hyperbolic (at 3 km offset the 900 m reflector
    # arrives 10 ms, 2.5 samples, before the Vrms hyperbola). Measured: picks within 0.6 %
    # of each reflector's Vrms; limit 1.5 %.
    t_ray = _layered_times(900.0, [3000.0])[0]
    t0, vr = _true_t0_vrms(900.0)
    assert np.sqrt(t0 ** 2 + (3000.0 / vr) ** 2) - t_ray > 0.008
    # ...while short offsets follow the Vrms hyperbola (the ray tracing's own check)
    assert _layered_times(900.0, [0.0])[0] == pytest.approx(t0, abs=1e-9)
    assert _layered_times(900.0, [200.0])[0] == pytest.approx(np.hypot(t0, 200.0 / vr), abs=2e-5)
    err = _picked_errors(3, lambda c: 1.0, [2])
    assert np.abs(err).max() < 0.015, err


def test_velocity_analysis_on_a_laterally_varying_layered_line():
    # Layer velocities 8 % slower at one end of the line than at the other (1.5D: each CMP
    # ray traced in the layers under it); picks must follow the local Vrms, not the line's
    # mean (up to 4 % away). Measured: within 0.7 %; limit 1.5 %.
    n = 41
    scale = lambda c: 0.96 + 0.08 * c / (n - 1)  # noqa: E731
    err = _picked_errors(n, scale, [3, 20, 38])
    assert np.abs(err).max() < 0.015, err

"""NMO stack of the synthetic line with the automatically picked velocity: reflector times
against truth, normalisation by live fold, HDF5 + SEG-Y outputs."""

from __future__ import annotations

import numpy as np
import pytest
import segyio
import velocity_line as vl

from seis_hpc.cli import main
from seis_hpc.engine.memory_source import ArraySource
from seis_hpc.geometry import BinGrid
from seis_hpc.io.volume import read_volume
from seis_hpc.survey import Survey
from seis_hpc.velocity.stack import nmo_stack_survey


def _peak_time(trace, time, t0, half=0.012):
    """Time (s) of the largest sample within t0 +- half, refined by a parabola."""
    sel = np.flatnonzero(np.abs(time - t0) <= half)
    k = sel[np.argmax(trace[sel])]
    a, b, c = trace[k - 1], trace[k], trace[k + 1]
    return time[k] + 0.5 * (a - c) / (a - 2 * b + c) * (time[1] - time[0])


def isolated(truth, cmps, t0, clear=0.03):
    """CMPs where no diffraction tail passes within ``clear`` s of time ``t0`` in a
    zero-offset section (before migration a crossing tail shifts the reflector's peak)."""
    g = truth["grid"]
    x = (np.asarray(cmps, dtype=np.float64) - g["crossline0"]) * g["bin_inline"]
    ok = np.ones(x.shape, dtype=bool)
    for d in truth["diffractors"]:
        xd = (d["crossline"] - g["crossline0"]) * g["bin_inline"]
        v = vl.true_vrms(truth, [d["t0_s"]])[0]
        t = np.sqrt(d["t0_s"] ** 2 + (2.0 * (x - xd) / v) ** 2)
        ok &= np.abs(t - t0) > clear
    return ok


def test_stack_command_reflector_times_within_2ms(tmp_path):
    path, truth = vl.line("marine2d")
    vel, out, sgy = tmp_path / "v.h5", tmp_path / "stack.h5", tmp_path / "stack.sgy"
    assert main(["velan", str(path), "--out", str(vel), "--every", "20", "--vmax", "3000",
                 "--vint-min", "0:1450,0.2:1450,0.21:1550"]) == 0
    assert main(["stack", str(path), "--velocity", str(vel), "--out", str(out), "--segy",
                 str(sgy)]) == 0
    vol = read_volume(out)
    full = Survey.open(path).fold() >= 20
    flat = [r for r in truth["reflectors"] if r["dip_deg"] == 0.0]
    assert flat
    for r in flat:
        use = full & isolated(truth, vol.grid.crosslines(), r["t0_s"])
        assert use.sum() > 0.8 * full.sum()
        times = np.array([_peak_time(tr, vol.time, r["t0_s"]) for tr in vol.data[use]])
        err = np.abs(times - r["t0_s"])
        assert err.max() <= 0.002, f"reflector {r['t0_s']:.3f} s: worst {1e3 * err.max():.2f} ms"
    with segyio.open(sgy, ignore_geometry=True) as f:
        assert f.tracecount == vol.grid.n_crossline
        np.testing.assert_array_equal(f.attributes(segyio.TraceField.CDP)[:],
                                      vol.grid.crosslines())
        np.testing.assert_allclose(f.trace.raw[:], vol.data, atol=1e-6)
        assert f.samples[1] - f.samples[0] == 2.0


def test_stack_is_normalised_by_live_fold():
    # Same flat event in every trace; one CMP with 24 traces, one with 6, one with 6 dead.
    dt, ns = 0.002, 500
    t = np.arange(ns) * dt
    v = 2000.0
    offs = np.concatenate([np.arange(24) * 50.0 + 50, np.arange(6) * 50.0 + 50,
                           np.arange(12) * 50.0 + 50])
    bins = np.repeat([0, 1, 2], [24, 6, 12])
    tx = np.sqrt(0.6**2 + (offs / v) ** 2)
    data = np.exp(-(((t[None, :] - tx[:, None]) / 0.008) ** 2)).astype(np.float32)
    data[30:36] = 0.0  # dead traces in the third CMP
    src = ArraySource(data, dt, offs * 0.0, 0 * offs, offs, 0 * offs)

    class Const:
        def window(self, i0, i1, j0, j1):
            return np.full((j1 - j0, ns), v, np.float32)

    grid = BinGrid.line(0.0, 0.0, 0.0, 6.25, 1, 3)
    st = nmo_stack_survey(src, bins, grid, Const(), stretch_mute=None)
    k = int(round(0.6 / dt))
    # 24, 6 and 6 live traces give the same amplitude: a mean, not a sum diluted by dead
    # traces (the peak is 1 less the linear-interpolation loss on this 8 ms Gaussian).
    np.testing.assert_allclose(st[:, k], st[0, k], rtol=2e-3)
    assert 0.985 <= st[0, k] <= 1.0


def test_stack_segy_revision_2(tmp_path):
    """`stack --segy-revision 2`: a rev 2.0 file (bytes 3501-3502) with the same traces, CDP
    numbers and sample interval as the stack volume, read back by seis_hpc's own reader."""
    from seis_hpc.io.index import TraceIndex

    path, truth = vl.line("marine2d")
    csv = tmp_path / "v.csv"
    csv.write_text("time_s,vrms_mps\n0,1500\n2,2500\n")
    out, sgy = tmp_path / "stack.h5", tmp_path / "stack.sgy"
    assert main(["stack", str(path), "--velocity", str(csv), "--out", str(out), "--segy",
                 str(sgy), "--segy-revision", "2"]) == 0
    assert sgy.read_bytes()[3500:3502] == b"\x02\x00"
    vol = read_volume(out)
    idx = TraceIndex.scan(sgy)
    assert idx.attrs["revision"] == "2.0" and idx.n_traces == vol.grid.n_crossline
    assert (idx.ns, idx.dt) == (vol.time.size, pytest.approx(vol.time[1] - vol.time[0]))
    np.testing.assert_array_equal(idx["header_cdp"], vol.grid.crosslines())
    np.testing.assert_allclose(idx.read_traces(np.arange(idx.n_traces)), vol.data, atol=1e-6)

"""The everyday steps of issue 17 (select, sort, headers, mute, fk, statics) run as a user runs
them (``seis-hpc STEP`` and ``seis-hpc run``), against known truth: exact mute regions and
tapers, traces and headers copied bit for bit, header arithmetic, dB removed and kept by the
F-K filter, event times moved by the table's statics to a tenth of a sample, tidal statics from
a tide table; every bad input is one line and exit 2 with no output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import segyio
from scipy.signal import resample

from seis_hpc.io.segy import write_segy
from seis_hpc.survey import open_traces

DT = 0.002


def _seis(*args, ok: bool = True) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "SEIS_HPC_RUNDIR"}
    p = subprocess.run([sys.executable, "-m", "seis_hpc", *map(str, args)], env=e,
                       capture_output=True, text=True, timeout=300)
    if ok:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def _traces(path: Path) -> np.ndarray:
    """uint8 (n, trace_bytes): every trace, header and samples, as stored."""
    rd = open_traces(path)
    return rd.raw(np.arange(rd.n_traces))


def _samples(path: Path) -> np.ndarray:
    rd = open_traces(path)
    return rd.read(np.arange(rd.index.n_traces))


def _headers(n_shots: int, n_ch: int, **extra) -> dict:
    """2D spread along x: shots 25 m apart, channels 12.5 m apart behind the source."""
    ch = np.tile(np.arange(n_ch), n_shots)
    s = np.repeat(np.arange(n_shots) * 25.0, n_ch)
    h = {"FieldRecord": np.repeat(np.arange(1, n_shots + 1), n_ch),
         "TraceNumber": ch + 1, "SourceX": s, "GroupX": s - 50.0 - 12.5 * ch,
         "SourceY": 0.0, "GroupY": 0.0, "offset": 50 + 12.5 * ch,
         "CDP": np.repeat(np.arange(n_shots) * 4, n_ch) - ch + 100}
    h.update(extra)
    return h


def _ricker(t, f=20.0):
    a = (np.pi * f * t) ** 2
    return (1 - 2 * a) * np.exp(-a)


def _write(path: Path, data, headers) -> Path:
    write_segy(path, np.asarray(data, np.float32), headers, DT)
    return path


def _flow(src: Path, out: str, steps: list[dict]) -> Path:
    def val(v):
        if isinstance(v, str):
            return f"'{v}'"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return str(v)

    body = "".join("[[step]]\n" + "".join(f"{k} = {val(v)}\n" for k, v in st.items())
                   for st in steps)
    f = src.with_name(f"{Path(out).stem}.toml")
    f.write_text(f'[flow]\nname = "t"\ninput = "{src.name}"\noutput = "{out}"\n{body}')
    return f


@pytest.fixture
def small(tmp_path):
    """3 shots x 16 channels of distinct random samples (every trace recognisable)."""
    rng = np.random.default_rng(1)
    h = _headers(3, 16)
    return _write(tmp_path / "in.sgy", rng.standard_normal((48, 200)), h), h


# -- select, sort, headers ----------------------------------------------------------------------
def test_select_keeps_exactly_the_matching_traces_bit_for_bit(small, tmp_path):
    src, h = small
    out = tmp_path / "sel.sgy"
    _seis("select", src, "--out", out, "--where", "offset < 150 and ffid <= 2 or channel == 16")
    keep = ((h["offset"] < 150) & (h["FieldRecord"] <= 2)) | (h["TraceNumber"] == 16)
    np.testing.assert_array_equal(_traces(out), _traces(src)[keep])
    a, b = src.read_bytes(), out.read_bytes()
    assert a[3200:3600] == b[3200:3600]  # binary header untouched
    # segyio names and the flow give the same traces
    _seis("run", _flow(src, "sel3.sgy", [{"name": "select", "where":
                                          "FieldRecord <= 2 and offset < 150 or "
                                          "TraceNumber == 16"}]))
    np.testing.assert_array_equal(_traces(tmp_path / "sel3.sgy"), _traces(out))


def test_sort_to_cmp_and_back_is_bit_for_bit(small, tmp_path):
    src, h = small
    cmp_sorted = tmp_path / "cmp.sgy"
    _seis("sort", src, "--out", cmp_sorted, "--keys", "cdp,offset")
    order = np.lexsort((np.arange(48), h["offset"], h["CDP"]))
    assert not np.array_equal(order, np.arange(48))
    np.testing.assert_array_equal(_traces(cmp_sorted), _traces(src)[order])
    back = tmp_path / "back.sgy"
    _seis("sort", cmp_sorted, "--out", back, "--keys", "ffid,channel")
    np.testing.assert_array_equal(_traces(back), _traces(src))
    desc = tmp_path / "desc.sgy"
    _seis("sort", src, "--out", desc, "--keys=-FieldRecord,channel")
    order = np.lexsort((np.arange(48), h["TraceNumber"], -h["FieldRecord"]))
    np.testing.assert_array_equal(_traces(desc), _traces(src)[order])


def test_header_math_sets_fields_in_order_and_nothing_else(small, tmp_path):
    src, h = small
    out = tmp_path / "hdr.sgy"
    _seis("headers", src, "--out", out, "--set", "ShotPoint = ffid * 2",
          "--set", "CDP_TRACE = ShotPoint * 100 + channel % 5 - 1")
    with segyio.open(out, ignore_geometry=True) as f:
        sp = f.attributes(segyio.TraceField.ShotPoint)[:]
        ct = f.attributes(segyio.TraceField.CDP_TRACE)[:]
    np.testing.assert_array_equal(sp, 2 * h["FieldRecord"])
    np.testing.assert_array_equal(ct, 200 * h["FieldRecord"] + h["TraceNumber"] % 5 - 1)
    a, b = _traces(src), _traces(out)
    same = np.ones(a.shape[1], bool)
    same[196:200] = False  # ShotPoint, bytes 197-200
    same[24:28] = False  # CDP_TRACE, bytes 25-28
    np.testing.assert_array_equal(a[:, same], b[:, same])


# -- mute ---------------------------------------------------------------------------------------
def test_mute_zeroes_exactly_the_tables_region_with_its_taper(tmp_path):
    h = _headers(3, 16)
    src = _write(tmp_path / "ones.sgy", np.ones((48, 300)), h)
    top = tmp_path / "top.csv"
    # keyed by ffid: shot 1 and shot 3 given, shot 2 halfway between
    top.write_text("ffid,offset_m,time_s\n1,0,0.10\n1,300,0.30\n3,0,0.20\n3,300,0.40\n")
    bot = tmp_path / "bottom.csv"
    bot.write_text("# bottom mute\noffset_m,time_s\n100,0.5\n200,0.45\n")
    out = tmp_path / "muted.sgy"
    _seis("mute", src, "--out", out, "--top", top, "--bottom", bot, "--taper", "20ms")
    got = _samples(out)
    t = DT * np.arange(300)
    for i in range(48):
        x, s = h["offset"][i], h["FieldRecord"][i]
        t_top = 0.10 + 0.05 * (s - 1) + x / 300 * 0.20 if x <= 300 else 0.30 + 0.05 * (s - 1)
        t_bot = 0.5 if x <= 100 else 0.45 if x >= 200 else 0.5 - 0.05 * (x - 100) / 100
        w = np.ones(300)
        w[t < t_top] = 0
        r = (t >= t_top) & (t < t_top + 0.02)
        w[r] = 0.5 - 0.5 * np.cos(np.pi * (t[r] - t_top) / 0.02)
        w[t > t_bot] = 0
        r = (t <= t_bot) & (t > t_bot - 0.02)
        w[r] *= 0.5 - 0.5 * np.cos(np.pi * (t_bot - t[r]) / 0.02)
        np.testing.assert_allclose(got[i], w, atol=1e-6, err_msg=f"trace {i}")
        assert np.all(got[i][t < t_top - 1e-9] == 0) and np.all(got[i][t > t_bot + 1e-9] == 0)


# -- fk -----------------------------------------------------------------------------------------
def _fk_gather(n_shots=2, n_ch=60, ns=500):
    h = _headers(n_shots, n_ch)
    t = DT * np.arange(ns)
    x = h["offset"][:, None]
    refl = _ricker(t[None, :] - np.sqrt(0.6 ** 2 + (x / 2000.0) ** 2), 15.0)
    lin = 2.0 * _ricker(t[None, :] - 0.05 - x / 900.0, 15.0)
    return h, refl, lin


def test_fk_removes_slow_linear_noise_and_keeps_reflections(tmp_path):
    h, refl, lin = _fk_gather()
    src = _write(tmp_path / "fk.sgy", refl + lin, h)
    out = tmp_path / "fk_out.sgy"
    _seis("fk", src, "--out", out, "--vmin", "1.4 km/s")
    got = _samples(out)
    residual_db = 10 * np.log10(np.sum((got - refl) ** 2) / np.sum(lin ** 2))
    assert residual_db <= -20, residual_db
    # The reflection kept within 1 dB (its own window, away from the linear event).
    t = DT * np.arange(refl.shape[1])
    win = np.abs(t[None, :] - np.sqrt(0.6 ** 2 + (h["offset"][:, None] / 2000.0) ** 2)) < 0.04
    kept_db = 10 * np.log10(np.sum((got * win) ** 2) / np.sum((refl * win) ** 2))
    assert abs(kept_db) <= 1.0, kept_db


# -- statics ------------------------------------------------------------------------------------
def _event_times(data, t0_guess):
    """Peak time (s) of the event near t0_guess in every trace, to ~DT/40 (FFT resampling)."""
    up = 40
    r = resample(data, data.shape[1] * up, axis=1)
    tt = DT / up * np.arange(r.shape[1])
    win = np.abs(tt - t0_guess) < 0.05
    return tt[win][np.argmax(r[:, win], axis=1)]


def test_statics_shift_events_by_the_table_to_a_tenth_of_a_sample(tmp_path):
    h = _headers(3, 8)
    t = DT * np.arange(300)
    src = _write(tmp_path / "ev.sgy", _ricker(t[None, :] - 0.3) * np.ones((24, 1)), h)
    tab = tmp_path / "statics.csv"
    shifts = {1: 0.0123, 2: -0.0071, 3: 0.0}
    tab.write_text("ffid,shift_s\n" + "".join(f"{k},{v}\n" for k, v in shifts.items()))
    out = tmp_path / "st.sgy"
    _seis("statics", src, "--out", out, "--table", tab)
    want = 0.3 + np.array([shifts[f] for f in h["FieldRecord"]])
    err = _event_times(_samples(out), 0.3) - want
    assert np.abs(err).max() <= DT / 10, err
    # Stations (source + receiver): stations along x every 12.5 m, shift = 1 ms * station % 7.
    st = tmp_path / "stations.csv"
    stations = np.arange(-20, 10)
    st.write_text("station,shift_s\n" + "".join(f"{s},{0.001 * (s % 7)}\n" for s in stations))
    out2 = tmp_path / "st2.sgy"
    _seis("statics", src, "--out", out2, "--table", st, "--station-interval", 12.5)
    s_src = np.rint(h["SourceX"] / 12.5).astype(int)
    s_rec = np.rint(h["GroupX"] / 12.5).astype(int)
    want = 0.3 + 0.001 * (s_src % 7) + 0.001 * (s_rec % 7)
    err = _event_times(_samples(out2), 0.3) - want
    assert np.abs(err).max() <= DT / 10, err


def test_tidal_statics_from_a_tide_table(tmp_path):
    # Shots on 1 March 2026 (day 60) at 12:00, 12:30 and 13:00 UTC; tide 0 m at midnight
    # rising linearly to 2.4 m the next midnight: h = 1.2, 1.225, 1.25 m.
    h = _headers(3, 8, YearDataRecorded=2026, DayOfYear=60, HourOfDay=np.repeat([12, 12, 13], 8),
                 MinuteOfHour=np.repeat([0, 30, 0], 8), SecondOfMinute=0)
    t = DT * np.arange(300)
    src = _write(tmp_path / "ev.sgy", _ricker(t[None, :] - 0.3) * np.ones((24, 1)), h)
    tide = tmp_path / "tide.csv"
    tide.write_text("time,tide_m\n2026-03-01T00:00:00Z,0.0\n2026-03-02T00:00:00,2.4\n")
    out = tmp_path / "tide_out.sgy"
    _seis("statics", src, "--out", out, "--tide", tide, "--vwater", 1500)
    height = np.repeat([1.2, 1.225, 1.25], 8)
    want = 0.3 - 2 * height / 1500.0
    err = _event_times(_samples(out), 0.3) - want
    assert np.abs(err).max() <= DT / 10, err


# -- bad input ----------------------------------------------------------------------------------
BAD = [
    ("select", ["--where", "offsett < 400"], None, "unknown field 'offsett'"),
    ("select", ["--where", "__import__('os').system('true')"], None, "not allowed"),
    ("select", ["--where", "offset + 1"], None, "not a condition"),
    ("select", ["--where", "ffid > 1000"], None, "no trace of the input matches"),
    ("sort", ["--keys", "cdp,nosuch"], None, "unknown field 'nosuch'"),
    ("headers", ["--set", "NoSuchField = ffid"], None, "unknown or read-only header field"),
    ("headers", ["--set", "TraceIdentificationCode = ffid * 100000"], None, "does not fit"),
    ("mute", ["--top", "{t}"], "offset_m,time_s\n0,0.1\n200,abc\n", "line 3: time_s"),
    ("mute", ["--top", "{t}"], "offset_m,time_s\n0,0.1\n300,0.2\n200,0.3\n",
     "line 4: offsets must increase"),
    ("mute", ["--top", "{t}"], "offset,time_s\n0,0.1\n", "missing column 'offset_m'"),
    ("statics", ["--table", "{t}"], "ffid,shift\n1,0.01\n", "missing column 'shift_s'"),
    ("statics", ["--table", "{t}"], "ffid,shift_s\n1,0.01\n", "ffid 2 of the input is not"),
    ("statics", ["--tide", "{t}"], "time,tide_m\n2026-03-01T00:00:00,1\n2026-03-01T01:00:00,2\n",
     "no shot time in the headers"),
    ("fk", ["--vmin", "15 Hz"], None, "unit 'Hz' is not a m/s unit"),
]


@pytest.mark.parametrize("step,args,table,message", BAD, ids=[f"{b[0]}-{b[3][:24]}" for b in BAD])
def test_bad_input_is_one_line_and_exit_2(small, tmp_path, step, args, table, message):
    src, _ = small
    tab = tmp_path / "table.csv"
    if table is not None:
        tab.write_text(table)
    out = tmp_path / "out.sgy"
    p = _seis(step, src, "--out", out, *[a.format(t=tab) for a in args], ok=False)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seis-hpc: error:"), p.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in p.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_fk_irregular_offsets_is_an_error(tmp_path):
    h = _headers(1, 16)
    h["GroupX"] = h["GroupX"] - np.r_[np.zeros(8), np.full(8, 4.0)]
    src = _write(tmp_path / "irr.sgy", np.ones((16, 100)), h)
    p = _seis("fk", src, "--out", tmp_path / "o.sgy", "--vmin", 1400, ok=False)
    assert p.returncode == 2 and "not regular" in p.stderr and len(p.stderr.splitlines()) == 1


# -- the built-in line, end to end --------------------------------------------------------------
def test_builtin_line_end_to_end(tmp_path):
    from _conditioning_data import line

    data, h, _ = line(6, 48, 1.0)
    src = _write(tmp_path / "line.sgy", data, h)
    n = len(data)
    top = tmp_path / "top.csv"
    top.write_text("offset_m,time_s\n0,0.05\n700,0.45\n")
    tab = tmp_path / "statics.csv"
    tab.write_text("ffid,shift_s\n" + "".join(f"{k},{0.001 * k}\n" for k in range(1, 7)))
    steps = [{"name": "headers", "set": ["ShotPoint = ffid * 2"]},
             {"name": "mute", "top": "top.csv", "taper": "20 ms"},
             {"name": "fk", "vmin": 1400},
             {"name": "statics", "table": "statics.csv"},
             {"name": "sort", "keys": "cdp,offset"},
             {"name": "select", "where": "offset < 405 and ShotPoint <= 8"}]
    _seis("run", _flow(src, "out.sgy", steps))
    work = tmp_path / "out_work"
    counts = [open_traces(work / f"{k + 1:02d}_{s['name']}.sgy").index.n_traces
              for k, s in enumerate(steps[:-1])]
    assert counts == [n] * 5
    out = open_traces(tmp_path / "out.sgy")
    dist = np.hypot(h["GroupX"] - h["SourceX"], h["GroupY"] - h["SourceY"])  # offset: m
    keep = (dist < 405) & (h["FieldRecord"] <= 4)
    assert out.index.n_traces == int(keep.sum())
    cdp = np.asarray(out.index["header_cdp"])
    assert np.all(np.diff(cdp) >= 0)
    with segyio.open(tmp_path / "out.sgy", ignore_geometry=True) as f:
        sp = f.attributes(segyio.TraceField.ShotPoint)[:]
        ffid = f.attributes(segyio.TraceField.FieldRecord)[:]
    np.testing.assert_array_equal(sp, 2 * ffid)


@pytest.mark.mpi
def test_reorder_and_gather_steps_under_mpi_match_one_rank(tmp_path_factory):
    from mpi4py import MPI

    from seis_hpc.engine.gather_run import run_step
    from seis_hpc.flows.steps import STEPS

    comm = MPI.COMM_WORLD
    root = Path(comm.bcast(str(tmp_path_factory.mktemp("mpi")) if comm.rank == 0 else None))
    rng = np.random.default_rng(3)
    h = _headers(4, 24)
    src = root / "in.sgy"
    if comm.rank == 0:
        _write(src, rng.standard_normal((96, 150)), h)
    comm.Barrier()
    cases = [("sort", {"keys": "cdp,offset"}), ("select", {"where": "channel % 3 == 0"}),
             ("fk", {"vmin": 1400.0}), ("headers", {"set": ["ShotPoint = cdp + 1"]})]
    for name, given in cases:
        spec = STEPS[name]
        params = spec.resolve(given, name)
        run_step(spec, params, src, root / f"{name}_mpi.sgy", comm=comm, quiet=True)
        if comm.rank == 0:
            run_step(spec, params, src, root / f"{name}_one.sgy", quiet=True)
            np.testing.assert_array_equal(_traces(root / f"{name}_mpi.sgy"),
                                          _traces(root / f"{name}_one.sgy"))
        comm.Barrier()


# -- velan's HDF5 Vrms field as --velocity --------------------------------------------------------
def test_gain_takes_velans_hdf5_field_at_each_shot(tmp_path):
    from seis_hpc.flows.amplitude import spherical_divergence
    from seis_hpc.geometry import BinGrid
    from seis_hpc.velocity.field import write_vrms

    h = _headers(3, 8)
    h["SourceX"] = np.repeat([0.0, 1000.0, 2000.0], 8)
    h["GroupX"] = h["SourceX"] - 50.0 - 12.5 * (h["TraceNumber"] - 1)
    ns = 200
    src = _write(tmp_path / "ones.sgy", np.ones((24, ns)), h)
    # A line grid along x (azimuth 90), CMPs every 50 m from x = -200 m; the velocity grows
    # 10 % per km along the line and with time.
    grid = BinGrid.line(-200.0, 0.0, 90.0, 50.0, 1, 60)
    t = DT * np.arange(ns)
    xg = -200.0 + 50.0 * np.arange(60)
    v = (1500.0 + 1000.0 * t)[None, :] * (1 + 1e-4 * xg)[:, None]
    vel = tmp_path / "vrms.h5"
    write_vrms(vel, v, grid, t)
    out = tmp_path / "gain.sgy"
    _seis("gain", src, "--out", out, "--velocity", vel)
    got = _samples(out)
    for s in range(3):
        rows = slice(8 * s, 8 * s + 8)
        mx = float(np.mean(0.5 * (h["SourceX"][rows] + h["GroupX"][rows])))
        vt = (1500.0 + 1000.0 * t) * (1 + 1e-4 * mx)  # exact: linear in x between CMPs
        want = spherical_divergence(np.ones((8, ns)), DT, velocity=vt)
        np.testing.assert_allclose(got[rows], want, rtol=2e-5)
    # A missing field is one line, exit 2.
    p = _seis("gain", src, "--out", tmp_path / "x.sgy", "--velocity", tmp_path / "no.h5",
              ok=False)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1


def test_radon_with_velans_hdf5_field_matches_the_csv_function(tmp_path):
    from _conditioning_data import primaries_and_multiples

    from seis_hpc.geometry import BinGrid
    from seis_hpc.synth import Medium, vrms_function
    from seis_hpc.velocity.field import write_vrms

    d, _, _, h, _ = primaries_and_multiples(12, 48, 1.2)
    cs, counts = np.unique(h["CDP"], return_counts=True)
    keep = np.flatnonzero(np.isin(h["CDP"], cs[counts == counts.max()][:2]))
    sub = {k: (v[keep] if np.ndim(v) else v) for k, v in h.items()}
    src = _write(tmp_path / "cmps.sgy", d[keep], sub)
    t, vr = vrms_function(Medium(), (d.shape[1] - 1) * DT, DT)
    csv = tmp_path / "vrms.csv"
    csv.write_text("time_s,vrms_mps\n" + "".join(f"{float(a)!r},{float(b)!r}\n"
                                                  for a, b in zip(t, vr, strict=True)))
    # A field that holds the same function everywhere (a 2D grid far larger than the line).
    grid = BinGrid.line(499000.0, 3649000.0, 30.0, 100.0, 1, 40)
    h5 = tmp_path / "vrms.h5"
    write_vrms(h5, np.broadcast_to(vr, (40, len(vr))), grid, t)
    _seis("radon", src, "--out", tmp_path / "a.sgy", "--velocity", csv)
    _seis("radon", src, "--out", tmp_path / "b.sgy", "--velocity", h5)
    a, b = _samples(tmp_path / "a.sgy"), _samples(tmp_path / "b.sgy")
    assert np.abs(a - d[keep]).max() > 0.01 * np.abs(d[keep]).max()  # it did remove something
    np.testing.assert_allclose(b, a, atol=1e-6 * np.abs(a).max())


def test_taup_decon_adds_nothing_above_the_first_multiple():
    """The faint event above the water bottom (issue 17): tau-p decon must leave every sample
    before the first-order water-layer multiple as it was."""
    from _conditioning_data import line

    from seis_hpc.flows import decon

    d, h, _ = line(6, 48, 1.0)
    g = d[h["FieldRecord"] == 3]
    x = np.hypot(h["GroupX"] - h["SourceX"], h["GroupY"] - h["SourceY"])[h["FieldRecord"] == 3]
    t_wb = decon.water_bottom_time(g, x, DT, velocity=1500.0)
    out = decon.taup_decon(g, DT, x, t_wb)
    t = DT * np.arange(g.shape[1])
    before = t[None, :] < np.sqrt((2 * t_wb) ** 2 + (x / 1500.0) ** 2)[:, None] - 0.03
    np.testing.assert_array_equal(out[before], g[before])
    assert np.abs(out - g).max() > 0.05 * np.abs(g).max()  # and it does remove multiples


def test_expression_language_is_a_whitelist():
    from seis_hpc.errors import SeisError
    from seis_hpc.flows import headers
    from seis_hpc.flows.expr import Expression, parse_assignment

    known = headers.known_names()
    cols = {"offset": np.array([50.0, 150.0, 450.0]), "ffid": np.array([1, 2, 3]),
            "channel": np.array([1, 2, 5])}
    e = Expression("100 <= offset < 400 or not (ffid > 2) and -channel % 4 == 3", known)
    np.testing.assert_array_equal(e.evaluate(cols), [True, True, False])
    assert Expression("ffid // 2 * 2 + ffid % 2", known).evaluate(cols).tolist() == [1, 2, 3]
    for bad in ("__import__('os')", "ffid.real", "cols['ffid']", "lambda: 1", "ffid ** 2",
                "[ffid]", "'text'", "ffid if 1 else 0", "True", "ffid @ ffid"):
        with pytest.raises(SeisError):
            Expression(bad, known)
    with pytest.raises(SeisError, match="division by zero"):
        Expression("ffid / (channel - 1)", known).evaluate(cols)
    for bad in ("ShotPoint == 3", "= 3", "ffid = 2", "2 = ffid"):
        with pytest.raises(SeisError):
            parse_assignment(bad, known, headers.WRITABLE)
    assert parse_assignment("CDP=ffid*2", known, headers.WRITABLE)[0] == "CDP"

"""More bad input refused with one line, exit 2, no traceback, nothing written (issue 13):
files that are not UTF-8, a SEG-Y given as the velocity, physically impossible values
(velocity, coordinates, sample interval, output time axis) and flow parameters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seis_hpc.cli import main
from seis_hpc.io.segy import write_segy

NTR, NS, DT = 8, 20, 0.004
GOOD_CSV = "time_s,vrms_mps\n0,1500\n1,2000\n"


def _survey(d: Path, **over) -> Path:
    """A 2D line of 8 traces (coordinates in cm, scalar -100) and its index beside it."""
    i = np.arange(NTR)
    h = {"FieldRecord": 1 + 0 * i, "TraceNumber": 1 + i, "SourceX": 1000.0 + 0 * i,
         "GroupX": 900.0 - 12.5 * i, "offset": -(100 + 12.5 * i)}
    h.update(over)
    path = d / "line.sgy"
    write_segy(path, np.ones((NTR, NS), dtype=np.float32), h, DT)
    assert main(["index", str(path)]) == 0  # the input's index exists before each case
    return path


def _patch_traces(path: Path, pos: int, value: int) -> None:
    """Overwrite the big-endian int16 at 1-based byte ``pos`` of every trace header."""
    raw = bytearray(path.read_bytes())
    ns = int.from_bytes(raw[3220:3222], "big")
    for k in range((len(raw) - 3600) // (240 + 4 * ns)):
        at = 3600 + k * (240 + 4 * ns) + pos - 1
        raw[at:at + 2] = value.to_bytes(2, "big", signed=True)
    path.write_bytes(bytes(raw))


def _refused(capsys, argv, folder: Path, *fragments) -> str:
    """Run ``argv``: exit 2, one line naming every fragment, no new file under ``folder``."""
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seis-hpc: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert str(f) in lines[0], (f, lines[0])
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert after == before, sorted(set(after) ^ set(before))
    return lines[0]


@pytest.fixture
def line(tmp_path):
    seg = _survey(tmp_path)
    vel = tmp_path / "v.csv"
    vel.write_text(GOOD_CSV)
    return tmp_path, seg, vel


def test_pstm_control_runs(line, capsys):
    """The setup of the cases below is valid: pstm with good values writes an image."""
    d, seg, vel = line
    assert main(["pstm", str(seg), "-v", str(vel), "-o", str(d / "img.h5")]) == 0
    assert (d / "img.h5").is_file()


# -- files that are not UTF-8 text ---------------------------------------------------------
def test_velocity_csv_not_utf8(line, capsys):
    d, seg, _ = line
    bad = d / "latin1.csv"
    bad.write_bytes("time_s,vrms_mps\n0,1500\n# caf\xe9\n".encode("latin-1"))
    for cmd in ("pstm", "stack"):
        _refused(capsys, [cmd, seg, "-v", bad, "-o", d / "o.h5"], d, bad, "line 3",
                 "not UTF-8")


def test_flow_toml_not_utf8(tmp_path, capsys):
    seg = _survey(tmp_path)
    flow = tmp_path / "flow.toml"
    flow.write_bytes(b'[flow]\ninput = "line.sgy"\noutput = "out/o.sgy"\n# \xff\xfe\n')
    _refused(capsys, ["run", flow], tmp_path, flow, "line 4", "not UTF-8")
    assert seg.exists()


def test_job_toml_not_utf8(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_bytes(b'[job]\nname = "caf\xe9"\n')
    _refused(capsys, ["slurm", "render", "-c", job, "--out", tmp_path / "job.sbatch"],
             tmp_path, job, "line 2", "not UTF-8")


def test_segy_given_as_velocity(line, capsys):
    d, seg, _ = line
    for cmd in ("pstm", "stack", "migstack"):
        _refused(capsys, [cmd, seg, "-v", seg, "-o", d / "o.h5"], d, seg,
                 "is a SEG-Y file (8 traces of 20 samples), not a velocity")


# -- physically impossible values ----------------------------------------------------------
@pytest.mark.parametrize("value", ["1e-30", "1e30", "150", "12000"])
def test_vrms_csv_outside_physical_range(line, capsys, value):
    d, seg, _ = line
    vel = d / "odd.csv"
    vel.write_text(f"time_s,vrms_mps\n0,1500\n0.5,{value}\n")
    for cmd in ("pstm", "stack"):
        _refused(capsys, [cmd, seg, "-v", vel, "-o", d / "o.h5"], d, vel, "line 3",
                 f"vrms {float(value):g} m/s is outside the physical range 300..10000 m/s")


def test_vrms_volume_outside_physical_range(line, capsys):
    """An HDF5 velocity volume: the message gives the index, the CMP and the time."""
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.field import write_vrms

    d, seg, _ = line
    grid = Survey.open(seg).grid
    t = np.arange(5) * 0.02
    v = np.full(grid.shape + (5,), 2000.0, dtype=np.float32)
    v[1, 3] = 1e-30
    vel = d / "v.h5"
    write_vrms(vel, v, grid, t)
    _refused(capsys, ["stack", seg, "-v", vel, "-o", d / "o.h5"], d, vel,
             f"vrms[1, 3] (CMP {grid.crossline0 + 1}, t = 0.06 s): vrms 1e-30 m/s is outside")


def test_velocity_volume_without_grid(line, capsys):
    import h5py

    d, seg, _ = line
    vel = d / "nogrid.h5"
    with h5py.File(vel, "w") as f:
        f["vrms"] = np.full((3, 4), 2000.0, dtype=np.float32)
        f["time"] = np.arange(4) * 0.1
    _refused(capsys, ["pstm", seg, "-v", vel, "-o", d / "o.h5"], d, vel,
             "grid attribute 'grid_x0' missing")


def test_coordinate_scalar_plus_10000(tmp_path, capsys):
    """Scalar +10000 instead of -100: coordinates of 1e8..1e9 m, refused where binned (info
    still describes the file and says why there is no geometry)."""
    seg = _survey(tmp_path)
    vel = tmp_path / "v.csv"
    vel.write_text(GOOD_CSV)
    _patch_traces(seg, 71, 10000)
    message = ("trace 0 (FFID 1, channel 1): sx (trace header bytes 73-76) is 1e+09 m after "
               "the coordinate scalar +10000, beyond 1e+08 m")
    for cmd in ("pstm", "stack"):
        _refused(capsys, [cmd, seg, "-v", vel, "-o", tmp_path / "o.h5"], tmp_path, seg,
                 message)
    _refused(capsys, ["index", seg], tmp_path, seg, message)
    assert main(["info", str(seg)]) == 0
    assert "beyond 1e+08 m" in capsys.readouterr().out


def test_sample_interval_1us(tmp_path, capsys):
    seg = _survey(tmp_path)
    (tmp_path / "line.sgy.index.h5").unlink()
    raw = bytearray(seg.read_bytes())
    raw[3216:3218] = (1).to_bytes(2, "big")
    seg.write_bytes(bytes(raw))
    _refused(capsys, ["info", seg], tmp_path, seg, "absurd sample interval 1 us (binary "
             "header bytes 3217-3218; the first trace header, bytes 117-118, says 4000 us")
    _patch_traces(seg, 117, 1)
    raw = bytearray(seg.read_bytes())
    raw[3216:3218] = (0).to_bytes(2, "big")
    seg.write_bytes(bytes(raw))
    _refused(capsys, ["index", seg], tmp_path, seg, "absurd sample interval 1 us (first "
             "trace header bytes 117-118; the binary header says 0 us")


@pytest.mark.parametrize("args,fragment", [
    (["--dt", "0"], "--dt must be > 0 s (got 0)"),
    (["--dt", "-0.004"], "--dt must be > 0 s (got -0.004)"),
    (["--dt", "1e-9"], "--dt 1e-09 s is below the shortest sample interval 10 us"),
    (["--tmax", "0"], "--tmax must be > 0 s (got 0)"),
    (["--tmax", "-1"], "--tmax must be > 0 s (got -1)"),
    (["--tmax", "1e7"], "--tmax 1e+07 s at --dt 0.004 s gives 2,500,000,001 output samples: "
     "the image would need 74.5 GiB (8 points x 2,500,000,001 samples x 4 bytes); one image "
     "point alone needs 46.6 GiB per rank, more than --mem-per-rank 2.0 GiB"),
    (["--dt", "1e-5", "--tmax", "2000"], "gives 200,000,000 output samples: the image would "
     "need 6.0 GiB (8 points x 200,000,000 samples x 4 bytes); one image point alone needs "
     "3.7 GiB per rank"),
])
def test_pstm_time_axis(line, capsys, args, fragment):
    d, seg, vel = line
    _refused(capsys, ["pstm", seg, "-v", vel, "-o", d / "o.h5", *args], d, fragment)


def test_pstm_image_larger_than_the_disk(line, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    d, seg, vel = line
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 0, 1 << 10))
    _refused(capsys, ["pstm", seg, "-v", vel, "-o", d / "o.h5", "--tmax", "100"], d,
             "the image would need 781.3 KiB (8 points x 25,001 samples x 4 bytes); only "
             f"1.0 KiB free in {d}")


def test_migstack_tmax(line, capsys):
    d, seg, vel = line
    _refused(capsys, ["migstack", seg, "-v", vel, "-o", d / "o.h5", "--tmax", "1e7"], d,
             "--tmax 1e+07 s", "x 9 (image + 8 offset classes)", "--mem-per-rank")


@pytest.mark.parametrize("cmd,what", [("stack", "the stack"), ("velan", "the velocity field")])
def test_in_memory_estimate(line, capsys, monkeypatch, cmd, what):
    """stack and velan hold (bins x samples) arrays: refused with the figure when the
    machine's free memory cannot hold them (here: 1 KiB free)."""
    import seis_hpc.limits

    d, seg, vel = line
    monkeypatch.setattr(seis_hpc.limits, "available_memory", lambda: 1024)
    argv = [cmd, seg, "-o", d / "o.h5"] + (["-v", vel] if cmd == "stack" else [])
    _refused(capsys, argv, d, f"would need 0.0 GiB for {what} (8 bins x 20 samples x")


# -- HDF5 files without a readable structure ------------------------------------------------
def test_info_truncated_hdf5(line, capsys):
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.field import write_vrms

    d, seg, _ = line
    grid = Survey.open(seg).grid
    full = d / "v.h5"
    write_vrms(full, np.full(grid.shape + (50,), 2000.0, np.float32), grid, np.arange(50) * .01)
    cut = d / "cut.h5"
    cut.write_bytes(full.read_bytes()[:3000])
    _refused(capsys, ["info", cut], d, cut, "damaged or truncated HDF5 file", "truncated file")
    _refused(capsys, ["stack", seg, "-v", cut, "-o", d / "o.h5"], d, cut,
             "not a readable HDF5 velocity volume")


# -- flow parameters: checked with the whole flow, before any output folder -----------------
@pytest.mark.parametrize("step,fragment", [
    ('name = "agc"\nwindow = -1', "line 7: step 1 (agc): window: must be > 0 s (got -1)"),
    ('name = "agc"\nwindow = nan', "line 7: step 1 (agc): window: nan is not a finite number"),
    ('name = "bandpass"\ncorners = [10, 5, 60, 80]',
     "line 7: step 1 (bandpass): corners: must be four values 0 <= f1 <= f2 <= f3 <= f4 Hz"),
    ('name = "swell"\nthreshold = 0.5', "line 7: step 1 (swell): threshold: must be > 1"),
])
def test_flow_values(tmp_path, capsys, step, fragment):
    _survey(tmp_path)
    flow = tmp_path / "flow.toml"
    flow.write_text(f'[flow]\ninput = "line.sgy"\noutput = "out/o.sgy"\n\n[[step]]\n{step}\n')
    _refused(capsys, ["run", flow], tmp_path, flow, fragment)
    assert not (tmp_path / "out").exists()


def test_step_command_values(line, capsys):
    d, seg, _ = line
    _refused(capsys, ["agc", seg, "--window", "-1", "--out", d / "o.sgy"], d,
             "window: must be > 0 s (got -1)")


def test_real_process_tmax(line):
    """As a user runs it: one line on stderr, exit 2, no traceback, before any allocation."""
    d, seg, vel = line
    proc = subprocess.run([sys.executable, "-m", "seis_hpc", "pstm", str(seg), "-v", str(vel),
                           "-o", str(d / "o.h5"), "--tmax", "1e7"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "would need 74.5 GiB" in proc.stderr
    assert not (d / "o.h5").exists() and not (d / "o.h5.ckpt").exists()

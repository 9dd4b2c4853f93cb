"""Issue 18: ``pstm --segy`` and the SEG-Y deliverable's headers (stack and pstm).

The migrated image as SEG-Y holds exactly the HDF5 image's float32 samples, with the bin's
inline, crossline, serial number and centre (m) in the trace headers; coordinate units are
metres (bytes 89-90 = 1), ``NStackedTraces`` is the fold (stack: live traces stacked; pstm:
input traces in the bin), and the textual header names the line, units, sample interval,
software and the processing history. A failing SEG-Y write leaves no image.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import segyio
import velocity_line as vl

import seis_hpc
from seis_hpc.cli import main
from seis_hpc.io.volume import read_volume
from seis_hpc.survey import Survey

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# A part of tiny3d keeps each run to a second or two (as tests/test_api.py).
SMALL = {"grid": (1, 5, 44, 80), "tmax": 0.6, "aperture": 250.0, "units": 24}
SMALL_ARGS = ["--grid", "1,5,44,80", "--tmax", "0.6", "--aperture", "250", "--units", "24"]
TF = segyio.TraceField


def run(args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def survey(tiny3d):
    return tiny3d


def _text(f) -> str:
    """The textual header (segyio gives the writer's EBCDIC as ASCII): 40 cards of 80."""
    raw = bytes(f.text[0])
    assert len(raw) == 3200
    text = raw.decode("ascii")
    cards = [text[i:i + 80] for i in range(0, 3200, 80)]
    assert all(c.startswith(f"C{i + 1:2d} ") for i, c in enumerate(cards))
    return "\n".join(c.rstrip() for c in cards)


def _input_fold(survey_path, grid):
    s = Survey.open(survey_path)
    f = s.fold().reshape(s.grid.n_inline, s.grid.n_crossline)
    i0, j0 = grid.inline0 - s.grid.inline0, grid.crossline0 - s.grid.crossline0
    return f[i0:i0 + grid.n_inline, j0:j0 + grid.n_crossline].ravel()


@pytest.mark.parametrize("gathers", [False, True])
def test_pstm_segy_is_the_image_with_its_geometry_and_fold(survey, tmp_path, gathers):
    out, sgy = tmp_path / "img.h5", tmp_path / "img.sgy"
    extra = ["--offset-classes", "3"] if gathers else []
    r = run([PY, "-m", "seis_hpc", "pstm", str(survey / "shots.sgy"), "--velocity",
             str(survey / "velocity.csv"), "--out", str(out), "--segy", str(sgy),
             *SMALL_ARGS, *extra])
    assert r.returncode == 0, r.stderr
    vol = read_volume(out, "image")
    g = vol.grid
    assert g.shape == (5, 37)
    with segyio.open(sgy, ignore_geometry=True) as f:
        # the stacked image, one trace per bin, even with image gathers in the HDF5 file
        assert f.tracecount == g.n_bins
        np.testing.assert_array_equal(f.trace.raw[:], vol.data.reshape(g.n_bins, -1))
        np.testing.assert_allclose(f.samples / 1e3, vol.time, atol=1e-9)
        il, xl = np.meshgrid(g.inlines(), g.crosslines(), indexing="ij")
        np.testing.assert_array_equal(f.attributes(TF.INLINE_3D)[:], il.ravel())
        np.testing.assert_array_equal(f.attributes(TF.CROSSLINE_3D)[:], xl.ravel())
        serial = (il - g.inline0) * g.n_crossline + (xl - g.crossline0) + 1
        np.testing.assert_array_equal(f.attributes(TF.CDP)[:], serial.ravel())
        x, y = g.grid_to_world(il.ravel(), xl.ravel())
        scal = f.attributes(TF.SourceGroupScalar)[:]
        assert (scal == -100).all()
        np.testing.assert_allclose(f.attributes(TF.CDP_X)[:] / 100.0, x, atol=0.006)
        np.testing.assert_allclose(f.attributes(TF.CDP_Y)[:] / 100.0, y, atol=0.006)
        assert (f.attributes(TF.CoordinateUnits)[:] == 1).all()
        fold = _input_fold(survey / "shots.sgy", g)
        assert fold.max() > 1  # a real prestack fold, not the default 1
        np.testing.assert_array_equal(f.attributes(TF.NStackedTraces)[:], fold)
        assert (f.attributes(TF.ShotPoint)[:] == 0).all()  # 3D: no shot point
        text = _text(f)
    assert vol.shotpoint is None  # nor a shotpoint data set
    assert f"seis_hpc {seis_hpc.__version__}" in text and "ShotPoint" not in text
    assert "shots.sgy" in text and "metres" in text and "4 ms" in text
    assert "pstm" in text  # the history line of the command


def test_pstm_segy_failing_write_leaves_no_image(survey, tmp_path, monkeypatch):
    """The SEG-Y writer fails after the image is complete (disk full): no image, no SEG-Y,
    no temporary, and the error names the user's SEG-Y path."""
    import seis_hpc.io.export as export
    from seis_hpc.engine.comm import CheckedInputError

    def full_disk(path, vol, **kw):
        with open(path, "wb") as f:
            f.write(b"\0" * 3600)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(export, "write_volume_segy", full_disk)
    out, sgy = tmp_path / "img.h5", tmp_path / "img.sgy"
    with pytest.raises(CheckedInputError) as info:
        seis_hpc.migrate(survey / "shots.sgy", survey / "velocity.csv", out, comm=None,
                         segy=sgy, **SMALL)
    assert str(sgy) in str(info.value) and ".tmp-" not in str(info.value), str(info.value)
    # no image, no SEG-Y, no temporary: only the checkpoint of the finished migration
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.h5.ckpt"]
    monkeypatch.undo()
    # The same call again (the disk freed) writes both from the checkpoint and drops it.
    res = seis_hpc.migrate(survey / "shots.sgy", survey / "velocity.csv", out, comm=None,
                           segy=sgy, **SMALL)
    assert res.status == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.h5", "img.sgy"]
    vol = read_volume(out, "image")
    from _truth import assert_diffractors_exact

    assert_diffractors_exact(vol, survey)
    with segyio.open(sgy, ignore_geometry=True) as f:
        np.testing.assert_array_equal(f.trace.raw[:], vol.data.reshape(vol.grid.n_bins, -1))


def test_pstm_bad_segy_name_fails_before_any_work(survey, tmp_path):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "img.h5"
    with pytest.raises(seis_hpc.SeisError):
        seis_hpc.migrate(survey / "shots.sgy", survey / "velocity.csv", out, comm=None,
                         segy=tmp_path / "afile" / "x.sgy", **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_stack_segy_headers_fold_units_and_text(tmp_path, monkeypatch):
    path, truth = vl.line("marine2d")
    # main() called in a process whose own command line is long (a test runner's worker):
    # the history records the command's words, not the process's.
    monkeypatch.setattr(sys, "argv", ["runner", *["--runner-option"] * 60])
    vel = tmp_path / "v.csv"
    vel.write_text("time_s,vrms_mps\n" + "".join(
        f"{t:.3f},{v:.1f}\n" for t, v in zip(truth["vrms"]["time_s"],
                                             truth["vrms"]["vrms_mps"], strict=True)))
    out, sgy = tmp_path / "st.h5", tmp_path / "st.sgy"
    assert main(["stack", str(path), "-v", str(vel), "-o", str(out), "--segy", str(sgy),
                 "--stretch-mute", "0"]) == 0
    vol = read_volume(out, "image")
    g = vol.grid
    # Without a stretch mute every trace of a bin is live at depth: the fold is the number
    # of traces binned there (only dead traces would lower it).
    fold = Survey.open(path).fold().ravel()
    with segyio.open(sgy, ignore_geometry=True) as f:
        np.testing.assert_array_equal(f.attributes(TF.NStackedTraces)[:], fold)
        assert fold.max() > 1
        assert (f.attributes(TF.CoordinateUnits)[:] == 1).all()
        np.testing.assert_array_equal(f.attributes(TF.CDP)[:], g.crosslines())
        x, y = g.grid_to_world(np.full(g.n_crossline, g.inline0), g.crosslines())
        np.testing.assert_allclose(f.attributes(TF.CDP_X)[:] / 100.0, x, atol=0.006)
        np.testing.assert_allclose(f.attributes(TF.CDP_Y)[:] / 100.0, y, atol=0.006)
        text = _text(f)
    # The cards' text run together: a path longer than a card is cut at its 76th character.
    flat = "".join(c[4:].ljust(76) for c in text.split("\n"))
    assert f"seis_hpc {seis_hpc.__version__}" in text
    assert Path(path).name in flat and "metres" in text
    assert f"{(vol.time[1] - vol.time[0]) * 1e3:g} ms" in text
    assert "stack" in text and str(vel.name) in flat  # history / config of the command
    assert "--runner-option" not in flat


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "mpiexec").exists(),
                    reason="no mpiexec in .venv")
def test_pstm_segy_on_two_ranks(survey, tmp_path):
    """Two ranks (parallel or rank-0 writer): rank 0 writes the SEG-Y of the summed image;
    an unwritable SEG-Y name is one error line, exit 2 on every rank, nothing written."""
    mpiexec = str(ROOT / ".venv" / "bin" / "mpiexec")
    out, sgy = tmp_path / "img.h5", tmp_path / "img.sgy"
    base = [mpiexec, "-n", "2", PY, "-m", "seis_hpc", "pstm", str(survey / "shots.sgy"),
            "--velocity", str(survey / "velocity.csv"), *SMALL_ARGS]
    r = run([*base, "--out", str(out), "--segy", str(sgy)])
    assert r.returncode == 0, r.stderr
    vol = read_volume(out, "image")
    with segyio.open(sgy, ignore_geometry=True) as f:
        np.testing.assert_array_equal(f.trace.raw[:], vol.data.reshape(vol.grid.n_bins, -1))
        np.testing.assert_array_equal(f.attributes(TF.NStackedTraces)[:],
                                      _input_fold(survey / "shots.sgy", vol.grid))
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "x.sgy"
    r = run([*base, "--out", str(tmp_path / "b.h5"), "--segy", str(bad)])
    assert r.returncode == 2, r.stderr
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("seis-hpc: error:")]
    assert len(errs) == 1 and str(bad) in errs[0], r.stderr
    assert not (tmp_path / "b.h5").exists()


def test_write_volume_segy_shotpoint_fold_clip_and_long_history(tmp_path):
    """Shot points go to bytes 197-200; a fold beyond the 2-byte field is clipped, not
    wrapped; a history longer than 40 cards is cut, the first cards kept."""
    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.export import write_volume_segy
    from seis_hpc.io.volume import Volume

    g = BinGrid(1000.0, 2000.0, 0.0, 12.5, 25.0, 10, 100, 2, 3)
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    vol = Volume(data, g, np.arange(4) * 0.002, "image", config="{}",
                 history=[f"step {k} [x]" for k in range(60)], attrs={"line": "L7"})
    fold = np.array([[0, 1, 2], [3, 40000, 5]])
    sp = np.array([[101, 102, 103], [104, 105, 106]])
    path = tmp_path / "v.sgy"
    write_volume_segy(path, vol, fold=fold, shotpoint=sp)
    with segyio.open(path, ignore_geometry=True) as f:
        np.testing.assert_array_equal(f.attributes(TF.NStackedTraces)[:],
                                      [0, 1, 2, 3, 32767, 5])
        np.testing.assert_array_equal(f.attributes(TF.ShotPoint)[:], sp.ravel())
        np.testing.assert_array_equal(f.trace.raw[:], data.reshape(6, 4))
        text = _text(f)
    assert "line: L7" in text and "2 ms" in text and "step 0 (x)" in text
    assert "step 59" not in text  # cut at 40 cards

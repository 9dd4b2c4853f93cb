"""``seis-hpc image sum``: a PSTM job split by input traces (``pstm --traces``/``--ffid``)
adds up to the whole job's image; parts that are not of one job are refused (issue 19)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from seis_hpc.io.volume import read_volume

SMALL = ["--grid", "1,5,44,80", "--tmax", "0.6", "--aperture", "250", "--units", "12",
         "--progress-every", "0"]


def sh(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "seis_hpc", *argv], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def pstm(survey: Path, out: Path, *more):
    r = sh("pstm", str(survey / "shots.sgy"), "-v", str(survey / "velocity.csv"), "-o",
           str(out), *SMALL, *more, cwd=out.parent)
    assert r.returncode == 0, r.stderr
    return r


def refused(r, *words):
    """One error line, exit 2, naming every one of ``words``."""
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("seis-hpc: error: "), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert str(w) in r.stderr, (w, r.stderr)


@pytest.fixture(scope="module")
def runs(tiny3d, tmp_path_factory):
    """The whole job, and the same job in three parts: two trace ranges and the rest of
    the shots by FFID (tiny3d: 1536 traces, FFID 1..32 of 48 channels each)."""
    d = tmp_path_factory.mktemp("parts")
    whole = d / "whole.h5"
    r = pstm(tiny3d, whole, "--normalise", "none")  # raw sums, as the parts hold
    assert "1.00 per trace" in r.stderr  # shard mode reads every trace once
    parts = [d / "p0.h5", d / "p1.h5", d / "p2.h5"]
    pstm(tiny3d, parts[0], "--traces", "0:500")
    pstm(tiny3d, parts[1], "--traces", "500:960")  # 960 = 20 shots x 48 channels
    pstm(tiny3d, parts[2], "--ffid", "21:32")
    return d, whole, parts


def test_sum_of_trace_parts_is_the_whole_image(runs):
    d, whole, parts = runs
    out = d / "sum.h5"
    r = sh("image", "sum", *map(str, reversed(parts)), "--out", str(out), cwd=d)
    assert r.returncode == 0, r.stderr
    assert "1536 traces (every trace of the input)" in r.stdout
    a, b = read_volume(whole).data, read_volume(out).data
    assert np.abs(a).max() > 0
    # the same float32 terms added in another order: float32 rounding of the largest sums
    assert np.abs(a - b).max() <= 8 * np.finfo(np.float32).eps * np.abs(a).max()
    for p in parts:  # each part alone is far from the whole
        assert np.abs(read_volume(p).data - a).max() > 0.05 * np.abs(a).max()
    with h5py.File(out) as f, h5py.File(whole) as w:
        listed = json.loads(f.attrs["parts"])
        assert [x["path"] for x in listed] == [str(p) for p in reversed(parts)]
        for x in listed:
            import hashlib

            assert x["sha256"] == hashlib.sha256(Path(x["path"]).read_bytes()).hexdigest()
        assert int(f.attrs["traces_selected"]) == 1536 and "part_traces" not in f
        for k in w.attrs:
            if k.startswith("pstm_") or k.startswith("grid_"):
                assert np.all(f.attrs[k] == w.attrs[k]), k
        np.testing.assert_array_equal(f["time"][...], w["time"][...])
    with h5py.File(parts[2]) as f:  # FFID 21..32: the last 12 shots
        np.testing.assert_array_equal(f["part_traces"][...], [[960, 1536]])
        # a part keeps raw sums whatever the default scale (they are added, not averaged)
        assert f.attrs["normalise"] == "none" and not f.attrs["normalised"]
        assert f.attrs["normalise_requested"] == "reflector"
    # two parts give a partial sum that knows its traces and adds to the third
    half = d / "half.h5"
    assert sh("image", "sum", str(parts[0]), str(parts[2]), "-o", str(half), cwd=d
              ).returncode == 0
    with h5py.File(half) as f:
        np.testing.assert_array_equal(f["part_traces"][...], [[0, 500], [960, 1536]])
    again = d / "again.h5"
    r = sh("image", "sum", str(half), str(parts[1]), "-o", str(again), cwd=d)
    assert r.returncode == 0, r.stderr
    assert np.abs(read_volume(again).data - a).max() <= 8 * np.finfo(np.float32).eps * \
        np.abs(a).max()


def test_parts_that_are_not_of_one_job_are_refused(runs, tiny3d):
    d, whole, parts = runs
    bad = d / "bad_aperture.h5"
    pstm(tiny3d, bad, "--traces", "500:960", "--aperture", "300")
    out = d / "never.h5"
    cases = [
        ([parts[0], bad], ["bad_aperture.h5", "pstm_aperture", "300"]),
        ([parts[0], parts[0]], ["given twice"]),
        ([parts[0], whole], ["shares input traces", "whole.h5"]),
    ]
    shorter = d / "short.h5"
    pstm(tiny3d, shorter, "--traces", "500:960", "--tmax", "0.5")
    cases.append(([parts[0], shorter], ["short.h5", "time axis"]))
    other_grid = d / "grid.h5"
    pstm(tiny3d, other_grid, "--traces", "500:960", "--grid", "1,5,44,79")
    cases.append(([parts[0], other_grid], ["grid.h5", "grid_n_crossline"]))
    nan = d / "nan.h5"
    nan.write_bytes(parts[1].read_bytes())
    with h5py.File(nan, "r+") as f:
        f["image"][2, 3, 40] = np.nan
    cases.append(([parts[0], nan], ["nan.h5", "NaN", "(2, 3, 40)"]))
    for files, words in cases:
        r = sh("image", "sum", *map(str, files), "--out", str(out), cwd=d)
        refused(r, *words)
        assert not out.exists() and not list(d.glob("*.tmp*"))
    # the output may not be one of the parts (checked before any work)
    before = parts[0].read_bytes()
    refused(sh("image", "sum", str(parts[0]), str(parts[1]), "-o", str(parts[1]), cwd=d),
            "same file")
    assert parts[0].read_bytes() == before


def test_trace_selection_errors_are_one_line(tiny3d, tmp_path):
    for sel, words in ((["--traces", "0:9999"], ["1536 traces"]),
                       (["--traces", "5:2"], ["5:2"]),
                       (["--traces", "a:b"], ["ranges"]),
                       (["--ffid", "900:901"], ["no trace"])):
        r = sh("pstm", str(tiny3d / "shots.sgy"), "-v", str(tiny3d / "velocity.csv"), "-o",
               str(tmp_path / "x.h5"), *SMALL, *sel, cwd=tmp_path)
        refused(r, *words)
        assert not (tmp_path / "x.h5").exists()

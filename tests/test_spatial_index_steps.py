"""Issue 19 end to end: ``seis-hpc index FILE --spatial`` on the tiny3d synthetic, then the
processing steps on the blocked index give what they give on the file-order index.

pstm (tile and shard strategies) sums the same traces in another order: equal to float32
rounding, with and without the flat-reflector normalisation (whose band is measured on
traces spread evenly over the *file*, found through a blocked index's ``trace`` column:
spread over its rows they were other traces, and the images differed by about 1e-3).
stack and velan take an index as GATHERS too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from seis_hpc.io.blocked import BlockTable
from seis_hpc.io.volume import read_volume

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--grid", "1,5,44,80", "--tmax", "0.6", "--aperture", "250", "--units", "24"]


def _run(*args):
    r = subprocess.run([sys.executable, "-m", "seis_hpc", *map(str, args)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def indexes(tiny3d):
    """The file-order index and the blocked one (100 m cells, a sort of several runs)."""
    _run("index", tiny3d / "shots.sgy", "--spatial", "--cell", "100", "--sort-memory", "100k")
    plain, spatial = tiny3d / "shots.sgy.index.h5", tiny3d / "shots.sgy.spatial.index.h5"
    with h5py.File(spatial, "r") as f:
        trace = f["trace"][...]
    assert not np.array_equal(trace, np.arange(len(trace)))  # really another row order
    assert len(BlockTable.read(spatial)) > 10
    return plain, spatial


@pytest.mark.parametrize("strategy,normalise", [("tile", "none"), ("shard", "none"),
                                                ("tile", "reflector")])
def test_pstm_of_the_blocked_index(indexes, tiny3d, tmp_path, strategy, normalise):
    images = []
    for k, idx in enumerate(indexes):
        out = tmp_path / f"{k}.h5"
        _run("pstm", idx, "--velocity", tiny3d / "velocity.csv", "--out", out, *SMALL,
             "--strategy", strategy, "--normalise", normalise)
        with h5py.File(out, "r") as f:
            assert f.attrs["strategy"] == strategy
        images.append(read_volume(out, "image").data)
    plain, spatial = images
    top = np.abs(plain).max()
    assert top > 0 and plain.shape == spatial.shape
    # float32 sums of the same terms in another order: the difference is rounding, bounded
    # by about sqrt(terms) float32 ulps of the partial sums (up to ~1500 traces a sample:
    # some 40 ulps, 5e-6 of the largest sample); an aperture or a trace missed or counted
    # twice would change samples by percents
    np.testing.assert_allclose(spatial, plain, rtol=0, atol=40 * np.finfo(np.float32).eps * top)


def test_stack_and_velan_of_the_blocked_index(indexes, tiny3d, tmp_path):
    vel = tiny3d / "velocity.csv"
    stacks, fields = [], []
    for k, idx in enumerate(indexes):
        _run("stack", idx, "--velocity", vel, "--out", tmp_path / f"s{k}.h5")
        stacks.append(read_volume(tmp_path / f"s{k}.h5").data)
        _run("velan", idx, "--out", tmp_path / f"v{k}.h5", "--every", "4", "--supergather",
             "7", "--tmax", "0.6", "--dv", "40")
        fields.append(read_volume(tmp_path / f"v{k}.h5").data)
    assert np.abs(stacks[0]).max() > 0.05
    # per bin a float64 sum of the same traces, rounded to float32
    np.testing.assert_allclose(stacks[1], stacks[0], rtol=1e-6, atol=1e-7)
    assert fields[0].min() >= 1400.0
    np.testing.assert_allclose(fields[1], fields[0], rtol=1e-6)


def test_a_named_blocked_index_is_used_and_never_rewritten(tiny3d, tmp_path):
    """``FILE --index BLOCKED``: the blocked index is FILE's index (used as it is); when FILE
    changed since, the step stops with one line and leaves the user's sort alone (it wrote a
    file-order index over it before)."""
    import shutil

    sgy, vel = tmp_path / "shots.sgy", tiny3d / "velocity.csv"
    shutil.copy(tiny3d / "shots.sgy", sgy)
    _run("index", sgy, "--spatial", "--cell", "100")
    blocked = tmp_path / "shots.sgy.spatial.index.h5"
    before = blocked.read_bytes()
    _run("stack", sgy, "--index", blocked, "--velocity", vel, "--out", tmp_path / "b.h5")
    _run("stack", sgy, "--velocity", vel, "--out", tmp_path / "p.h5")
    assert blocked.read_bytes() == before
    np.testing.assert_allclose(read_volume(tmp_path / "b.h5").data,
                               read_volume(tmp_path / "p.h5").data, rtol=1e-6, atol=1e-7)
    st = os.stat(sgy)
    os.utime(sgy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # FILE changed since the sort
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "stack", str(sgy), "--index",
                        str(blocked), "--velocity", str(vel), "--out", str(tmp_path / "c.h5")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "spatially blocked" in lines[0] and str(blocked) in lines[0]
    assert blocked.read_bytes() == before and not (tmp_path / "c.h5").exists()

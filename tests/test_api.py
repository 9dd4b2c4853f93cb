"""The library API (issue 14): ``seis_hpc.migrate``, ``seis_hpc.stack`` and ``seis_hpc.velan``
called directly, as a notebook does, against known truth and against the commands.

``migrate`` on a part of the tiny3d synthetic puts the diffractor at its exact bin and sample
(tests/_truth.py) and gives exactly the image of ``seis-hpc pstm`` with the same parameters;
a Survey object and a velocity array give that image too; bad input raises a SeisError
naming the parameter and writes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _truth import assert_diffractors_exact

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# A part of the survey keeps each run to a second or two (as tests/test_engine_restart.py).
SMALL = {"grid": (1, 5, 44, 80), "tmax": 0.6, "aperture": 250.0, "units": 24}
SMALL_ARGS = ["--grid", "1,5,44,80", "--tmax", "0.6", "--aperture", "250", "--units", "24"]


def run(args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def survey(tiny3d):
    return tiny3d


@pytest.fixture(scope="module")
def command_image(survey, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmd") / "cmd.h5"
    r = run([PY, "-m", "seis_hpc", "pstm", str(survey / "shots.sgy"), "--velocity",
             str(survey / "velocity.csv"), "--out", str(out), *SMALL_ARGS])
    assert r.returncode == 0, r.stderr
    from seis_hpc.io.volume import read_volume

    return read_volume(out, "image")


def test_migrate_puts_the_diffractor_at_its_bin_and_sample_as_the_command(survey, command_image,
                                                                          tmp_path):
    import seis_hpc
    from seis_hpc.io.volume import read_volume

    out = tmp_path / "api.h5"
    res = seis_hpc.migrate(survey / "shots.sgy", survey / "velocity.csv", out, comm=None,
                           **SMALL)
    assert (res.status, res.ranks, res.strategy, res.out) == (0, 1, "shard", str(out))
    assert res.traces_in > 0 and res.units > 1
    assert not Path(f"{out}.ckpt").exists()
    vol = read_volume(out, "image")
    assert (vol.grid.inline0, vol.grid.crossline0, vol.grid.shape) == (1, 44, (5, 37))
    (p,) = assert_diffractors_exact(vol, survey)
    # half-way between inlines 2 and 3, crossline 66, sample 122 (tests/test_engine_restart.py)
    assert (p["il_true"], p["xl_true"], p["k_true"]) == pytest.approx((2.5, 66, 122), abs=1e-4)
    assert vol.grid.to_attrs() == command_image.grid.to_attrs()
    np.testing.assert_array_equal(vol.time, command_image.time)
    np.testing.assert_array_equal(vol.data, command_image.data)


def test_migrate_takes_a_survey_and_a_velocity_array(survey, command_image, tmp_path):
    import seis_hpc
    from seis_hpc.io.volume import read_volume
    from seis_hpc.velocity.model import load_vrms

    s = seis_hpc.Survey.open(survey / "shots.sgy")
    grid, time = command_image.grid, command_image.time
    v = load_vrms(survey / "velocity.csv", grid, time).reshape(grid.shape + (time.size,))
    out = tmp_path / "arr.h5"
    res = seis_hpc.migrate(s, v, out, comm=None, **SMALL)
    assert res.status == 0
    np.testing.assert_array_equal(read_volume(out, "image").data, command_image.data)
    # a velocity of the wrong shape is refused before anything is written
    with pytest.raises(seis_hpc.SeisError, match=r"velocity: expected shape \(5, 37, 151\)"):
        seis_hpc.migrate(s, v[:, :3], tmp_path / "bad.h5", comm=None, **SMALL)
    assert not (tmp_path / "bad.h5").exists()


@pytest.mark.parametrize("kw, message", [
    ({"max_angle": 95.0}, r"max_angle: must be in \(0, 90\] degrees \(got 95.0\)"),
    ({"stretch_mute": -1.0}, r"--stretch-mute must be > 0 \(got -1.0\)"),
    ({"grid": (1, 5, 44, 999)}, r"--grid 1,5,44,999 is outside the survey"),
    ({"offset_classes": "0,500,400"}, r"--offset-classes: edges must be >= 0 and increasing"),
])
def test_migrate_refuses_bad_parameters_before_any_work(survey, tmp_path, kw, message):
    import seis_hpc
    from seis_hpc.engine.comm import CheckedInputError

    out = tmp_path / "img.h5"
    with pytest.raises(CheckedInputError, match=message):
        seis_hpc.migrate(survey / "shots.sgy", survey / "velocity.csv", out, comm=None,
                         **{**SMALL, **kw})
    assert sorted(os.listdir(tmp_path)) == []  # no image, no checkpoint folder


def test_stack_and_velan_equal_their_commands(survey, tmp_path):
    import seis_hpc
    from seis_hpc.io.volume import read_volume

    shots, vel = str(survey / "shots.sgy"), str(survey / "velocity.csv")
    r = run([PY, "-m", "seis_hpc", "stack", shots, "-v", vel, "-o", str(tmp_path / "c.h5")])
    assert r.returncode == 0, r.stderr
    got = seis_hpc.stack(shots, vel, tmp_path / "a.h5", progress=False)
    want = read_volume(tmp_path / "c.h5", "image")
    np.testing.assert_array_equal(read_volume(tmp_path / "a.h5", "image").data, want.data)
    np.testing.assert_array_equal(got, want.data)

    opts = ["--every", "4", "--min-fold", "2", "--vmin", "1400", "--vmax", "3000", "--dv", "20"]
    r = run([PY, "-m", "seis_hpc", "velan", shots, "-o", str(tmp_path / "vc.h5"), *opts])
    assert r.returncode == 0, r.stderr
    picks = seis_hpc.velan(shots, tmp_path / "va.h5", every=4, min_fold=2, vmin=1400.0, vmax=3000.0,
                           dv=20.0, progress=False)
    n = sum(len(p.time) for p in picks.locations)
    assert f"velan: {len(picks.locations)} locations, {n} picks" in r.stderr
    assert len(picks.locations) > 4 and n > len(picks.locations)
    np.testing.assert_array_equal(read_volume(tmp_path / "va.h5", "vrms").data,
                                  read_volume(tmp_path / "vc.h5", "vrms").data)


MPIEXEC = ROOT / ".venv" / "bin" / "mpiexec"
SCRIPT = """
import sys
from mpi4py import MPI  # initialises MPI: seis_hpc.migrate then runs on COMM_WORLD
import seis_hpc
from seis_hpc.engine.comm import CheckedInputError

shots, vel, out, bad = sys.argv[1:]
rank = MPI.COMM_WORLD.Get_rank()
small = dict(grid=(1, 5, 44, 80), tmax=0.6, aperture=250.0, units=24)
res = seis_hpc.migrate(shots, vel, out, **small)
print(f"rank {rank}: status {res.status} ranks {res.ranks} units {res.units}", flush=True)
try:
    seis_hpc.migrate(shots, vel, bad, max_angle=95.0, **small)
except CheckedInputError as exc:
    print(f"rank {rank}: refused: {exc}", flush=True)
"""


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec in .venv")
def test_migrate_under_mpiexec_runs_on_every_rank(survey, command_image, tmp_path):
    """A script under ``mpiexec -n 2`` that imports mpi4py: the call is collective (both
    ranks, one image equal to the serial command's to float32 summation order, the diffractor
    exact), and a refusal is raised on every rank with nothing written."""
    from seis_hpc.io.volume import read_volume

    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out, bad = tmp_path / "img.h5", tmp_path / "bad.h5"
    r = run([str(MPIEXEC), "-n", "2", PY, str(script), str(survey / "shots.sgy"),
             str(survey / "velocity.csv"), str(out), str(bad)])
    assert r.returncode == 0, r.stderr
    for rank in (0, 1):
        assert f"rank {rank}: status 0 ranks 2 units 24" in r.stdout
        assert (f"rank {rank}: refused: max_angle: must be in (0, 90] degrees (got 95.0)"
                in r.stdout)
    assert not bad.exists() and not Path(f"{bad}.ckpt").exists()
    vol = read_volume(out, "image")
    assert_diffractors_exact(vol, survey)
    ref = command_image.data
    assert np.abs(vol.data - ref).max() <= 1e-5 * np.abs(ref).max()


def test_notebook_runs_and_finds_the_diffractor(tmp_path):
    """docs/notebooks/migrate_a_survey.ipynb, its code cells run in order as a script: the
    migrated image peaks at the diffractor's crossline and t0 on its (interpolated) inline."""
    import json
    import re

    nb = json.loads((ROOT / "docs" / "notebooks" / "migrate_a_survey.ipynb").read_text())
    code = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    (tmp_path / "nb.py").write_text(code)
    r = subprocess.run([PY, "nb.py"], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    m = re.search(r"status 0: diffractor at inline 2\.5, crossline (\d+), t0 ([\d.]+) s; "
                  r"image peak at crossline (\d+), t0 ([\d.]+) s", r.stdout)
    assert m, r.stdout
    assert (m[1], m[2]) == (m[3], m[4]) == ("66", "0.488")
    assert re.search(r"^\d+ locations; stack \(10, 84, 251\)$", r.stdout, re.M), r.stdout
    assert (tmp_path / "image.png").stat().st_size > 1000

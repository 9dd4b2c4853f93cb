"""Node-local scratch (``seis-hpc pstm --scratch DIR``): each rank's temporary files go to its
own folder under DIR (``%n``: the node's name), the checkpoint stays in ``--checkpoint-dir``
on the shared filesystem, and the image is the one written without scratch, bit for bit.

The cluster side (ranks on two nodes, each with its own node's scratch folder) is
tests/test_slurm_twonode.py; here one process on the tiny3d survey.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from _truth import assert_diffractors_exact

from seis_hpc.engine import checkpoint as ckpt_mod
from seis_hpc.io.volume import read_volume
from seis_hpc.migration.job import migrate

# Tiles of 4 x 4 bins: several checkpoint files, each written by one unit alone, so the
# image does not depend on where (or whether) the units were staged.
KW = dict(grid=(1, 5, 44, 80), tmax=0.6, aperture=250.0, strategy="tile", tile=4,
          progress_every=60.0)


def test_scratch_stages_checkpoint_files_and_keeps_them_shared(tiny3d, tmp_path, monkeypatch):
    sgy, vel = tiny3d / "shots.sgy", tiny3d / "velocity.csv"
    ref = migrate(sgy, vel, tmp_path / "ref.h5", comm=None, **KW)
    assert ref.status == 0 and ref.units > 1
    copies = []
    real_copy = shutil.copyfile

    def copy(src, dst, *a, **k):
        copies.append((str(src), str(dst)))
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(ckpt_mod.shutil, "copyfile", copy)
    monkeypatch.setenv("SLURMD_NODENAME", "n7")
    scratch = tmp_path / "local disk %n"
    ck = tmp_path / "shared" / "img.ckpt"
    res = migrate(sgy, vel, tmp_path / "img.h5", comm=None, scratch=scratch, checkpoint_dir=ck,
                  keep_checkpoint=True, **KW)
    assert res.status == 0
    node = tmp_path / "local disk n7"
    # every tile was written in the rank's folder on scratch, then copied to the checkpoint
    assert len(copies) == ref.units
    for src, dst in copies:
        assert src.startswith(str(node / "seis-hpc-")) and "-rank-00000" in src, src
        assert dst.startswith(str(ck / ".tile-")), dst
    assert sorted(p.name for p in ck.glob("tile-*.h5")) == \
        [f"tile-{u:05d}.h5" for u in range(ref.units)]
    # the rank's folder is gone; nothing is left on scratch
    assert node.is_dir() and list(node.iterdir()) == []
    a = read_volume(tmp_path / "img.h5").data
    b = read_volume(tmp_path / "ref.h5").data
    assert np.array_equal(a, b)
    assert len(assert_diffractors_exact(tmp_path / "img.h5", tiny3d / "truth.json")) == 1


def test_scratch_option_of_pstm_and_its_log(tiny3d, tmp_path):
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "pstm", str(tiny3d / "shots.sgy"),
                        "--velocity", str(tiny3d / "velocity.csv"), "--out",
                        str(tmp_path / "img.h5"), "--grid", "1,5,44,80", "--tmax", "0.6",
                        "--aperture", "250", "--scratch", str(tmp_path / "s"),
                        "--checkpoint-interval", "0"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"per-rank temporary files in {tmp_path / 's'}" in r.stderr
    assert list((tmp_path / "s").iterdir()) == []
    assert not (tmp_path / "img.h5.ckpt").exists()


def test_scratch_that_cannot_be_made_is_one_line(tiny3d, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "pstm", str(tiny3d / "shots.sgy"),
                        "--velocity", str(tiny3d / "velocity.csv"), "--out",
                        str(tmp_path / "img.h5"), "--grid", "1,5,44,80", "--tmax", "0.6",
                        "--scratch", str(tmp_path / "file" / "sub")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("seis-hpc: error: ") and "scratch folder" in lines[-1], lines
    assert "Traceback" not in r.stderr and not (tmp_path / "img.h5").exists()


@pytest.mark.parametrize("procid", ["0", "1"])
def test_srun_without_the_mpi_plugin_is_refused(tmp_path, procid):
    """srun --mpi=none starts each task as a one-rank MPI job: SLURM_STEP_NUM_TASKS=4 in a
    world of 1. Task 0 says so in one line, every task exits 2, nothing is written."""
    env = {"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": procid, "SLURM_JOB_ID": "1"}
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "pstm", str(tmp_path / "x.sgy"),
                        "--velocity", "v.csv", "--out", str(tmp_path / "img.h5")],
                       capture_output=True, text=True, timeout=60,
                       env={**__import__("os").environ, **env})
    assert r.returncode == 2
    if procid == "0":
        assert r.stderr.strip().splitlines() == [
            "seis-hpc: error: SLURM started 4 tasks but MPI sees 1 rank: srun did not start "
            "one MPI job (use srun --mpi=pmi2 for the MPICH wheel, pmix for Open MPI; or "
            "SEIS_HPC_SRUN_MPI)"]
    else:
        assert r.stderr == ""
    assert not (tmp_path / "img.h5").exists()

"""The job scripts on a real SLURM: a single-node slurmctld + slurmd started here.

The packages (Debian's slurm-wlm 22.05: slurmctld, slurmd, slurm-client, with munge) come from
``.ci/slurm-setup.sh`` (``make test`` runs it when it can). This module starts munged,
slurmctld and slurmd in the foreground from a slurm.conf generated in a temporary folder
(tests/_slurm.py: own ports, own munge key and socket, no system files touched), submits
``jobs/pstm_3d.sh`` with sbatch and stops exactly the daemons it started, by PID. The
two-node cluster is tests/test_slurm_twonode.py. It skips where that cannot run:
not root, the programs missing, or the daemons not up within a timeout.

The jobs are submitted from the temporary folder, so the script (which SLURM runs as a copy)
has to find the checkout through ``scontrol show job``'s Command line, not the submit folder.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _slurm import cluster_fixture
from _truth import assert_diffractors_exact

pytestmark = [pytest.mark.slurm]

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "jobs" / "pstm_3d.sh"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """munged, slurmctld and one slurmd (node ``seisnode``), stopped after the module."""
    yield from cluster_fixture(tmp_path_factory, "slurm")


# The demo's migration of marine3d-small (8,192 traces; about 25 s on 2 ranks here).
JOB_ARGS = ("--aperture", "400", "--max-angle", "60", "--tmax", "1.0", "--", "--dt", "0.004")


@pytest.fixture(scope="module")
def first_job(cluster, tmp_path_factory):
    """``sbatch --wait jobs/pstm_3d.sh`` on the small synthetic 3D survey (marine3d-small, the
    demo's), from a temp folder, with the demo's migration parameters."""
    work = tmp_path_factory.mktemp("submit dir")
    out = work / "result 1"
    r = cluster.run("sbatch", "--wait", "--output=job1.log", "--ntasks=2", str(JOB),
                    "--preset", "marine3d-small", "--out", str(out), *JOB_ARGS, cwd=work,
                    timeout=300)
    log = (work / "job1.log").read_text() if (work / "job1.log").exists() else ""
    return r, log, out


def test_sbatch_wait_migrates_the_survey(first_job):
    r, log, out = first_job
    assert r.returncode == 0, f"{r.stdout}{r.stderr}\n{log}"
    # srun started both ranks of one MPI job (MpiDefault=pmi2), not two one-rank jobs.
    assert "launcher: srun" in log and "on 2 ranks" in log, log
    assert log.count("pstm: wrote") == 1, log
    truth = json.loads((out / "survey" / "truth.json").read_text())
    # All three diffractors at their exact bin and sample.
    assert len(assert_diffractors_exact(out / "image.h5", truth)) == 3
    for pattern in ("image_image_inline_*.png", "image_image_slice_*.png", "shots_fold.png"):
        found = list((out / "qc").glob(pattern))
        assert found and all(f.stat().st_size > 10_000 for f in found), pattern
    assert not (out / "image.h5.ckpt").exists()  # removed after success


def test_checkpoint_signal_requeues_and_resumes_to_same_image(cluster, first_job,
                                                             tmp_path_factory):
    """SIGUSR1 to the batch shell (what --signal=B:USR1@120 delivers before the time limit):
    the ranks checkpoint, the script requeues the job, the second run resumes and writes the
    same image as the uninterrupted job."""
    r1, _, out1 = first_job
    assert r1.returncode == 0
    work = tmp_path_factory.mktemp("submit requeue")
    out = work / "result 2"
    # The same synthetic input as the first job (its index is rebuilt for the copy).
    shutil.copytree(out1 / "survey", out / "survey")
    for p in (out / "survey").glob("*.index.h5"):
        p.unlink()
    r = cluster.run("sbatch", "--parsable", "--output=job2.log", "--ntasks=2", str(JOB),
                    "--preset", "marine3d-small", "--out", str(out), *JOB_ARGS, cwd=work,
                    env={"SEIS_HPC_UNIT_DELAY": "0.2"})
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip().split(";")[0]
    ckpt = out / "image.h5.ckpt"
    t0 = time.time()
    while not (ckpt / "job.json").exists():
        assert time.time() - t0 < 90, (work / "job2.log").read_text()
        time.sleep(0.2)
    time.sleep(2.0)  # a few units done
    s = cluster.run("scancel", "--batch", "--signal=USR1", job_id, cwd=work)
    assert s.returncode == 0, s.stderr
    t0 = time.time()
    while True:
        info = cluster.job(job_id)
        if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            break
        assert time.time() - t0 < 150, info
        time.sleep(1.0)
    log = (work / "job2.log").read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, log)
    assert info.get("Restarts") == "1", info
    assert "got SIGUSR1" in log and "stopped by signal" in log, log
    assert "requeueing job" in log and "resuming from" in log, log
    from seis_hpc.io.volume import read_volume

    a = read_volume(out / "image.h5").data
    ref = read_volume(out1 / "image.h5").data
    assert np.abs(a - ref).max() <= 1e-6 * np.abs(ref).max()
    assert len(assert_diffractors_exact(out / "image.h5", out / "survey")) == 3


def test_rendered_array_job_and_dependent_merge(cluster, first_job, tmp_path_factory):
    """``seis-hpc slurm render`` with [array]: two image parts as an array job, then the merge
    job (afterok) assembles them into the image of the single job."""
    r1, _, out1 = first_job
    assert r1.returncode == 0
    work = tmp_path_factory.mktemp("array job")
    shutil.copytree(out1 / "survey", work / "survey")
    for p in (work / "survey").glob("*.index.h5"):
        p.unlink()

    def q(v) -> str:
        return json.dumps(str(v))  # a TOML basic string

    (work / "job.toml").write_text(f"""
[cluster]
nodes = 1
tasks_per_node = 1
time = "00:10:00"
launcher = "srun"
mpi = "pmi2"
root = {q(ROOT)}
log_dir = {q(work / "logs")}
[job]
name = "small_parts"
input = {q(work / "survey" / "shots.sgy")}
velocity = {q(work / "survey" / "velocity.csv")}
out = {q(work / "whole image.h5")}
args = ["--aperture", "400", "--max-angle", "60", "--tmax", "1.0", "--dt", "0.004"]
[array]
parts = 2
merge_time = "00:05:00"
""")
    submitted, array_id, merge_id = cluster.submit_rendered(work / "job.toml", work)
    assert f"(after {array_id})" in submitted
    assert cluster.job(merge_id).get("Dependency", "").startswith(f"afterok:{array_id}")
    t0 = time.time()
    while True:
        info = cluster.job(merge_id)
        if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            break
        assert time.time() - t0 < 150, info
        time.sleep(1.0)
    logs = "\n".join(p.read_text() for p in sorted((work / "logs").glob("*.out")))
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, logs)
    for k in range(2):
        assert (work / f"whole image.part{k:03d}.h5").exists()
    from seis_hpc.io.volume import read_volume

    whole = read_volume(work / "whole image.h5")
    # array parts hold the plain sum (a per-part amplitude response would show at the seam):
    # the reference is the one-rank plain sum of the whole grid with the same parameters
    import subprocess

    import h5py

    r = subprocess.run([sys.executable, "-m", "seis_hpc", "pstm",
                        str(work / "survey" / "shots.sgy"), "--velocity",
                        str(work / "survey" / "velocity.csv"), "--out", str(work / "ref.h5"),
                        "--aperture", "400", "--max-angle", "60", "--tmax", "1.0", "--dt",
                        "0.004", "--normalise", "none"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    ref = read_volume(work / "ref.h5")
    with h5py.File(work / "whole image.h5") as f:
        assert f.attrs["normalise"] == "none"
    assert whole.grid == ref.grid
    assert np.abs(whole.data - ref.data).max() <= 1e-5 * np.abs(ref.data).max()
    assert len(assert_diffractors_exact(whole, work / "survey")) == 3

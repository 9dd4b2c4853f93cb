"""The job scripts across two nodes: a two-node SLURM simulated on this host (tests/_slurm.py).

Two ``slurmd`` (nodes n1 and n2, each in its own UTS namespace, so each has its own host
name) beside one slurmctld, all on loopback. What it proves: one MPI job spans both nodes
(srun --mpi=pmi2; the job log says which rank ran where) and gives the one-rank image; an
array job's parts run on different nodes and merge; per-rank temporaries go to each node's
own scratch while the checkpoint stays shared; a node lost mid-job (its slurmd, step daemon
and ranks killed, the node marked down) ends the job in seconds, requeues it, and the
requeued job resumes from the checkpoint to the image of an uninterrupted run, bit for bit;
the USR1 warning before the time limit reaches the ranks on both nodes; a rendered GPU job
binds one GPU per task on each node (a fake two-GPU gres per node, no GPU needed). What it
cannot: the nodes share one machine's cores, memory and filesystem, and MPI's traffic goes
through loopback, so it says nothing of performance over a real interconnect.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _slurm import cluster_fixture
from _truth import assert_diffractors_exact

pytestmark = [pytest.mark.slurm]

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"
NODES = ("n1", "n2")
# 2 nodes x 2 tasks. The scripts' headers say --ntasks=2, which would win over
# --ntasks-per-node (jobs/lib.sh warns): the task count is given too.
TWO_BY_TWO = ("--nodes=2", "--ntasks-per-node=2", "--ntasks=4")
# tiny3d (one diffractor), the part of the image around it: a few seconds on 4 ranks.
PSTM = ("--preset", "tiny3d", "--aperture", "250", "--max-angle", "60", "--tmax", "0.6")
GRID = ("--grid", "1,5,44,80")
# Tiles of 4 x 4 bins: each unit's image is computed by one rank alone, so an interrupted
# and resumed job gives the uninterrupted job's image exactly.
TILES = ("--strategy", "tile", "--tile", "4", "--progress-every", "1")


@pytest.fixture(scope="module")
def twonode(tmp_path_factory):
    yield from cluster_fixture(tmp_path_factory, "slurm2", NODES)


def image(path) -> np.ndarray:
    from seis_hpc.io.volume import read_volume

    return read_volume(path).data


def one_rank(survey: Path, out: Path, *args: str) -> Path:
    """The one-rank image of ``survey`` (seis-hpc pstm without MPI or SLURM)."""
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "pstm", str(survey / "shots.sgy"),
                        "--velocity", str(survey / "velocity.csv"), "--out", str(out),
                        "--aperture", "250", "--max-angle", "60", "--tmax", "0.6", *args],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    return out


def placement(log: str) -> dict[str, list[int]]:
    """Ranks by node from the engine's line ``seis-hpc: 4 ranks on 2 nodes: n1 (ranks 0-1),
    n2 (ranks 2-3)`` (the last such line of the log)."""
    lines = [ln for ln in log.splitlines() if re.search(r"seis-hpc: \d+ ranks on \d+ node", ln)]
    assert lines, log
    out = {}
    for node, ranks in re.findall(r"(\S+) \(ranks? ([\d,\-]+)\)", lines[-1]):
        rs = []
        for part in ranks.split(","):
            a, _, b = part.partition("-")
            rs += list(range(int(a), int(b or a) + 1))
        out[node] = rs
    return out


@pytest.fixture(scope="module")
def pstm_job(twonode, tmp_path_factory):
    """``sbatch --nodes=2 --ntasks-per-node=2 jobs/pstm_3d.sh`` on tiny3d, with node-local
    scratch (``%n``), and the one-rank image of the same survey."""
    work = tmp_path_factory.mktemp("twonode pstm")
    out, scratch = work / "result", work / "local %n"
    t0 = time.time()
    # No QC pictures (--qc 0): the single-node test checks them; here they would only add
    # 20 s of plotting on the batch host.
    r, info = twonode.submit_wait("--output=job.log", *TWO_BY_TWO, str(JOBS / "pstm_3d.sh"),
                                  *PSTM, "--qc", "0", "--out", str(out), "--scratch",
                                  str(scratch), "--", *GRID, cwd=work)
    took = time.time() - t0
    log = (work / "job.log").read_text() if (work / "job.log").exists() else ""
    assert info.get("ExitCode") == "0:0", f"{r.stdout}{r.stderr}\n{info}\n{log}"
    ref = one_rank(out / "survey", work / "one_rank.h5", *GRID)
    print(f"two-node pstm_3d job: {took:.1f} s")
    return work, out, log, ref


def test_pstm_job_spans_both_nodes_and_equals_one_rank(pstm_job):
    work, out, log, ref = pstm_job
    # one MPI job of 4 ranks, 2 on each node (not 4 one-rank jobs: the engine refuses those)
    assert "launcher: srun --mpi=pmi2" in log and "MPIR_CVAR_CH4_NETMOD=ofi" in log, log
    assert placement(log) == {"n1": [0, 1], "n2": [2, 3]}, log
    assert "plan:" in log and "static balance on 4 ranks" in log, log
    assert log.count("pstm: wrote") == 1 and "warning" not in log, log
    a, b = image(out / "image.h5"), image(ref)
    assert np.abs(a - b).max() <= 1e-6 * np.abs(b).max()  # float32 rounding of the sums
    assert len(assert_diffractors_exact(out / "image.h5", out / "survey" / "truth.json")) == 1
    # each node's ranks staged their temporaries on that node's scratch, and removed them;
    # the checkpoint was on the shared filesystem (removed after success)
    for n in NODES:
        d = work / f"local {n}"
        assert d.is_dir() and list(d.iterdir()) == [], n
    assert f"per-rank temporary files in {work / 'local %n'}" in log, log
    assert not (out / "image.h5.ckpt").exists()


def test_array_parts_run_on_different_nodes_and_merge(twonode, pstm_job):
    """A rendered two-part array job (one task per part, each with a whole node:
    ``exclusive``) runs on both nodes at once, and its merge job assembles the image of the
    one-rank run."""
    work0, out0, _, ref = pstm_job
    work = work0 / "array"
    work.mkdir()
    q = json.dumps
    (work / "job.toml").write_text(f"""
[cluster]
nodes = 1
tasks_per_node = 1
exclusive = true
time = "00:10:00"
root = {q(str(ROOT))}
log_dir = {q(str(work / "logs"))}
scratch = {q(str(work / "local %n"))}
[job]
name = "parts"
input = {q(str(out0 / "survey" / "shots.sgy"))}
velocity = {q(str(out0 / "survey" / "velocity.csv"))}
out = {q(str(work / "whole.h5"))}
args = ["--aperture", "250", "--max-angle", "60", "--tmax", "0.6"]
[array]
parts = 2
merge_time = "00:05:00"
""")
    # the parts split the whole grid; the reference is the one-rank image of the whole grid
    # (array parts hold the plain sum: a per-part amplitude response would show at the seam)
    whole_ref = one_rank(out0 / "survey", work / "one_rank_whole.h5", "--normalise", "none")
    _, array_id, merge_id = twonode.submit_rendered(work / "job.toml", work)
    nodes = {}
    t0 = time.time()
    while len(nodes) < 2 or any(v in ("", "(null)") for v in nodes.values()):
        for k in range(2):
            nodes[k] = twonode.job(f"{array_id}_{k}").get("BatchHost", "")
        assert time.time() - t0 < 60, nodes
        time.sleep(0.3)
    info = twonode.wait_job(merge_id, timeout=200)
    logs = "\n".join(p.read_text() for p in sorted((work / "logs").glob("*.out")))
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, logs)
    # the two parts ran at the same time, one on each node
    assert sorted(nodes.values()) == ["n1", "n2"], nodes
    whole = image(work / "whole.h5")
    assert np.abs(whole - image(whole_ref)).max() <= 1e-5 * np.abs(image(whole_ref)).max()
    assert len(assert_diffractors_exact(work / "whole.h5", out0 / "survey" / "truth.json")) == 1


# A short marine2d line (48 shots, 1.3 s; its first diffractor at CMP 260, 0.592 s) and a
# one-step conditioning flow: the whole of process_2d in well under a minute.
FLOW_2D = """[flow]
name = "bandpass only"
input = "raw.sgy"
output = "conditioned.sgy"
[[step]]
name = "bandpass"
corners = [2.0, 4.0, 90.0, 110.0]
"""
MIG_2D = ("--aperture", "250", "--tmax", "0.7")


def test_process_2d_spans_both_nodes_and_equals_one_rank(twonode, tmp_path_factory):
    """``jobs/process_2d.sh`` on 2 nodes x 2 ranks: its MPI steps (the conditioning flow and
    the PSTM stack) run as one job on both nodes, and the PSTM stack equals the one-rank
    stack of the same conditioned gathers and picked velocity."""
    from dataclasses import replace

    from seis_hpc import synth

    work = tmp_path_factory.mktemp("twonode 2d")
    p = synth.preset("marine2d")
    p = replace(p, acquisition=replace(p.acquisition, shots_per_line=48, record_length=1.3))
    synth.write_survey(p, work / "line")
    (work / "flow.toml").write_text(FLOW_2D)
    out = work / "out"
    t0 = time.time()
    r, info = twonode.submit_wait("--output=job.log", *TWO_BY_TWO, str(JOBS / "process_2d.sh"),
                                  "--input", str(work / "line" / "shots.sgy"), "--flow",
                                  str(work / "flow.toml"), "--every", "40", "--iterations",
                                  "0", *MIG_2D, "--qc", "0", "--out", str(out), cwd=work,
                                  timeout=400)
    took = time.time() - t0
    log = (work / "job.log").read_text() if (work / "job.log").exists() else ""
    assert info.get("ExitCode") == "0:0", f"{r.stdout}{r.stderr}\n{info}\n{log}"
    print(f"two-node process_2d job: {took:.1f} s")
    # both MPI steps: one job of 4 ranks on both nodes each
    assert log.count("launcher: srun --mpi=pmi2") == 1, log
    lines = [ln for ln in log.splitlines() if "seis-hpc: 4 ranks on 2 nodes" in ln]
    assert len(lines) == 2 and all("n1 (ranks 0-1), n2 (ranks 2-3)" in ln for ln in lines), log
    ref = work / "one_rank.h5"
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "migstack", str(out / "conditioned.sgy"),
                        "--velocity", str(out / "velocity.h5"), "--out", str(ref),
                        "--iterations", "0", *MIG_2D], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    a, b = image(out / "pstm_stack.h5"), image(ref)
    assert np.abs(a - b).max() <= 1e-6 * np.abs(b).max()
    # The diffractor focuses at its CMP. (Its |image| peaks 1.5 samples below t0 on this
    # marine line in the one-rank image too, so the sample is checked against that image.)
    from seis_hpc.io.volume import read_volume

    vol = read_volume(out / "pstm_stack.h5")
    d = json.loads((work / "line" / "truth.json").read_text())["diffractors"][0]
    c, it = int(round(d["crossline"])) - vol.grid.crossline0, int(round(d["t0_s"] / vol.dt))
    win = np.abs(vol.data[c - 6:c + 7, it - 10:it + 11])
    k = np.unravel_index(np.argmax(win), win.shape)
    win_ref = np.abs(b[c - 6:c + 7, it - 10:it + 11])
    assert k[0] == 6 and k == np.unravel_index(np.argmax(win_ref), win_ref.shape), k


def _wait_for(pred, timeout: float, what: str, log: Path | None = None) -> None:
    t0 = time.time()
    while not pred():
        text = log.read_text() if log is not None and log.exists() else ""
        assert time.time() - t0 < timeout, f"{what} not in {timeout} s\n{text}"
        time.sleep(0.2)


def _submit_tiles(twonode, work: Path, out: Path, survey: Path, delay: str) -> str:
    shutil.copytree(survey, out / "survey")
    for p in (out / "survey").glob("*.index.h5"):
        p.unlink()
    r = twonode.run("sbatch", "--parsable", "--output=job.log", *TWO_BY_TWO,
                    str(JOBS / "pstm_3d.sh"), *PSTM, "--qc", "0", "--out", str(out), "--", *GRID,
                    *TILES,
                    cwd=work, env={"SEIS_HPC_UNIT_DELAY": delay})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


@pytest.fixture(scope="module")
def tile_reference(pstm_job, tmp_path_factory):
    """The uninterrupted image of the tiled job (one rank: a tile's image does not depend on
    the rank or node that computes it)."""
    work, out, _, _ = pstm_job
    return one_rank(out / "survey", tmp_path_factory.mktemp("tile ref") / "ref.h5", *GRID,
                    *TILES)


def test_node_failure_requeues_and_resumes_to_the_same_image(twonode, pstm_job,
                                                             tile_reference, tmp_path_factory):
    """n2 dies mid-job (its slurmd, step daemon and ranks SIGKILLed; the node marked down, as
    a health check does): the job ends in seconds and is requeued; when n2 is back the job
    resumes from the checkpoint the ranks of both nodes wrote on the shared filesystem and
    writes exactly the uninterrupted image."""
    work = tmp_path_factory.mktemp("node failure")
    out = work / "result"
    job_id = _submit_tiles(twonode, work, out, pstm_job[1] / "survey", "0.3")
    ckpt, log = out / "image.h5.ckpt", work / "job.log"
    _wait_for(lambda: len(list(ckpt.glob("tile-*.h5"))) >= 6, 120, "6 tiles", log)
    assert twonode.job(job_id)["JobState"] == "RUNNING"
    killed = twonode.kill_node("n2")
    t_kill = time.time()
    assert len(killed) >= 3  # slurmd, slurmstepd, the ranks: all of n2's processes
    r = twonode.run("scontrol", "update", "nodename=n2", "state=down", "reason=test_failure",
                    cwd=work)
    assert r.returncode == 0, r.stderr
    # the job ends and goes back to the queue within seconds: pending, n2 being down
    def requeued() -> bool:
        info = twonode.job(job_id)
        return info.get("Restarts") == "1" and info.get("JobState") == "PENDING"

    _wait_for(requeued, 30, "requeue", log)
    ended = time.time() - t_kill
    done_before = len(list(ckpt.glob("tile-*.h5")))
    assert done_before >= 6
    # n2 comes back: the requeued job starts on both nodes and resumes
    twonode.start_node("n2")
    twonode.run("scontrol", "update", "nodename=n2", "state=resume", cwd=work)
    info = twonode.wait_job(job_id, timeout=200)
    text = log.read_text()
    print(f"node failure: job requeued {ended:.1f} s after n2 died; {done_before} tiles kept")
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, text)
    assert info.get("Restarts") == "1", info
    m = re.findall(r"resuming from .*: (\d+) of (\d+) units done", text)
    assert m and int(m[-1][0]) >= 6, text
    assert placement(text) == {"n1": [0, 1], "n2": [2, 3]}, text
    assert np.array_equal(image(out / "image.h5"), image(tile_reference))
    assert len(assert_diffractors_exact(out / "image.h5", out / "survey" / "truth.json")) == 1
    assert twonode.all_idle() or twonode.node_states()


def test_usr1_warning_reaches_ranks_on_both_nodes(twonode, pstm_job, tile_reference,
                                                  tmp_path_factory):
    """SIGUSR1 to the batch shell (--signal=B:USR1@120 before the time limit): srun passes it
    to every rank on both nodes; they checkpoint, the job requeues and resumes to the same
    image."""
    work = tmp_path_factory.mktemp("usr1")
    out = work / "result"
    job_id = _submit_tiles(twonode, work, out, pstm_job[1] / "survey", "0.3")
    ckpt, log = out / "image.h5.ckpt", work / "job.log"
    _wait_for(lambda: len(list(ckpt.glob("tile-*.h5"))) >= 4, 120, "4 tiles", log)
    r = twonode.run("scancel", "--batch", "--signal=USR1", job_id, cwd=work)
    assert r.returncode == 0, r.stderr
    info = twonode.wait_job(job_id, timeout=200)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED" and info.get("Restarts") == "1", (info, text)
    got = set(re.findall(r"pstm: rank (\d+) on (\S+) got SIGUSR1", text))
    assert got == {("0", "n1"), ("1", "n1"), ("2", "n2"), ("3", "n2")}, text
    assert "requeueing job" in text and "resuming from" in text, text
    assert np.array_equal(image(out / "image.h5"), image(tile_reference))


# -- GPU jobs: a fake gres of two GPUs per node ------------------------------------------------
@pytest.fixture(scope="module")
def gpu_nodes(tmp_path_factory):
    """A second two-node cluster whose nodes declare ``Gres=gpu:h100:2`` on device files made
    with mknod (no driver: slurmd only needs the files to exist)."""
    d = tmp_path_factory.mktemp("fakegpus")  # gres.conf reads no spaces
    conf = []
    for n in NODES:
        for k in range(2):
            dev = d / f"{n}-nvidia{k}"
            os.mknod(dev, 0o600 | stat.S_IFCHR, os.makedev(195, k))
        conf.append(f"NodeName={n} Name=gpu Type=h100 File={d}/{n}-nvidia[0-1]")
    yield from cluster_fixture(tmp_path_factory, "slurm-gpu", NODES, gres="gpu:h100:2",
                               gres_conf="\n".join(conf) + "\n")


def test_rendered_gpu_job_binds_one_gpu_per_task_on_each_node(gpu_nodes, tmp_path):
    """The script rendered for 2 nodes x 2 ranks with ``gpus_per_task = 1``, run by sbatch:
    each of the 4 tasks sees exactly one GPU, the two ranks of a node different ones. The
    step is the rendered one, run by a stand-in for the venv's python that prints what the
    task sees instead of migrating (there is no GPU here)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "python"
    fake.write_text(f"""#!/bin/bash
if [ "$1 $2 $3" = "-m seis_hpc pstm" ]; then
    echo "task $SLURM_PROCID node $SLURMD_NODENAME local $SLURM_LOCALID" \\
        "gpus ${{CUDA_VISIBLE_DEVICES-unset}} args $*"
    exit 0
fi
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    q = json.dumps
    (tmp_path / "job.toml").write_text(f"""
[cluster]
nodes = 2
tasks_per_node = 2
time = "00:05:00"
gpus_per_task = 1
gpu_type = "h100"
root = {q(str(ROOT))}
venv = {q(str(venv))}
log_dir = {q(str(tmp_path))}
[job]
name = "gpu2x2"
backend = "gpu"
input = "/data/shots.sgy"
velocity = "/data/v.h5"
out = "/data/image.h5"
""")
    r = gpu_nodes.run(sys.executable, "-m", "seis_hpc", "slurm", "render", "--config",
                      str(tmp_path / "job.toml"), "--out", str(tmp_path / "job.sh"),
                      cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    script = (tmp_path / "job.sh").read_text()
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=2", "#SBATCH --ntasks=4",
                 "#SBATCH --gpus-per-task=h100:1", "#SBATCH --gpu-bind=per_task:1"):
        assert line in script.splitlines(), (line, script)
    r, info = gpu_nodes.submit_wait(str(tmp_path / "job.sh"), cwd=tmp_path, timeout=120)
    logs = "\n".join(p.read_text() for p in tmp_path.glob("gpu2x2-*.out"))
    assert info.get("ExitCode") == "0:0", (r.stderr, info, logs)
    tasks = re.findall(r"task (\d) node (\S+) local (\d) gpus (\S+) args", logs)
    assert len(tasks) == 4, logs
    by_node: dict[str, list[str]] = {}
    for task, node, _, gpus in tasks:
        assert gpus in ("0", "1"), (task, gpus, logs)  # one GPU, not both, not none
        by_node.setdefault(node, []).append(gpus)
    assert {n: sorted(g) for n, g in by_node.items()} == {"n1": ["0", "1"], "n2": ["0", "1"]}
    assert "--backend gpu" in logs

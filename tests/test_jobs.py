"""The job scripts of jobs/ without SLURM: syntax, #SBATCH headers, options and environment,
launcher choice, quoting (no path or value can inject shell), and a real run of
``bash jobs/pstm_3d.sh`` on the tiny synthetic survey that is stopped by SIGUSR1 (checkpoint,
exit 75) and resumed to an image with the diffractor where the truth says."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _truth import assert_diffractors_exact

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
JOBS = ["pstm_3d", "pstm_2d", "process_2d", "velan", "bench"]
# Spaces, quotes, ';', '&', '|' and both kinds of command substitution.
NASTY = "o u t $(touch PWNED); `touch PWNED2` 'q' \"d\" & | x"


def script(name: str) -> Path:
    return ROOT / "jobs" / f"{name}.sh"


def run(name: str, *args, env=None, cwd=None, timeout=60):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SEIS_HPC_"))}
    e.update(env or {})
    return subprocess.run(["bash", str(script(name)), *map(str, args)], capture_output=True,
                          text=True, env=e, cwd=cwd, timeout=timeout)


def dry(name: str, *args, env=None, cwd=None) -> list[list[str]]:
    """The commands the script would run, each as its argv (SEIS_HPC_DRY_RUN=1)."""
    r = run(name, *args, env={"SEIS_HPC_DRY_RUN": "1", **(env or {})}, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return [shlex.split(line) for line in r.stdout.splitlines() if line.strip()]


def sub(argv: list[str], command: str) -> list[str]:
    """The arguments after ``-m seis_hpc COMMAND`` (or after a script path)."""
    for i, a in enumerate(argv):
        if a == command and i > 0 and (argv[i - 1] == "seis_hpc" or "/" in command):
            return argv[i + 1:]
    raise AssertionError(f"{command} not in {argv}")


def find(cmds: list[list[str]], command: str) -> list[str]:
    for argv in cmds:
        if command in argv:
            return argv
    raise AssertionError(f"no {command} step in {cmds}")


@pytest.mark.parametrize("name", JOBS + ["lib"])
def test_bash_syntax(name):
    r = subprocess.run(["bash", "-n", str(script(name))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", JOBS)
def test_sbatch_header(name):
    lines = script(name).read_text().splitlines()
    assert lines[0] == "#!/bin/bash"
    # sbatch reads #SBATCH lines only before the first command.
    first_cmd = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    opts = {}
    for i, ln in enumerate(lines):
        if ln.startswith("#SBATCH"):
            assert i < first_cmd, ln
            k, _, v = ln.split(None, 1)[1].partition("=")
            opts[k] = v
    assert opts["--job-name"] == name and opts["--output"] == f"{name}-%j.out"
    assert int(opts["--nodes"]) >= 1 and int(opts["--ntasks"]) >= 1
    assert re.fullmatch(r"\d\d:\d\d:\d\d", opts["--time"])
    assert opts["--signal"] == "B:USR1@120" and "--requeue" in opts
    assert opts["--open-mode"] == "append"  # a requeued job keeps the first run's log
    assert os.access(script(name), os.X_OK)


def _bootstrap(name: str) -> str:
    text = script(name).read_text()
    a = text.index("# sbatch runs a copy")
    return text[a:text.index('. "$_lib"\n', a)]


def test_every_job_finds_lib_the_same_way():
    ref = _bootstrap(JOBS[0])
    for name in JOBS[1:]:
        assert _bootstrap(name) == ref, name


@pytest.mark.parametrize("name", JOBS)
def test_help(name):
    r = run(name, "--help")
    assert r.returncode == 0 and "Options" in r.stdout and "#SBATCH" not in r.stdout


@pytest.mark.parametrize("name", JOBS)
def test_unknown_argument_is_one_line_error(name):
    r = run(name, "--bogus", "1", env={"SEIS_HPC_DRY_RUN": "1"})
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "unknown argument: --bogus" in r.stderr


@pytest.mark.parametrize("name,steps", [
    ("pstm_3d", ["synth", "index", "pstm"]),
    ("pstm_2d", ["synth", "index", "pstm"]),
    ("velan", ["synth", "index", "velan", "qc"]),
    ("process_2d", ["synth", "index", "run", "velan", "stack", "migstack", "qc"]),
])
def test_nasty_output_path_stays_one_argument(tmp_path, name, steps):
    out = tmp_path / NASTY
    cmds = dry(name, "--out", out, env={"SEIS_HPC_RANKS": "2"}, cwd=tmp_path)
    assert [c for c in steps if not any(c in argv for argv in cmds)] == []
    survey = str(out / "survey")
    synth = sub(find(cmds, "synth"), "synth")
    assert synth[synth.index("--out") + 1] == survey
    indexed = str(out / "conditioned.sgy") if name == "process_2d" else survey + "/shots.sgy"
    assert sub(find(cmds, "index"), "index") == [indexed]
    last = sub(find(cmds, steps[2]), steps[2])
    if name == "process_2d":  # the conditioning flow comes first; then its output is used
        runs = [argv for argv in cmds if "run" in argv]
        assert last == sub(runs[0], "run") == ["--check", str(out / "flow.toml")]
        assert sub(runs[1], "run") == [str(out / "flow.toml")]
        assert runs[1][0].endswith("mpiexec")  # validated serially, run under the launcher
        assert sub(find(cmds, "velan"), "velan")[0] == str(out / "conditioned.sgy")
    else:
        assert last[0] == survey + "/shots.sgy"
    assert any(a.startswith(str(out) + "/") for a in last[1:])
    assert not list(tmp_path.rglob("PWNED*"))


def test_options_override_environment(tmp_path):
    env = {"SEIS_HPC_APERTURE": "123", "SEIS_HPC_TMAX": "0.7", "SEIS_HPC_OUT": str(tmp_path / "e"),
           "SEIS_HPC_INPUT": str(tmp_path / "in put.sgy"), "SEIS_HPC_VELOCITY": "v.csv"}
    p = sub(find(dry("pstm_3d", env=env), "pstm"), "pstm")
    assert p[0] == str(tmp_path / "in put.sgy")
    assert p[p.index("--aperture") + 1] == "123" and p[p.index("--tmax") + 1] == "0.7"
    assert p[p.index("--out") + 1] == str(tmp_path / "e" / "image.h5")
    p = sub(find(dry("pstm_3d", "--aperture", "456", "--out", tmp_path / "o", "--max-angle=45",
                     "--", "--gathers", "--offset-classes", "0,100,300", env=env), "pstm"),
            "pstm")
    assert p[p.index("--aperture") + 1] == "456" and p[p.index("--max-angle") + 1] == "45"
    assert p[p.index("--out") + 1] == str(tmp_path / "o" / "image.h5")
    assert p[-3:] == ["--gathers", "--offset-classes", "0,100,300"]  # passed through as is
    # A user survey without a velocity is refused before anything runs.
    r = run("pstm_3d", "--input", tmp_path / "a.sgy", "--out", tmp_path / "x",
            env={"SEIS_HPC_DRY_RUN": "1"})
    assert r.returncode == 2 and "no velocity" in r.stderr


def _fake(tmp_path: Path, name: str) -> Path:
    b = tmp_path / "bin"
    b.mkdir(exist_ok=True)
    (b / name).write_text("#!/bin/sh\nexit 0\n")
    (b / name).chmod(0o755)
    return b


def test_launcher_choice(tmp_path):
    out = ["--out", tmp_path / "o"]
    cores = int(subprocess.run(["env", "-u", "OMP_NUM_THREADS", "nproc"], capture_output=True,
                               text=True).stdout)
    argv = find(dry("pstm_3d", *out), "pstm")
    assert argv[0] == str(ROOT / ".venv" / "bin" / "mpiexec") and argv[1:3] == ["-n", str(cores)]
    argv = find(dry("pstm_3d", *out, "--ranks", "3", env={"OMP_NUM_THREADS": "1"}), "pstm")
    assert argv[1:3] == ["-n", "3"]
    argv = find(dry("pstm_3d", *out, env={"SEIS_HPC_LAUNCHER": "none"}), "pstm")
    assert argv[0] == str(ROOT / ".venv" / "bin" / "python")
    # Inside a SLURM allocation: srun with PMI-2 (the MPICH wheel), or the plugin asked for.
    path = f"{_fake(tmp_path, 'srun')}:{os.environ['PATH']}"
    slurm = {"PATH": path, "SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}
    argv = find(dry("pstm_3d", *out, env=slurm), "pstm")
    assert argv[:2] == ["srun", "--mpi=pmi2"] and argv[2].endswith("python")
    argv = find(dry("pstm_3d", *out, env={**slurm, "SEIS_HPC_SRUN_MPI": "pmix"}), "pstm")
    assert argv[:2] == ["srun", "--mpi=pmix"]
    # Under pmi2, MPICH's OFI netmod (UCX's business cards can overflow srun's 1,023-byte
    # PMI-1 reads and hang MPI_Init), unless the user chose one; not for other plugins.
    dry_run = {**slurm, "SEIS_HPC_DRY_RUN": "1"}
    r = run("pstm_3d", *out, env=dry_run)
    assert r.returncode == 0 and "MPIR_CVAR_CH4_NETMOD=ofi" in r.stderr, r.stderr
    r = run("pstm_3d", *out, env={**dry_run, "MPIR_CVAR_CH4_NETMOD": "ucx"})
    assert "MPIR_CVAR_CH4_NETMOD=ucx" in r.stderr and "=ofi" not in r.stderr, r.stderr
    r = run("pstm_3d", *out, env={**dry_run, "SEIS_HPC_SRUN_MPI": "pmix"})
    assert "MPIR_CVAR_CH4_NETMOD" not in r.stderr, r.stderr
    # A job name is only ever printed: sbatch -J '$(touch PWNED); x' runs nothing.
    name = "$(touch PWNED); `touch PWNED2`"
    r = run("pstm_3d", *out, cwd=tmp_path,
            env={**slurm, "SEIS_HPC_DRY_RUN": "1", "SLURM_JOB_NAME": name})
    assert r.returncode == 0 and f"({name})" in r.stderr
    assert not list(tmp_path.rglob("PWNED*"))
    argv = find(dry("pstm_3d", *out, env={**slurm, "SEIS_HPC_SRUN_MPI": ""}), "pstm")
    assert argv[0] == "srun" and argv[1].endswith("python")
    r = run("pstm_3d", *out, env={"SEIS_HPC_DRY_RUN": "1", "SEIS_HPC_LAUNCHER": "srun;ls"})
    assert r.returncode == 2 and "SEIS_HPC_LAUNCHER must be" in r.stderr
    r = run("pstm_3d", *out, env={"SEIS_HPC_DRY_RUN": "1", "SEIS_HPC_RANKS": "2; ls"})
    assert r.returncode == 2 and "positive integer" in r.stderr


def test_installation_found_by_venv_or_path(tmp_path):
    r = run("pstm_3d", "--out", tmp_path / "o", env={
        "SEIS_HPC_DRY_RUN": "1", "SEIS_HPC_VENV": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "no seis_hpc installation" in r.stderr
    # seis-hpc on PATH (an installed package): used, and its interpreter runs the QC step.
    cmds = dry("pstm_3d", "--out", tmp_path / "o", env={
        "SEIS_HPC_VENV": str(tmp_path / "none"), "SEIS_HPC_LAUNCHER": "none",
        "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin"})
    assert find(cmds, "pstm")[0] == str(ROOT / ".venv" / "bin" / "seis-hpc")


def test_bench_rank_list(tmp_path):
    for ranks, want in (("1", "1"), ("2", "1,2"), ("6", "1,2,4,6"), ("8", "1,2,4,8")):
        cmds = dry("bench", "--out", tmp_path, env={"SEIS_HPC_RANKS": ranks})
        argv = find(cmds, str(ROOT / "benchmarks" / "bench_scaling.py"))
        assert argv[argv.index("--ranks") + 1] == want
        assert sub(find(cmds, "bench"), "bench")[:2] == ["--repeat", "3"]


def test_bash_pstm_3d_checkpoints_on_usr1_and_resumes(tmp_path):
    """No SLURM: mpiexec -n 2; SIGUSR1 to the script reaches the ranks through mpiexec, they
    checkpoint and the script exits 75; running it again resumes and writes the image."""
    out = tmp_path / NASTY
    args = ["bash", str(script("pstm_3d")), "--preset", "tiny3d", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SEIS_HPC_"))}
    env.update(SEIS_HPC_RANKS="2", OMP_NUM_THREADS="1")
    p = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env={**env, "SEIS_HPC_UNIT_DELAY": "0.2"})
    ckpt = out / "image.h5.ckpt"
    t0 = time.time()
    while not (ckpt / "job.json").exists():
        assert p.poll() is None, p.communicate()[0]
        assert time.time() - t0 < 120, "no checkpoint appeared"
        time.sleep(0.1)
    time.sleep(1.0)
    p.send_signal(signal.SIGUSR1)  # to the batch shell only, as --signal=B:USR1 does
    log = p.communicate(timeout=60)[0]
    assert p.returncode == 75, log
    assert "got SIGUSR1" in log and "stopped by signal" in log and "requeue" not in log
    assert list(ckpt.glob("rank-*.h5")) and not (out / "image.h5").exists()
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "synthetic survey already in" in r.stderr and "resuming from" in r.stderr
    truth = json.loads((out / "survey" / "truth.json").read_text())
    assert_diffractors_exact(out / "image.h5", truth)  # the exact position and sample
    # Pictures through the diffractor (inline and time slice) and of the input.
    d = truth["diffractors"][0]
    for pattern in (f"image_image_inline_{int(round(d['inline']))}.png",
                    f"image_image_slice_{d['t0_s']:.3f}s.png", "shots_fold.png",
                    "shots_shot_*.png"):
        found = list((out / "qc").glob(pattern))
        assert found and all(f.stat().st_size > 10_000 for f in found), pattern
    assert "qc: diffractor at inline" in r.stderr
    assert not list(tmp_path.rglob("PWNED*"))


def test_flow_copy_takes_the_jobs_paths(tmp_path):
    """process_2d runs the conditioning flow on its own input: the copy of the flow file has
    the job's input, output and workdir, the same steps, edit reports in the workdir."""
    from seis_hpc.flows.flowfile import load_flow

    src = ROOT / "flows" / "marine2d.toml"
    inp = tmp_path / NASTY / "raw.sgy"
    inp.parent.mkdir()
    inp.write_bytes(b"")
    dest = tmp_path / "flow.toml"
    r = subprocess.run(["bash", "-c", 'set -eu; . "$1"; seis_init t; shift; seis_flow_copy "$@"',
                        "-", str(script("lib")), str(src), str(inp), str(tmp_path / "c.sgy"),
                        str(tmp_path / "w"), str(dest)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    flow, orig = load_flow(dest), tomllib.loads(src.read_text())
    assert Path(flow.input) == inp and Path(flow.output) == tmp_path / "c.sgy"
    assert Path(flow.workdir) == tmp_path / "w"
    assert [spec.name for spec, _ in flow.steps] == [s["name"] for s in orig["step"]]
    copied = tomllib.loads(dest.read_text())["step"]
    for mine, theirs in zip(copied, orig["step"], strict=True):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            if key == "report":
                assert Path(mine[key]) == tmp_path / "w" / Path(value).name
            else:
                assert mine[key] == value

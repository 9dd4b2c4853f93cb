"""``seis-hpc slurm render``: sbatch scripts from job.toml, quoting, arrays with a merge job;
``slurm part`` ranges and ``slurm merge`` of part images."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from _truth import assert_diffractors_exact

from seis_hpc.cluster.slurm import load_config, merge_parts, part_grid, part_ranges, render
from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.io.volume import Volume, read_volume, write_volume

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "slurm" / "configs"
NASTY = "data $(touch PWNED); `touch PWNED2` 'q' \"d\" & x"


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "seis_hpc", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


def sbatch_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH "):
            opt = line.split(None, 1)[1]
            key, _, val = opt.partition("=")
            out[key] = val
    return out


def bash_n(text: str, tmp_path: Path) -> None:
    p = tmp_path / "check.sh"
    p.write_text(text)
    r = subprocess.run(["bash", "-n", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def q(value) -> str:
    """A TOML basic string."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_small_cluster_config(tmp_path):
    text = render(load_config(CONFIGS / "small.toml"))
    s = sbatch_lines(text)
    assert s["--partition"] == "debug" and s["--nodes"] == "1"
    assert s["--ntasks-per-node"] == "8" and s["--cpus-per-task"] == "1"
    assert s["--mem"] == "32G" and s["--time"] == "04:00:00"
    assert s["--job-name"] == "line1_pstm" and s["--output"] == '"logs/line1_pstm-%j.out"'
    assert s["--signal"] == "B:USR1@120" and "--requeue" in s and "--array" not in s
    assert "export SEIS_HPC_LAUNCHER=srun" in text and "export SEIS_HPC_SRUN_MPI=pmi2" in text
    assert "module load" not in text
    bash_n(text, tmp_path)


def test_large_cluster_config_is_an_array_with_dependent_merge(tmp_path):
    text = render(load_config(CONFIGS / "large.toml"))
    bash_n(text, tmp_path)
    # Two sbatch scripts inside the submit script: the array, then the merge.
    array, merge = text.split("<<'SEIS_HPC_JOB_SCRIPT'\n")[1:]
    array = array.split("\nSEIS_HPC_JOB_SCRIPT\n")[0]
    merge = merge.split("\nSEIS_HPC_JOB_SCRIPT\n")[0]
    a, m = sbatch_lines(array), sbatch_lines(merge)
    assert a["--array"] == "0-7%4" and a["--account"] == "geo0042" and a["--qos"] == "normal"
    assert a["--nodes"] == "8" and a["--ntasks-per-node"] == "56" and "--exclusive" in a
    assert a["--signal"] == "B:USR1@120" and "--requeue" in a
    assert m["--nodes"] == "1" and m["--time"] == "02:00:00" and "--array" not in m
    assert "--dependency=afterok:\"$array_id\"" in text
    assert text.index("sbatch --parsable \"$@\" <<") < text.index("--dependency=afterok:\"")
    loads = [ln for ln in array.splitlines() if ln.startswith("module load")]
    assert loads == ["module load gcc/12.2.0", "module load openmpi/4.1.5",
                     "module load hdf5/1.14.1", "module load python/3.11"]
    assert "export SEIS_HPC_SRUN_MPI=pmix" in array
    for part in (array, merge):
        bash_n(part, tmp_path)
    assert "slurm merge" in merge and "image.part007.h5" in merge


def _fake_bin(tmp_path: Path) -> Path:
    """A fake sbatch that records each call's argv and script, and answers a job id."""
    b = tmp_path / "bin"
    b.mkdir()
    (b / "sbatch").write_text(
        "#!/bin/bash\n"
        'n=$(( $(ls "$FAKE_LOG" | wc -l) / 2 ))\n'
        'printf "%s\\n" "$@" > "$FAKE_LOG/call$n.args"\n'
        'cat > "$FAKE_LOG/call$n.script"\n'
        'echo "$((100 + n));cluster"\n')
    (b / "sbatch").chmod(0o755)
    return b


def test_array_submit_script_submits_merge_after_array(tmp_path):
    cfg = write_toml(tmp_path / "job.toml", f"""
[cluster]
root = {q(ROOT)}
[job]
name = "t"
input = {q(str(tmp_path / NASTY) + '.sgy')}
velocity = "v.csv"
out = "out/img.h5"
[array]
parts = 3
""")
    out = tmp_path / "submit.sh"
    r = cli("slurm", "render", "--config", cfg, "--out", out)
    assert r.returncode == 0, r.stderr
    log = tmp_path / "calls"
    log.mkdir()
    env = {"PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}", "FAKE_LOG": str(log)}
    r = subprocess.run(["bash", str(out), "--mail-type=END"], capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    a0 = (log / "call0.args").read_text().split("\n")[:-1]
    a1 = (log / "call1.args").read_text().split("\n")[:-1]
    assert a0 == ["--parsable", "--mail-type=END"]
    assert a1 == ["--parsable", "--dependency=afterok:100", "--mail-type=END"]
    assert sbatch_lines((log / "call0.script").read_text())["--array"] == "0-2"
    assert "slurm merge" in (log / "call1.script").read_text()
    assert "submitted merge job 101 (after 100)" in r.stdout
    assert not list(tmp_path.rglob("PWNED*"))


def test_rendered_job_passes_paths_as_single_words(tmp_path):
    """The rendered script, run with SEIS_HPC_DRY_RUN=1, shows the exact argv it would run:
    a path with spaces, quotes, ';', '&' and command substitutions is one argument."""
    src = str(tmp_path / NASTY) + ".sgy"
    extra = ["--tmax", "1.0", "--checkpoint-dir", str(tmp_path / "ck $(touch PWNED3)")]
    cfg = write_toml(tmp_path / "job.toml", f"""
[cluster]
root = {q(ROOT)}
launcher = "mpiexec"
env = {{ MY_VAR = "a b $(touch PWNED4)" }}
[job]
name = "nasty"
input = {q(src)}
velocity = {q(tmp_path / "v ;x.csv")}
out = {q(tmp_path / "o u t.h5")}
args = [{", ".join(q(a) for a in extra)}]
""")
    r = cli("slurm", "render", "--config", cfg, "--out", tmp_path / "job.sh")
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["bash", str(tmp_path / "job.sh")], capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, "SEIS_HPC_DRY_RUN": "1",
                                          "SEIS_HPC_RANKS": "3"})
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout.strip().splitlines()[-1])
    i = argv.index("pstm")
    assert argv[1:3] == ["-n", "3"] and argv[0].endswith("mpiexec")
    assert argv[i + 1:] == [src, "--velocity", str(tmp_path / "v ;x.csv"),
                            "--out", str(tmp_path / "o u t.h5"), *extra]
    assert not list(tmp_path.rglob("PWNED*"))


@pytest.mark.parametrize("table,key,value,word", [
    ("job", "name", '"a$(touch PWNED)"', "job.name"),
    ("job", "name", '"two\\nlines"', "job.name"),
    ("job", "input", '"a\\nsbatch evil.sh"', "control characters"),
    ("cluster", "partition", '"p;rm -rf /"', "cluster.partition"),
    ("cluster", "modules", '["gcc; touch PWNED"]', "cluster.modules"),
    ("cluster", "launcher", '"mpirun"', "cluster.launcher"),
    ("cluster", "mpi", '"none"', "cluster.mpi"),
    ("cluster", "nodes", "0", "cluster.nodes"),
    ("cluster", "time", '"1 day"', "cluster.time"),
    ("cluster", "memory", '"lots"', "cluster.memory"),
    ("cluster", "colour", '"blue"', "unknown key 'colour'"),
    ("cluster", "env", '{ "A B" = "x" }', "cluster.env"),
])
def test_bad_config_is_one_line_error_and_no_script(tmp_path, table, key, value, word):
    body = {"cluster": {}, "job": {"name": '"ok"', "input": '"in.sgy"', "out": '"o.h5"'}}
    body[table][key] = value
    text = "\n".join(f"[{t}]\n" + "\n".join(f"{k} = {v}" for k, v in kv.items())
                     for t, kv in body.items())
    cfg = write_toml(tmp_path / "job.toml", text)
    out = tmp_path / "job.sh"
    r = cli("slurm", "render", "--config", cfg, "--out", out)
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1 and word in r.stderr and "job.toml" in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and not list(tmp_path.rglob("PWNED*"))


def test_not_toml_and_missing_tables(tmp_path):
    with pytest.raises(SeisError, match="not valid TOML"):
        load_config(write_toml(tmp_path / "a.toml", "[job\n"))
    with pytest.raises(SeisError, match=r"no \[job\] table"):
        load_config(write_toml(tmp_path / "b.toml", "[cluster]\nnodes = 2\n"))
    with pytest.raises(SeisError, match="needs 'out'"):
        load_config(write_toml(tmp_path / "c.toml", '[job]\nname = "a"\ninput = "b"\n'))


@pytest.mark.parametrize("count,parts", [(10, 3), (7, 7), (3, 5), (100, 8), (1, 1)])
def test_part_ranges_cover_every_line_once(count, parts):
    r = part_ranges(5, count, parts)
    lines = [i for lo, hi in r for i in range(lo, hi + 1)]
    assert lines == list(range(5, 5 + count))
    sizes = [hi - lo + 1 for lo, hi in r]
    assert max(sizes) - min(sizes) <= 1 and len(r) == min(count, parts)


def test_part_grid_3d_and_2d():
    g3 = BinGrid(0.0, 0.0, 30.0, 12.5, 25.0, 101, 2001, 10, 40)
    assert part_grid(g3, 3, 0) == [101, 103, 2001, 2040]
    assert part_grid(g3, 3, 1) == [104, 107, 2001, 2040]  # 10 inlines: 3, 4, 3
    assert part_grid(g3, 3, 2) == [108, 110, 2001, 2040]
    g2 = BinGrid(0.0, 0.0, 0.0, 6.25, 6.25, 1, 500, 1, 9, is_2d=True)
    assert part_grid(g2, 2, 1) == [504, 508]  # 9 CMPs: 4, 5
    with pytest.raises(SeisError, match="--task"):
        part_grid(g3, 3, 3)


def _sub(g: BinGrid, i0, n_i, j0=None, n_j=None) -> BinGrid:
    j0 = g.crossline0 if j0 is None else j0
    n_j = g.n_crossline if n_j is None else n_j
    x, y = g.grid_to_world(i0, j0)
    return BinGrid(float(x), float(y), g.azimuth, g.bin_inline, g.bin_crossline, i0, j0,
                   n_i, n_j, g.handedness, g.is_2d)


def test_merge_parts_rebuilds_the_whole_image(tmp_path):
    rng = np.random.default_rng(3)
    g = BinGrid(500.0, 800.0, 30.0, 12.5, 25.0, 11, 101, 7, 5)
    t = np.arange(20) * 0.004
    data = rng.standard_normal((7, 5, 20)).astype(np.float32)
    paths = []
    for k, (lo, hi) in enumerate(part_ranges(11, 7, 3)):
        sub = _sub(g, lo, hi - lo + 1)
        p = tmp_path / f"img.part{k:03d}.h5"
        write_volume(p, Volume(data[lo - 11:hi - 11 + 1], sub, t))
        paths.append(str(p))
    out = tmp_path / "img.h5"
    r = cli("slurm", "merge", *reversed(paths), "--out", out)  # any order
    assert r.returncode == 0, r.stderr
    vol = read_volume(out)
    assert np.array_equal(vol.data, data)
    assert vol.grid.inline0 == 11 and vol.grid.n_inline == 7
    assert np.allclose(vol.grid.cdp_xy()[0], g.cdp_xy()[0])
    assert np.allclose(vol.grid.cdp_xy()[1], g.cdp_xy()[1])
    # A gap between parts is refused, nothing written.
    out2 = tmp_path / "gap.h5"
    r = cli("slurm", "merge", paths[0], paths[2], "--out", out2)
    assert r.returncode == 2 and "gap or overlap" in r.stderr and not out2.exists()


def test_merge_of_2d_parts_keeps_the_line_shotpoints(tmp_path):
    """Parts of a 2D line each hold the SP of their own CMPs; the merged line holds them all,
    in CMP order (SEG-Y bytes 197-200 of the deliverable); a part without SPs drops them."""
    from seis_hpc.io.volume import read_shotpoint

    g = BinGrid.line(1000.0, 2000.0, 30.0, 6.25, 101, 9)
    t = np.arange(12) * 0.004
    data = np.random.default_rng(4).standard_normal((9, 12)).astype(np.float32)
    sp = 500 + np.arange(9) // 2  # two CMPs per shot point
    attrs = {"source": "ShotPoint", "method": "interpolated", "n_sources": 5,
             "units": "shot-point number"}
    paths = []
    for k, (a, b) in enumerate([(0, 3), (3, 7), (7, 9)]):
        p = tmp_path / f"line.part{k:03d}.h5"
        write_volume(p, Volume(data[a:b], _sub(g, 0, 1, 101 + a, b - a), t,
                               shotpoint=sp[a:b], shotpoint_attrs=attrs))
        paths.append(str(p))
    merge_parts(list(reversed(paths)), str(tmp_path / "line.h5"))
    with h5py.File(tmp_path / "line.h5", "r") as f:
        got, got_attrs = read_shotpoint(f)
        assert np.array_equal(f["image"][...].reshape(data.shape), data)
    assert np.array_equal(got, sp) and got_attrs["source"] == "ShotPoint"
    write_volume(paths[1], Volume(data[3:7], _sub(g, 0, 1, 104, 4), t))  # no SPs
    merge_parts(paths, str(tmp_path / "line2.h5"))
    with h5py.File(tmp_path / "line2.h5", "r") as f:
        assert read_shotpoint(f) == (None, {})


def test_merge_refuses_parts_of_other_grids(tmp_path):
    t = np.arange(10) * 0.004
    g = BinGrid(0.0, 0.0, 0.0, 12.5, 25.0, 1, 1, 4, 3)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_volume(a, Volume(np.zeros((2, 3, 10), np.float32), _sub(g, 1, 2), t))
    write_volume(b, Volume(np.zeros((2, 2, 10), np.float32), _sub(g, 3, 2, 1, 2), t))
    with pytest.raises(SeisError, match="other crosslines"):
        merge_parts([str(a), str(b)], str(tmp_path / "m.h5"))
    write_volume(b, Volume(np.zeros((2, 3, 12), np.float32), _sub(g, 3, 2),
                           np.arange(12) * 0.004))
    with pytest.raises(SeisError, match="time axis"):
        merge_parts([str(a), str(b)], str(tmp_path / "m.h5"))


def test_site_templates_and_unknown_placeholder(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    for f in (ROOT / "slurm" / "templates").iterdir():
        (site / f.name).write_text(f.read_text())
    job = site / "job.sbatch"
    job.write_text(job.read_text().replace("set -euo pipefail",
                                           "set -euo pipefail\necho 'site hook for {{name}}'"))
    body = (f"[cluster]\nroot = {q(ROOT)}\ntemplates = {q(site)}\n"
            '[job]\nname = "j1"\ninput = "a.sgy"\nout = "o.h5"\n')
    text = render(load_config(write_toml(tmp_path / "job.toml", body)))
    assert "echo 'site hook for j1'" in text
    bash_n(text, tmp_path)
    job.write_text(job.read_text() + "# {{bogus}}\n")
    with pytest.raises(SeisError, match=r"unknown placeholder \{\{bogus\}\}"):
        render(load_config(tmp_path / "job.toml"))
    (tmp_path / "job.toml").write_text(body.replace(str(site), str(tmp_path / "none")))
    with pytest.raises(SeisError, match="no template folder"):
        render(load_config(tmp_path / "job.toml"))


# -- GPU nodes: --gpus-per-task, --backend gpu ----------------------------------------------------
GPU_ARGS = ["--aperture", "250", "--max-angle", "60", "--tmax", "0.6", "--grid", "1,5,44,80"]


def gpu_toml(tmp_path: Path, cluster: str = "", job: str = "", array: str = "") -> Path:
    return write_toml(tmp_path / "job.toml", f"""
[cluster]
root = {q(ROOT)}
nodes = 2
tasks_per_node = 4
cpus_per_task = 16
{cluster}
[job]
name = "g1"
input = "a.sgy"
velocity = "v.csv"
out = "o.h5"
{job}
{array}""")


def step_argv(text: str) -> list[str]:
    """The words of the rendered ``step=(...)`` line."""
    line = next(ln for ln in text.splitlines() if ln.startswith("step=("))
    return shlex.split(line[len("step=("):-1])


def test_gpu_cluster_config(tmp_path):
    """slurm/configs/gpu.toml: 4 ranks per node, one GPU and a quarter of the cores each."""
    cfg = load_config(CONFIGS / "gpu.toml")
    text = render(cfg)
    s = sbatch_lines(text)
    assert s["--gpus-per-task"] == "h100:1" and s["--ntasks-per-node"] == "4"
    # --gpus-per-task needs an explicit task count.
    assert int(s["--ntasks"]) == int(s["--nodes"]) * 4 == 8
    assert s["--cpus-per-task"] == "16" and "--gres" not in s
    # Explicit: SLURM 22.05 does not apply the implied binding to a typed request.
    assert s["--gpu-bind"] == "per_task:1"
    step = step_argv(text)
    assert step[:6] == ["pstm", cfg.job.input, "--velocity", cfg.job.velocity, "--backend", "gpu"]
    assert "export SEIS_HPC_LAUNCHER=srun" in text and "one GPU each" in text
    assert "# One MPI rank per GPU" in text  # why this binding
    bash_n(text, tmp_path)
    # Without a type: --gpus-per-task=1.
    text = render(load_config(gpu_toml(tmp_path, "gpus_per_task = 1", 'backend = "gpu"')))
    assert sbatch_lines(text)["--gpus-per-task"] == "1"


def test_cpu_configs_request_no_gpu():
    for name in ("small.toml", "large.toml"):
        text = render(load_config(CONFIGS / name))
        assert "--gpus-per-task" not in text and "--backend" not in text
        assert "#SBATCH --ntasks=" not in text and "--gpu-bind" not in text
        assert "one GPU" not in text


def test_gpu_array_parts_have_gpus_and_merge_has_none(tmp_path):
    cfg = gpu_toml(tmp_path, "gpus_per_task = 1", 'backend = "gpu"', "[array]\nparts = 3\n")
    text = render(load_config(cfg))
    bash_n(text, tmp_path)
    array, merge = text.split("<<'SEIS_HPC_JOB_SCRIPT'\n")[1:]
    a, m = sbatch_lines(array), sbatch_lines(merge)
    assert a["--gpus-per-task"] == "1" and a["--ntasks"] == "8" and a["--array"] == "0-2"
    assert a["--gpu-bind"] == "per_task:1"
    assert not any(k.startswith("--gpu") or k == "--ntasks" for k in m) and m["--nodes"] == "1"
    step = step_argv(array)
    assert step[step.index("--backend") + 1] == "gpu" and step[0] == "pstm"
    assert "--backend" not in merge


@pytest.mark.parametrize("cluster,job,word", [
    ("", 'backend = "gpu"', "job.backend = 'gpu' needs cluster.gpus_per_task"),
    ("gpus_per_task = 1", "", "cluster.gpus_per_task = 1 but job.backend is 'cython'"),
    ("gpus_per_task = 1", 'backend = "cython"', "the GPUs would idle"),
    ("", 'backend = "cuda"', "job.backend = 'cuda': choose cython or gpu"),
    ('gpu_type = "h100"', "", "cluster.gpu_type = 'h100' needs cluster.gpus_per_task"),
    ('gpus_per_task = 1\ngpu_type = "h100:2"', 'backend = "gpu"', "cluster.gpu_type"),
    ("gpus_per_task = -1", "", "cluster.gpus_per_task must be an integer >= 0"),
    ('gpus_per_task = "1"', 'backend = "gpu"', "cluster.gpus_per_task must be an integer"),
    ("gpus_per_task = 2", 'backend = "gpu"', "a rank drives one GPU"),
    ('gpus_per_task = 1\nlauncher = "mpiexec"', 'backend = "gpu"', "cluster.launcher"),
    ("gpus_per_task = 1", 'backend = "gpu"\ncommand = "velan"', "job.command is 'velan'"),
    ("", 'args = ["--backend", "gpu"]', "remove --backend from job.args"),
])
def test_bad_gpu_config_is_one_line_error_and_no_script(tmp_path, cluster, job, word):
    cfg = gpu_toml(tmp_path, cluster, job)
    out = tmp_path / "job.sh"
    r = cli("slurm", "render", "--config", cfg, "--out", out)
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1 and word in r.stderr and "job.toml" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def _pstm_dry(*args, env=None) -> list[str]:
    """The argv after ``seis_hpc pstm`` that jobs/pstm_3d.sh would run (SEIS_HPC_DRY_RUN)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SEIS_HPC_"))}
    e.update({"SEIS_HPC_DRY_RUN": "1", "SEIS_HPC_RANKS": "2", **(env or {})})
    r = subprocess.run(["bash", str(ROOT / "jobs" / "pstm_3d.sh"), *map(str, args)],
                       capture_output=True, text=True, env=e)
    assert r.returncode == 0, r.stderr
    argv = next(shlex.split(ln) for ln in r.stdout.splitlines() if " pstm " in ln)
    return argv, r.stderr


def test_job_script_backend_option_and_variable(tmp_path):
    out = ["--out", tmp_path / "o"]
    p, _ = _pstm_dry(*out)
    assert "--backend" not in p  # the command's default (cython)
    for args, env in (([*out, "--backend", "gpu"], {}), (out, {"SEIS_HPC_BACKEND": "gpu"})):
        p, _ = _pstm_dry(*args, env=env)
        assert p[p.index("--backend") + 1] == "gpu" and p.count("--backend") == 1
    p, _ = _pstm_dry(*out, "--backend=cython", env={"SEIS_HPC_BACKEND": "gpu"})
    assert p[p.index("--backend") + 1] == "cython"  # the option wins
    # Under SLURM the script asks for nothing: the GPUs come from sbatch --gpus-per-task.
    b = _fake_bin(tmp_path)
    (b / "srun").write_text("#!/bin/sh\nexit 0\n")
    (b / "srun").chmod(0o755)
    slurm = {"PATH": f"{b}:{os.environ['PATH']}", "SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}
    p, err = _pstm_dry(*out, "--backend", "gpu", env=slurm)
    assert p[:3] == ["srun", "--mpi=pmi2", "--gpu-bind=per_task:1"] and "warning" not in err
    assert not any(a.startswith(("--gpus", "--gres")) for a in p)
    p, _ = _pstm_dry(*out, "--backend", "gpu", env={**slurm, "SLURM_GPU_BIND": "closest"})
    assert p[:2] == ["srun", "--mpi=pmi2"] and p[2].endswith("python")  # the user's binding
    p, _ = _pstm_dry(*out, env=slurm)
    assert p[:2] == ["srun", "--mpi=pmi2"] and p[2].endswith("python")  # cython: no binding
    p, err = _pstm_dry(*out, "--backend", "gpu", env={**slurm, "SEIS_HPC_LAUNCHER": "mpiexec"})
    assert p[0].endswith("mpiexec") and "may share one GPU" in err
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SEIS_HPC_"))}
    r = subprocess.run(["bash", str(ROOT / "jobs" / "pstm_3d.sh"), *map(str, out),
                        "--backend", "cuda"], capture_output=True, text=True,
                       env={**e, "SEIS_HPC_DRY_RUN": "1"})
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "--backend must be cython or gpu (got cuda)" in r.stderr and not r.stdout


def _jobs_env(**extra) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("SLURM_", "SEIS_HPC_")) and k != EMULATE}
    e.update({"OMP_NUM_THREADS": "1", "SEIS_HPC_RANKS": "2", **extra})
    return e


EMULATE = "SEIS_HPC_GPU_EMULATE"


def _on_gpu() -> bool:
    from seis_hpc.gpu import available

    return available()


@pytest.fixture(scope="module", params=["emulator"] + (["cuda"] if _on_gpu() else []))
def gpu_job(request, tmp_path_factory):
    """``bash jobs/pstm_3d.sh --backend gpu`` on the tiny3d survey, 2 ranks through mpiexec,
    on the GPU kernels' CPU emulator (and on the GPU where there is one); then the serial
    Cython image of the same window as the reference."""
    d = tmp_path_factory.mktemp(f"gpu_{request.param}")
    emu = {EMULATE: "1"} if request.param == "emulator" else {}
    r = subprocess.run(["bash", str(ROOT / "jobs" / "pstm_3d.sh"), "--preset", "tiny3d",
                        "--out", str(d / "job"), "--backend", "gpu", "--aperture", "250",
                        "--tmax", "0.6", "--", "--grid", "1,5,44,80"], capture_output=True,
                       text=True, cwd=d, env=_jobs_env(**emu), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    survey = d / "job" / "survey"
    ref = d / "cython.h5"
    r2 = cli("pstm", survey / "shots.sgy", "--velocity", survey / "velocity.csv", "--out", ref,
             *GPU_ARGS, env={"OMP_NUM_THREADS": "1"})
    assert r2.returncode == 0, r2.stderr
    return {"dir": d, "survey": survey, "image": d / "job" / "image.h5", "ref": ref,
            "log": r.stderr, "env": emu}


def _close(a, ref, rel):
    return np.abs(a - ref).max() <= rel * np.abs(ref).max()


def test_gpu_job_script_image_equals_cython_and_focuses(gpu_job):

    import h5py

    ref, img = read_volume(gpu_job["ref"]), read_volume(gpu_job["image"])
    assert img.data.shape == ref.data.shape == (5, 37, 151)
    assert np.abs(ref.data).max() > 0 and _close(img.data, ref.data, 1e-4)
    with h5py.File(gpu_job["image"]) as f:
        assert f.attrs["pstm_backend"] == "gpu"
    assert "--backend gpu" in gpu_job["log"] and "qc: diffractor at inline" in gpu_job["log"]
    # The diffractor at its exact position and sample, in both images.
    assert_diffractors_exact(img, gpu_job["survey"])
    assert_diffractors_exact(ref, gpu_job["survey"])
    assert np.argmax(img.data) == np.argmax(ref.data)


def test_rendered_gpu_job_runs_without_slurm(gpu_job, tmp_path):
    """The rendered GPU script, run by bash with a stand-in ``srun`` that starts the ranks with
    mpiexec (no SLURM here): it reaches seis-hpc pstm with --backend gpu and writes the image
    of the job script, i.e. the Cython image to 1e-4."""
    survey = gpu_job["survey"]
    out = tmp_path / "rendered image.h5"
    cfg = write_toml(tmp_path / "job.toml", f"""
[cluster]
root = {q(ROOT)}
nodes = 1
tasks_per_node = 2
gpus_per_task = 1
[job]
name = "gpu_e2e"
backend = "gpu"
input = {q(survey / "shots.sgy")}
velocity = {q(survey / "velocity.csv")}
out = {q(out)}
args = [{", ".join(q(a) for a in GPU_ARGS)}]
""")
    script = tmp_path / "job.sh"
    r = cli("slurm", "render", "--config", cfg, "--out", script)
    assert r.returncode == 0, r.stderr
    b = tmp_path / "bin"
    b.mkdir()
    (b / "srun").write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$FAKE_LOG"\n'
                            '[ "${1%%=*}" = --mpi ] && shift\n'
                            f'exec {shlex.quote(str(ROOT / ".venv" / "bin" / "mpiexec"))} '
                            '-n "$SLURM_NTASKS" "$@"\n')
    (b / "srun").chmod(0o755)
    log = tmp_path / "srun.args"
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300, env=_jobs_env(**gpu_job["env"], SLURM_NTASKS="2",
                                                  FAKE_LOG=str(log),
                                                  PATH=f"{b}:{os.environ['PATH']}"))
    assert r.returncode == 0, r.stdout + r.stderr
    argv = log.read_text().split("\n")[:-1]
    assert argv[0] == "--mpi=pmi2" and argv[argv.index("--backend") + 1] == "gpu"
    ref = read_volume(gpu_job["ref"]).data
    assert _close(read_volume(out).data, ref, 1e-4)
    assert_diffractors_exact(out, survey)


def test_gpu_job_without_a_gpu_stops_with_one_line(gpu_job, tmp_path):
    """No CuPy or no CUDA device: the pstm step says so once, exit 2 through mpiexec and the
    script, and writes no image."""
    if _on_gpu():
        pytest.skip("a GPU is visible here")
    survey = gpu_job["survey"]
    out = tmp_path / "o"
    r = subprocess.run(["bash", str(ROOT / "jobs" / "pstm_3d.sh"), "--input",
                        str(survey / "shots.sgy"), "--velocity", str(survey / "velocity.csv"),
                        "--out", str(out), "--backend", "gpu", "--", "--grid", "1,5,44,80"],
                       capture_output=True, text=True, cwd=tmp_path, env=_jobs_env(),
                       timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and errors[0].startswith("seis-hpc: error: backend gpu: ")
    assert "step failed (exit 2)" in r.stderr and "Traceback" not in r.stderr
    assert not (out / "image.h5").exists()


def test_rendered_array_parts_and_merge_run_without_slurm(tmp_path):
    """The rendered array and merge scripts, as SLURM would run them (captured from the submit
    script by a fake sbatch, then run by bash: task 0 and 1 of the array through mpiexec, then
    the merge): the merged image of the tiny3d survey puts the diffractor at its exact
    position and sample. (That it equals one run over the whole grid: test_merge_parts_* and
    tests/test_slurm_cluster.py.)"""
    survey = tmp_path / "survey"
    r = cli("synth", "--preset", "tiny3d", "--out", survey)
    assert r.returncode == 0, r.stderr
    args = ["--aperture", "250", "--tmax", "0.56"]
    out = tmp_path / "out" / "img.h5"
    out.parent.mkdir()
    cfg = write_toml(tmp_path / "job.toml", f"""
[cluster]
root = {q(ROOT)}
launcher = "mpiexec"
log_dir = {q(tmp_path / "logs")}
[job]
name = "parts"
input = {q(survey / "shots.sgy")}
velocity = {q(survey / "velocity.csv")}
out = {q(out)}
args = [{", ".join(q(a) for a in args)}]
[array]
parts = 2
""")
    r = cli("slurm", "render", "--config", cfg, "--out", tmp_path / "submit.sh")
    assert r.returncode == 0, r.stderr
    log = tmp_path / "calls"
    log.mkdir()
    env = {"PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}", "FAKE_LOG": str(log)}
    r = subprocess.run(["bash", str(tmp_path / "submit.sh")], capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    for task in (0, 1):
        r = subprocess.run(["bash", str(log / "call0.script")], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300,
                           env=_jobs_env(SLURM_ARRAY_TASK_ID=str(task), SEIS_HPC_RANKS="1"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert (out.parent / f"img.part{task:03d}.h5").exists()
    r = subprocess.run(["bash", str(log / "call1.script")], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300, env=_jobs_env())
    assert r.returncode == 0, r.stdout + r.stderr
    whole = read_volume(out)
    assert (whole.grid.n_inline, whole.grid.n_crossline) == (10, 84)
    assert_diffractors_exact(whole, survey)

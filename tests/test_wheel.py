"""The package as a user installs it (issue 14): ``pip wheel .``, installed into a fresh virtual
environment and run from another folder, with no checkout on the import path.

The wheel is built without build isolation from a copy of the sources, packing the kernels
already built in place (``SEIS_HPC_REUSE_INPLACE=1``, setup.py) so that the test takes
seconds, not a compiler run. The fresh environment gets this one's third-party packages
(NumPy, h5py, mpi4py, ...) through a ``.pth`` path line and its MPI library through links: a
path line adds a folder to ``sys.path`` without running the ``.pth`` files inside it, so the
editable install of the checkout stays invisible there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What setup.py reads: the package, the kernel sources and the top-level run-time files it ships.
SOURCES = ["setup.py", "pyproject.toml", "README.md", "seis_hpc", "kernels", "jobs", "slurm",
           "benchmarks", "flows"]
# Build outputs, and the build-time copies of package data should a build have left them.
STALE = [ROOT / "seis_hpc" / "cluster" / "data", ROOT / "seis_hpc" / "_bench",
         ROOT / "seis_hpc" / "flows" / "examples"]


def _ignore(folder, names):
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")(folder, names)
    return skip | {n for n in names if Path(folder, n) in STALE}

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=120):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv folder, environment without the checkout) of a freshly built and installed
    wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            # copy2 keeps the times: the in-place kernels stay newer than their .pyx
            shutil.copytree(p, src / name, ignore=_ignore)
        else:
            shutil.copy2(p, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", SEIS_HPC_REUSE_INPLACE="1", PIP_NO_INPUT="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", dist, src], cwd=tmp, env=env, timeout=600)
    (wheel,) = dist.glob("seis_hpc-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=env)
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp, env=env).stdout.strip())
    paths = sysconfig.get_paths()
    (site / "_test_deps.pth").write_text(f"{paths['purelib']}\n{paths['platlib']}\n")
    # The MPICH wheel puts libmpi in <prefix>/lib, where mpi4py looks for it.
    for lib in (Path(sys.prefix) / "lib").iterdir():
        if not (venv / "lib" / lib.name).exists():
            (venv / "lib" / lib.name).symlink_to(lib)
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index",
          "-q", wheel], cwd=tmp, env=env)
    env.pop("SEIS_HPC_REUSE_INPLACE")
    return venv, env, src


def test_wheel_runs_without_the_checkout(installed, tmp_path):
    venv, env, src = installed
    exe, py = venv / "bin" / "seis-hpc", venv / "bin" / "python"
    work = tmp_path / "elsewhere"
    work.mkdir()

    where = json.loads(_run([py, "-c", "import json, seis_hpc, seis_hpc.kernels.pstm as k; "
                             "print(json.dumps([seis_hpc.__file__, k.__file__]))"],
                            work, env).stdout)
    for f in where:
        assert Path(f).is_relative_to(venv), where

    # A rendered job script names the installation, never the checkout or the build sources.
    shutil.copy(ROOT / "slurm" / "configs" / "small.toml", work / "small.toml")
    _run([exe, "slurm", "render", "-c", "small.toml", "-o", "job.sh"], work, env)
    text = (work / "job.sh").read_text()
    assert str(ROOT) not in text and str(src) not in text
    lib = next(line.split("=", 1)[1] for line in text.splitlines()
               if line.startswith("export SEIS_HPC_ROOT="))
    assert (Path(lib) / "jobs" / "lib.sh").is_file() and Path(lib).is_relative_to(venv)
    # ... and runs that installation's seis-hpc (dry run: prints the step it would launch).
    r = _run(["bash", "job.sh"], work, {**env, "SEIS_HPC_DRY_RUN": "1"})
    step = r.stdout.strip().splitlines()[-1].split()
    assert step[:6] == ["srun", "--mpi=pmi2", str(py), "-m", "seis_hpc", "pstm"], r.stdout

    # An array job (its own root on the cluster) from the templates shipped in the package.
    shutil.copy(ROOT / "slurm" / "configs" / "large.toml", work / "large.toml")
    _run([exe, "slurm", "render", "-c", "large.toml", "-o", "submit.sh"], work, env)
    text = (work / "submit.sh").read_text()
    assert str(ROOT) not in text and str(src) not in text
    assert "--dependency=afterok" in text and "slurm merge" in text
    _run(["bash", "-n", "submit.sh"], work, env)

    r = _run([exe, "bench", "--help"], work, env)
    assert "--repeat" in r.stdout
    shipped = _run([py, "-c", "from seis_hpc.commands.bench import bench_script; "
                    "print(bench_script('bench_kernels')); print(bench_script('bench_gpu'))"],
                   work, env).stdout.split()
    for s in shipped:
        assert Path(s).is_relative_to(venv) and Path(s).is_file()
    assert (Path(shipped[0]).parent / "plain_loop.c").is_file()

    # The example flow of the README, from the package into the working folder.
    _run([exe, "example", "marine2d"], work, env)
    assert (work / "marine2d.toml").read_bytes() == (ROOT / "flows" / "marine2d.toml").read_bytes()
    shipped = _run([py, "-c", "from seis_hpc.flows.flowfile import example_flows; "
                    "print(example_flows()['marine2d'])"], work, env).stdout.strip()
    assert Path(shipped).is_relative_to(venv), shipped

    # synth, then pstm on it: the diffractor focuses where the truth puts it.
    _run([exe, "synth", "--preset", "tiny3d", "--out", "d"], work, env)
    _run([exe, "pstm", "d/shots.sgy", "--velocity", "d/velocity.csv", "--out", "image.h5",
          "--grid", "1,5,44,80", "--tmax", "0.6", "--aperture", "250"], work, env)
    truth = json.loads((work / "d" / "truth.json").read_text())["diffractors"][0]
    peak = json.loads(_run([py, "-c", (
        "import json, numpy as np; from seis_hpc import read_volume\n"
        "v = read_volume('image.h5'); g = v.grid\n"
        "i, j, k = np.unravel_index(np.argmax(np.abs(v.data)), v.data.shape)\n"
        "print(json.dumps([int(i) + g.inline0, int(j) + g.crossline0, float(v.time[k])]))")],
        work, env).stdout)
    assert abs(peak[0] - truth["inline"]) <= 1.0, (peak, truth)
    assert abs(peak[1] - truth["crossline"]) <= 2.0, (peak, truth)
    assert abs(peak[2] - truth["t0_s"]) <= 0.012, (peak, truth)

"""``seis-hpc pstm`` as users run it: ``mpiexec -n 2`` subprocesses on the tiny3d synthetic.

Every image puts the survey's diffractor at its exact position and sample (tests/_truth.py);
a serial run is also the reference the others must equal. Two ranks give the same image; a
job killed (SIGKILL to the whole process group) at a seeded random point and started again
gives the same image; SIGTERM checkpoints and exits 75, and the rerun completes
identically; a failure on one rank ends the job within seconds with its message; bad input
is reported once, with nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _truth import assert_diffractors_exact

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = ROOT / ".venv" / "bin" / "mpiexec"
PY = sys.executable
# A part of the survey keeps each run to a second or two.
SMALL = ["--grid", "1,5,44,80", "--tmax", "0.6", "--aperture", "250", "--units", "24"]

pytestmark = pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec in .venv")


def env(**extra):
    e = dict(os.environ, OMP_NUM_THREADS="1", **{k: str(v) for k, v in extra.items()})
    e.pop("SEIS_HPC_FAIL_UNIT", None) if "SEIS_HPC_FAIL_UNIT" not in extra else None
    return e


def cmd(survey, out, *more, ranks=2):
    base = [PY, "-m", "seis_hpc", "pstm", str(survey / "shots.sgy"), "--velocity",
            str(survey / "velocity.csv"), "--out", str(out), *SMALL, "--progress-every", "0.2",
            *more]
    return [str(MPIEXEC), "-n", str(ranks), *base] if ranks else base


def run(args, timeout=120, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=kw.pop("env", env()), **kw)


def image(path):
    from seis_hpc.io.volume import read_volume

    return read_volume(path, "image").data


def img_volume(like, data):
    """``data`` on the grid and time axis of the image file ``like``."""
    from seis_hpc.io.volume import read_volume

    vol = read_volume(like, "image")
    vol.data = data
    return vol


@pytest.fixture(scope="module")
def survey(tiny3d):
    return tiny3d


@pytest.fixture(scope="module")
def reference(survey, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "serial.h5"
    r = run(cmd(survey, out, ranks=0))
    assert r.returncode == 0, r.stderr
    return image(out), out


def close(a, ref, rel):
    return np.abs(a - ref).max() <= rel * np.abs(ref).max()


def test_serial_image_focuses_diffractor(survey, reference):
    from seis_hpc.io.volume import read_volume

    vol = read_volume(reference[1], "image")
    assert (vol.grid.inline0, vol.grid.crossline0, vol.grid.shape) == (1, 44, (5, 37))
    # The exact position (half-way between inlines 2 and 3, crossline 66) and sample (122).
    (p,) = assert_diffractors_exact(vol, survey)
    assert (p["il_true"], p["xl_true"], p["k_true"]) == pytest.approx((2.5, 66, 122), abs=1e-4)
    assert json.loads(__import__("h5py").File(reference[1]).attrs["config"])["aperture"] == 250


@pytest.fixture(scope="module")
def uninterrupted(survey, tmp_path_factory):
    """Uninterrupted two-rank runs of each strategy: (image, stderr)."""
    out = {}
    for strategy in ("shard", "tile"):
        path = tmp_path_factory.mktemp(strategy) / "img.h5"
        r = run(cmd(survey, path, "--strategy", strategy, "--tile", "8"))
        assert r.returncode == 0, r.stderr
        assert not Path(f"{path}.ckpt").exists()  # removed after success
        out[strategy] = (image(path), r.stderr)
    return out


@pytest.mark.parametrize("strategy", ["shard", "tile"])
def test_two_ranks_match_serial(survey, reference, uninterrupted, strategy):
    img, err = uninterrupted[strategy]
    assert close(img, reference[0], 1e-5)
    assert_diffractors_exact(img_volume(reference[1], img), survey)
    r = argparse.Namespace(stderr=err)
    assert f"plan: {strategy}" in r.stderr
    assert "compute" in r.stderr and "idle" in r.stderr  # per-rank summary
    assert "\x1b" not in r.stderr and "\r" not in r.stderr  # plain log lines off a terminal
    assert "units," in r.stderr and "traces/s" in r.stderr and "ETA" in r.stderr


def _start_and_wait(args, ckpt: Path, pattern: str, extra_env: dict):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=ROOT, env=env(**extra_env), start_new_session=True)
    t0 = time.time()
    while not list(ckpt.glob(pattern)):
        assert p.poll() is None, p.communicate()[1]
        assert time.time() - t0 < 60, "no checkpoint appeared"
        time.sleep(0.02)
    return p


@pytest.mark.parametrize("strategy", ["shard", "tile"])
def test_restart_after_kill_gives_same_image(survey, uninterrupted, tmp_path, strategy):
    out = tmp_path / "img.h5"
    ckpt = Path(f"{out}.ckpt")
    args = cmd(survey, out, "--strategy", strategy, "--tile", "8", "--checkpoint-interval", "0")
    rng = np.random.default_rng(21 + len(strategy))  # a reproducible "random" kill point
    # The tile run has 5 units: slow each enough that the random kill point below always
    # falls before the end (24 shard units at 0.1 s already last > 1 s).
    delay = 0.1 if strategy == "shard" else 0.5
    p = _start_and_wait(args, ckpt, "rank-*.h5" if strategy == "shard" else "tile-*.h5",
                        {"SEIS_HPC_UNIT_DELAY": delay})
    time.sleep(rng.uniform(0.0, 0.5))  # a random point after the first flush
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=20)
    assert not out.exists(), "the job finished before the kill: nothing was tested"
    r = run(args)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr
    assert close(image(out), uninterrupted[strategy][0], 1e-6)
    assert_diffractors_exact(out, survey)


def test_sigterm_checkpoints_and_rerun_completes(survey, uninterrupted, tmp_path):
    out = tmp_path / "img.h5"
    ckpt = Path(f"{out}.ckpt")
    args = cmd(survey, out, "--checkpoint-interval", "1000")
    p = _start_and_wait(args, ckpt, "job.json", {"SEIS_HPC_UNIT_DELAY": 0.25})
    time.sleep(0.8)
    p.send_signal(signal.SIGTERM)  # to mpiexec, which forwards it to the ranks
    _, err = p.communicate(timeout=30)
    assert p.returncode == 75, err
    assert "stopped by signal" in err
    assert list(ckpt.glob("rank-*.h5")) and not out.exists()
    r = run(args)
    assert r.returncode == 0, r.stderr
    assert close(image(out), uninterrupted["shard"][0], 1e-6)
    assert_diffractors_exact(out, survey)


def test_changed_parameters_refused_then_fresh(survey, tmp_path):
    out = tmp_path / "img.h5"
    args = cmd(survey, out, "--checkpoint-interval", "1000")
    p = _start_and_wait(args, Path(f"{out}.ckpt"), "job.json",
                        {"SEIS_HPC_UNIT_DELAY": 0.25})
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    assert p.returncode == 75
    r = run(args + ["--max-angle", "45"])
    assert r.returncode == 2
    assert "different parameters" in r.stderr and "max_angle" in r.stderr
    assert r.stderr.count("seis-hpc: error") == 1 and "Traceback" not in r.stderr
    r = run(args + ["--max-angle", "45", "--restart", "fresh"])
    assert r.returncode == 0, r.stderr
    assert out.exists() and not Path(f"{out}.ckpt").exists()
    assert_diffractors_exact(out, survey)


def test_failure_on_one_rank_stops_all(survey, tmp_path):
    out = tmp_path / "img.h5"
    t0 = time.time()
    r = run(cmd(survey, out), timeout=60, env=env(SEIS_HPC_FAIL_UNIT=3))
    assert time.time() - t0 < 20
    assert r.returncode != 0
    assert "unit 3: injected failure" in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_setup_failure_on_another_rank_stops_all(survey, tmp_path):
    """A script calling ``seis_hpc.migrate`` under mpiexec: a rank that cannot open its inputs
    after the plan (rank 0 already serving work) aborts every rank with its one line, instead
    of leaving rank 0 waiting for it forever."""
    out = tmp_path / "img.h5"
    script = tmp_path / "job.py"
    script.write_text(
        "from mpi4py import MPI\n"
        "import seis_hpc\n"
        f"seis_hpc.migrate({str(survey / 'shots.sgy')!r}, {str(survey / 'velocity.csv')!r},"
        f" {str(out)!r}, grid=(1, 5, 44, 80), tmax=0.6, aperture=250.0, units=24)\n")
    t0 = time.time()
    r = run([str(MPIEXEC), "-n", "2", PY, str(script)], timeout=60,
            env=env(SEIS_HPC_FAIL_SETUP_RANK=1))
    assert time.time() - t0 < 20
    assert r.returncode == 2, r.stderr
    assert "rank 1: " in r.stderr and "injected read failure" in r.stderr
    assert r.stderr.count("seis-hpc: error") == 1 and "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("case", ["missing-velocity", "bad-velocity", "bad-grid"])
def test_bad_input_reported_once(survey, tmp_path, case):
    out = tmp_path / "img.h5"
    args = cmd(survey, out)
    if case == "missing-velocity":
        args[args.index("--velocity") + 1] = str(tmp_path / "nope.csv")
        want = "nope.csv: no such file"
    elif case == "bad-velocity":
        bad = tmp_path / "v.csv"
        bad.write_text("time_s,vrms_mps\n0.0,1500\n0.5,1600\n0.4,1700\n")
        args[args.index("--velocity") + 1] = str(bad)
        want = "line 4: time_s must increase"
    else:
        args[args.index("--grid") + 1] = "1,5,44,999"
        want = "outside the survey"
    r = run(args)
    assert r.returncode == 2
    assert want in r.stderr
    assert r.stderr.count("seis-hpc: error") == 1 and "Traceback" not in r.stderr
    assert not out.exists() and not Path(f"{out}.ckpt").exists()


def test_partials_absorbed_on_fewer_ranks_are_not_counted_twice(tmp_path):
    """A restart on fewer ranks absorbs partial files; a kill before the old file is removed
    must not count its units twice, and two files claiming one unit are refused."""
    from seis_hpc.engine.checkpoint import Checkpoint
    from seis_hpc.errors import SeisError

    ck = Checkpoint(tmp_path, "h1")
    assert ck.prepare({"a": 1}) is False
    ones = np.ones((2, 3, 4), np.float32)
    ck.save_partial(0, ones, None, [0, 3])
    ck.save_partial(1, 2 * ones, None, [1])
    ck.save_partial(2, 4 * ones, None, [2, 5])
    # Rank 0 of a 2-rank restart absorbed file 2 into file 0, then was killed.
    ck.save_partial(0, 5 * ones, None, [0, 2, 3, 5])
    keep, done = ck.partials()
    assert sorted(keep) == [0, 1] and done == {0, 1, 2, 3, 5}
    total = np.zeros_like(ones)
    for p in keep.values():
        ck.load_partial(p, total, None)
    np.testing.assert_array_equal(total, 7 * ones)
    ck.save_partial(3, ones, None, [3, 4])
    with pytest.raises(SeisError, match="overlap"):
        ck.partials()
    assert Checkpoint(tmp_path, "h1").prepare({"a": 1}) is True
    with pytest.raises(SeisError, match=r"different parameters \(a differ\)"):
        Checkpoint(tmp_path, "h2").prepare({"a": 2})
    assert Checkpoint(tmp_path, "h2").prepare({"a": 2}, restart="fresh") is False
    assert not list(tmp_path.glob("rank-*.h5"))


@pytest.mark.parametrize("strategy", ["shard", "tile"])
def test_gpu_backend_on_two_ranks_matches_serial(survey, reference, tmp_path, strategy):
    """``--backend gpu`` through the engine, on the GPU kernels' CPU emulator: each rank runs
    the CUDA source; the image is the Cython serial one to float32 rounding (the GPU kernel
    matches the Cython kernel within 1e-4, tests/test_gpu.py)."""
    out = tmp_path / "img.h5"
    r = run(cmd(survey, out, "--backend", "gpu", "--strategy", strategy, "--tile", "8"),
            env=env(SEIS_HPC_GPU_EMULATE=1))
    assert r.returncode == 0, r.stderr
    assert close(image(out), reference[0], 1e-4)
    assert_diffractors_exact(out, survey)
    import h5py

    with h5py.File(out) as f:
        assert f.attrs["pstm_backend"] == "gpu"


def test_gpu_backend_gathers_match_cython(survey, tmp_path):
    """Offset-class gathers through the engine: the GPU kernels' classes sum like the CPU's."""
    from seis_hpc.io.volume import read_volume

    outs = {}
    for backend in ("cython", "gpu"):
        outs[backend] = tmp_path / f"{backend}.h5"
        r = run(cmd(survey, outs[backend], "--backend", backend, "--offset-classes", "3",
                    ranks=2), env=env(SEIS_HPC_GPU_EMULATE=1))
        assert r.returncode == 0, r.stderr
    c = read_volume(outs["cython"], "gathers").data
    g = read_volume(outs["gpu"], "gathers").data
    assert c.shape[0] == 3 and np.abs(c).max() > 0
    assert close(g, c, 1e-4)


def test_gpu_backend_without_a_gpu_is_reported_once(survey, tmp_path):
    pytest.importorskip("seis_hpc.gpu")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    out = tmp_path / "img.h5"
    r = run(cmd(survey, out, "--backend", "gpu"))
    assert r.returncode == 2
    assert "CuPy is not installed" in r.stderr
    assert r.stderr.count("seis-hpc: error") == 1 and "Traceback" not in r.stderr
    assert not out.exists() and not Path(f"{out}.ckpt").exists()


def test_keep_checkpoint_keeps_it(survey, reference, tmp_path):
    out = tmp_path / "img.h5"
    r = run(cmd(survey, out, "--keep-checkpoint", ranks=0))
    assert r.returncode == 0, r.stderr
    assert close(image(out), reference[0], 1e-6)
    assert_diffractors_exact(out, survey)
    assert (Path(f"{out}.ckpt") / "job.json").exists()

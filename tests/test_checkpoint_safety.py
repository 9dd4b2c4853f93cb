"""Nothing lost through checkpoints (issue #13).

The engine only ever deletes what it created: a non-empty folder that is not its own is refused
untouched (even with ``--restart fresh``), and in its own folder only its exact file names are
removed, never a user's file that merely resembles one. A bad input found part-way through a
job (a NaN sample after checkpoints were flushed) does not leave a checkpoint that refuses the
corrected rerun: the fixed file migrates to the clean image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_engine_restart import MPIEXEC, ROOT, SMALL, close, cmd, env, image, run

from seis_hpc.engine.checkpoint import MARKER, Checkpoint
from seis_hpc.errors import SeisError

# A user's files that resemble the engine's: an unanchored pattern or a glob took them.
LOOKALIKES = ["survey_rank-00001.h5", ".x.tmp-1", "tile-00003.h5.bak", "notes.txt",
              "rank-1.h5", ".rank-00000.h5.tmp-12.keep"]
# A user's files with exactly the engine's names: safe only because the folder is not its own.
EXACT = ["tile-00003.h5", "rank-00001.h5", "job.json", ".tile-00002.h5.tmp-7"]

needs_mpi = pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec in .venv")


@pytest.fixture(scope="module")
def survey(tiny3d):
    return tiny3d


@pytest.fixture(scope="module")
def reference(survey, tmp_path_factory):
    """A clean serial run's image."""
    out = tmp_path_factory.mktemp("ref") / "serial.h5"
    r = run(cmd(survey, out, ranks=0))
    assert r.returncode == 0, r.stderr
    return image(out)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> SHA-256)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def plant(folder: Path, names) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    for k, n in enumerate(names):
        (folder / n).write_bytes(f"user file {k}: {n}\n".encode())
    return {k: v for k, v in snapshot(folder).items() if k in names}


def one_error(r) -> str:
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("seis-hpc: error") == 1 and "Traceback" not in r.stderr, r.stderr
    return next(x for x in r.stderr.splitlines() if "seis-hpc: error" in x)


# -- the Checkpoint class ------------------------------------------------------------------------
def test_foreign_folder_refused_untouched(tmp_path):
    d = tmp_path / "mine"
    before = plant(d, EXACT + LOOKALIKES)
    for restart in ("auto", "fresh"):
        with pytest.raises(SeisError, match="not empty and is not a seis-hpc checkpoint") as e:
            Checkpoint(d, "h1").prepare({"a": 1}, restart)
        assert str(d) in str(e.value)
        Checkpoint(d, "h1").remove()  # not its folder: a no-op
        Checkpoint(d, "h1").discard()
        assert snapshot(d) == before


def test_own_folder_removes_only_exact_names(tmp_path):
    d = tmp_path / "ck"
    ck = Checkpoint(d, "h1")
    assert ck.prepare({"a": 1}) is False
    assert (d / MARKER).exists()
    ones = np.ones((2, 3, 4), np.float32)
    ck.save_partial(0, ones, None, [0])
    ck.save_tile(7, ones, None)
    (d / ".rank-00001.h5.tmp-4242").write_bytes(b"left by a killed job")
    user = plant(d, LOOKALIKES)
    # Same job: resumes, nothing removed.
    assert Checkpoint(d, "h1").prepare({"a": 1}) is True
    assert Checkpoint(d, "h1").tiles_done() == {7}
    # A fresh start removes the earlier job's files, not the user's.
    assert Checkpoint(d, "h2").prepare({"a": 2}, restart="fresh") is False
    assert not (d / "rank-00000.h5").exists() and not (d / "tile-00007.h5").exists()
    assert not (d / ".rank-00001.h5.tmp-4242").exists()
    assert {k: v for k, v in snapshot(d).items() if k in user} == user
    # After success: the engine's files and marker go; the folder stays for the user's files.
    Checkpoint(d, "h2").remove()
    assert snapshot(d) == user


def test_claimed_empty_folder_is_kept_created_one_removed(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    ck = Checkpoint(empty, "h1")
    assert ck.prepare({"a": 1}) is False
    ck.save_partial(0, np.ones((1, 1, 2), np.float32), None, [0])
    ck.remove()
    assert empty.is_dir() and not any(empty.iterdir())  # the user's folder, as it was
    new = tmp_path / "new" / "ck"
    Checkpoint(new, "h1").prepare({"a": 1})
    Checkpoint(new, "h1").remove()
    assert not new.exists() and new.parent.is_dir()


# -- seis-hpc pstm --------------------------------------------------------------------------------
def test_pstm_refuses_foreign_folder(survey, tmp_path):
    out, d = tmp_path / "img.h5", tmp_path / "user"
    before = plant(d, EXACT + LOOKALIKES)
    for more in ([], ["--restart", "fresh"]):
        r = run(cmd(survey, out, "--checkpoint-dir", str(d), *more, ranks=0))
        line = one_error(r)
        assert str(d) in line and "not a seis-hpc checkpoint" in line
        assert snapshot(d) == before and not out.exists()


def test_pstm_own_folder_resumes_and_keeps_user_files(survey, reference, tmp_path):
    out, d = tmp_path / "img.h5", tmp_path / "ck"
    base = cmd(survey, out, "--checkpoint-dir", str(d), "--checkpoint-interval", "0", ranks=0)
    r = run(base + ["--keep-checkpoint"])
    assert r.returncode == 0, r.stderr
    assert (d / MARKER).exists() and (d / "job.json").exists() and (d / "rank-00000.h5").exists()
    user = plant(d, LOOKALIKES)
    out.unlink()
    r = run(base)  # every unit is in the checkpoint: resumes, writes, removes its own files
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr and "24 of 24 units done" in r.stderr
    assert close(image(out), reference, 1e-6)
    assert snapshot(d) == user
    # --restart fresh in the (now foreign again) folder is refused, the files untouched.
    one_error(run(base + ["--restart", "fresh"]))
    assert snapshot(d) == user


def test_pstm_restart_fresh_keeps_user_files(survey, reference, tmp_path):
    out, d = tmp_path / "img.h5", tmp_path / "ck"
    base = cmd(survey, out, "--checkpoint-dir", str(d), ranks=0)
    assert run(base + ["--keep-checkpoint"]).returncode == 0
    user = plant(d, LOOKALIKES)
    r = run(base + ["--restart", "fresh", "--max-angle", "45"])
    assert r.returncode == 0, r.stderr
    assert snapshot(d) == user


# -- late bad input, then the fixed file ----------------------------------------------------------
def late_trace(segy: Path) -> tuple[int, int]:
    """A trace of the unit handed out last by the job that :func:`cmd` runs, and the byte
    offset of the first trace."""
    from seis_hpc.engine.decomposition import plan_job
    from seis_hpc.migration.job import output_times as _time_axis
    from seis_hpc.migration.job import select_grid as _subgrid
    from seis_hpc.survey import Survey

    s = Survey.open(segy)
    idx = s.index
    opt = dict(zip(SMALL[::2], SMALL[1::2], strict=True))
    grid = _subgrid(s.grid, [int(v) for v in opt["--grid"].split(",")])
    time = _time_axis(idx, float(opt["--tmax"]), None)
    plan = plan_job(grid, len(time), int(idx.ns), idx["mx"], idx["my"], idx["source_id"],
                    float(opt["--aperture"]), "2G", n_units=int(opt["--units"]),
                    trace_order=idx["byte_offset"])
    assert plan.strategy == "shard" and len(plan.units) > 4
    return int(plan.units[plan.order()[-1]].traces[-1]), int(idx["byte_offset"][0])


def nan_then_fixed(survey, reference, tmp_path, ranks):
    data = tmp_path / "data"
    data.mkdir()
    for n in ("shots.sgy", "velocity.csv"):
        shutil.copy(survey / n, data / n)
    segy = data / "shots.sgy"
    clean = segy.read_bytes()
    trace, first = late_trace(segy)
    ns = 251  # tiny3d: 1.0 s at 4 ms, IEEE float big-endian
    at = first + trace * (240 + 4 * ns) + 240 + 4 * 100
    bad = bytearray(clean)
    bad[at:at + 4] = np.array([np.nan], ">f4").tobytes()
    segy.write_bytes(bytes(bad))
    out = tmp_path / "img.h5"
    ckpt = Path(f"{out}.ckpt")
    args = cmd(data, out, "--checkpoint-interval", "0", ranks=ranks)
    # Slow units so that the checkpoint is seen flushed before the NaN is met.
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=ROOT, env=env(SEIS_HPC_UNIT_DELAY=0.05), start_new_session=True)
    flushed = False
    while p.poll() is None and not flushed:
        flushed = any(ckpt.glob("rank-*.h5"))
        time.sleep(0.01)
    _, err = p.communicate(timeout=120)
    assert flushed, "no partial was flushed before the bad trace: nothing was tested"
    line = one_error(subprocess.CompletedProcess(args, p.returncode, "", err))
    assert f"trace {trace} " in line and "NaN" in line and str(segy) in line
    assert not out.exists()
    assert not (ckpt / "job.json").exists()  # nothing that could be resumed or refuse a rerun
    # The user rewrites the file in place (new mtime) and runs the same command.
    segy.write_bytes(clean)
    st = segy.stat()
    os.utime(segy, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    r = run(args)
    assert r.returncode == 0, r.stderr
    assert "resuming" not in r.stderr
    # Serial: the same sums as the clean run; two ranks: float32 rounding of the reduction.
    assert close(image(out), reference, 1e-6 if ranks == 0 else 1e-5)
    assert not ckpt.exists()


def test_late_nan_then_fixed_rerun(survey, reference, tmp_path):
    nan_then_fixed(survey, reference, tmp_path, ranks=0)


@needs_mpi
def test_late_nan_then_fixed_rerun_two_ranks(survey, reference, tmp_path):
    nan_then_fixed(survey, reference, tmp_path, ranks=2)

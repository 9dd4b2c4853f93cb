"""The MPI test harness itself: a test failing on one rank ends the whole run, never hangs.

Runs a throw-away test file under ``mpiexec -n 2 pytest --with-mpi`` where rank 1 fails
before a collective that rank 0 is already waiting in. Without the abort hook in
``tests/conftest.py`` rank 0 would wait forever.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

BODY = '''
import pytest
from mpi4py import MPI


@pytest.mark.mpi(min_size=2)
def test_rank_one_fails_before_a_collective():
    comm = MPI.COMM_WORLD
    if comm.rank == 1:
        assert False, "planted failure on rank 1"
    comm.Barrier()
'''


def _mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def test_failure_on_one_rank_aborts_the_run(tmp_path):
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec")
    (tmp_path / "conftest.py").write_text(
        (Path(__file__).parent / "conftest.py").read_text())
    (tmp_path / "test_planted.py").write_text(BODY)
    t0 = time.monotonic()
    proc = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, "-m", "pytest", "-q", "--with-mpi", "-m", "mpi",
         "-p", "no:cacheprovider", str(tmp_path / "test_planted.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    elapsed = time.monotonic() - t0
    assert proc.returncode != 0
    assert "planted failure on rank 1" in proc.stdout + proc.stderr
    assert "aborting all ranks" in proc.stderr
    # Generous bound (interpreter start-up on a loaded 2-core machine); a hang would hit the
    # 120 s timeout instead.
    assert elapsed < 60, f"run took {elapsed:.0f} s"

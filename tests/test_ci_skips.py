"""No silent skips in CI: with ``CI=true`` a missing SLURM, external data set or parallel-HDF5
setup fails the run (tests/conftest.py ``skip_or_fail``); outside CI it skips with a reason."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skip_or_fail

TESTS = Path(__file__).resolve().parent


def test_skip_or_fail_skips_outside_ci_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget"):
        skip_or_fail("no widget")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("no widget")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true, so not skipped: no widget"):
        skip_or_fail("no widget")


def _pytest(args, ci: bool, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "CI"}
    e.update(env)
    if ci:
        e["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-x", *args], env=e, cwd=TESTS.parent, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("what,args,env", [
    ("external data", ["tests/test_semblance.py", "-k", "gom_offset"],
     {"SEIS_HPC_EXTERNAL_DATA": "/nonexistent/external"}),
    # No SLURM programs on PATH: the cluster fixture cannot start one.
    ("SLURM", ["-m", "slurm", "tests/test_slurm_cluster.py", "-k", "sbatch_wait"],
     {"PATH": str(Path(sys.executable).parent)}),
    ("two-node SLURM", ["-m", "slurm", "tests/test_slurm_twonode.py", "-k", "pstm_job_spans"],
     {"PATH": str(Path(sys.executable).parent)}),
])
def test_missing_setup_fails_in_ci_only(what, args, env):
    p = _pytest(args, ci=False, **env)
    assert p.returncode == 0 and "1 skipped" in p.stdout, (what, p.stdout[-2000:])
    p = _pytest(args, ci=True, **env)
    assert p.returncode == 1 and "CI=true, so not skipped" in p.stdout, (what, p.stdout[-2000:])

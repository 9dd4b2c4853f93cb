"""The README's processing flow, as written there, from a temporary folder to ``verify``
(issue 18).

The commands are read from README.md's command block (the one that sets SEIS_HPC_RUNDIR), so
this test breaks when the README drifts. Only the line is shortened (synth options for a few
shots and a short record) and the ranks are 2; ``seis-hpc`` and ``mpiexec`` come from this
environment through PATH, as after ``. .venv/bin/activate``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import segyio
from conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
# A short line: fold 12, 1.2 s; the whole flow takes ~15 s on one core.
SHORT_LINE = ["--shots", "16", "--channels", "48", "--record-length", "1.2"]
# Folders of the checkout that tools (not the flow) write: caches, the environment, builds.
NOT_CHECKOUT = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "build",
                "dist", "demo_out", "bench_out"}


def readme_flow() -> list[str]:
    """The commands of README.md's flow block: continuation lines joined, comments and blank
    lines dropped."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    flows = [b for b in blocks if "SEIS_HPC_RUNDIR" in b and "seis-hpc verify" in b]
    assert len(flows) == 1, "README.md: no single bash block with SEIS_HPC_RUNDIR and verify"
    commands, pending = [], ""
    for line in flows[0].splitlines():
        line = pending + re.sub(r"(^|\s)#.*$", "", line).strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        if line:
            commands.append(line)
    return commands


def _mpiexec() -> Path | None:
    for cand in (ROOT / ".venv" / "bin" / "mpiexec", Path(sys.executable).parent / "mpiexec"):
        if cand.exists():
            return cand
    return None


def _checkout_files() -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file of the checkout outside tool folders."""
    out = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in NOT_CHECKOUT and not d.endswith(".egg-info")]
        for f in files:
            st = os.stat(os.path.join(folder, f), follow_symlinks=False)
            out[os.path.join(folder, f)] = (st.st_size, st.st_mtime_ns)
    return out


def test_readme_flow_commands_are_the_processing_sequence():
    """The block is a flow from raw shots to both deliverables: the run folder is set before
    the first step, velan, stack and pstm read the conditioned data, report and verify close
    it; the flow file comes from the package, not from the checkout."""
    cmds = readme_flow()
    words = [shlex.split(c) for c in cmds]
    steps = [w[w.index("seis-hpc") + 1] for w in words if "seis-hpc" in w]
    assert steps == ["synth", "example", "run", "index", "velan", "stack", "pstm",
                     "report", "verify"]
    first_step = next(i for i, w in enumerate(words) if "seis-hpc" in w)
    assert any(w[:2] == ["export", "SEIS_HPC_RUNDIR=$PWD"] for w in words[:first_step])
    flow_file = next(w for w in words if "run" in w and "seis-hpc" in w)[-1]
    assert flow_file.endswith(".toml") and "/" not in flow_file  # in the run folder
    for step in ("index", "velan", "stack", "pstm"):
        w = next(w for w in words if step in w)
        assert w[w.index(step) + 1] == "conditioned.sgy", f"{step} does not read the " \
            "conditioned data"
    assert not any("flows/" in c or ".venv" in c for c in cmds), cmds


@pytest.mark.slow  # nine commands, pstm on 2 ranks: 15-35 s on 2 busy cores
def test_readme_flow_runs_from_any_folder_to_verify(tmp_path):
    """Run the README block with cwd = a temporary folder: both SEG-Y deliverables (stack
    before and after migration) are written from the conditioned data, the report and
    manifest verify, and nothing is written into the checkout."""
    mpiexec = _mpiexec()
    if mpiexec is None:
        skip_or_fail("no mpiexec in .venv or beside the interpreter")
    cmds = readme_flow()
    synth = [k for k, c in enumerate(cmds) if "seis-hpc synth" in c]
    mpi = [k for k, c in enumerate(cmds) if c.startswith("mpiexec -n 4 ")]
    assert len(synth) == 1 and len(mpi) == 1, cmds
    cmds[synth[0]] += " " + " ".join(SHORT_LINE)
    cmds[mpi[0]] = "mpiexec -n 2 " + cmds[mpi[0]][len("mpiexec -n 4 "):]

    # seis-hpc and mpiexec on the PATH, as in an activated environment (mpiexec from its own
    # folder: hydra finds its proxy beside it)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "seis-hpc").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} '
                                      '-m seis_hpc "$@"\n')
    (bin_dir / "seis-hpc").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SEIS_HPC_RUNDIR"}
    env.update(PATH=os.pathsep.join([str(bin_dir), str(mpiexec.parent), env.get("PATH", "")]),
               OMP_NUM_THREADS="1")
    script = "set -euo pipefail\n" + "\n".join(cmds) + "\n"
    before = _checkout_files()
    # its own session, so that a hang is cleaned up whole (mpiexec and its ranks)
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"README flow still running after 180 s\n{out}\n{err}")
    assert proc.returncode == 0, f"{script}\n{out}\n{err}"
    assert _checkout_files() == before, "the flow wrote into the checkout"

    cd = [w for c in cmds for w in [shlex.split(c)] if "cd" in w]
    run = work / cd[0][cd[0].index("cd") + 1] if cd else work  # the block's run folder
    assert (run / "steps.jsonl").is_file(), sorted(p.name for p in run.iterdir())
    assert re.search(r"verify: all \d+ files match", out), out

    # Every step recorded from the first, velan/stack/pstm on the conditioned data.
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == ["synth", "run", "index", "velan", "stack", "pstm"]
    assert all(s["status"] == "ok" for s in steps)
    for s in steps[2:]:
        assert "conditioned.sgy" in s["inputs"], (s["step"], s["inputs"])
    assert (run / "conditioned.sgy").stat().st_size == (run / "raw" / "shots.sgy").stat().st_size

    # Both deliverables: SEG-Y of the same CMPs and samples, live, finite.
    manifest = (run / "MANIFEST.sha256").read_text()
    sections = {}
    for name in ("stack.sgy", "image.sgy"):
        assert re.search(rf"^[0-9a-f]{{64}}  {re.escape(name)}$", manifest, flags=re.M), name
        with segyio.open(run / name, ignore_geometry=True) as f:
            sections[name] = (f.trace.raw[:], f.attributes(segyio.TraceField.CDP)[:],
                              f.samples.copy())
    (a, cdp_a, t_a), (b, cdp_b, t_b) = sections["stack.sgy"], sections["image.sgy"]
    assert a.shape == b.shape and np.array_equal(cdp_a, cdp_b) and np.array_equal(t_a, t_b)
    assert t_a[-1] == pytest.approx(1200.0)  # ms: the shortened record (601 samples)
    for name, (data, _, _) in sections.items():
        assert np.isfinite(data).all() and np.sqrt(np.mean(data ** 2)) > 0, name

    # The report verifies independently of seis_hpc too (standard sha256sum format).
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST.sha256"], cwd=run,
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr

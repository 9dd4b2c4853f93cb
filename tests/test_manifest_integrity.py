"""Manifest integrity (issue 13): ``verify`` lists files added to a delivery, refuses paths
that leave the manifest's folder, and the manifest of a run covers every side file a step
writes (``OUT.qc.json``, ``OUT.edits.csv``, the default trace index)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seis_hpc.cli import main
from seis_hpc.delivery.manifest import build_manifest, read_manifest, verify_manifest
from seis_hpc.errors import SeisError


def _verify(manifest: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SEIS_HPC_RUNDIR"}
    return subprocess.run([sys.executable, "-m", "seis_hpc", "verify", str(manifest)],
                          capture_output=True, text=True, timeout=120, env=env)


def _delivery(tmp_path: Path) -> Path:
    d = tmp_path / "delivery"
    (d / "sub").mkdir(parents=True)
    (d / "image.h5").write_bytes(b"image" * 100)
    (d / "sub" / "stack.sgy").write_bytes(b"stack" * 100)
    build_manifest([d / "image.h5", d / "sub" / "stack.sgy"], d / "MANIFEST.sha256",
                   show_progress=False)
    return d / "MANIFEST.sha256"


def _line(digest_of: Path, path: str) -> str:
    data = digest_of.read_bytes()
    return f"{hashlib.sha256(data).hexdigest()}  {len(data)}  {path}\n"


def test_added_files_are_listed_and_fail(tmp_path):
    manifest = _delivery(tmp_path)
    assert _verify(manifest).returncode == 0
    (manifest.parent / "sub" / "extra.sgy").write_bytes(b"x" * 7)
    (manifest.parent / ".hidden").write_bytes(b"y")
    p = _verify(manifest)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert "ADDED    .hidden: 1 bytes, not in the manifest" in lines
    assert "ADDED    sub/extra.sgy: 7 bytes, not in the manifest" in lines
    assert lines[-1].startswith("verify: 0 of 2 files changed or missing, 2 files added")
    _, problems = verify_manifest(manifest, show_progress=False)
    assert [(q.kind, q.entry.path) for q in problems] == [("added", ".hidden"),
                                                          ("added", "sub/extra.sgy")]


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_paths_leaving_the_folder_are_refused(tmp_path, kind):
    """A listed path that leaves the folder is refused in one line, exit 2, even when the
    size and SHA-256 it gives are right (before: reported OK)."""
    manifest = _delivery(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's file\n")
    if kind == "absolute":
        path = str(outside)
    elif kind == "dotdot":
        path = "sub/../../outside.txt"
    else:
        os.symlink(outside, manifest.parent / "link.txt")
        path = "link.txt"
    with open(manifest, "a") as f:
        f.write(_line(outside, path))
    p = _verify(manifest)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("seis-hpc: error: ") and str(manifest) in p.stderr
    assert "leav" in p.stderr and path in p.stderr
    if kind != "symlink":
        with pytest.raises(SeisError, match="line 5"):
            read_manifest(manifest)


def test_etc_hostname_is_not_vouched_for(tmp_path):
    if not Path("/etc/hostname").is_file():
        pytest.skip("no /etc/hostname")
    manifest = _delivery(tmp_path)
    with open(manifest, "a") as f:
        f.write(_line(Path("/etc/hostname"), "/etc/hostname"))
        f.write(_line(Path("/etc/hostname"), "../" * 20 + "etc/hostname"))
    p = _verify(manifest)
    assert p.returncode == 2 and "OK" not in p.stdout


def test_a_manifest_lists_only_files_under_its_folder(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "out.txt").write_text("x")
    with pytest.raises(SeisError, match="outside the manifest's folder"):
        build_manifest([tmp_path / "out.txt"], tmp_path / "in" / "MANIFEST.sha256",
                       show_progress=False)


def _segy(path: Path) -> None:
    from seis_hpc.io.segy import write_segy

    rng = np.random.default_rng(1)
    n = 8
    write_segy(path, rng.normal(size=(n, 64)).astype(np.float32),
               {"FieldRecord": np.repeat([1, 2], 4), "TraceNumber": np.tile([1, 2, 3, 4], 2),
                "SourceX": np.repeat([0, 50], 4), "GroupX": np.repeat([0, 50], 4)
                + np.tile([100, 125, 150, 175], 2), "offset": np.tile([100, 125, 150, 175], 2)},
               0.004)


def test_run_manifest_covers_side_files_and_verifies(tmp_path, monkeypatch, capsys):
    """edit writes OUT, OUT.qc.json and OUT.edits.csv; index writes FILE.index.h5 by default:
    all are in the manifest, and the run folder verifies with nothing added. An output written
    outside the run folder is left out with a warning (a manifest cannot list it)."""
    run = tmp_path / "run"
    run.mkdir()
    _segy(run / "X.sgy")
    monkeypatch.setenv("SEIS_HPC_RUNDIR", str(run))
    assert main(["index", str(run / "X.sgy")]) == 0
    assert main(["edit", str(run / "X.sgy"), "-o", str(run / "e.sgy")]) == 0
    (tmp_path / "elsewhere").mkdir()
    assert main(["gain", str(run / "e.sgy"), "-o", str(tmp_path / "elsewhere" / "g.sgy")]) == 0
    monkeypatch.delenv("SEIS_HPC_RUNDIR")
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "outside the manifest's folder" in out and "g.sgy" in out
    listed = {e.path for e in read_manifest(run / "MANIFEST.sha256")}
    assert {"X.sgy", "X.sgy.index.h5", "e.sgy", "e.sgy.qc.json", "e.sgy.edits.csv",
            "steps.jsonl", "report.html"} <= listed
    assert not any(".." in p or p.startswith("/") for p in listed)
    p = _verify(run / "MANIFEST.sha256")
    assert p.returncode == 0, p.stdout + p.stderr
    (run / "e.sgy.edits.csv").write_text("trace_index\n")  # a side file is checked too
    p = _verify(run / "MANIFEST.sha256")
    assert p.returncode == 1 and "CHANGED  e.sgy.edits.csv" in p.stdout, p.stdout

"""Manifest integrity (issue 13): ``verify`` lists files added to a delivery, refuses paths
that leave the manifest's folder, and the manifest of a run covers every side file a step
writes (``OUT.qc.json``, ``OUT.edits.csv``, the default trace index)."""

from __future__ import annotations

import hashlib
import os
import shutil
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
    return f"# size {len(data)}  {path}\n{hashlib.sha256(data).hexdigest()}  {path}\n"


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
        with pytest.raises(SeisError, match="line 8"):  # 2 header lines, 2 per entry
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
    # the standalone edit step records its edits from the QC summary it wrote, per kind
    import json

    from seis_hpc.delivery.runlog import read_steps

    summary = json.loads((run / "e.sgy.qc.json").read_text())["summary"]
    rec = read_steps(run)[1]
    assert rec["step"] == "edit"
    assert rec["edits"] == {"killed": summary["traces_killed"],
                            "despiked": summary["traces_despiked"],
                            "flipped": summary["traces_flipped"],
                            "swell": summary["traces_swell"]}
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "outside the manifest's folder" in out and "g.sgy" in out
    listed = {e.path for e in read_manifest(run / "MANIFEST.sha256")}
    assert {"X.sgy", "X.sgy.index.h5", "e.sgy.qc.json", "e.sgy.edits.csv",
            "steps.jsonl", "report.html"} <= listed
    # e.sgy is intermediate (gain read it): listed as scratch, not as a deliverable
    assert "e.sgy" not in listed
    assert "e.sgy" in (run / "SCRATCH.txt").read_text().split()
    assert not any(".." in p or p.startswith("/") for p in listed)
    p = _verify(run / "MANIFEST.sha256")
    assert p.returncode == 0, p.stdout + p.stderr
    (run / "e.sgy.edits.csv").write_text("trace_index\n")  # a side file is checked too
    p = _verify(run / "MANIFEST.sha256")
    assert p.returncode == 1 and "CHANGED  e.sgy.edits.csv" in p.stdout, p.stdout


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum")
def test_scratch_is_left_out_and_sha256sum_checks_the_rest(tmp_path):
    """A run whose intermediate files are an output read by a later step (vel.csv, c.sgy),
    files under work/ and migstack's iter<N>/ pass files: the manifest holds only the
    deliverables and passes ``sha256sum -c`` in the run folder; SCRATCH.txt lists the rest
    with sizes, verify does not call them added, and still catches a real addition."""
    from seis_hpc.delivery import runlog
    from seis_hpc.delivery.report import build_report

    run = tmp_path / "run"
    files = {"raw.sgy": b"r" * 40, "vel.csv": b"t,v\n0,1500\n", "work/c.sgy": b"c" * 30,
             "work/c.sgy.edits.csv": b"trace_index\n3\n", "mig/iter0/pass.h5": b"p" * 20,
             "mig/final.sgy": b"f" * 50, "stack.sgy": b"s" * 25, "qc/final.png": b"\x89PNG"}
    for rel, data in files.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(data)
    with runlog.step("velan", {}, rundir=run, inputs=[run / "raw.sgy"]) as rec:
        rec.outputs.append(run / "vel.csv")
    with runlog.step("edit", {}, rundir=run, inputs=[run / "raw.sgy"]) as rec:
        rec.outputs += [run / "work" / "c.sgy", run / "work" / "c.sgy.edits.csv"]
    with runlog.step("stack", {}, rundir=run, inputs=[run / "work/c.sgy", run / "vel.csv"]) as rec:
        rec.outputs.append(run / "stack.sgy")
    with runlog.step("migstack", {}, rundir=run,
                     inputs=[run / "work/c.sgy", run / "vel.csv"]) as rec:
        rec.outputs.append(run / "mig")
    with runlog.step("qc", {}, rundir=run, inputs=[run / "mig/final.sgy"]) as rec:
        rec.qc.append(run / "qc/final.png")
    rep = build_report(run, show_progress=False)

    listed = {e.path for e in read_manifest(run / "MANIFEST.sha256")}
    assert listed == {"raw.sgy", "stack.sgy", "mig/final.sgy", "qc/final.png",
                      "steps.jsonl", "report.html"}
    scratch = {"vel.csv", "work/c.sgy", "work/c.sgy.edits.csv", "mig/iter0/pass.h5"}
    assert dict(rep.scratch) == {rel: len(files[rel]) for rel in scratch}
    rows = [r for r in (run / "SCRATCH.txt").read_text().splitlines() if not r.startswith("#")]
    assert {r.split("  ", 1)[1]: int(r.split("  ", 1)[0]) for r in rows} == dict(rep.scratch)
    html = (run / "report.html").read_text()
    assert "<h2>Scratch</h2>" in html and "mig/iter0/pass.h5" in html

    p = subprocess.run(["sha256sum", "--strict", "-c", "MANIFEST.sha256"], cwd=run,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(": OK") == len(listed)
    assert _verify(run / "MANIFEST.sha256").returncode == 0
    (run / "mig" / "iter1.h5").write_bytes(b"n")  # not scratch: a real addition
    p = _verify(run / "MANIFEST.sha256")
    assert p.returncode == 1 and "ADDED    mig/iter1.h5: 1 bytes" in p.stdout, p.stdout
    (run / "stack.sgy").write_bytes(b"s" * 24)  # sha256sum sees the change too
    p = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=run, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1 and "stack.sgy: FAILED" in p.stdout

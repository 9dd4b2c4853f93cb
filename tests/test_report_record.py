"""The run record hashes each file when its step writes (or reads) it, and the report compares
the files now with those hashes (issue 18): a re-run of ``stack`` is flagged on the earlier
``stack`` step, a hand edit on the step that wrote the file; a ``run`` step lists its flow's
inputs, outputs and trace edits (counts checked against the planted noise and the data); a
folder output (``synth --out .``) lists the files written into it."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import segyio

from seis_hpc.cli import main
from seis_hpc.delivery import runlog
from seis_hpc.delivery.manifest import read_manifest, verify_manifest
from seis_hpc.delivery.report import build_report

FLOW = """[flow]
name = "tiny conditioning"
input = "shots.sgy"
output = "cond.sgy"
workdir = "work"

[[step]]
name = "edit"

[[step]]
name = "bandpass"
corners = [2.0, 4.0, 60.0, 80.0]
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _traces(path: Path) -> np.ndarray:
    with segyio.open(path, ignore_geometry=True) as f:
        return segyio.tools.collect(f.trace[:]).astype(np.float64)


def _sections(text: str) -> list[str]:
    return [html.unescape(s) for s in re.split(r'<h2 id="step\d+">', text)[1:]]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """synth --out . -> run flow.toml (edit, bandpass) -> stack -> stack again with another
    stretch mute, all recorded in the run folder itself; then the report."""
    d = tmp_path_factory.mktemp("record")
    first_stack = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        mp.setenv("SEIS_HPC_RUNDIR", str(d))
        assert main(["synth", "--preset", "tiny3d", "--out", ".", "--spikes", "6",
                     "--dead", "4"]) == 0
        (d / "flow.toml").write_text(FLOW)
        assert main(["run", "flow.toml"]) == 0
        assert main(["stack", "cond.sgy", "--velocity", "velocity.csv", "--out",
                     "stack.h5"]) == 0
        first_stack["sha"] = _sha(d / "stack.h5")
        assert main(["stack", "cond.sgy", "--velocity", "velocity.csv", "--out", "stack.h5",
                     "--stretch-mute", "0.6"]) == 0
        mp.delenv("SEIS_HPC_RUNDIR")
        rep = build_report(d, show_progress=False)
    return {"dir": d, "rep": rep, "first_stack": first_stack["sha"],
            "steps": runlog.read_steps(d), "html": (d / "report.html").read_text()}


def test_hashes_are_taken_when_each_step_writes(run):
    d, steps = run["dir"], run["steps"]
    assert [s["step"] for s in steps] == ["synth", "run", "stack", "stack"]
    # the first stack recorded the file it wrote, not the one the re-run left
    (w3,) = [e for e in steps[2]["written"] if e["path"] == "stack.h5"]
    (w4,) = [e for e in steps[3]["written"] if e["path"] == "stack.h5"]
    assert w3["sha256"] == run["first_stack"] != w4["sha256"] == _sha(d / "stack.h5")
    assert w3["bytes"] == (d / "stack.h5").stat().st_size
    # stack read what run wrote: the same bytes
    (r,) = [e for e in steps[2]["read"] if e["path"] == "cond.sgy"]
    (w,) = [e for e in steps[1]["written"] if e["path"] == "cond.sgy"]
    assert r["sha256"] == w["sha256"] == _sha(d / "cond.sgy")


def test_report_flags_the_older_step_after_a_rerun(run):
    rep, secs = run["rep"], _sections(run["html"])
    assert [(m.step, m.name, m.role, m.path, m.by) for m in rep.mismatches] == [
        (3, "stack", "written", "stack.h5", "step 4 (stack)")]
    m = rep.mismatches[0]
    assert m.recorded_sha256 == run["first_stack"] and m.sha256 == _sha(run["dir"] / "stack.h5")
    flag = (f"changed after this step wrote it: recorded sha256 {run['first_stack']} "
            f"({m.recorded_bytes} bytes), now {m.sha256}")
    assert flag in secs[2] and "rewritten by step 4 (stack)" in secs[2]
    assert "changed after" not in secs[3] and "unchanged" in secs[3]
    top = html.unescape(run["html"].split('<h2 id="step1">')[0])
    assert "Changed or missing files" in top and flag in top
    # the manifest holds the files as they are, so both checks still pass
    entries = {e.path: e for e in read_manifest(run["dir"] / "MANIFEST.sha256")}
    assert entries["stack.h5"].sha256 == m.sha256
    assert verify_manifest(run["dir"] / "MANIFEST.sha256", show_progress=False)[1] == []
    if shutil.which("sha256sum"):
        p = subprocess.run(["sha256sum", "--strict", "-c", "MANIFEST.sha256"], cwd=run["dir"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr


def test_flow_step_lists_inputs_outputs_and_edits(run):
    d, st = run["dir"], run["steps"][1]
    assert st["inputs"] == ["flow.toml", "shots.sgy"]
    assert {"work/01_edit.sgy", "work/01_edit.sgy.qc.json", "work/01_edit.sgy.edits.csv",
            "cond.sgy", "cond.sgy.qc.json"} == set(st["outputs"])
    assert {e["path"] for e in st["written"]} == set(st["outputs"])
    summary = json.loads((d / "work/01_edit.sgy.qc.json").read_text())["summary"]
    truth = json.loads((d / "truth.json").read_text())["noise"]
    # what the flow did, from the data: killed traces are zero, despiked ones changed
    raw, edited = _traces(d / "shots.sgy"), _traces(d / "work/01_edit.sgy")
    zero = np.flatnonzero(~edited.any(axis=1))
    changed = np.flatnonzero((np.abs(edited - raw).max(axis=1) > 0) & edited.any(axis=1))
    assert zero.tolist() == sorted(truth["dead"])
    assert changed.tolist() == sorted(truth["spikes"])
    assert st["edits"]["killed"] == summary["traces_killed"] == len(zero) == 4
    assert st["edits"]["despiked"] == summary["traces_despiked"] == len(changed) == 6
    rows = {(r["flow_step"], r["step"], r["edit"]): r for r in st["edit_table"]}
    assert rows[(1, "edit", "killed")]["traces"] == 4
    assert rows[(1, "edit", "despiked")]["traces"] == 6
    assert rows[(1, "edit", "killed")]["report"] == "work/01_edit.sgy.edits.csv"
    assert st["traces_in"] == st["traces_out"] == 1536
    sec = _sections(run["html"])[1]
    assert "none recorded" not in sec
    assert "<td>killed</td><td class=\"num\">4</td>" in sec
    assert "<td>despiked</td><td class=\"num\">6</td>" in sec
    for p in st["inputs"] + st["outputs"]:
        assert f"<td>{p}</td>" in sec
    # the flow's input is a step input: read by a later step, so scratch, not a deliverable
    listed = {e.path for e in read_manifest(d / "MANIFEST.sha256")}
    assert "flow.toml" in listed and "shots.sgy" not in listed


def test_folder_output_lists_the_files_written(run):
    d, st = run["dir"], run["steps"][0]
    assert st["outputs"] == ["."]
    files = {e["path"]: e for e in st["written"]}
    assert set(files) == {"shots.sgy", "truth.json", "velocity.csv"}
    for p, e in files.items():
        assert e["of"] == "." and e["sha256"] == _sha(d / p) and e["bytes"] == (d / p).stat(
            ).st_size
    sec = _sections(run["html"])[0]
    assert "folder: 3 files written" in sec
    for p, e in files.items():
        assert f"<td>{p}</td>" in sec and e["sha256"] in sec
    # the folder does not swallow the run folder: the manifest lists what the steps wrote
    # (and the flow file run read), nothing else, and verify finds nothing added
    listed = {e.path for e in read_manifest(d / "MANIFEST.sha256")}
    assert listed == {"truth.json", "flow.toml", "cond.sgy.qc.json", "stack.h5",
                      "cond.sgy.index.h5", "steps.jsonl", "report.html"}


def test_hand_edits_and_deletions_are_flagged(run, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(run["dir"], d)
    vel = d / "velocity.csv"
    old = _sha(vel)
    vel.write_text(vel.read_text() + "2.0,3000\n")
    (d / "work" / "01_edit.sgy.edits.csv").unlink()
    rep = build_report(d, show_progress=False)
    got = {(m.step, m.role, m.path): m for m in rep.mismatches}
    assert set(got) == {(1, "written", "velocity.csv"), (3, "read", "velocity.csv"),
                        (4, "read", "velocity.csv"), (2, "written", "work/01_edit.sgy.edits.csv"),
                        (3, "written", "stack.h5")}
    m = got[(1, "written", "velocity.csv")]
    assert m.recorded_sha256 == old and m.sha256 == _sha(vel) and m.by == ""
    assert got[(2, "written", "work/01_edit.sgy.edits.csv")].sha256 is None
    secs = _sections((d / "report.html").read_text())
    assert "changed after this step wrote it" in secs[0] and "by no recorded step" in secs[0]
    assert "changed since this step read it" in secs[2]
    assert "missing (deleted or moved after this step wrote it" in secs[1]


def test_folder_output_keeps_files_of_a_stopped_run_and_only_new_ones(tmp_path):
    """A folder output records the files written into it while the step ran: a file that was
    there before is not the step's; a run stopped and resumed keeps the first run's files."""
    run = tmp_path / "run"
    mig = run / "mig"
    mig.mkdir(parents=True)
    (mig / "old.txt").write_text("before")
    with pytest.raises(KeyboardInterrupt), runlog.step("migstack", {}, rundir=run,
                                                       outputs=[mig]):
        (mig / "iter0").mkdir()
        (mig / "iter0" / "pass.h5").write_bytes(b"p" * 10)
        raise KeyboardInterrupt
    with runlog.step("migstack", {}, rundir=run, outputs=[mig]):
        (mig / "final.sgy").write_bytes(b"f" * 20)
    steps = runlog.read_steps(run)
    assert [e["path"] for e in steps[0]["written"]] == ["mig/iter0/pass.h5"]
    assert [e["path"] for e in steps[1]["written"]] == ["mig/final.sgy"]
    rep = build_report(run, show_progress=False)
    assert {e.path for e in rep.entries} == {"mig/final.sgy", "steps.jsonl", "report.html"}
    assert dict(rep.scratch) == {"mig/iter0/pass.h5": 10}
    _, problems = verify_manifest(run / "MANIFEST.sha256", show_progress=False)
    assert [(p.kind, p.entry.path) for p in problems] == [("added", "mig/old.txt")]


def test_a_record_without_hashes_still_reports(tmp_path):
    """A run record written before hashes were recorded: the files as they are now."""
    (tmp_path / "out.sgy").write_bytes(b"x" * 7)
    runlog.append_record(tmp_path, {"step": "edit", "argv": ["seis-hpc", "edit"],
                                    "inputs": [], "outputs": ["out.sgy"],
                                    "edits": {"killed": 2}, "status": "ok"})
    rep = build_report(tmp_path, show_progress=False)
    text = (tmp_path / "report.html").read_text()
    assert "hash taken now, not recorded by the step" in text
    assert "<td>killed</td><td class=\"num\">2</td>" in text
    assert "not checked: this run record holds no file hashes" in text
    assert rep.mismatches == [] and "out.sgy" in {e.path for e in rep.entries}

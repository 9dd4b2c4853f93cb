"""The processing report of a demo-like run (synth, index, serial pstm, qc): every step listed
with its parameters, files, timings, trace counts and pictures; self-contained HTML; a
manifest that ``seis-hpc verify`` checks, catching a flipped byte and a missing file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seis_hpc.delivery import runlog
from seis_hpc.delivery.manifest import read_manifest

ENV_KEYS = ("SEIS_HPC_RUNDIR", "SLURM_JOB_ID", "SEIS_HPC_PROGRESS")


def _seis(*args, env=None, check=True) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "seis_hpc", *map(str, args)], env=e,
                       capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def _step(run: Path, name: str, args: list) -> None:
    """Run one command with the run folder in the environment and check that the command
    itself appended exactly one record of itself (nothing here writes the record)."""
    before = runlog.read_steps(run) if (run / runlog.STEPS_FILE).exists() else []
    _seis(name, *args, env={"SEIS_HPC_RUNDIR": str(run)})
    after = runlog.read_steps(run) if (run / runlog.STEPS_FILE).exists() else []
    assert len(after) == len(before) + 1, f"seis-hpc {name} did not record itself in the run log"
    assert after[:-1] == before and after[-1]["step"] == name
    assert after[-1]["argv"] == ["seis-hpc", name, *map(str, args)]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    survey, image = run / "survey", run / "image.h5"
    _step(run, "synth", ["--preset", "tiny3d", "--out", survey])
    _step(run, "index", [survey / "shots.sgy"])
    pstm = ["--velocity", survey / "velocity.csv", "--out", image, "--aperture", "300",
            "--tmax", "0.6", "--grid", "1,10,50,80"]
    _step(run, "pstm", [survey / "shots.sgy", *pstm])
    _step(run, "qc", [survey / "shots.sgy", "--what", "shot,maps", "--style", "density",
                      "--out", run / "qc"])
    _step(run, "qc", [image, "--what", "inline,slice", "--out", run / "qc"])
    p = _seis("report", run)
    assert "report of 5 steps" in p.stdout
    return run


def test_steps_recorded(run):
    steps = runlog.read_steps(run)
    assert [s["step"] for s in steps] == ["synth", "index", "pstm", "qc", "qc"]
    for s in steps:
        assert s["status"] == "ok"
        assert s["end"] >= s["start"] and s["seconds"] >= 0
        assert s["argv"][:2] == ["seis-hpc", s["step"]]
    # paths under the run folder are stored relative to it
    assert steps[2]["outputs"] == ["image.h5"]
    # what pstm itself knows only at the end: its traces, strategy and ranks
    assert steps[2]["traces_in"] == 1536 and steps[2]["params"]["aperture"] == 300.0
    assert steps[2]["metrics"]["ranks"] == 1 and steps[2]["metrics"]["units"] >= 1
    assert steps[2]["inputs"] == ["survey/shots.sgy", "survey/velocity.csv"]
    assert steps[1]["inputs"] == ["survey/shots.sgy"]
    assert len(steps[3]["qc"]) == 7 and len(steps[4]["qc"]) == 2


def test_report_lists_every_step(run):
    html = (run / "report.html").read_text()
    steps = runlog.read_steps(run)
    sections = re.split(r'<h2 id="step\d+">', html)[1:]
    assert len(sections) == len(steps)
    for sec, st in zip(sections, steps, strict=True):
        assert sec.startswith(f'{steps.index(st) + 1}. {st["step"]} ')
        assert " ".join(st["argv"]) in sec.replace("&quot;", '"')
        for p in st["inputs"] + st["outputs"]:
            assert f"<td>{p}</td>" in sec
        for k in st["params"]:
            assert f"<td>{k}</td>" in sec
        if st["traces_in"] is not None:
            assert f'<td class="num">{st["traces_in"]}</td>' in sec
        assert st["start"] in sec and st["end"] in sec
        for k in st["edits"]:
            assert f"<td>{k}</td>" in sec
        # each QC picture embedded, byte for byte
        imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', sec)
        assert len(imgs) == len(st["qc"])
        for data, p in zip(imgs, st["qc"], strict=True):
            assert base64.b64decode(data) == (run / p).read_bytes()
    assert '<td class="num">1536</td>' in sections[2]  # pstm traces in
    assert '<tr><td>aperture</td><td class="num">300</td></tr>' in sections[2]
    assert "<tr><td>grid</td><td><code>[1, 10, 50, 80]</code></td></tr>" in sections[2]
    assert "<tr><td>what</td><td>shot,maps</td></tr>" in sections[3]  # recorded by qc itself


def test_report_is_self_contained(run):
    html = (run / "report.html").read_text()
    assert 'src="http' not in html and "src='http" not in html
    assert "http://" not in html and "https://" not in html
    for attr in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html):
        assert attr.startswith(("data:image/", "#")), attr
    assert "<script" not in html and "<link" not in html and "url(" not in html
    assert "<iframe" not in html and "@import" not in html


def test_manifest_covers_every_deliverable(run):
    entries = {e.path: e for e in read_manifest(run / "MANIFEST.sha256")}
    steps = runlog.read_steps(run)
    expect = {"image.h5", "survey/truth.json", "survey/shots.sgy.index.h5", "steps.jsonl",
              "report.html"}
    for s in steps:
        expect.update(s["qc"])
    assert expect <= set(entries)
    # synth's shots and velocity were read by a later step (pstm): scratch, listed apart
    scratch = {"survey/shots.sgy", "survey/velocity.csv"}
    assert not scratch & set(entries)
    rows = (run / "SCRATCH.txt").read_text().splitlines()
    assert scratch <= {r.split("  ", 1)[1] for r in rows if not r.startswith("#")}
    for path, e in entries.items():
        data = (run / path).read_bytes()
        assert e.size == len(data)
        assert e.sha256 == hashlib.sha256(data).hexdigest()


def _verify(run: Path) -> subprocess.CompletedProcess:
    return _seis("verify", run / "MANIFEST.sha256", env={"SLURM_JOB_ID": "1"}, check=False)


def test_verify_passes_then_catches_a_flipped_byte_and_a_missing_file(run, tmp_path):
    p = _verify(run)
    assert p.returncode == 0, p.stdout + p.stderr
    n = len(read_manifest(run / "MANIFEST.sha256"))
    assert p.stdout.strip().splitlines()[-1].startswith(f"verify: all {n} files match")

    image = run / "image.h5"
    raw = bytearray(image.read_bytes())
    k = len(raw) // 2
    raw[k] ^= 0x01  # flip one bit: same size, other content
    image.write_bytes(bytes(raw))
    pic = run / runlog.read_steps(run)[4]["qc"][0]
    saved = pic.read_bytes()
    pic.unlink()
    try:
        p = _verify(run)
        assert p.returncode == 1
        lines = p.stdout.strip().splitlines()
        assert lines[0].startswith("CHANGED  image.h5: SHA-256")
        assert lines[1] == f"MISSING  {pic.relative_to(run).as_posix()}: no such file"
        assert lines[2].startswith(f"verify: 2 of {n} files changed or missing")
        assert len(lines) == 3
        assert "\r" not in p.stderr and "\x1b" not in p.stderr  # batch job: plain lines
    finally:
        raw[k] ^= 0x01
        image.write_bytes(bytes(raw))
        pic.write_bytes(saved)
    truncated = run / "survey" / "truth.json"
    text = truncated.read_bytes()
    truncated.write_bytes(text[:-1])
    try:
        p = _verify(run)
        assert p.returncode == 1
        assert f"size {len(text) - 1} bytes, expected {len(text)}" in p.stdout
    finally:
        truncated.write_bytes(text)
    assert _verify(run).returncode == 0


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum")
def test_sha256sum_checks_the_manifest(run):
    """The manifest is in the standard sha256sum format: anyone can check the delivery
    without seis_hpc, and every line checked is a deliverable (none is scratch)."""
    p = subprocess.run(["sha256sum", "--strict", "-c", "MANIFEST.sha256"], cwd=run,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    checked = {line.rsplit(": ", 1)[0] for line in p.stdout.splitlines()
               if line.endswith(": OK")}
    assert checked == {e.path for e in read_manifest(run / "MANIFEST.sha256")}
    assert "survey/shots.sgy" not in checked and "image.h5" in checked


def test_bad_input_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "MANIFEST.sha256"
    bad.write_text("not a manifest\n")
    for args in (["verify", bad], ["verify", tmp_path / "absent"], ["report", tmp_path]):
        p = _seis(*args, check=False)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        err = p.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("seis-hpc: error:"), err
        assert "Traceback" not in p.stderr
    assert not (tmp_path / "report.html").exists()
    assert not (tmp_path / "MANIFEST.sha256.tmp").exists()


def test_step_context_records_failure(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), runlog.step(
            "nmo", {"vnmo": 1500.0, "_module": object()}, rundir=tmp_path,
            inputs=[tmp_path / "in.sgy"]) as rec:
        rec.traces_in = 10
        raise RuntimeError("boom")
    with runlog.step("stack", {"fold": 24}, rundir=tmp_path, argv=["seis-hpc", "stack"]) as rec:
        rec.outputs.append(tmp_path / "stack.h5")
        rec.edits["killed"] = 3
    steps = runlog.read_steps(tmp_path)
    assert [(s["step"], s["status"]) for s in steps] == [("nmo", "failed"), ("stack", "ok")]
    assert steps[0]["message"] == "boom" and steps[0]["traces_in"] == 10
    assert steps[0]["params"] == {"vnmo": 1500.0}  # the CLI's private entries left out
    assert steps[0]["inputs"] == ["in.sgy"]
    assert steps[1]["outputs"] == ["stack.h5"] and steps[1]["edits"] == {"killed": 3}
    json.dumps(steps)  # plain JSON throughout

"""No command may destroy its inputs: an output that is an input (same path, a symbolic link
or a hard link to it) or another output of the same command is refused before any byte
changes (issue 13).

The property test is driven by ``seis_hpc.commands.COMMANDS`` and each module's ``INPUTS``,
``OUTPUTS`` and ``WRITES``, so a new subcommand is covered as soon as it is listed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seis_hpc import cli
from seis_hpc.commands import COMMANDS

# Metavars that name a file or folder: every argument shown with one must be declared.
PATHLIKE = {"PATH", "FILE", "FILE0", "DIR", "OUT", "CSV", "TABLE", "V", "IN", "INPUT",
            "GATHERS", "RUNDIR", "MANIFEST", "FLOW.toml"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its SHA-256 (links as their target text)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "->" + os.readlink(p)
        elif p.is_file():
            out[str(p)] = _sha(p)
        else:
            out[str(p)] = "dir"
    return out


def _variants():
    """(argv prefix, parser, module) of every subcommand and sub-action (slurm render...)."""
    sub = next(a for a in cli.build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    for name in COMMANDS:
        parser = sub.choices[name]
        mod = cli._load(name)
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for action, p in nested[0].choices.items():
                yield [name, action], p, mod
        else:
            yield [name], parser, mod


def _declared(mod):
    ins = tuple(getattr(mod, "INPUTS", ()))
    outs = tuple(getattr(mod, "OUTPUTS", ())) + tuple(getattr(mod, "WRITES", ()))
    return ins, outs


def _argv(prefix, parser, mod, folder: Path, out_dest: str, in_dest: str):
    """A command line giving every declared input an existing file, every declared output a
    fresh name except ``out_dest``, which gets the file of ``in_dest``; other required
    arguments get any value of their type."""
    ins, outs = _declared(mod)
    files = {}
    pos, opts = [], []
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction) or a.dest == argparse.SUPPRESS:
            continue
        if a.dest in ins:
            f = folder / f"in_{a.dest}.dat"
            f.write_bytes(f"input {a.dest}: not a survey\n".encode() * 50)
            files[a.dest] = f
            value = str(f)
        elif a.dest in outs:
            value = str(folder / f"out_{a.dest}.dat")
        elif a.required or not a.option_strings:
            value = str(a.choices[0]) if a.choices else "1" if a.type in (int, float) else "x"
        else:
            continue
        if a.option_strings:
            opts += [a.option_strings[-1], value]
        else:
            pos.append(value)
    if out_dest not in [a.dest for a in parser._actions] or in_dest not in files:
        return None, files
    argv = prefix + pos + opts
    wanted = next(a for a in parser._actions if a.dest == out_dest)
    target = str(folder / f"out_{out_dest}.dat")
    argv = [str(files[in_dest]) if v == target else v for v in argv]
    if not wanted.option_strings and str(files[in_dest]) not in argv:
        return None, files
    return argv, files


def _cases():
    for prefix, parser, mod in _variants():
        ins, outs = _declared(mod)
        dests = {a.dest for a in parser._actions}
        for o in outs:
            for i in ins:
                if o in dests and i in dests:
                    yield pytest.param(prefix, parser, mod, o, i, id=f"{' '.join(prefix)}:"
                                       f"{o}={i}")


CASES = list(_cases())


def test_every_command_with_a_file_argument_declares_it():
    """An argument shown as a path (FILE, OUT, X.h5...) is declared as read or written, so
    the guard sees it; and every declared name is an argument of the command."""
    for prefix, parser, mod in _variants():
        ins, outs = _declared(mod)
        for a in parser._actions:
            meta = str(a.metavar or "")
            if a.dest == "rundir" and prefix == ["qc"]:
                continue  # the run folder: its record is a side file (qc.side_files)
            if a.dest in ("out", "index") or meta in PATHLIKE or re.search(r"\w\.[a-z0-9]+$",
                                                                           meta):
                assert a.dest in ins + outs, f"seis-hpc {' '.join(prefix)}: {a.dest} undeclared"
    for name in COMMANDS:
        mod = cli._load(name)
        ins, outs = _declared(mod)
        parser = next(a for a in cli.build_parser()._actions
                      if isinstance(a, argparse._SubParsersAction)).choices[name]
        dests = {a.dest for a in parser._actions}
        for sub in parser._actions:
            if isinstance(sub, argparse._SubParsersAction):
                for p in sub.choices.values():
                    dests |= {a.dest for a in p._actions}
        assert set(ins + outs) <= dests, f"{name}: declares {set(ins + outs) - dests}"


def test_the_property_covers_every_writing_command():
    covered = {c.values[0][0] for c in CASES}
    writers = {n for n in COMMANDS if _declared(cli._load(n))[1]}
    # synth writes a folder and example a packaged flow file; they read nothing of the
    # user's: there is no input to protect.
    assert writers - covered == {"synth", "example"}
    assert {"pstm", "stack", "velan", "migstack", "index", "edit", "bandpass", "slurm", "qc",
            "report"} <= covered


@pytest.mark.parametrize("rundir", [False, True], ids=["plain", "rundir"])
@pytest.mark.parametrize(("prefix", "parser", "mod", "out_dest", "in_dest"), CASES)
def test_output_that_is_an_input_is_refused_before_any_byte_changes(
        tmp_path, monkeypatch, capsys, prefix, parser, mod, out_dest, in_dest, rundir):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if rundir:
        monkeypatch.setenv("SEIS_HPC_RUNDIR", str(tmp_path / "run"))
    else:
        monkeypatch.delenv("SEIS_HPC_RUNDIR", raising=False)
    argv, files = _argv(prefix, parser, mod, work, out_dest, in_dest)
    if argv is None:
        pytest.skip("output and input are not both arguments of this command")
    before = _snapshot(work)
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert _snapshot(work) == before  # every input byte for byte, and nothing written
    assert not (tmp_path / "run").exists()  # not even a run record
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seis-hpc: error: "), err
    assert "Traceback" not in err
    assert str(files[in_dest]) in lines[0] and "same file" in lines[0]


def _run(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "seis_hpc", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", [
    ["pstm", "X.sgy", "-v", "V.csv", "-o", "X.sgy"],
    ["pstm", "X.sgy", "-v", "V.csv", "-o", "V.csv"],
    ["pstm", "X.sgy", "--index", "X.sgy", "-v", "V.csv", "-o", "img.h5"],
    ["pstm", "X.sgy", "-v", "V.csv", "-o", "img.h5", "--checkpoint-dir", "X.sgy"],
    ["stack", "X.sgy", "-v", "V.csv", "-o", "st.h5", "--segy", "X.sgy"],
    ["stack", "X.sgy", "-v", "V.csv", "-o", "X.sgy"],
    ["stack", "X.sgy", "-v", "V.csv", "-o", "st.h5", "--segy", "st.h5"],
    ["velan", "X.sgy", "-o", "X.sgy"],
    ["velan", "X.sgy", "-o", "v.h5", "--picks", "X.sgy"],
    ["velan", "X.sgy", "-o", "v.h5", "--su-table", "V.csv", "--reference", "V.csv"],
    ["index", "X.sgy", "--index", "X.sgy"],
    ["migstack", "X.sgy", "-v", "X.vrms-iter0.h5", "-o", "X.h5"],
    ["edit", "X.sgy", "-o", "e.sgy", "--report", "X.sgy"],
    ["bandpass", "X.sgy.qc.json", "-o", "X.sgy"],
])
def test_named_cases_are_refused_in_one_line(tmp_path, argv):
    """The cases of issue 13, through the real command line (no traceback, exit 2)."""
    (tmp_path / "X.sgy").write_bytes(b"survey bytes" * 400)
    (tmp_path / "V.csv").write_text("time_s,vrms_mps\n0,1500\n2,2500\n")
    (tmp_path / "X.vrms-iter0.h5").write_bytes(b"velocity")
    (tmp_path / "X.sgy.qc.json").write_text("{}")
    before = _snapshot(tmp_path)
    r = _run(*argv, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("seis-hpc: error: "), r.stderr
    assert "same file" in r.stderr
    assert _snapshot(tmp_path) == before


def test_hard_link_and_symbolic_link_to_an_input_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEIS_HPC_RUNDIR", raising=False)
    x = tmp_path / "X.sgy"
    x.write_bytes(b"survey" * 1000)
    os.link(x, tmp_path / "hard.sgy")
    (tmp_path / "sub").mkdir()
    os.symlink("../X.sgy", tmp_path / "sub" / "link.sgy")
    before = _snapshot(tmp_path)
    for argv in (["bandpass", "X.sgy", "-o", "hard.sgy"],
                 ["bandpass", "hard.sgy", "-o", "X.sgy"],
                 ["gain", "sub/link.sgy", "-o", "X.sgy"],
                 ["gain", "X.sgy", "-o", "sub/link.sgy"],
                 ["stack", "X.sgy", "-v", "v.csv", "-o", "st.h5", "--segy", "hard.sgy"],
                 ["gain", "X.sgy", "-o", f"{tmp_path}/sub/../X.sgy"]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "same file" in err, err
        assert argv[1] in err and argv[-1] in err, err
    assert _snapshot(tmp_path) == before


def test_same_file_compares_inodes_and_real_paths(tmp_path):
    a = tmp_path / "a"
    a.write_text("1")
    os.link(a, tmp_path / "b")
    os.symlink(a, tmp_path / "c")
    assert cli.same_file(str(a), str(tmp_path / "b"))
    assert cli.same_file(str(tmp_path / "c"), str(a))
    assert cli.same_file(str(tmp_path / "new"), str(tmp_path / "." / "new"))
    (tmp_path / "d").write_text("1")  # equal content, other file
    assert not cli.same_file(str(a), str(tmp_path / "d"))
    assert not cli.same_file(str(a), str(tmp_path / "missing"))


def test_flow_outputs_may_not_be_its_files(tmp_path):
    """``seis-hpc run``: a step's output, QC summary or report that is the flow file, the
    flow's input or a parameter file is refused before any step runs."""
    import numpy as np

    from seis_hpc.io.segy import write_segy

    x = tmp_path / "X.sgy"
    n = 4
    write_segy(x, np.zeros((n, 16), np.float32),
               {"FieldRecord": [1, 1, 2, 2], "TraceNumber": [1, 2, 1, 2],
                "SourceX": [0, 0, 25, 25], "GroupX": [100, 125, 125, 150],
                "offset": [100, 125, 100, 125]}, 0.004)
    v = tmp_path / "v.csv"
    v.write_text("time_s,vrms_mps\n0,1500\n2,2500\n")
    cases = {
        "report": '[flow]\ninput = "X.sgy"\noutput = "o.sgy"\n[[step]]\nname = "edit"\n'
                  'report = "X.sgy"\n',
        "flowfile": '[flow]\ninput = "X.sgy"\noutput = "f.toml"\n[[step]]\nname = "gain"\n',
        "qc": '[flow]\ninput = "X.sgy"\noutput = "v"\n[[step]]\nname = "gain"\n'
              '[[step]]\nname = "radon"\nvelocity = "v.qc.json"\n',
    }
    (tmp_path / "v.qc.json").write_text("{}")
    for name, text in cases.items():
        (tmp_path / "f.toml").write_text(text)
        before = _snapshot(tmp_path)
        r = _run("run", "f.toml", cwd=tmp_path)
        assert r.returncode == 2, (name, r.stderr)
        assert r.stderr.count("\n") == 1 and "same file" in r.stderr, (name, r.stderr)
        assert _snapshot(tmp_path) == before, name


def test_report_and_qc_outputs_may_not_be_their_inputs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "steps.jsonl").write_text('{"step": "x"}\n')
    (tmp_path / "X.sgy").write_bytes(b"survey")
    before = _snapshot(tmp_path)
    for argv in (["report", "run", "--out", "run/steps.jsonl"],
                 ["report", "run", "--manifest", "run/steps.jsonl"],
                 ["report", "run", "--out", "r.html", "--manifest", "r.html"],
                 ["qc", "X.sgy", "--out", "X.sgy"]):
        assert cli.main(argv) == 2, argv
        assert "same file" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_under_mpiexec_every_rank_refuses_and_one_says_so(tmp_path):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("no mpiexec beside the interpreter")
    x = tmp_path / "X.sgy"
    x.write_bytes(b"survey" * 1000)
    (tmp_path / "V.csv").write_text("time_s,vrms_mps\n0,1500\n")
    before = _snapshot(tmp_path)
    r = subprocess.run([str(mpiexec), "-n", "2", sys.executable, "-m", "seis_hpc", "pstm",
                        "X.sgy", "-v", "V.csv", "-o", "X.sgy"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("seis-hpc: error:")]
    assert len(errors) == 1 and "same file" in errors[0], r.stderr
    assert _snapshot(tmp_path) == before

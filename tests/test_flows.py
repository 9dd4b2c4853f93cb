"""Flow files (validation naming the line, history in every output) and the MPI driver
(the same output on several ranks as on one)."""

import json
from pathlib import Path

import numpy as np
import pytest
from _conditioning_data import small_preset

from seis_hpc.cli import main
from seis_hpc.engine.gather_run import group_traces
from seis_hpc.errors import SeisError
from seis_hpc.flows.flowfile import load_flow
from seis_hpc.survey import open_traces
from seis_hpc.synth import Noise, write_survey

ROOT_FLOW = Path(__file__).resolve().parents[1] / "flows" / "marine2d.toml"


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    write_survey(small_preset(shots=12, channels=24, record=0.8,
                              noise=Noise(dead=3, spikes=3, swell_bursts=2, seed=5)), root)
    return root


def _flow(root, body):
    p = root / "f.toml"
    p.write_text('[flow]\nname = "t"\ninput = "shots.sgy"\noutput = "out.sgy"\n' + body)
    return p


@pytest.mark.parametrize("body,line_no,word", [
    ('[[step]]\nname = "swell"\nfmaxx = 15\n', 7, "unknown parameter 'fmaxx'"),
    ('[[step]]\nname = "swell"\nfmax = "15 m"\n', 7, "unit 'm'"),
    ('[[step]]\nname = "radon"\nvelocity = "none.csv"\n', 7, "not found"),
    ('[[step]]\nname = "swel"\n', 6, "unknown step"),
    ('[[step]]\nname = "bandpass"\ncorners = "1,2,x,4"\n', 7, "corners"),
])
def test_flow_validation_names_the_line(line, body, line_no, word):
    p = _flow(line, body)
    with pytest.raises(SeisError) as exc:
        load_flow(p)
    assert f"line {line_no}:" in str(exc.value)
    assert word in str(exc.value)


def test_flow_validation_through_cli_writes_nothing(line, capsys):
    p = _flow(line, '[[step]]\nname = "edit"\n[[step]]\nname = "agc"\nwindow = "1 Hz"\n')
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert "line 9" in err and err.count("\n") == 1
    assert not (line / "out.sgy").exists()


def test_units_are_converted(line):
    p = _flow(line, '[[step]]\nname = "agc"\nwindow = "250 ms"\n')
    fl = load_flow(p)
    assert fl.steps[0][1]["window"] == pytest.approx(0.25)


def test_flow_runs_and_records_history(line):
    p = _flow(line, '[[step]]\nname = "edit"\n[[step]]\nname = "swell"\nfmax = "15 Hz"\n'
                    '[[step]]\nname = "bandpass"\ncorners = [2, 4, 90, 110]\n')
    assert main(["run", str(p)]) == 0
    out = line / "out.sgy"
    qc = json.loads((line / "out.sgy.qc.json").read_text())
    assert [h["step"] for h in qc["history"]] == ["edit", "swell", "bandpass"]
    assert qc["history"][-1]["parameters"]["corners"] == [2.0, 4.0, 90.0, 110.0]
    assert "swell" in qc["history"][-1]["flow"]["text"]
    a, b = open_traces(line / "shots.sgy"), open_traces(out)
    assert b.layout.n_traces == a.layout.n_traces and b.layout.ns == a.layout.ns
    ids = np.arange(a.layout.n_traces)
    assert np.array_equal(a.header_bytes(ids), b.header_bytes(ids))
    assert "seis-hpc edit" in open(out, "rb").read(3200).decode("cp037")


def test_example_flow_is_valid(tmp_path, monkeypatch, capsys):
    # `seis-hpc example marine2d` copies the example flow into the current folder, where it
    # validates against the survey it expects (raw/) and writes into that folder only.
    monkeypatch.chdir(tmp_path)
    assert main(["example", "marine2d"]) == 0
    assert (tmp_path / "marine2d.toml").read_bytes() == ROOT_FLOW.read_bytes()
    write_survey(small_preset(shots=4, channels=12, record=0.4), tmp_path / "raw")
    fl = load_flow("marine2d.toml")
    assert [s.name for s, _ in fl.steps] == ["edit", "swell", "srme", "bandpass"]
    assert fl.input == tmp_path / "raw" / "shots.sgy"
    assert fl.output == tmp_path / "conditioned.sgy" and fl.workdir == tmp_path / "work"
    assert fl.steps[0][1]["report"] == str(tmp_path / "edits.csv")
    # Listed bare; printed with --out -.
    capsys.readouterr()
    assert main(["example"]) == 0
    assert capsys.readouterr().out.split()[0] == "marine2d"
    assert main(["example", "marine2d", "--out", "-"]) == 0
    assert capsys.readouterr().out == ROOT_FLOW.read_text()
    # An existing flow file (edited?) is kept; an unknown example is named.
    (tmp_path / "marine2d.toml").write_text("# edited\n")
    assert main(["example", "marine2d"]) == 2
    assert main(["example", "marine3d"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "marine2d.toml exists" in err[0] and "'marine3d'" in err[1] and "marine2d" in err[1]
    assert (tmp_path / "marine2d.toml").read_text() == "# edited\n"


def test_gathers_cover_every_trace_once(line):
    rd = open_traces(line / "shots.sgy", bin_cmps=True)
    for key in ("shot", "cmp", "line"):
        g = group_traces(rd.index, key)
        allids = np.sort(np.concatenate(g))
        assert np.array_equal(allids, np.arange(rd.index.n_traces))


@pytest.mark.mpi
def test_step_same_on_several_ranks(tmp_path_factory):
    from mpi4py import MPI

    from seis_hpc.engine.gather_run import run_step
    from seis_hpc.flows.steps import STEPS

    comm = MPI.COMM_WORLD
    root = None
    if comm.rank == 0:
        root = tmp_path_factory.mktemp("mpi")
        write_survey(small_preset(shots=8, channels=24, record=0.6,
                                  noise=Noise(dead=2, spikes=2, swell_bursts=2, seed=9)), root)
    root = comm.bcast(root, root=0)
    for name, params in (("edit", {}), ("swell", {})):
        spec = STEPS[name]
        p = spec.resolve(params, name)
        if comm.rank == 0:
            run_step(spec, p, root / "shots.sgy", root / f"{name}_1.sgy", comm=None, quiet=True)
        comm.Barrier()
        run_step(spec, p, root / "shots.sgy", root / f"{name}_n.sgy", comm=comm, quiet=True)
        if comm.rank == 0:
            a = (root / f"{name}_1.sgy").read_bytes()
            b = (root / f"{name}_n.sgy").read_bytes()
            assert a == b, name
        comm.Barrier()


def test_every_registered_step_is_a_gather_step():
    import importlib

    from seis_hpc.flows.steps import STEPS, GatherStep, register

    for name, spec in STEPS.items():
        mod, cls = spec.factory.split(":")
        impl = getattr(importlib.import_module(mod), cls)
        assert GatherStep in impl.__mro__, name  # subclasses it, so it has every hook
        assert impl.two_pass == (name == "edit")  # only editing decides from the whole line
    with pytest.raises(ValueError, match="already registered"):
        register(STEPS["gain"])

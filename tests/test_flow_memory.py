"""Issue 19, the flow steps' memory: ``edit`` keeps its per-trace results in a scratch file of
rows and makes the CMP medians by bands of CMP numbers, instead of sharing every trace's
attributes with every rank; the flow driver and the steps read their gather's index rows, not
whole columns. Their peak traced memory (tracemalloc) must not follow the survey's traces,
and ``edit`` must decide exactly what the all-in-memory :func:`seis_hpc.flows.edit.classify`
decides, on one rank and on two.
"""

from __future__ import annotations

import csv
import tracemalloc

import numpy as np
import pytest
from _conditioning_data import small_preset

from seis_hpc.engine import gather_run
from seis_hpc.engine.gather_run import group_traces, run_step
from seis_hpc.flows import edit
from seis_hpc.flows.steps import STEPS
from seis_hpc.io.index import TraceIndex
from seis_hpc.survey import open_traces
from seis_hpc.synth import Noise, write_survey

NOISE = Noise(dead=4, spikes=6, noisy=6, reversed=5, nan=3, swell_bursts=2, seed=17)


def _small_bands(monkeypatch):
    """Many CMP bands, index chunks and report chunks on a small line (and chunks that do not
    divide it), so that every boundary is crossed."""
    monkeypatch.setattr(edit, "BAND_TRACES", 60)
    monkeypatch.setattr(edit, "CHUNK", 37)
    monkeypatch.setattr(edit, "REPORT_CHUNK", 29)
    monkeypatch.setattr(gather_run, "CONTEXT_BATCH", 50)


def _reference(path):
    """The edits of the whole line decided in memory (classify) and applied gather by gather:
    what the step did before it streamed."""
    rd = open_traces(path)
    n = rd.index.n_traces
    cols = rd.columns(np.arange(n))
    p = STEPS["edit"].resolve({}, "edit")
    attrs = {}
    groups = group_traces(rd.index, "shot")
    for ids in groups:
        a = edit.trace_attributes(rd.read(ids, allow_bad=True), rd.dt,
                                  spike_ratio=p["spike_ratio"], fmin=p["fmin"])
        for k, v in a.items():
            attrs.setdefault(k, np.zeros(n, v.dtype))[ids] = v
    action, reason = edit.classify(attrs, cols, noisy_ratio=p["noisy_ratio"],
                                   reversed_corr=p["reversed_corr"],
                                   max_spikes=p["max_spikes"], neighbours=p["neighbours"])
    out = np.zeros((n, rd.ns), np.float32)
    for ids in groups:
        g = rd.read(ids, allow_bad=True)
        act = action[ids]
        mask = edit.spike_mask(np.nan_to_num(g), spike_ratio=p["spike_ratio"]) \
            if (act == edit.DESPIKE).any() else None
        out[ids] = edit.apply_edits(g, act, mask)
    rows = [[str(int(i)), str(int(cols["ffid"][i])), str(int(cols["channel"][i])),
             str(int(cols["cmp"][i])), f"{cols['offset'][i]:.2f}", edit.ACTIONS[int(action[i])],
             reason[i]] for i in np.flatnonzero(action)]
    return rows, out


def _report(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))[1:]


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    write_survey(small_preset(shots=14, channels=24, record=0.6, noise=NOISE), root)
    return root


def test_edit_streamed_decides_exactly_as_classify(damaged, tmp_path, monkeypatch):
    _small_bands(monkeypatch)
    shots = damaged / "shots.sgy"
    rd = open_traces(shots)
    bands, counts = edit.cmp_bands(rd.index, edit.BAND_TRACES, edit.CHUNK)
    assert len(bands) > 5 and sum(counts) == rd.index.n_traces
    # every trace is in exactly one band
    got = np.sort(np.concatenate([edit.band_traces(rd.index, b, edit.CHUNK)["ids"]
                                  for b in bands]))
    np.testing.assert_array_equal(got, np.arange(rd.index.n_traces))

    rows, expect = _reference(shots)
    kinds = {r[5] for r in rows}
    assert {"kill", "despike", "flip", "swell"} <= kinds  # every decision is exercised
    out = tmp_path / "e.sgy"
    summary = run_step(STEPS["edit"], STEPS["edit"].resolve({}, "edit"), shots, out,
                       quiet=True)
    assert _report(str(out) + ".edits.csv") == rows
    np.testing.assert_array_equal(open_traces(out).read(np.arange(len(expect))), expect)
    assert summary["traces_killed"] == sum(r[5] == "kill" for r in rows)
    assert summary["traces_swell"] == sum(r[5] == "swell" for r in rows)
    # the scratch rows are gone with the run
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["e.sgy", "e.sgy.edits.csv", "e.sgy.qc.json"]


@pytest.mark.mpi
def test_edit_streamed_on_two_ranks_decides_exactly_as_classify(tmp_path_factory, monkeypatch):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    _small_bands(monkeypatch)
    root = None
    if comm.rank == 0:
        root = tmp_path_factory.mktemp("mpi_edit")
        write_survey(small_preset(shots=10, channels=24, record=0.6, noise=NOISE), root)
    root = comm.bcast(root, root=0)
    out = root / "e.sgy"
    run_step(STEPS["edit"], STEPS["edit"].resolve({}, "edit"), root / "shots.sgy", out,
             comm=comm, quiet=True)
    if comm.rank == 0:
        rows, expect = _reference(root / "shots.sgy")
        assert rows and _report(str(out) + ".edits.csv") == rows
        np.testing.assert_array_equal(open_traces(out).read(np.arange(len(expect))), expect)
        assert not [p for p in root.iterdir() if ".tmp-" in p.name]
    comm.Barrier()


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """A line and one with twice its shots (the same gathers), both indexed."""
    d = tmp_path_factory.mktemp("lines")
    paths = []
    for shots in (40, 80):
        root = d / f"s{shots}"
        write_survey(small_preset(shots=shots, channels=48, record=0.5,
                                  noise=Noise(dead=3, spikes=3, noisy=3, seed=1)), root)
        TraceIndex.build(root / "shots.sgy")
        paths.append(root / "shots.sgy")
    return paths


@pytest.mark.parametrize("name, params", [("edit", {}), ("bandpass",
                                                          {"corners": "5,10,60,80"})])
def test_flow_step_peak_does_not_follow_the_traces(lines, tmp_path, monkeypatch, name, params):
    """1,920 -> 3,840 traces: the peak grows by less than 48 B per added trace (the driver's
    list of gathers: one sort of the shot and channel numbers). Before, edit grew by about
    160 B a trace (every trace's attributes, columns and decisions on every rank) and
    bandpass by about 80 (every index column the gathers' context loaded whole)."""
    monkeypatch.setattr(edit, "BAND_TRACES", 500)
    monkeypatch.setattr(edit, "CHUNK", 256)
    monkeypatch.setattr(edit, "REPORT_CHUNK", 256)
    monkeypatch.setattr(gather_run, "CONTEXT_BATCH", 256)
    peaks, n0, n1 = step_peaks(name, params, lines, tmp_path)
    assert n1 == 2 * n0
    assert peaks[1] - peaks[0] < 48 * (n1 - n0), (peaks, n1 - n0)


def step_peaks(name, params, lines, tmp_path):
    """The tracemalloc peak (bytes) of the flow step ``name`` run on each of ``lines``, and
    the lines' traces. Each line is run once first: imports, and each file's caches of its
    first reads (h5py's chunk caches of the index: bounded per dataset, whatever the
    survey)."""
    spec = STEPS[name]
    p = spec.resolve(params, name)
    for k, path in enumerate(lines):
        run_step(spec, p, path, tmp_path / f"warm{k}.sgy", quiet=True)
    peaks = []
    for k, path in enumerate(lines):
        tracemalloc.start()
        try:
            run_step(spec, p, path, tmp_path / f"o{k}.sgy", quiet=True)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    n0, n1 = (TraceIndex.for_file(q, save=False).n_traces for q in lines)
    return peaks, n0, n1

"""benchmarks/bench_scale.py writes its survey block by block (never whole in memory): the
file it streams is one valid SEG-Y whose index has the geometry it meant (issue 19)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_scale",
                                                  ROOT / "benchmarks" / "bench_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_streamed_survey_reads_back(tmp_path, monkeypatch):
    from seis_hpc.io.index import TraceIndex

    bench = load_bench()
    per_shot = bench.STREAMERS * bench.CHANNELS
    monkeypatch.setattr(bench, "BLOCK_TRACES", 2 * per_shot)  # 3 blocks of 2 shots, 1 of 1
    n = bench.write_survey(tmp_path / "s.sgy", 7 * per_shot - 5, ns=50)
    assert n == 7 * per_shot
    idx = TraceIndex.build(tmp_path / "s.sgy")
    assert idx.n_traces == n and idx.ns == 50 and idx.dt == bench.DT
    lines, per_line = bench.layout(n)
    shots = [(ln, k) for ln in range(lines) for k in range(per_line)][:7]
    for s, (ln, k) in enumerate(shots):
        rows = slice(s * per_shot, (s + 1) * per_shot)
        want = bench.shot_headers(ln, k, s + 1)
        np.testing.assert_array_equal(idx["ffid"][rows], s + 1)
        np.testing.assert_allclose(idx["sx"][rows], want["SourceX"], atol=0.006)
        np.testing.assert_allclose(idx["rx"][rows], want["GroupX"], atol=0.006)
        np.testing.assert_allclose(idx["ry"][rows], want["GroupY"], atol=0.006)
    data = idx.read_traces(np.array([0, per_shot * 2 + 3, n - 1]))
    assert np.count_nonzero(data, axis=1).tolist() == [3, 3, 3]
    np.testing.assert_array_equal(data[0], data[2])

"""A trace reader's memory does not follow the part of the file it has read.

Every page a memory map touched stays in the process's resident set until the map goes, so
one map over a whole survey made a rank (or ``index``) look as big as the part of the file it
had read: 4.5 GB peak RSS to index a 4.2 GB file in ``benchmarks/bench_scale.py``. The
reader drops its map every ``_REMAP_BYTES``; ``index`` maps one block at a time.
"""

from __future__ import annotations

import numpy as np

import seis_hpc.io.traces as traces
from seis_hpc.io.headermap import load_headermap
from seis_hpc.io.index import read_headers
from seis_hpc.io.segy import probe
from seis_hpc.survey import open_traces


def test_reader_drops_its_map_and_reads_the_same(tiny3d, monkeypatch):
    path = tiny3d / "shots.sgy"
    whole = open_traces(path)
    want = whole.read(np.arange(whole.n_traces))
    monkeypatch.setattr(traces, "_REMAP_BYTES", 40 * whole.layout.trace_bytes)
    r = open_traces(path)
    got, most = [], 0
    for a in range(0, r.n_traces, 16):
        got.append(r.read(np.arange(a, min(a + 16, r.n_traces))))
        most = max(most, 0 if r._mm is None else r._touched)
        # a map that went past the limit is gone: the next read makes a new one
        assert r._mm is None or r._touched <= 40 * r.layout.trace_bytes
    np.testing.assert_array_equal(np.concatenate(got), want)
    assert most <= 40 * r.layout.trace_bytes
    # raw traces and headers go through the same count
    ids = np.arange(0, r.n_traces, 3)
    np.testing.assert_array_equal(r.header_bytes(ids), whole.header_bytes(ids))
    np.testing.assert_array_equal(r.raw(ids), whole.raw(ids))
    assert r._mm is None  # each of those read more than the limit


def test_index_reads_headers_block_by_block_the_same(tiny3d, monkeypatch):
    import seis_hpc.io.index as index

    lay = probe(tiny3d / "shots.sgy")
    hm = load_headermap(None)
    want = read_headers(lay, hm)
    monkeypatch.setattr(index, "_CHUNK", 7)  # many blocks, the last one short
    got = read_headers(lay, hm)
    assert want.keys() == got.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)

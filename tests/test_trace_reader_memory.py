"""A trace reader's memory does not follow the part of the file it has read.

Every page a memory map touched stays in the process's resident set until the map goes, so
one map over a whole survey made a rank (or ``index``) look as big as the part of the file it
had read: 4.5 GB peak RSS to index a 4.2 GB file in ``benchmarks/bench_scale.py``. The
reader reads with ``pread`` (no map); ``index`` maps one block at a time.
"""

from __future__ import annotations

import numpy as np
import pytest

from seis_hpc.errors import SeisError
from seis_hpc.io.headermap import load_headermap
from seis_hpc.io.index import read_headers
from seis_hpc.io.segy import decode_samples, probe
from seis_hpc.survey import open_traces


def test_reader_reads_the_same_without_a_map(tiny3d):
    """Traces read by ``pread``, in any order, with repeats: the same samples, headers and
    raw bytes as the file holds (read here with numpy from the file itself)."""
    path = tiny3d / "shots.sgy"
    r = open_traces(path)
    lay = r.layout
    whole = np.fromfile(path, np.uint8, offset=lay.data_offset,
                        count=lay.n_traces * lay.trace_bytes).reshape(lay.n_traces, -1)
    rng = np.random.default_rng(2)
    for ids in (np.arange(r.n_traces), np.arange(5, 40), rng.permutation(r.n_traces)[:50],
                np.array([7, 7, 3, 8, 9, 10, 2]), np.zeros(0, np.int64)):
        np.testing.assert_array_equal(r.raw(ids), whole[ids])
        np.testing.assert_array_equal(r.header_bytes(ids), whole[ids, :lay.header_bytes])
        np.testing.assert_array_equal(
            r.read(ids), decode_samples(whole[ids, lay.header_bytes:], lay.format, lay.endian,
                                        lay.ns))
    assert not hasattr(r, "_mm")  # no memory map: no file pages in the RSS
    r.close()
    np.testing.assert_array_equal(r.raw([3]), whole[[3]])  # opened again
    with pytest.raises(SeisError, match="out of range"):
        r.raw([r.n_traces])


def test_scattered_reads_leave_no_file_pages_in_rss(tmp_path):
    """A few traces spread over a large file (the calibration's spectrum traces): through a
    memory map each mapped a large folio of the page cache into the RSS (~1 MB a trace on
    the 4.2 GB file of bench_scale); read by pread, none."""
    from seis_hpc.io.segy import write_segy

    ns, n = 1000, 6000  # 24 MB of traces
    path = tmp_path / "big.sgy"
    data = np.broadcast_to(np.arange(ns, dtype=np.float32), (n, ns))
    write_segy(path, np.ascontiguousarray(data), {"FieldRecord": np.arange(n) // 60 + 1}, 0.002)
    r = open_traces(path)

    def rss_file_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))

    before = rss_file_kb()
    got = r.read(np.linspace(0, n - 1, 256).round().astype(np.int64))
    after = rss_file_kb()
    assert np.array_equal(got[:, 5], np.full(256, 5.0, np.float32))
    assert after - before < 1024, (before, after)  # kB; 256 mapped pages alone are 1 MB


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

"""Third-party SEG-Y/SU files (../shared/data/external, see its SOURCES.md) read as segyio reads
them, and the real Viking Graben shots binned into CMPs."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import segyio

from seis_hpc.errors import SeisError
from seis_hpc.io.index import TraceIndex
from seis_hpc.io.segy import ibm_to_float32
from seis_hpc.survey import Survey

# Files segyio opens that seis_hpc refuses on purpose, and the words its error must contain.
REFUSED = {
    # segyio substitutes its own 4 ms default when both headers hold a negative interval
    "segyio/increment.sgy": "sample interval is -32763",
    "segyio/interval-neg-bin-neg-trace.sgy": "sample interval is -2000",
    # header-limit test: 65527 and 65496 samples per trace in a 1280-byte body
    "segyio/decrement.sgy": "absurd sample count",
    # SU files with a 0 us sample interval
    "segyio/small.su": "sample interval is 0",
    "segyio/small-lsb.su": "sample interval is 0",
    # obsolete fixed-point-with-gain samples (segyio falls back to reading them as IBM)
    "segyio/multiformats/Format4lsb.sgy": "format 4",
    "segyio/multiformats/Format4msb.sgy": "format 4",
}
# Files where seis_hpc is right and segyio 1.9 is not.
DIFFERENT = {
    # extended-text count -1: seis_hpc finds the EndText stanza (3 blocks, like
    # stanzas-known-count.sgy); segyio miscounts the traces
    "segyio/stanzas-unknown-count.sgy",
    # declared IBM, samples are IEEE: checked in test_ieee_labelled_ibm_real_trace
    "obspy/00001034.sgy_first_trace",
}


def _rows(root: Path) -> list[tuple[str, dict]]:
    rows, section, cols = [], None, None
    for line in (root / "SOURCES.md").read_text().splitlines():
        m = re.match(r"## (\S+)/", line)
        if m:
            section, cols = m.group(1), None
            continue
        if not line.startswith("|") or section is None:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "file":
            cols = cells
        elif cols and not set(cells[0]) <= {"-"} and len(cells) == len(cols):
            rows.append((f"{section}/{cells[0]}", dict(zip(cols, cells, strict=True))))
    return rows


def _segyio_open(path: Path, row: dict):
    endian = "little" if row["byte order"].startswith("little") else "big"
    if row["kind"] == "SU":
        return segyio.su.open(path, ignore_geometry=True, endian=endian)
    return segyio.open(path, ignore_geometry=True, endian=endian)


@pytest.mark.filterwarnings("ignore:Unknown trace value format")  # segyio on int24
def test_every_file_segyio_opens(external_data):
    rows = [(n, r) for n, r in _rows(external_data)
            if r["kind"] in ("SEG-Y", "SU") and r["opens"] == "yes"]
    assert len(rows) > 100
    checked = 0
    for name, row in rows:
        path = external_data / name
        if name in REFUSED:
            with pytest.raises(SeisError, match=re.escape(REFUSED[name])):
                TraceIndex.scan(path)
            continue
        if name in DIFFERENT:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no IBM/IEEE warning on any of these
            idx = TraceIndex.scan(path)
        assert idx.n_traces == int(row["traces"]), name
        assert idx.ns == int(row["samples"]), name
        assert round(idx.dt * 1e6) == int(row["dt us"]), name
        ids = np.unique(np.linspace(0, idx.n_traces - 1, 3).astype(int))
        got = idx.read_traces(ids).astype(np.float64)
        with _segyio_open(path, row) as f:
            with np.errstate(invalid="ignore"):  # segyio's own int24 fallback makes NaNs
                ref = np.stack([np.asarray(f.trace[int(i)], dtype=np.float64) for i in ids])
        if row["sample format"] in ("int24", "uint24"):
            continue  # segyio 1.9 cannot decode these: checked against int32 below
        # float32 holds integers of > 24 bits to 1 part in 2**24
        assert np.allclose(got, ref, rtol=2.0 ** -23, atol=0), name
        checked += 1
    assert checked > 90


def test_24_bit_formats_match_int32(external_data):
    m = external_data / "segyio" / "multiformats"
    ref = TraceIndex.scan(m / "Format2msb.sgy").read_traces(np.arange(414))
    for name in ("Format7msb.sgy", "Format7lsb.sgy"):
        assert np.array_equal(TraceIndex.scan(m / name).read_traces(np.arange(414)), ref)
    for name in ("Format15msb.sgy", "Format15lsb.sgy"):  # unsigned: negatives wrap at 2**24
        got = TraceIndex.scan(m / name).read_traces(np.arange(414))
        assert np.array_equal(got, np.where(ref < 0, ref + 2 ** 24, ref))


def test_unknown_stanza_count(external_data):
    d = external_data / "segyio"
    a = TraceIndex.scan(d / "stanzas-unknown-count.sgy")
    b = TraceIndex.scan(d / "stanzas-known-count.sgy")
    assert (a.n_traces, a.ns, a.dt) == (b.n_traces, b.ns, b.dt) == (6, 4, 0.001)
    assert a.attrs["data_offset"] == 3600 + 3 * 3200
    assert np.array_equal(a.read_traces(np.arange(6)), b.read_traces(np.arange(6)))


def test_ieee_labelled_ibm_real_trace(external_data):
    """ObsPy's 00001034 trace says IBM, but its words are IEEE: read as IBM the trace drops
    toward zero at every power of 4 (ObsPy's own .npy keeps that misreading)."""
    path = external_data / "obspy" / "00001034.sgy_first_trace"
    with pytest.warns(UserWarning, match="00001034.sgy_first_trace.*IEEE"):
        idx = TraceIndex.scan(path)
    got = idx.read_traces([0])[0].astype(np.float64)
    words = np.fromfile(path, dtype="<u4", offset=3600 + 240).astype(np.uint32)
    assert np.array_equal(got, words.view(np.float32))
    as_ibm = ibm_to_float32(words).astype(np.float64)
    with segyio.open(path, ignore_geometry=True, endian="little") as f:
        # segyio agrees on normalised IBM words (to the last bit) but mis-scales the 9 % of
        # words that, read as IBM, are unnormalised - themselves a sign of IEEE samples
        norm = ((words >> 20) & 0xF) != 0
        assert np.mean(~norm) > 0.05
        assert np.allclose(f.trace[0][norm], as_ibm[norm], rtol=2.0 ** -23, atol=0)

    def roughness(x):
        return np.sum(np.diff(x, 2) ** 2) / np.sum(x ** 2)

    assert roughness(got) < 0.5 * roughness(as_ibm)


def test_viking_graben_shots(external_data, tmp_path):
    path = external_data / "segyio" / "viking_small.segy"
    s = Survey.open(path, index_path=tmp_path / "viking.index.h5")
    idx = s.index
    assert idx.n_traces == 480 and idx.ns == 600 and idx.dt == pytest.approx(0.004)
    assert np.array_equal(np.unique(idx["ffid"]), [3, 4, 5, 6])
    assert np.array_equal(np.bincount(idx["source_id"]), [120] * 4)
    assert np.array_equal(np.unique(idx["channel"]), np.arange(1, 121))
    # offsets from coordinates are the header offsets (scalar 1, metres)
    assert np.allclose(idx["offset"], np.abs(idx["header_offset"]), atol=1e-9)
    # 25 m groups -> CMPs every 12.5 m; each midpoint sits on its CMP's centre
    assert s.is_2d and s.grid.bin_inline == pytest.approx(12.5)
    x, y = s.grid.grid_to_world(0, idx["cmp"])
    assert np.allclose(x, idx["mx"], atol=1e-6) and np.allclose(y, idx["my"], atol=1e-6)
    # the survey's CMP numbers follow the header CDP numbers one for one
    assert np.unique(idx["cmp"] - idx["header_cdp"]).size == 1
    assert s.fold().sum() == 480 and s.fold().max() == 4
    with segyio.open(path, ignore_geometry=True) as f:
        ref = np.stack([f.trace[i] for i in (0, 119, 479)])
    assert np.array_equal(idx.read_traces([0, 119, 479]), ref)

"""SEG-Y/SU reading and writing: sample codecs, formats, byte orders, scalars, header maps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import segyio

from seis_hpc.errors import SeisError
from seis_hpc.io.headermap import load_headermap
from seis_hpc.io.index import TraceIndex
from seis_hpc.io.segy import (
    decode_samples,
    float32_to_ibm,
    ibm_to_float32,
    probe,
    write_segy,
    write_su,
)

NTR, NS, DT = 12, 40, 0.002


def _traces(integer: bool = False) -> np.ndarray:
    rng = np.random.default_rng(7)
    d = rng.normal(0.0, 30.0, (NTR, NS))
    return np.rint(d).clip(0, 100) if integer else d.astype(np.float32)


def _headers() -> dict:
    i = np.arange(NTR)
    return {"FieldRecord": 100 + i // 6, "TraceNumber": 1 + i % 6, "CDP": 7 + i,
            "offset": -(50 + 25 * (i % 6)), "SourceX": 500000.25 + 25.0 * (i // 6),
            "SourceY": 6000000.5 + 0 * i, "GroupX": 500000.25 + 25.0 * (i // 6) - 50 - 25 * (i % 6),
            "GroupY": 6000000.5 + 0 * i, "SourceDepth": 6.5, "ReceiverGroupElevation": -8.25}


def test_ibm_known_words():
    # IBM System/360 reference values: -118.625 = 0xC276A000, 1.0 = 0x41100000, 0.15625
    words = np.array([0xC276A000, 0x41100000, 0x40280000, 0], dtype=np.uint32)
    assert ibm_to_float32(words).tolist() == [-118.625, 1.0, 0.15625, 0.0]
    assert float32_to_ibm(np.array([-118.625, 1.0, 0.15625, 0.0])).tolist() == words.tolist()


def test_ibm_round_trip_precision():
    x = np.random.default_rng(1).standard_normal(10000).astype(np.float32) * \
        np.float32(10.0) ** np.random.default_rng(2).integers(-20, 20, 10000)
    back = ibm_to_float32(float32_to_ibm(x))
    # 24-bit hex-normalised fraction: relative error at most 2**-21 after rounding
    assert np.all(np.abs(back - x) <= 2.0 ** -21 * np.abs(x))
    words = float32_to_ibm(x[x != 0])
    assert np.all((words >> 20) & 0xF != 0), "encoder must produce normalised IBM"


@pytest.mark.parametrize("endian", ["big", "little"])
@pytest.mark.parametrize("fmt", [1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 16])
def test_formats_against_segyio(tmp_path, fmt, endian):
    data = _traces(integer=fmt not in (1, 5, 6))
    path = tmp_path / f"f{fmt}.sgy"
    write_segy(path, data, _headers(), DT, fmt=fmt, endian=endian, t_start=0.05)
    with segyio.open(path, ignore_geometry=True, endian=endian) as f:
        ref = segyio.tools.collect(f.trace[:]).astype(np.float64)
        assert f.bin[segyio.BinField.Format] == fmt
        gx = f.attributes(segyio.TraceField.GroupX)[:]
        scalar = f.attributes(segyio.TraceField.SourceGroupScalar)[:]
    tol = 2.0 ** -21 * np.abs(data) if fmt == 1 else 0.0
    assert np.all(np.abs(ref - data) <= tol)
    # coordinates in m written in cm with scalar -100
    assert np.all(scalar == -100)
    assert np.array_equal(gx, np.rint(_headers()["GroupX"] * 100).astype(int))
    lay = probe(path)
    assert (lay.kind, lay.endian, lay.format, lay.ns, lay.n_traces) == ("segy", endian, fmt, NS,
                                                                        NTR)
    assert lay.dt == pytest.approx(DT) and lay.t_start == pytest.approx(0.05)
    assert lay.revision == "1"
    idx = TraceIndex.scan(path)
    ids = np.array([5, 0, 11, 5])
    got = idx.read_traces(ids)
    assert got.dtype == np.float32 and got.shape == (4, NS)
    assert np.array_equal(got, ref[ids].astype(np.float32))
    assert np.allclose(idx["rx"], _headers()["GroupX"], atol=0.005)


@pytest.mark.parametrize("endian", ["big", "little"])
def test_su_round_trip(tmp_path, endian):
    data = _traces()
    path = tmp_path / "line.su"
    write_su(path, data, _headers(), DT, endian=endian, t_start=0.1)
    assert path.stat().st_size == NTR * (240 + 4 * NS)
    with segyio.su.open(path, ignore_geometry=True, endian=endian) as f:
        assert np.array_equal(segyio.tools.collect(f.trace[:]), data)
    # also detected without the .su suffix, from ns versus the file size
    plain = tmp_path / "line.dat"
    plain.write_bytes(path.read_bytes())
    for p in (path, plain):
        idx = TraceIndex.scan(p)
        assert (idx.attrs["kind"], idx.attrs["endian"], idx.n_traces, idx.ns) == \
            ("su", endian, NTR, NS)
        assert idx.dt == pytest.approx(DT) and idx.t_start == pytest.approx(0.1)
        assert np.array_equal(idx.read_traces(np.arange(NTR)), data)
        assert np.array_equal(idx["ffid"], _headers()["FieldRecord"])


def test_int24_decode():
    v = np.array([[-1, 8388607, -8388608, 1, 0, 70000]])
    be = np.stack([(v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF], axis=-1).astype(np.uint8)
    assert decode_samples(be.reshape(1, -1), 7, "big", 6).tolist() == v.astype(float).tolist()
    le = be[..., ::-1].copy()
    assert decode_samples(le.reshape(1, -1), 7, "little", 6).tolist() == v.astype(float).tolist()
    assert decode_samples(be.reshape(1, -1), 15, "big", 6)[0, 0] == 2 ** 24 - 1


def test_scalars_applied(tmp_path):
    h = _headers()
    raw = {"SourceX": np.full(NTR, 123456), "GroupX": np.full(NTR, 50), "SourceY": 7,
           "GroupY": 9, "CDP_X": 1000, "CDP_Y": 2000}
    cases = [(-10, 12345.6, 5.0), (10, 1234560.0, 500.0), (0, 123456.0, 50.0),
             (1, 123456.0, 50.0), (-1000, 123.456, 0.05)]
    for scalar, sx, gx in cases:
        p = tmp_path / f"s{scalar}.sgy"
        write_segy(p, _traces(), {**h, **raw, "SourceGroupScalar": scalar,
                                   "ReceiverGroupElevation": -825, "SourceDepth": 650,
                                   "ElevationScalar": -100}, DT)
        idx = TraceIndex.scan(p)
        assert np.allclose(idx["sx"], sx) and np.allclose(idx["rx"], gx)
        assert np.allclose(idx["offset"], abs(sx - gx))
        assert np.allclose(idx["receiver_elevation"], -8.25)
        assert np.allclose(idx["source_depth"], 6.5)


def test_delay_with_time_scalar(tmp_path):
    p = tmp_path / "d.sgy"
    write_segy(p, _traces(), {**_headers(), "DelayRecordingTime": 1234,
                              "ScalarTraceHeader": -10}, DT)
    assert probe(p).t_start == pytest.approx(0.1234)
    write_segy(p, _traces(), _headers(), DT, t_start=0.0125)  # fractional ms -> scalar
    assert probe(p).t_start == pytest.approx(0.0125)


def test_ieee_samples_in_file_declared_ibm(tmp_path):
    data = _traces() * np.float32(1e-3)
    p = tmp_path / "mislabelled.sgy"
    write_segy(p, data, _headers(), DT, fmt=5)
    raw = bytearray(p.read_bytes())
    raw[3224:3226] = (1).to_bytes(2, "big")  # header now claims IBM
    p.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="mislabelled.sgy.*IEEE"):
        idx = TraceIndex.scan(p)
    assert idx.attrs["declared_format"] == 1 and idx.attrs["format"] == 5
    assert np.array_equal(idx.read_traces(np.arange(NTR)), data)
    # a genuine IBM file is left alone
    q = tmp_path / "ibm.sgy"
    write_segy(q, data, _headers(), DT, fmt=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert probe(q).format == 1


def test_revision_and_little_endian_detection(tmp_path):
    p = tmp_path / "r.sgy"
    write_segy(p, _traces(), _headers(), DT, fmt=5, endian="little")
    raw = bytearray(p.read_bytes())
    # big-endian reading of the format code is 5 * 256: absurd, so little-endian
    assert int.from_bytes(raw[3224:3226], "big") == 1280
    assert probe(p).endian == "little"
    raw[3500:3502] = (0).to_bytes(2, "little")
    p.write_bytes(bytes(raw))
    assert probe(p).revision == "0"
    q = tmp_path / "r2.sgy"
    write_segy(q, _traces(), _headers(), DT)
    raw = bytearray(q.read_bytes())
    raw[3500:3502] = bytes([2, 0])
    q.write_bytes(bytes(raw))
    assert probe(q).revision == "2.0"


def test_header_map_moves_fields(tmp_path):
    h = _headers()
    il, xl = 300 + np.arange(NTR) // 4, 1000 + np.arange(NTR) % 4
    p = tmp_path / "moved.sgy"
    write_segy(p, _traces(), {**h, "UnassignedInt1": il, "UnassignedInt2": xl,
                              "ShotPoint": h["FieldRecord"]}, DT)
    m = tmp_path / "map.toml"
    m.write_text('[fields]\ninline = { byte = 233, type = "int32" }\ncrossline = 237\n'
                 'ffid = { byte = 197 }\nchannel = { byte = 13, type = "int32" }\n')
    idx = TraceIndex.scan(p, headermap=m)
    assert np.array_equal(idx["header_inline"], il)
    assert np.array_equal(idx["header_crossline"], xl)
    assert np.array_equal(idx["ffid"], h["FieldRecord"])
    plain = TraceIndex.scan(p)
    assert not plain["header_inline"].any()
    m2 = tmp_path / "m2.toml"
    m2.write_text('cmp_unused = 1\n')
    with pytest.raises(SeisError, match="m2.toml.*cmp_unused"):
        load_headermap(m2)
    # an int16 at byte 23 is the low half of the big-endian int32 CDP at 21
    m3 = tmp_path / "m3.toml"
    m3.write_text('cdp = { byte = 23, type = "int16" }\n')
    assert np.array_equal(TraceIndex.scan(p, headermap=m3)["header_cdp"], h["CDP"])


@pytest.mark.parametrize("text,key,what", [
    ('inline = { byte = 241 }', "inline", "outside"),
    ('inline = { byte = 239, type = "int32" }', "inline", "past the end"),
    ('sx = { byte = 73, type = "float64" }', "sx", "unknown type"),
    ('crossline = { byte = 0 }', "crossline", "outside"),
    ('gx = { type = "int32" }', "gx", "byte position"),
    ('inline = [', None, "not valid TOML"),
])
def test_header_map_refuses_impossible(tmp_path, text, key, what):
    m = tmp_path / "bad.toml"
    m.write_text(text + "\n")
    with pytest.raises(SeisError) as exc:
        load_headermap(m)
    msg = str(exc.value)
    assert str(m) in msg and what in msg
    if key:
        assert repr(key) in msg

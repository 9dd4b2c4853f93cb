"""Real and third-party files (../shared/data/external): the domain, grid and warnings a
processor would read from their headers (issue 15). docs/test-data.md says what each file is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from seis_hpc.errors import SeisError
from seis_hpc.io.index import TraceIndex
from seis_hpc.survey import Survey, assume_units

# file: (domain, geometry, bins of the grid, live bins, words every warning list must hold)
TABLE = {
    "SeismicLab/cdp700.su": ("cmp", "2D", 1, 1, []),
    "SeismicLab/gom_cdp_nmo.su": ("cmp", "2D", 1, 1, []),
    "segyio/f3.sgy": ("post-stack", "3D", 23 * 18, 414, ["sample count", "462"]),
    "segyio/f3-lsb.sgy": ("post-stack", "3D", 23 * 18, 414, ["sample count"]),
    "segysak/f3-withdead.sgy": ("post-stack", "3D", 23 * 18, 239, []),
    "segysak/volve10r12-full-twt-arb.sgy": ("post-stack", "2D", 225, 225, []),
    "segysak/volve10r12-full-z-il10117sub.sgy": ("post-stack", "2D", 202, 202, []),
    "segysak/volve10-migvel-depth-sub3d.sgy": ("post-stack", "3D", 69 * 205, 936, []),
    "segysak/test-geometry.sgy": ("post-stack", "3D", 61 * 202, 12322, []),
    "first_breaks_picking/real_gather.sgy": ("shot", "2D", None, None,
                                             ["implausible for an offset", "offset header"]),
    "segyio/viking_small.segy": ("shot", "2D", 126, 126, ["decimal degrees", "1500"]),
    "segyio/rotated-small-rev2.sgy": ("post-stack", "3D", 25, 25, []),
    "segyio/normal-small.sgy": ("post-stack", "3D", 25, 25, []),
    "segyio/trace-header-extension1.sgy": ("post-stack", None, None, None, []),
    "segyio/small-ps.sgy": ("cmp", None, None, None, []),
    "segyio/1x1.sgy": ("cmp", None, None, None, []),
    # CDP_X of 9.98e8 m with scalar 0: one CMP by its headers, but no geometry to migrate
    # (test_garbage_coordinates_refused)
    "SeismicLab/syn_cmp.su": ("cmp", None, None, None, []),
    "segyio/shot-gather.sgy": ("shot", None, None, None, []),
    "segyio/long.sgy": ("shot", None, None, None, ["sample count", "implausible"]),
}


def _scan(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the IEEE-in-IBM warning of a few obspy files
        return TraceIndex.scan(path)


def _all_files(root):
    for p in sorted(root.rglob("*")):
        if p.is_file() and (p.suffix.lower() in (".sgy", ".segy", ".su")
                            or p.name.endswith("_first_trace")):
            yield p


@pytest.mark.parametrize("name", sorted(TABLE))
def test_table(external_data, name):
    domain, geometry, bins, live, words = TABLE[name]
    idx = _scan(external_data / name)
    assert idx.attrs["domain"] == domain
    warns = json.loads(idx.attrs["warnings"])
    assert all(isinstance(w, str) and "\n" not in w for w in warns)
    for w in words:
        assert any(w in line for line in warns), (name, w, warns)
    if not words:
        assert warns == [], (name, warns)
    if geometry is not None:
        rep = Survey.from_index(idx).report()
        assert rep["geometry"] == geometry and rep["domain"] == domain
        if bins is not None:
            assert (rep["bins"], rep["live_bins"]) == (bins, live), rep
    if domain == "post-stack":  # no offsets in the millions: a stack has none
        assert not np.any(idx["offset"])


def test_garbage_coordinates_refused(external_data):
    """A CMP gather whose CDP_X is 9.98e8 m (scalar 0): its domain is read from the headers,
    but binning it refuses the impossible coordinate, naming the trace and field."""
    idx = _scan(external_data / "SeismicLab/syn_cmp.su")
    assert idx.attrs["domain"] == "cmp"
    with pytest.raises(SeisError, match=r"trace 0 .*cdp_x \(trace header bytes 181-184\).*"
                                        r"beyond 1e\+08 m"):
        Survey.from_index(idx).report()


def test_every_file_has_a_domain(external_data):
    """Every file seis_hpc opens gets a domain; offsets beyond 100 km always carry a warning."""
    n = 0
    for p in _all_files(external_data):
        try:
            idx = _scan(p)
        except SeisError:
            continue  # refused on purpose: tests/test_external_data.py
        n += 1
        assert idx.attrs["domain"] in ("shot", "cmp", "post-stack"), p
        warns = json.loads(idx.attrs["warnings"])
        if len(idx["offset"]) and idx["offset"].max() > 1e5:
            assert any("implausible" in w for w in warns), p
    assert n > 100


def test_cdp700_is_one_cmp(external_data):
    s = Survey.from_index(_scan(external_data / "SeismicLab" / "cdp700.su"))
    assert s.is_2d and s.method == "header-cdp"
    assert s.grid.crossline0 == 700 and s.grid.n_crossline == 1
    assert np.all(s.index["cmp"] == 700) and s.fold().tolist() == [24]
    s.check_for("velan")  # a CMP gather is prestack: accepted


def test_no_sub_metre_cmp_interval(external_data):
    """Without its CDP numbers, cdp700's midpoints (rounded to whole metres) would suggest a
    0.35 m CMP interval: never inferred below 1 m."""
    idx = _scan(external_data / "SeismicLab" / "cdp700.su")
    idx["header_cdp"] = np.zeros(idx.n_traces, dtype=np.int64)
    s = Survey.from_index(idx)
    assert s.grid.bin_inline >= 1.0


def test_viking_units_refused_until_told(external_data, tmp_path):
    path = external_data / "segyio" / "viking_small.segy"
    s = Survey.open(path, index_path=tmp_path / "v.index.h5")
    rep = s.report()
    assert (rep["domain"], rep["shots"], rep["live_bins"]) == ("shot", 4, 126)
    with pytest.raises(SeisError, match="decimal degrees"):
        s.check_for("pstm")
    s = Survey.open(path, index_path=tmp_path / "v.index.h5", coordinate_units="metres")
    s.check_for("pstm")
    # kept in the index: a later step on the same index needs no option
    Survey.open(path, index_path=tmp_path / "v.index.h5").check_for("stack")
    feet = Survey.open(path, index_path=tmp_path / "f.index.h5", coordinate_units="feet")
    assert feet.grid.bin_inline == pytest.approx(12.5 * 0.3048)
    with pytest.raises(SeisError, match="already reads coordinates as feet"):
        assume_units(feet.index, "metres")


def test_post_stack_refused_by_prestack_steps(external_data, tmp_path):
    f3 = external_data / "segyio" / "f3.sgy"
    s = Survey.from_index(_scan(f3))
    for step in ("pstm", "stack", "velan", "migstack"):
        with pytest.raises(SeisError, match=f"{step} needs prestack gathers"):
            s.check_for(step)
    (tmp_path / "v.csv").write_text("time_s,vrms_mps\n0,2000\n1,2500\n")
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "stack", str(f3), "--velocity",
                        str(tmp_path / "v.csv"), "--out", str(tmp_path / "s.h5"), "--index",
                        str(tmp_path / "f3.index.h5")], capture_output=True, text=True,
                       env={**os.environ, "SEIS_HPC_CACHE": str(tmp_path)})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "post-stack" in r.stderr
    assert not (tmp_path / "s.h5").exists()


def test_info_json_domain_and_warnings(external_data, tmp_path):
    env = {**os.environ, "SEIS_HPC_CACHE": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "info", "--json",
                        str(external_data / "first_breaks_picking" / "real_gather.sgy")],
                       capture_output=True, text=True, env=env, check=True)
    info = json.loads(r.stdout)
    assert info["domain"] == "shot" and any("implausible" in w for w in info["warnings"])
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "info",
                        str(external_data / "segyio" / "viking_small.segy")],
                       capture_output=True, text=True, env=env, check=True)
    assert "domain: shot" in r.stdout
    assert any(line.startswith("warning: coordinate units are decimal degrees")
               for line in r.stdout.splitlines())


@pytest.mark.parametrize("name,n,hb", [("rotated-small-rev2.sgy", 25, 480),
                                       ("trace-header-extension1.sgy", 6, 480),
                                       ("trace-header-extensions.sgy", 2, 720)])
def test_rev2_trace_header_extensions(external_data, name, n, hb):
    """segyio's small test files hold sample j of trace (il, xl) = il + xl / 100 + j / 1e5."""
    idx = _scan(external_data / "segyio" / name)
    assert idx.n_traces == n and idx.attrs["header_bytes"] == hb
    assert idx.attrs["revision"].startswith("2")
    d = idx.read_traces(np.arange(n)).astype(np.float64)
    il = idx["header_inline"][:, None].astype(np.float64)
    xl = idx["header_crossline"][:, None].astype(np.float64)
    truth = il + xl / 100 + np.arange(idx.ns)[None, :] / 1e5
    assert np.allclose(d, truth, atol=2e-6)


@pytest.mark.parametrize("endian", ["big", "little"])
def test_write_rev2_reads_back(tmp_path, endian):
    """A rev 2.0 file as seis_hpc writes it; with its rev 1 sample count and interval zeroed,
    the rev 2 fields (bytes 3269-3272, 3273-3280) alone give them."""
    from seis_hpc.io.segy import write_segy

    rng = np.random.default_rng(1)
    data = rng.normal(size=(5, 70)).astype(np.float32)
    hdr = {"INLINE_3D": np.arange(5) + 1, "CROSSLINE_3D": 7}
    path = tmp_path / "r2.sgy"
    write_segy(path, data, hdr, 0.002, endian=endian, revision=2)
    raw = bytearray(path.read_bytes())
    assert raw[3500:3502] == b"\x02\x00"
    idx = TraceIndex.scan(path)
    assert idx.attrs["revision"] == "2.0" and (idx.ns, idx.dt) == (70, 0.002)
    for pos in (3217, 3221):  # rev 1 interval and sample count -> 0
        raw[pos - 1:pos + 1] = b"\x00\x00"
    for k in range(5):  # and in every trace header (bytes 115-118)
        o = 3600 + k * (240 + 280) + 114
        raw[o:o + 4] = b"\x00" * 4
    (tmp_path / "r2b.sgy").write_bytes(bytes(raw))
    idx = TraceIndex.scan(tmp_path / "r2b.sgy")
    assert (idx.ns, idx.dt) == (70, 0.002)
    assert np.array_equal(idx.read_traces(np.arange(5)), data)
    with pytest.raises(SeisError, match="revision must be 1 or 2"):
        write_segy(tmp_path / "r3.sgy", data, hdr, 0.002, revision=3)

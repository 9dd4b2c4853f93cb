"""Issue 18: shot points (SP) on the 2D deliverables.

The SP of a CMP is the shot-point number of the shots around it, interpolated linearly by
the sources' positions projected on the line (extrapolated along the end shots' chord beyond
them), rounded. The expectation is computed here from the shots' own headers, read with
segyio, and the output's bin centres: the line axis is the direction first -> last CDP.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import segyio
import velocity_line as vl

import seis_hpc
from seis_hpc.cli import main
from seis_hpc.io.volume import read_volume

TF = segyio.TraceField
END = 5  # shots of the end chord (seis_hpc.io.shotpoint.END_SHOTS)
PSTM = {"tmax": 0.3, "aperture": 150.0, "grid": (120, 160), "progress_every": 0}


def sp_of_ffid(ffid):
    """The ShotPoint numbers written into the copy of the line: decreasing, 3 per shot (a
    fraction of an SP per CMP, so the rounding of the interpolation matters)."""
    return 5000 - 3 * np.asarray(ffid)


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """The short marine2d-like line as made (no ShotPoint, EnergySourcePoint 1: the source
    number), a copy with ShotPoint (197) set, and a velocity file."""
    path, truth = vl.line("marine2d")
    d = tmp_path_factory.mktemp("sp")
    copy = d / "shots_sp.sgy"
    shutil.copyfile(path, copy)
    with segyio.open(copy, "r+", ignore_geometry=True) as f:
        ffid = f.attributes(TF.FieldRecord)[:]
        for i, v in enumerate(sp_of_ffid(ffid)):
            f.header[i] = {TF.ShotPoint: int(v)}
    vel = d / "v.csv"
    vel.write_text("time_s,vrms_mps\n" + "".join(
        f"{t:.3f},{v:.1f}\n" for t, v in zip(truth["vrms"]["time_s"],
                                             truth["vrms"]["vrms_mps"], strict=True)))
    return path, copy, vel


def expected_sp(shots, cdp_x, cdp_y, field):
    """SP of the CMPs at (cdp_x, cdp_y) (m) from the shots of ``shots`` numbered by header
    ``field``."""
    with segyio.open(shots, ignore_geometry=True) as f:
        ffid = f.attributes(TF.FieldRecord)[:]
        scal = f.attributes(TF.SourceGroupScalar)[:].astype(float)
        sx = f.attributes(TF.SourceX)[:].astype(float)
        sy = f.attributes(TF.SourceY)[:].astype(float)
        num = f.attributes(field)[:].astype(float)
    fac = np.where(scal < 0, -1.0 / np.where(scal < 0, scal, -1), np.where(scal > 0, scal, 1))
    _, first = np.unique(ffid, return_index=True)
    xs, ys, num = sx[first] * fac[first], sy[first] * fac[first], num[first]
    u = np.array([cdp_x[-1] - cdp_x[0], cdp_y[-1] - cdp_y[0]])
    u /= np.hypot(*u)
    at_cmp = (cdp_x - cdp_x[0]) * u[0] + (cdp_y - cdp_y[0]) * u[1]
    at_shot = (xs - cdp_x[0]) * u[0] + (ys - cdp_y[0]) * u[1]
    o = np.argsort(at_shot)
    p, s = at_shot[o], num[o]
    sp = np.interp(at_cmp, p, s)
    lo, hi = at_cmp < p[0], at_cmp > p[-1]
    sp[lo] = s[0] + (at_cmp[lo] - p[0]) * (s[END - 1] - s[0]) / (p[END - 1] - p[0])
    sp[hi] = s[-1] + (at_cmp[hi] - p[-1]) * (s[-1] - s[-END]) / (p[-1] - p[-END])
    return sp, s


def assert_rounded(sp, raw):
    """``sp`` is ``raw`` rounded: equal where ``raw`` is clear of a half (the SEG-Y's bin
    centres are rounded to cm, which can tip a tie either way), else within 0.5."""
    tie = np.abs(np.abs(raw - np.floor(raw)) - 0.5) < 0.01
    np.testing.assert_array_equal(sp[~tie], np.rint(raw[~tie]).astype(np.int64))
    assert (np.abs(sp[tie] - raw[tie]) <= 0.51).all()


def _segy_sp(path):
    with segyio.open(path, ignore_geometry=True) as f:
        sp = f.attributes(TF.ShotPoint)[:].astype(np.int64)
        x = f.attributes(TF.CDP_X)[:] / 100.0
        y = f.attributes(TF.CDP_Y)[:] / 100.0
        text = bytes(f.text[0]).decode("ascii")
    return sp, x, y, " ".join(text[i + 4:i + 80].strip() for i in range(0, 3200, 80))


def test_2d_line_number_goes_to_inline_and_cdp_to_crossline(lines, tmp_path):
    """A 2D input whose traces all carry one inline number (bytes 189-192) is that line: the
    SEG-Y stack's INLINE_3D is the number and CROSSLINE_3D the CDP; without it both are 0."""
    plain, _, vel = lines
    numbered = tmp_path / "line42.sgy"
    shutil.copyfile(plain, numbered)
    with segyio.open(numbered, "r+", ignore_geometry=True) as f:
        for i in range(f.tracecount):
            f.header[i] = {TF.INLINE_3D: 42}
    for shots, want in ((numbered, 42), (plain, None)):
        out, sgy = tmp_path / f"{shots.stem}.h5", tmp_path / f"{shots.stem}.st.sgy"
        assert main(["stack", str(shots), "-v", str(vel), "-o", str(out),
                     "--segy", str(sgy)]) == 0
        with segyio.open(sgy, ignore_geometry=True) as f:
            il, xl = f.attributes(TF.INLINE_3D)[:], f.attributes(TF.CROSSLINE_3D)[:]
            cdp = f.attributes(TF.CDP)[:]
            text = bytes(f.text[0]).decode("ascii")
        if want is None:
            assert not il.any() and not xl.any() and "Line number" not in text
        else:
            assert (il == want).all() and (xl == cdp).all()
            assert "Line number 42" in text
            assert read_volume(out, "image").shotpoint_attrs["line_number"] == 42


@pytest.mark.parametrize("case", ["shotpoint", "ffid"])
def test_stack_segy_shotpoint_interpolates_the_shots(lines, tmp_path, case):
    """With ShotPoint (197) in the input it numbers the shots; without it (the synthetic
    line's EnergySourcePoint is the constant source number 1) the FFID does. Every CMP's SP
    is the interpolation of the shots' numbers at its position, monotonic along the line."""
    plain, copy, vel = lines
    shots, field = (copy, TF.ShotPoint) if case == "shotpoint" else (plain, TF.FieldRecord)
    out, sgy = tmp_path / "st.h5", tmp_path / "st.sgy"
    assert main(["stack", str(shots), "-v", str(vel), "-o", str(out), "--segy", str(sgy)]) == 0
    sp, x, y, text = _segy_sp(sgy)
    want, shot_sp = expected_sp(shots, x, y, field)
    assert_rounded(sp, want)
    step = np.diff(sp)
    if case == "shotpoint":
        assert (step <= 0).all() and sp[0] > sp[-1]  # numbered against the CMPs
        # inside the shots' range the SP are those of the shots (a CMP on a shot: its SP)
        assert shot_sp.min() <= np.median(sp) <= shot_sp.max()
    else:
        assert (step >= 0).all() and sp[-1] > sp[0]
    assert np.abs(step).max() <= 1  # 0.25 or 0.75 SP per CMP: no jumps
    vol = read_volume(out, "image")
    np.testing.assert_array_equal(vol.shotpoint, sp)  # the HDF5 stack holds the same
    src = {"shotpoint": "ShotPoint (bytes 197-200)", "ffid": "FFID (bytes 9-12)"}[case]
    assert vol.shotpoint_attrs["source"].startswith(src)
    assert "ShotPoint (197)" in text and src in text, text


def test_pstm_and_image_sum_keep_the_shotpoint(lines, tmp_path):
    """pstm --segy of a part of the line writes the SP of its CMPs; the parts of a job
    split by FFID hold the same SP (from every shot), and image sum carries it through."""
    _, copy, vel = lines
    out, sgy = tmp_path / "p.h5", tmp_path / "p.sgy"
    assert seis_hpc.migrate(copy, vel, out, comm=None, segy=sgy, **PSTM).status == 0
    sp, x, y, text = _segy_sp(sgy)
    assert sp.size == 41
    assert_rounded(sp, expected_sp(copy, x, y, TF.ShotPoint)[0])
    assert (np.diff(sp) <= 0).all() and sp[0] > sp[-1]
    assert "ShotPoint (bytes 197-200)" in text
    vol = read_volume(out, "image")
    np.testing.assert_array_equal(vol.shotpoint, sp)

    from seis_hpc.engine.image_sum import sum_images

    parts = [tmp_path / "q0.h5", tmp_path / "q1.h5"]
    for part, sel in zip(parts, ("1:30", "31:72"), strict=True):
        seis_hpc.migrate(copy, vel, part, comm=None, ffid=sel, **PSTM)
        np.testing.assert_array_equal(read_volume(part, "image").shotpoint, sp)
    sum_images([str(p) for p in parts], tmp_path / "sum.h5")
    total = read_volume(tmp_path / "sum.h5", "image")
    np.testing.assert_array_equal(total.shotpoint, sp)
    assert total.shotpoint_attrs["source"] == vol.shotpoint_attrs["source"]
    from seis_hpc.io.export import write_volume_segy

    write_volume_segy(tmp_path / "sum.sgy", total)
    np.testing.assert_array_equal(_segy_sp(tmp_path / "sum.sgy")[0], sp)


def test_migstack_segy_has_the_shotpoint(lines, tmp_path):
    from seis_hpc.velocity.mva import migstack

    _, copy, vel = lines
    out, sgy = tmp_path / "m.h5", tmp_path / "m.sgy"
    assert migstack(copy, vel, out, segy=sgy, iterations=0, grid=(130, 150), tmax=0.3,
                    aperture=150.0, offset_classes=2, normalise="none", comm=None) == 0
    sp, x, y, _ = _segy_sp(sgy)
    assert_rounded(sp, expected_sp(copy, x, y, TF.ShotPoint)[0])
    np.testing.assert_array_equal(read_volume(out, "image").shotpoint, sp)
    # NStackedTraces is the input fold of each CMP (not 1), as for pstm --segy
    from seis_hpc.survey import Survey

    s = Survey.open(copy)
    want = s.fold().ravel()[130 - s.grid.crossline0:150 - s.grid.crossline0 + 1]
    with segyio.open(sgy, ignore_geometry=True) as f:
        got = f.attributes(TF.NStackedTraces)[:]
    assert want.max() > 1
    np.testing.assert_array_equal(got, want)


def test_qc_section_of_a_2d_stack_has_sp_tick_labels(lines, tmp_path, monkeypatch):
    """The QC section of a 2D stack is drawn with the volume's SP; its top axis labels give
    the SP of each CDP tick, over the CDP_X / CDP_Y."""
    import seis_hpc.qc.pictures as pictures
    from seis_hpc.qc.figures import coordinate_tick_labels, gather_figure

    plain, _, vel = lines
    out = tmp_path / "st.h5"
    assert main(["stack", str(plain), "-v", str(vel), "-o", str(out)]) == 0
    vol = read_volume(out, "image")
    seen = {}

    def capture(data, time, x, path, **kw):
        seen.update(x=x, **kw)
        return path

    monkeypatch.setattr(pictures, "plot_gather", capture)
    pictures.volume_pictures(out, tmp_path, what=["inline"])
    np.testing.assert_array_equal(seen["sp"], vol.shotpoint)
    sp = vol.shotpoint
    assert (f"CDP {vol.grid.crossline0}-{vol.grid.crosslines()[-1]}, SP {sp[0]}-{sp[-1]} "
            "(SP from FFID (bytes 9-12))") in seen["block"].text()
    cmp = vol.grid.crosslines()
    ticks = cmp[::50]
    labels = coordinate_tick_labels(ticks, seen["x"], seen["coords"], seen["sp"])
    cx, cy = vol.grid.cdp_xy()
    for t, lab in zip(ticks, labels, strict=True):
        k = int(t - cmp[0])
        assert lab.split("\n") == [f"SP {vol.shotpoint[k]}", f"{cx[k]:.0f}", f"{cy[k]:.0f}"]
    # the drawn figure's top axis carries these labels
    fig = gather_figure(vol.data[:, :50], vol.time[:50], cmp, title="t", xlabel="CDP",
                        coords=seen["coords"], sp=seen["sp"])
    (top,) = fig.axes[0].child_axes
    drawn = [t.get_text() for t in top.get_xticklabels()]
    assert drawn and all(s.startswith("SP ") for s in drawn)
    assert top.get_xlabel().startswith("SP, CDP_X / CDP_Y")
    vals = [float(v) for v in top.get_xticks()]
    assert drawn == coordinate_tick_labels(vals, cmp, seen["coords"], vol.shotpoint)


def test_a_3d_grid_has_no_shotpoint(tmp_path):
    """SP is a 2D line's annotation: none for a 3D grid (the 3D pstm deliverable is checked
    in test_segy_deliverable.py), and a volume writer refuses one."""
    import h5py

    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.shotpoint import line_shotpoints
    from seis_hpc.io.volume import write_shotpoint

    g3 = BinGrid(0.0, 0.0, 0.0, 25.0, 25.0, 1, 1, 2, 2)
    idx = _Index(source_id=np.arange(3), sx=np.arange(3) * 50.0, sy=np.zeros(3),
                 ffid=np.arange(1, 4))
    assert line_shotpoints(idx, g3) is None
    assert line_shotpoints(idx, BinGrid.line(0.0, 0.0, 90.0, 25.0, 1, 5)).source.startswith(
        "FFID")
    with h5py.File(tmp_path / "x.h5", "w") as f, pytest.raises(seis_hpc.SeisError):
        write_shotpoint(f, g3, np.ones((2, 2)))


class _Index(dict):
    """An in-memory trace source with the shot headers (no SEG-Y file behind it)."""

    attrs: dict = {}


def test_shot_numbering_choice_and_interpolation():
    """EnergySourcePoint numbers the shots when it does; a constant does not, and nor does
    an all-zero FFID: then there is no SP. Between shots SP is linear in position, beyond
    them it follows the end chord."""
    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.shotpoint import SOURCES, line_shotpoints

    g = BinGrid.line(0.0, 0.0, 90.0, 10.0, 1, 11)  # CMP k at x = 10 (k - 1) m
    sx = np.repeat([20.0, 40.0, 60.0], 2)  # 3 shots of 2 traces, at CMP 3, 5, 7
    base = {"source_id": np.repeat([0, 1, 2], 2), "sx": sx, "sy": np.zeros(6),
            "ffid": np.repeat([7, 8, 9], 2)}
    sp = line_shotpoints(_Index(base, energy_source_point=np.repeat([101, 103, 105], 2)), g)
    assert sp.source == SOURCES["energy_source_point"]
    # 1 SP per CMP between the shots; the end chords (slope 1) beyond them
    np.testing.assert_array_equal(sp.values, np.arange(99, 110))
    sp = line_shotpoints(_Index(base, energy_source_point=np.ones(6, int)), g)
    assert sp.source == SOURCES["ffid"]
    # half an SP per CMP: halves round to even
    np.testing.assert_array_equal(sp.values, [6, 6, 7, 8, 8, 8, 9, 10, 10, 10, 11])
    assert line_shotpoints(_Index(base, ffid=np.zeros(6, int)), g) is None


def test_real_marine_line_is_numbered_by_its_energy_source_point(external_data):
    """Viking Graben line 12 (4 real shots, FFID 3-6): its SP is EnergySourcePoint 101-104
    (ShotPoint 197 is 0), one every 25 m; the CMPs behind the shots get the SP a shot there
    would have had."""
    from seis_hpc.io.shotpoint import SOURCES, line_shotpoints
    from seis_hpc.survey import Survey

    path = external_data / "segyio" / "viking_small.segy"
    s = Survey.open(path, save=False)
    sp = line_shotpoints(s.index, s.grid)
    assert sp.source == SOURCES["energy_source_point"] and sp.n_sources == 4
    cx, _ = s.grid.cdp_xy()
    assert_rounded(sp.values, 101 + (cx - 3237.0) / 25.0)  # half an SP a CMP: ties too

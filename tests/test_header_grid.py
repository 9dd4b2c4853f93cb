"""Prestack 3D with the true source-receiver midpoints in CDP_X/CDP_Y and the bin numbers in
INLINE_3D/CROSSLINE_3D (issue 15): the grid comes from the headers, the scatter inside the bins
is reported, a trace outside its bin is refused, and PSTM images on the header grid."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.io.index import TraceIndex
from seis_hpc.survey import Survey


@pytest.fixture(scope="module")
def midpoint_survey(tmp_path_factory):
    from seis_hpc.synth import preset, write_survey

    d = tmp_path_factory.mktemp("mid3d")
    truth = write_survey(preset("tiny3d-midpoints"), d)
    return d, truth


def test_cdp_xy_are_true_midpoints(midpoint_survey):
    d, truth = midpoint_survey
    idx = TraceIndex.scan(d / "shots.sgy")
    assert np.allclose(idx["cdp_x"], idx["mx"], atol=0.006)
    assert np.allclose(idx["cdp_y"], idx["my"], atol=0.006)


def test_header_grid_with_scatter(midpoint_survey, tmp_path):
    d, truth = midpoint_survey
    s = Survey.open(d / "shots.sgy", index_path=tmp_path / "i.h5")
    design = BinGrid(**{k: v for k, v in truth["grid"].items()})
    g = s.grid
    assert s.method == "headers"
    assert (g.inline0, g.crossline0, g.shape) == (design.inline0, design.crossline0,
                                                  design.shape)
    # every bin centre within 1 % of the inline bin of the designed one (the mean midpoint of
    # the edge bins is off by up to 0.3 bin: the fit centres the scatter band instead)
    err = np.hypot(*(g.points() - design.points()).T)
    assert err.max() < 0.01 * design.bin_inline
    assert g.azimuth == pytest.approx(design.azimuth, abs=0.01)
    rep = s.report()
    # midpoints +-5 m across 25 m bins (0.2) and +-2 m along 6.25 m bins (0.32): 0.377 bin
    assert rep["bin_scatter_rms"] == pytest.approx(np.hypot(0.2, 0.32), abs=0.02)
    assert rep["bin_scatter_max"] == pytest.approx(np.hypot(0.2, 0.32), abs=0.02)
    # the header bin numbers are kept
    assert np.array_equal(s.index["inline"], s.index["header_inline"])


def test_trace_outside_its_bin_is_refused(midpoint_survey):
    d, _ = midpoint_survey
    idx = TraceIndex.scan(d / "shots.sgy")
    x = idx["cdp_x"].copy()
    x[77] += 40.0  # two bins along the inline at azimuth 30 (well outside its bin)
    idx["cdp_x"] = x
    with pytest.raises(SeisError, match=r"trace 77: CDP_X/CDP_Y .* outside the bin "
                                        r"INLINE_3D/CROSSLINE_3D"):
        Survey.from_index(idx)


@pytest.mark.parametrize("given", [False, True])
def test_pstm_images_diffractor_in_its_header_bin(midpoint_survey, tmp_path, given):
    """On the grid of the headers, and on the same grid given as a file (numbered from 1001
    x 501): the diffractor images in the bin the truth says."""
    d, truth = midpoint_survey
    dif = truth["diffractors"][0]
    il0, xl0 = round(dif["inline"]), round(dif["crossline"])
    assert abs(dif["inline"] - il0) < 1e-6  # the preset puts it on a bin centre
    more = []
    if given:
        more = ["--bin-grid", str(_grid_toml(tmp_path / "g.toml", BinGrid(**truth["grid"]),
                                             inline0=1001, crossline0=501))]
        il0, xl0 = il0 + 1000, xl0 + 500
    out = tmp_path / "img.h5"
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "pstm", str(d / "shots.sgy"),
                        "--velocity", str(d / "velocity.csv"), "--out", str(out),
                        "--index", str(tmp_path / "i.h5"), *more,
                        "--grid", f"{il0 - 2},{il0 + 2},{xl0 - 10},{xl0 + 10}", "--tmax",
                        "0.7", "--aperture", "300"],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    from seis_hpc.io.volume import read_volume

    vol = read_volume(out, "image")
    img = np.abs(np.asarray(vol.data))
    i, j, k = np.unravel_index(np.argmax(img), img.shape)
    g = vol.grid
    assert (g.inline0 + i, g.crossline0 + j) == (il0, xl0)
    assert abs(k * truth["dt_s"] - dif["t0_s"]) <= 2 * truth["dt_s"]
    assert json.loads((d / "truth.json").read_text())["n_traces"] == 1536


def _grid_toml(path, g: BinGrid, **change):
    d = {k: getattr(g, k) for k in ("x0", "y0", "azimuth", "bin_inline", "bin_crossline",
                                    "inline0", "crossline0", "n_inline", "n_crossline")}
    d.update(change)
    path.write_text("\n".join(f"{k} = {v!r}" for k, v in d.items()) + "\n")
    return path


def test_given_bin_grid(midpoint_survey, tmp_path):
    """index --bin-grid bins by the grid given; traces outside it are counted and named; the
    same grid from its corners is the same grid."""
    d, truth = midpoint_survey
    design = BinGrid(**truth["grid"])
    # the designed grid less its first 4 crosslines (and numbered from 101)
    x0, y0 = design.grid_to_world(design.inline0, design.crossline0 + 4)
    cut = _grid_toml(tmp_path / "cut.toml", design, x0=float(x0), y0=float(y0),
                     crossline0=101, n_crossline=design.n_crossline - 4)
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "index", str(d / "shots.sgy"),
                        "--index", str(tmp_path / "i.h5"), "--bin-grid", str(cut), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    idx = TraceIndex.open(tmp_path / "i.h5")
    expect_out = int(np.sum(idx["header_crossline"] < design.crossline0 + 4))
    assert rep["method"] == "given" and rep["traces_outside_grid"] == expect_out > 0
    assert any("outside the given bin grid" in w for w in rep["warnings"])
    inside = idx["header_crossline"] >= design.crossline0 + 4
    assert np.array_equal(idx["crossline"][inside], idx["header_crossline"][inside] + 96)
    assert np.array_equal(idx["inline"][inside], idx["header_inline"][inside])
    # corners: first bin, last crossline of the first inline, last inline of the first xline
    from seis_hpc.geometry import load_bin_grid

    il1, xl1 = design.inline0 + design.n_inline - 1, design.crossline0 + design.n_crossline - 1
    c = [design.grid_to_world(design.inline0, design.crossline0),
         design.grid_to_world(design.inline0, xl1), design.grid_to_world(il1, design.crossline0)]
    (tmp_path / "corners.toml").write_text(
        f"inline0 = 1\ncrossline0 = 1\nn_inline = {design.n_inline}\nn_crossline = "
        f"{design.n_crossline}\n[corners]\n" + "".join(
            f"{k} = [{float(p[0])!r}, {float(p[1])!r}]\n"
            for k, p in zip(("first", "last_crossline", "last_inline"), c, strict=True)))
    g = load_bin_grid(tmp_path / "corners.toml")
    assert np.allclose(g.points(), design.points(), atol=1e-6)
    (tmp_path / "bad.toml").write_text("x0 = 1\nbin_size = 3\n")
    with pytest.raises(SeisError, match="unknown bin grid key"):
        load_bin_grid(tmp_path / "bad.toml")


def test_geometry_qc(midpoint_survey, tmp_path):
    """qc --what geometry: the grid over the midpoints, fold/offset/azimuth maps, and the
    offset/azimuth distribution; the grid lines pass through the bin edges."""
    from seis_hpc.cli import main

    d, truth = midpoint_survey
    out = tmp_path / "q"
    assert main(["qc", str(d / "shots.sgy"), "--what", "geometry", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["shots_azimuth_sectors.png", "shots_bin_grid.png", "shots_fold.png",
                     "shots_offset_azimuth.png", "shots_offset_max.png",
                     "shots_offset_min.png"]
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "shots_bin_grid.png")
    assert img.shape[:2] == (800, 800)
    # some green midpoints and grey grid lines are drawn
    rgb = img[..., :3]
    green = (rgb[..., 1] > 0.4) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.3)
    grey = (np.abs(rgb[..., 0] - 0.6) < 0.05) & (np.abs(rgb[..., 1] - 0.6) < 0.05)
    assert green.sum() > 500 and grey.sum() > 500

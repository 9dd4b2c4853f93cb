"""QC pictures: every kind of input gives non-empty PNGs of the stated pixel size, and the
pictures put the data where their axes say (field units)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seis_hpc.cli import main
from seis_hpc.geometry import BinGrid
from seis_hpc.io.volume import Volume, write_volume
from seis_hpc.qc import figures, pictures


def _png(path: Path) -> np.ndarray:
    """Read a PNG back as float RGB(A) in [0, 1] (matplotlib.image)."""
    import matplotlib.image as mpimg

    assert path.is_file() and path.stat().st_size > 0, path
    return mpimg.imread(path)


def _assert_picture(path: Path, width: int, height: int) -> None:
    img = _png(path)
    assert img.shape[:2] == (height, width), (path.name, img.shape)
    rgb = img[..., :3]
    # not blank: several distinct grey levels and a good share of non-white pixels
    assert rgb.std() > 0.02, path.name
    assert (rgb.min(axis=-1) < 0.9).mean() > 0.01, path.name
    q = (rgb * 255).astype(np.uint32)
    assert len(np.unique(q[..., 0] << 16 | q[..., 1] << 8 | q[..., 2])) > 8, path.name


def _inside(fig, img: np.ndarray, margin: int = 3, axes: int = 0
            ) -> tuple[np.ndarray, int, int]:
    """The part of ``img`` inside the frame of the figure's ``axes``-th axes, and its top-left
    (row, column)."""
    (x0, y0), (x1, y1) = fig.axes[axes].transAxes.transform([(0, 0), (1, 1)])
    h = fig.get_size_inches()[1] * figures.DPI
    r0, c0 = int(h - y1) + margin, int(x0) + margin
    return img[r0:int(h - y0) - margin, c0:int(x1) - margin], r0, c0


def _pixel(fig, x: float, y: float) -> tuple[int, int]:
    """(row, column) in the saved PNG of data point (x, y) of the figure's first axes."""
    ax = fig.axes[0]
    px, py = ax.transData.transform((x, y))
    h = fig.get_size_inches()[1] * figures.DPI
    return int(round(h - py)), int(round(px))


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qc_survey") / "s"
    assert main(["synth", "--preset", "tiny3d", "--out", str(out)]) == 0
    return out


def _grid3d() -> BinGrid:
    return BinGrid(500000.0, 3600000.0, 30.0, 12.5, 25.0, 100, 200, 6, 9)


def _volumes(folder: Path) -> dict[str, Path]:
    """Small image, vrms and gathers volumes (3D) and a 2D image with a known event."""
    t = np.arange(101) * 0.004
    g3 = _grid3d()
    rng = np.random.default_rng(3)
    img = rng.normal(size=g3.shape + (len(t),)).astype(np.float32) * 0.1
    img[:, :, 50] += 5.0  # a flat reflector at 0.2 s
    vr = (1500.0 + 1000.0 * t)[None, None, :] * np.ones(g3.shape + (1,))
    off = np.array([100.0, 300.0, 500.0, 700.0])
    gath = np.repeat(img[None], len(off), axis=0)
    g2 = BinGrid.line(500000.0, 3600000.0, 45.0, 6.25, 1001, 40)
    img2 = rng.normal(size=(40, len(t))).astype(np.float32) * 0.1
    img2[:, 30] += 3.0
    paths = {}
    for name, vol in (
            ("image", Volume(img, g3, t, "image", history=["x seis-hpc pstm in.sgy"])),
            ("stack2d", Volume(img2, g2, t, "image", history=["x seis-hpc stack in.sgy"])),
            ("vrms", Volume(vr.astype(np.float32), g3, t, "vrms")),
            ("gathers", Volume(gath, g3, t, "gathers", offset=off))):
        paths[name] = folder / f"{name}.h5"
        write_volume(paths[name], vol)
    return paths


# -- every kind of input through seis-hpc qc ---------------------------------------------------
def test_segy_survey_pictures(survey, tmp_path, capsys):
    out = tmp_path / "qc"
    rc = main(["qc", str(survey / "shots.sgy"), "--out", str(out), "--size", "640x480",
               "--velocity", str(survey / "velocity.csv"), "--vrange", "1400,2600,50"])
    assert rc == 0
    made = [Path(p) for p in capsys.readouterr().out.split()]
    names = {p.name for p in made}
    ffid = 17  # the middle trace's shot of tiny3d
    for expect in (f"shots_shot_{ffid}_density.png", f"shots_shot_{ffid}_wiggle.png",
                   f"shots_spectrum_{ffid}.png", "shots_fold.png", "shots_offset_min.png",
                   "shots_offset_max.png", "shots_azimuth_sectors.png",
                   "shots_azimuth_rose.png", "shots_positions.png"):
        assert expect in names
    assert sum(n.startswith("shots_cmp_") for n in names) == 2
    assert sum(n.startswith("shots_semblance_") for n in names) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # nothing else written
    for p in made:
        _assert_picture(p, 640, 480)


@pytest.mark.parametrize("name,what,expect", [
    ("image", None, ["image_image_inline_103.png", "image_image_crossline_204.png",
                     "image_image_slice_0.200s.png", "image_image_spectrum.png"]),
    ("stack2d", None, ["stack2d_image_line.png", "stack2d_image_spectrum.png"]),
    ("vrms", None, ["vrms_vrms_inline_103.png", "vrms_vrms_crossline_204.png",
                    "vrms_vrms_slice_0.200s.png", "vrms_vrms_interval_inline_103.png"]),
    ("gathers", "gather,inline", ["gathers_gathers_inline_103.png",
                                  "gathers_gathers_cig_103_204.png"]),
])
def test_volume_pictures(tmp_path, capsys, name, what, expect):
    paths = _volumes(tmp_path)
    out = tmp_path / "qc"
    argv = ["qc", str(paths[name]), "--out", str(out), "--size", "700x400"]
    if what:
        argv += ["--what", what]
    assert main(argv) == 0
    made = [Path(p) for p in capsys.readouterr().out.split()]
    assert [p.name for p in made] == expect
    for p in made:
        _assert_picture(p, 700, 400)


def test_before_after_pictures(tmp_path, capsys):
    paths = _volumes(tmp_path)
    from seis_hpc.io.volume import read_volume

    vol = read_volume(paths["image"])
    vol.data = vol.data * 0.5  # a "conditioning step" that halves the amplitudes
    after = tmp_path / "after.h5"
    write_volume(after, vol)
    out = tmp_path / "cmp"
    assert main(["qc", str(after), "--before", str(paths["image"]), "--out", str(out),
                 "--inline", "101"]) == 0
    made = [Path(p) for p in capsys.readouterr().out.split()]
    assert [p.name for p in made] == ["after_compare.png", "after_compare_spectrum.png"]
    _assert_picture(made[0], 1500, 600)
    _assert_picture(made[1], 800, 500)


def test_before_after_segy(survey, tmp_path, capsys):
    from seis_hpc.io.index import TraceIndex
    from seis_hpc.io.segy import write_segy

    idx = TraceIndex.for_file(survey / "shots.sgy", save=False)
    data = idx.read_traces(np.arange(idx.n_traces))
    h = {"FieldRecord": idx["ffid"], "TraceNumber": idx["channel"], "SourceX": idx["sx"],
         "SourceY": idx["sy"], "GroupX": idx["rx"], "GroupY": idx["ry"],
         "offset": idx["offset"].round()}
    after = tmp_path / "muted.sgy"
    muted = data.copy()
    muted[:, :100] = 0.0
    write_segy(after, muted, h, idx.dt)
    assert main(["qc", str(after), "--before", str(survey / "shots.sgy"), "--ffid", "5",
                 "--out", str(tmp_path / "q"), "--size", "900x450"]) == 0
    made = [Path(p) for p in capsys.readouterr().out.split()]
    assert [p.name for p in made] == ["muted_compare.png", "muted_compare_spectrum.png"]
    for p in made:
        _assert_picture(p, 900, 450)


def test_bad_requests_write_nothing(tmp_path, capsys):
    paths = _volumes(tmp_path)
    out = tmp_path / "qc"
    for argv in (["--what", "semblance"], ["--inline", "999"], ["--time", "9.0"]):
        assert main(["qc", str(paths["image"]), "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("seis-hpc: error:"), err
    assert main(["qc", str(paths["stack2d"]), "--what", "slice", "--out", str(out)]) == 2
    assert "slice" in capsys.readouterr().err
    assert not out.exists()


# -- the data lands where the axes say ---------------------------------------------------------
def _spike_gather():
    t = 0.5 + np.arange(200) * 0.002  # s, starting at 0.5 s
    x = 100.0 + 12.5 * np.arange(30)  # offsets (m)
    d = np.zeros((30, 200), dtype=np.float32)
    d[11, 120] = 1.0  # offset 237.5 m, t = 0.74 s
    d[11, 119] = d[11, 121] = 0.6
    return d, t, x


def test_density_gather_puts_the_spike_at_its_offset_and_time(tmp_path):
    d, t, x = _spike_gather()
    fig = figures.gather_figure(d, t, x, title="spike", xlabel="offset (m)", size=(8, 6))
    row, col = _pixel(fig, 237.5, 0.74)
    png = figures.save_png(fig, tmp_path / "g.png")
    img, r0, c0 = _inside(fig, _png(png)[..., :3].mean(axis=-1))
    r, c = np.unravel_index(np.argmin(img), img.shape)  # darkest pixel: the spike's centre
    r, c = r + r0, c + c0
    px_per_trace = (_pixel(fig, 250.0, 0.74)[1] - col)
    px_per_sample = (_pixel(fig, 237.5, 0.742)[0] - row)
    assert abs(c - col) <= px_per_trace / 2 + 1
    assert abs(r - row) <= 1.5 * px_per_sample + 1


def test_wiggle_lobe_at_the_spike_time(tmp_path):
    d, t, x = _spike_gather()
    fig = figures.gather_figure(d, t, x, title="spike", xlabel="offset (m)", style="wiggle",
                           size=(8, 6))
    row, col = _pixel(fig, 237.5, 0.74)
    right = _pixel(fig, 237.5 + 12.5 * 0.6, 0.74)[1]  # 60 % of the way to the next trace
    top, bottom = _pixel(fig, 237.5, 0.5)[0], _pixel(fig, 237.5, t[-1])[0]
    img = _png(figures.save_png(fig, tmp_path / "w.png"))[..., :3].mean(axis=-1)
    # between traces, the only black is the filled positive lobe of the spike
    column = img[top + 2:bottom - 2, right]
    dark = np.flatnonzero(column < 0.3) + top + 2
    assert dark.size > 0
    assert abs(dark.mean() - row) <= 3
    assert dark.max() - dark.min() < (bottom - top) * 0.05


def test_map_and_section_keep_their_signatures(tmp_path):
    # seis_hpc.demo calls these exactly so
    t = np.arange(50) * 0.004
    sec = np.zeros((20, 50), dtype=np.float32)
    sec[7, 25] = 1.0
    p = figures.plot_section(sec, t, np.arange(1, 21), tmp_path / "s.png", xlabel="crossline",
                        title="PSTM inline 3", marks=[(8, 0.1)])
    _assert_picture(p, 1000, 600)
    fold = np.arange(12.0).reshape(3, 4)
    p = figures.plot_map(fold, tmp_path / "m.png", title="CMP fold", x=np.arange(10, 14),
                    y=np.arange(1, 4), label="traces per bin")
    _assert_picture(p, 800, 600)
    fig = figures.map_figure(fold, title="fold", x=np.arange(10, 14), y=np.arange(1, 4))
    row, col = _pixel(fig, 13, 3)  # the fullest bin: inline 3, crossline 13
    img = _png(figures.save_png(fig, tmp_path / "m2.png"))[..., :3]
    import matplotlib

    top = matplotlib.colormaps["viridis"](1.0)[:3]
    assert np.abs(img[row, col] - top).max() < 0.02


def test_amplitude_spectrum_peaks_at_the_sine_frequency():
    dt = 0.002
    t = np.arange(500) * dt
    tr = np.sin(2 * np.pi * 25.0 * t)[None, :] * np.array([[1.0], [2.0]])
    f, a = figures.amplitude_spectrum(tr, dt)
    assert f[-1] == pytest.approx(250.0)
    assert f[np.argmax(a)] == pytest.approx(25.0)
    assert a.max() == pytest.approx(1.5 * 500 / 2, rel=1e-6)  # mean of 1 and 2, N/2 each


def test_difference_panel_is_blank_for_an_unchanged_gather(tmp_path):
    d, t, x = _spike_gather()
    fig = figures.compare_figure(d, d.copy(), t, x, title="no-op", xlabel="offset (m)")
    img = _png(figures.save_png(fig, tmp_path / "c.png"))[..., :3].mean(axis=-1)
    before, diff = _inside(fig, img, axes=0)[0], _inside(fig, img, axes=2)[0]
    assert before.min() < 0.2  # the spike, dark
    assert diff.std() < 1e-3  # uniform: zero difference everywhere


def test_semblance_picks_are_drawn_at_their_velocity(tmp_path):
    t = np.arange(100) * 0.01
    v = np.arange(1500.0, 3001.0, 50.0)
    panel = np.zeros((len(v), len(t)))
    fig = figures.semblance_figure(panel, t, v, title="picks", picks=[(0.3, 2000.0), (0.7, 2500.0)])
    img = _png(figures.save_png(fig, tmp_path / "p.png"))[..., :3]
    for tp, vp in ((0.3, 2000.0), (0.7, 2500.0)):
        r, c = _pixel(fig, vp, tp)
        win = img[r - 2:r + 3, c - 2:c + 3]
        assert (win.min(axis=-1) > 0.9).any()  # white pick marker on the dark-blue panel


def test_survey_geometry_pictures_of_a_2d_line(tmp_path):
    from seis_hpc.io.segy import write_segy

    # a short 2D line: 6 shots x 12 channels, 12.5 m groups
    n_shot, n_ch = 6, 12
    s = np.repeat(np.arange(n_shot) * 25.0, n_ch)
    r = s - 50.0 - np.tile(np.arange(n_ch) * 12.5, n_shot)
    data = np.random.default_rng(0).normal(size=(n_shot * n_ch, 64)).astype(np.float32)
    h = {"FieldRecord": np.repeat(np.arange(1, n_shot + 1), n_ch),
         "TraceNumber": np.tile(np.arange(1, n_ch + 1), n_shot), "SourceX": s,
         "GroupX": r, "offset": s - r}
    write_segy(tmp_path / "line.sgy", data, h, 0.004)
    made = pictures.survey_pictures(tmp_path / "line.sgy", tmp_path / "q", what=["maps"])
    assert [p.name for p in made] == ["line_fold.png", "line_offsets.png",
                                      "line_azimuth_rose.png", "line_positions.png"]
    sizes = {"line_fold.png": (1000, 400), "line_offsets.png": (1000, 400),
             "line_azimuth_rose.png": (600, 600), "line_positions.png": (800, 800)}
    for p in made:
        _assert_picture(p, *sizes[p.name])


def test_qc_records_its_step(tmp_path, capsys, monkeypatch):
    paths = _volumes(tmp_path)
    run = tmp_path / "run"
    monkeypatch.setenv("SEIS_HPC_RUNDIR", str(run))
    assert main(["qc", str(paths["image"]), "--what", "inline", "--out", str(run / "qc")]) == 0
    made = capsys.readouterr().out.split()
    rec = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    assert len(rec) == 1 and rec[0]["step"] == "qc" and rec[0]["status"] == "ok"
    assert rec[0]["qc"] == ["qc/" + Path(made[0]).name]
    assert rec[0]["params"]["what"] == "inline"


def test_volume_label_from_history():
    t = np.arange(3) * 0.004
    vol = Volume(np.zeros(_grid3d().shape + (3,), np.float32), _grid3d(), t)
    for history, label in (([], "image"), (["2024 seis-hpc pstm a.sgy -v v.csv"], "PSTM"),
                           (["2024 seis-hpc stack a.sgy"], "NMO stack"),
                           (["seis-hpc migstack pass 1 with v.h5"], "PSTM stack"),
                           (["2024 seis-hpc stack a.sgy", "note: rescaled"], "NMO stack")):
        vol.history = history
        assert pictures.volume_label(vol) == label

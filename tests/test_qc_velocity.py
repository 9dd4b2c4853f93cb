"""QC pictures of the velocity analysis (issues 16 and 18): semblance panels with the picks,
the rejected picks by reason, the corridor, the water floor and the multiple times; the Vrms
and Dix interval-velocity sections; title blocks naming the line and the clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import velocity_line as vl

from seis_hpc.cli import main
from seis_hpc.qc import figures
from seis_hpc.qc.figures import TitleBlock, overlay, title_block_text
from seis_hpc.qc.velocity import interval_velocity, picture_plan, velan_pictures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path, width=None, height=None) -> None:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = mpimg.imread(path)
    if width:
        assert img.shape[:2] == (height, width), (path.name, img.shape)
    assert img[..., :3].std() > 0.02, path.name  # not blank


@pytest.fixture(scope="module")
def analysed():
    """velocity_analysis of the shortened marine2d line with every location recorded."""
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.velan import (
        PickingQC,
        ScanParams,
        analysis_locations,
        velocity_analysis,
    )

    path, truth = vl.line("marine2d")
    sv = Survey.open(path)
    idx, grid = sv.index, sv.grid
    locs = analysis_locations(grid, sv.fold(), every=40, min_fold=6)
    qc = PickingQC(max_locations=len(locs))
    picks = velocity_analysis(idx, idx["inline"], idx["crossline"], grid, locs, ScanParams(),
                              qc=qc)
    return picks, qc, grid, idx.times(), truth


def test_every_rejection_is_recorded_with_its_reason(analysed):
    from seis_hpc.velocity.velan import REASONS

    picks, qc, _, time, _ = analysed
    by = {k: 0 for k in REASONS}
    for rec in qc.locations.values():
        for _, _, why in rec.rejected():
            by[why] += 1
    for k in REASONS:  # the QC shows exactly the rejections velan counts and prints
        assert by[k] == picks.params["rejected_" + k.replace(" ", "_").replace("-", "_")], k
    assert by["water-bottom multiple"] >= 1
    final = {(p.inline, p.crossline): p for p in picks.locations}
    for key, rec in qc.locations.items():
        p = final.get(key)
        kept = [(t, v) for t, v, why in rec.candidates if not why]
        if p is None:
            assert not kept
            continue
        acc = rec.accepted()
        # accepted = the output's picked knots: the kept candidates (+ the sea-floor anchor)
        np.testing.assert_array_equal(acc, np.column_stack([p.time, p.vrms])[p.semblance != 0])
        for t, v in kept:
            assert np.any((np.abs(acc[:, 0] - t) < 1e-4) & (np.abs(acc[:, 1] - v) < 0.06))
        for t, _, _ in rec.rejected():  # a rejected pick is not among the output's picks
            # (an extrapolated knot, semblance 0, may lie at its time: the record's end)
            assert not np.any((np.abs(p.time - t) < 1e-6) & (p.semblance != 0))
        ext = rec.extrapolated()
        if acc[-1, 0] < time[-1] - 0.05:  # extrapolated below the deepest pick, to the end
            assert ext.size and ext[0, 0] > acc[-1, 0] and ext[-1, 0] == pytest.approx(
                time[-1], abs=1e-3)
        else:
            assert not ext.size


def test_semblance_picture_overlays_what_the_picker_did(analysed):
    picks, qc, grid, time, truth = analysed
    recs = [r for r in qc.locations.values() if r.final is not None and r.rejected()
            and r.corridor is not None]
    rec = recs[len(recs) // 2]
    plan = dict(picture_plan(qc, picks, np.zeros((grid.n_bins, time.size)) + 2000.0, grid, time,
                      Path("."), "L-16", "v", 99.0, (1400.0, 6000.0)))
    fig = plan[Path(f"v_semblance_cdp{rec.cdp}.png")]()
    acc = rec.accepted()
    np.testing.assert_allclose(overlay(fig, "picks"), acc[:, ::-1])  # (v, t) on the panel
    for why in {w for *_, w in rec.rejected()}:
        want = sorted((v, t) for t, v, w in rec.rejected() if w == why)
        assert sorted(map(tuple, overlay(fig, f"rejected: {why}"))) == want
    ct, lo, hi = rec.corridor
    np.testing.assert_allclose(overlay(fig, "corridor"), np.column_stack([lo, ct]))
    np.testing.assert_allclose(overlay(fig, "corridor-high"), np.column_stack([hi, ct]))
    assert np.all(overlay(fig, "water velocity")[:, 0] == 1500.0)
    t_wb = rec.water_bottom
    assert abs(t_wb - truth["water_bottom_t0_s"]) <= 0.004
    tk = np.unique(overlay(fig, "multiples")[:, 1][np.isfinite(overlay(fig, "multiples")[:, 1])])
    np.testing.assert_allclose(tk, t_wb * np.arange(1, tk.size + 1))
    assert tk.size >= 4
    ext = overlay(fig, "extrapolated")
    assert ext[0, 1] == acc[-1, 0] and ext[-1, 1] == pytest.approx(time[-1], abs=1e-3)
    text = title_block_text(fig)
    assert "L-16" in text and f"CDP {rec.cdp}" in text and "Clip: 99th percentile" in text
    assert "water velocity floor 1500 m/s" in text
    figures._plt().close(fig)


def test_vrms_and_interval_sections(analysed, tmp_path):
    from seis_hpc.velocity.field import field_from_picks

    picks, qc, grid, time, _ = analysed
    field = field_from_picks(picks, grid, time, smooth_m=250.0, smooth_s=0.05,
                             vint_bounds=(1400.0, 6000.0))
    made = velan_pictures(None, picks, field, grid, time, tmp_path, line="L-16", prefix="v")
    assert [p.name for p in made] == ["v_vrms.png", "v_vint.png"]  # no QC: sections only
    for p in made:
        _assert_png(p, 1000, 650)
    plan = dict(picture_plan(None, picks, field, grid, time, tmp_path, "L-16", "v", 99.0,
                      (1400.0, 6000.0)))
    fig = plan[tmp_path / "v_vint.png"]()
    text = title_block_text(fig)
    assert "L-16" in text and "0 unphysical samples" in text
    assert overlay(fig, "unphysical") is None  # none drawn: the field is physical
    figures._plt().close(fig)
    fig = plan[tmp_path / "v_vrms.png"]()
    dots = overlay(fig, "picks")
    want = sorted((p.crossline, t) for p in picks.locations for t in p.time[p.semblance != 0])
    assert sorted(map(tuple, dots)) == want
    figures._plt().close(fig)


def test_interval_velocity_recovers_layers_and_flags_imaginary():
    t = np.arange(0, 2.001, 0.004)
    v1, v2, t1 = 1500.0, 2500.0, 1.0
    w = np.where(t <= t1, v1 * v1 * t, v1 * v1 * t1 + v2 * v2 * (t - t1))
    vrms = np.sqrt(w / np.maximum(t, 1e-9))
    vrms[0] = v1
    tm, vint, bad = interval_velocity(vrms[None], t)
    assert not bad.any()
    np.testing.assert_allclose(vint[0][tm < t1 - 0.02], v1, rtol=1e-3)
    np.testing.assert_allclose(vint[0][tm > t1 + 0.02], v2, rtol=1e-3)
    slow = vrms.copy()
    slow[t > 1.5] *= 0.8  # Vrms falling 20 %: V^2 t decreases, imaginary interval velocity
    tm, vint, bad = interval_velocity(slow[None], t)
    assert bad.sum() == 1  # the one interval across the drop
    k = int(np.flatnonzero(bad[0])[0])
    assert abs(tm[k] - 1.5) <= 0.02 and np.isnan(vint[0, k])


def test_picture_follows_the_picks(tmp_path):
    t = np.arange(100) * 0.01
    v = np.arange(1500.0, 3001.0, 50.0)
    panel = np.exp(-((v[:, None] - 2000.0) / 300.0) ** 2) * np.ones(t.size)
    a = figures.plot_semblance(panel, t, v, tmp_path / "a.png", title="p",
                               picks=[(0.3, 2000.0), (0.7, 2500.0)])
    b = figures.plot_semblance(panel, t, v, tmp_path / "b.png", title="p",
                               picks=[(0.3, 2000.0), (0.7, 2300.0)])
    c = figures.plot_semblance(panel, t, v, tmp_path / "c.png", title="p",
                               picks=[(0.3, 2000.0), (0.7, 2500.0)],
                               rejected=[(0.5, 1600.0, "water-bottom multiple")])
    ia, ib, ic = (figures_png(p) for p in (a, b, c))
    assert np.abs(ia - ib).max() > 0.5 and np.abs(ia - ic).max() > 0.5
    # the difference lies where the moved pick is drawn, not all over the picture
    fig = figures.semblance_figure(panel, t, v, title="p", picks=[(0.3, 2000.0), (0.7, 2500.0)])
    h = fig.get_size_inches()[1] * figures.DPI
    rows = np.flatnonzero(np.abs(ia - ib).max(axis=(1, 2)) > 0.5)
    y = [h - fig.axes[0].transData.transform((2400.0, tt))[1] for tt in (0.3, 0.7)]
    assert rows.min() >= min(y) - 8 and rows.max() <= max(y) + 8
    figures._plt().close(fig)


def figures_png(path):
    import matplotlib.image as mpimg

    return mpimg.imread(path)[..., :3]


def test_title_block_names_the_line_and_the_clip_value():
    rng = np.random.default_rng(1)
    d = rng.normal(size=(30, 200)).astype(np.float32)
    t = np.arange(200) * 0.004
    x = np.arange(1001, 1031)
    cx, cy = 500000.0 + 12.5 * (x - 1001), 3600000.0 + 0 * x
    fig = figures.gather_figure(d, t, x, title="NMO stack", xlabel="CDP", clip=95.0,
                                block=TitleBlock("LINE-7", "NMO stack, 2D line"),
                                coords=(cx, cy))
    text = title_block_text(fig)
    clip = float(np.percentile(np.abs(d), 95.0))
    assert "LINE-7" in text and "NMO stack, 2D line" in text
    assert f"95th percentile of |amplitude| = {clip:.4g}" in text
    assert "two-way time s" in text
    top = fig.axes[0].child_axes[0]  # the coordinate axis
    ticks = top.get_xticks()
    labels = [lab.get_text() for lab in top.get_xticklabels()]
    assert len(ticks) >= 3
    for tk, lab in zip(ticks, labels, strict=True):
        assert lab.split("\n")[0] == f"{500000.0 + 12.5 * (tk - 1001):.0f}"
    figures._plt().close(fig)
    assert title_block_text(figures.gather_figure(d, t, x, title="s", xlabel="CDP")) is None


def test_image_gathers_side_by_side_at_one_clip():
    t = np.arange(150) * 0.004
    off = np.arange(100.0, 1700.0, 200.0)
    g = np.zeros((3, off.size, t.size), np.float32)
    g[:, :, 75] = [[1.0], [2.0], [4.0]]  # one flat event, amplitude doubling per gather
    fig = figures.image_gathers_figure(g, t, off, ["CDP 1", "CDP 2", "CDP 3"], title="cig",
                                       clip=100.0, block=TitleBlock("L", "Image gathers"))
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["CDP 1", "CDP 2", "CDP 3"]
    assert "= 4" in title_block_text(fig)  # one clip over all gathers: the largest
    figures._plt().close(fig)


def test_velan_qc_writes_pictures_with_its_outputs(tmp_path, monkeypatch, capsys):
    path, _ = vl.line("marine2d")
    run = tmp_path / "run"
    monkeypatch.setenv("SEIS_HPC_RUNDIR", str(run))
    qc = tmp_path / "qc"
    assert main(["velan", str(path), "--out", str(tmp_path / "v.h5"), "--every", "60",
                 "--qc", str(qc), "--qc-locations", "2", "--line", "L-16"]) == 0
    assert "QC pictures" in capsys.readouterr().err
    names = sorted(p.name for p in qc.iterdir())
    sem = [n for n in names if n.startswith("v_semblance_cdp")]
    assert len(sem) == 2 and {"v_vrms.png", "v_vint.png"} <= set(names)
    assert len(names) == 4  # nothing else: no temporary left
    for n in names:
        _assert_png(qc / n)
    _assert_png(qc / sem[0], 1100, 850)
    rec = [json.loads(x) for x in (run / "steps.jsonl").read_text().splitlines()]
    assert rec[-1]["step"] == "velan" and len(rec[-1]["qc"]) == 4


def test_velan_qc_all_or_none(tmp_path, monkeypatch, capsys):
    path, _ = vl.line("marine2d")
    (tmp_path / "file").write_text("x")
    assert main(["velan", str(path), "--out", str(tmp_path / "v.h5"),
                 "--qc", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder" in err[0] and str(tmp_path / "file") in err[0]
    import seis_hpc.qc.velocity as qv

    def broken(*a, **k):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(qv, "semblance_figure", broken)
    with pytest.raises(RuntimeError):
        from seis_hpc.velocity.analysis import velan

        velan(path, tmp_path / "v.h5", picks=tmp_path / "p.toml", qc=tmp_path / "qc",
              every=100, progress=False)
    assert not (tmp_path / "v.h5").exists() and not (tmp_path / "p.toml").exists()
    assert list((tmp_path / "qc").iterdir()) == []  # the section pictures went too


def test_velan_use_picks_qc_draws_the_sections(analysed, tmp_path, capsys):
    from seis_hpc.velocity.picks import write_picks

    picks = analysed[0]
    path, _ = vl.line("marine2d")
    write_picks(tmp_path / "p.toml", picks)
    assert main(["velan", str(path), "--out", str(tmp_path / "v.h5"), "--use-picks",
                 str(tmp_path / "p.toml"), "--qc", str(tmp_path / "qc")]) == 0
    assert sorted(p.name for p in (tmp_path / "qc").iterdir()) == ["v_vint.png", "v_vrms.png"]

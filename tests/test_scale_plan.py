"""Issue 19, planning: the header-only spec survey, the spatially blocked index and
``seis-hpc pstm --dry-run`` (streamed planning, evaluations, memory that does not grow with
other units' traces)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from seis_hpc.engine.decomposition import plan_job, tile_units
from seis_hpc.geometry import BinGrid
from seis_hpc.io.blocked import BlockTable, iter_rows, write_blocked_index
from seis_hpc.io.index import TraceIndex
from seis_hpc.io.spec3d import SpecSurvey, write_headers_only
from seis_hpc.migration.dryrun import dry_run

ENV = dict(os.environ, OMP_NUM_THREADS="1")
# A small acquisition of the same design (4 streamers x 24 groups, 6 sail lines), every line
# with an infill gap, so the geometry checks run in a fraction of a second.
SMALL = SpecSurvey(width=1200.0, length=1000.0, n_streamers=4, n_channels=24,
                   near_offset=50.0, run_in=150.0, run_out=150.0, segment=100.0,
                   record_length=1.0, dt=0.004, gap_every=1, gap_shots=4)


def cli(*args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "seis_hpc", *map(str, args)],
                       capture_output=True, text=True, timeout=timeout, env=ENV)
    return r


@pytest.fixture(scope="module")
def spec_tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("spec")
    r = cli("synth", "--preset", "spec3d", "--headers-only", "--scale", "0.0005", "--out", d)
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    truth = write_headers_only(d, 1.0, SMALL, log=None)
    return d, truth


def test_spec3d_cli_trace_count_from_geometry(spec_tiny):
    truth = json.loads((spec_tiny / "truth.json").read_text())
    acq = SpecSurvey()
    f = math.sqrt(0.0005)
    n_lines = max(1, round(acq.width * f / 600.0))
    n_shots = math.floor((acq.length * f + 3000.0) / 25.0) + 1
    gap = sum(g["end_shot"] - g["first_shot"] for g in truth["infill_gaps"])
    assert truth["n_sail_lines"] == n_lines
    assert truth["n_traces"] == (n_lines * n_shots - gap) * 12 * 240
    idx = TraceIndex.open(spec_tiny / "spec3d.index.h5")
    assert idx.n_traces == truth["n_traces"] and len(idx["mx"]) == truth["n_traces"]
    assert idx.ns == 2501 and idx.dt == pytest.approx(0.002)
    # every trace once, at its SEG-Y position
    assert np.array_equal(np.sort(idx["trace"]), np.arange(idx.n_traces))
    assert np.array_equal(idx["byte_offset"], 3600 + idx["trace"] * (240 + 4 * 2501))
    with pytest.raises(Exception, match="headers-only"):
        idx.read_traces([0])
    r = cli("synth", "--preset", "spec3d", "--out", spec_tiny / "x")
    assert r.returncode == 2 and "--headers-only" in r.stderr


def test_spec3d_flip_flop_feathering_and_gaps(small):
    d, truth = small
    idx = TraceIndex.open(d / "spec3d.index.h5")
    c = idx.columns()
    assert idx.n_traces == sum(truth["shots_per_line"]) * 96 == truth["n_traces"]
    order = np.argsort(c["trace"])  # firing order
    shot, src = c["source_id"][order][::96], c["energy_source_point"][order][::96]
    sx, sy = c["sx"][order][::96], c["sy"][order][::96]
    a = math.radians(SMALL.azimuth)
    along = sx * math.sin(a) + sy * math.cos(a)
    across = sx * math.cos(a) - sy * math.sin(a)
    first = np.cumsum([0] + truth["shots_per_line"][:-1])
    for li, (f0, n) in enumerate(zip(first, truth["shots_per_line"], strict=True)):
        s = slice(f0, f0 + n)
        assert np.array_equal(shot[s], np.arange(f0, f0 + n))
        gap = truth["infill_gaps"][li]  # every line of SMALL has one
        assert gap["line"] == li + 1
        k = np.r_[np.arange(gap["first_shot"]),
                  np.arange(gap["end_shot"], truth["shots_per_line_nominal"])]
        # flip-flop: the source alternates with the shot number along the line
        assert np.array_equal(src[s], k % 2 + 1)
        step = np.diff(along[s]) * truth["line_direction"][li]
        assert np.allclose(step[step < 30], 25.0)
        assert np.isclose(step.max(), 25.0 * (SMALL.gap_shots + 1))  # the gap: 4 shots
        assert np.allclose(np.abs(np.diff(across[s])), 50.0)  # sources 50 m apart
    # feathering: each streamer a straight line at a few degrees to the sail line
    rx, ry = c["rx"][order].reshape(-1, 4, 24), c["ry"][order].reshape(-1, 4, 24)
    dx, dy = rx[:, :, -1] - rx[:, :, 0], ry[:, :, -1] - ry[:, :, 0]
    ang = np.degrees(np.arctan2(dx, dy))
    dev = np.abs((ang - SMALL.azimuth + 90.0) % 180.0 - 90.0)  # off the sail line, either way
    assert dev.max() <= SMALL.max_feather + 1e-9
    assert dev.max() > 1.0
    assert np.allclose(np.hypot(dx, dy), 23 * 12.5)


def test_blocked_index_table_and_streaming(small):
    d, truth = small
    path = d / "spec3d.index.h5"
    bt = BlockTable.read(path)
    idx = TraceIndex.open(path)
    mx, my = idx["mx"], idx["my"]
    assert bt.start[0] == 0 and np.array_equal(bt.start[1:], np.cumsum(bt.count)[:-1])
    assert bt.count.sum() == idx.n_traces
    for b in range(len(bt)):
        s = slice(bt.start[b], bt.start[b] + bt.count[b])
        assert np.allclose(bt.bbox[b], [mx[s].min(), mx[s].max(), my[s].min(), my[s].max()])
    # a query near a point: the exact set, from a few contiguous ranges
    x, y, r = float(np.median(mx)), float(np.median(my)), 300.0
    rows = bt.rows_near(path, x, y, r)
    want = np.flatnonzero(np.hypot(mx - x, my - y) <= r)
    assert np.array_equal(np.sort(rows), want)
    assert len(bt.ranges(bt.near(x, y, r))) <= 2 * truth["n_sail_lines"]
    got = np.concatenate([c["mx"] for _, c in iter_rows(path, ["mx"], chunk=7000)])
    assert np.array_equal(got, mx)


def test_blocked_index_reads_the_same_traces_as_the_plain_reader(tiny3d, tmp_path):
    plain = TraceIndex.open(tiny3d / "shots.sgy.index.h5")
    assert "order" not in plain.attrs  # today's index, read as before
    target = write_blocked_index(TraceIndex.open(plain.path), tmp_path / "blocked.h5", 60.0)
    blk = TraceIndex.open(target)
    tr = blk["trace"]
    assert np.array_equal(np.sort(tr), np.arange(plain.n_traces))
    for name in plain.keys():
        assert np.array_equal(blk[name], plain[name][tr]), name
    rows = np.arange(0, blk.n_traces, 7)
    np.testing.assert_array_equal(blk.read_traces(rows), plain.read_traces(tr[rows]))
    bt = BlockTable.read(target)
    x, y = float(plain["mx"].mean()), float(plain["my"].mean())
    near = bt.rows_near(target, x, y, 120.0)
    want = np.flatnonzero(np.hypot(plain["mx"] - x, plain["my"] - y) <= 120.0)
    assert np.array_equal(np.sort(tr[near]), want)
    # never taken for the SEG-Y's own index (its rows are not file order)
    assert not blk.matches(tiny3d / "shots.sgy")
    with h5py.File(target, "r") as f:
        assert "blocks" in f and f.attrs["order"] == "spatial"


def _brute_pairs(grid: BinGrid, mx, my, aperture: float) -> int:
    pts = grid.points()
    return int(sum((np.hypot(pts[:, 0] - x, pts[:, 1] - y) <= aperture).sum()
                   for x, y in zip(mx, my, strict=True)))


def test_dry_run_json_and_evaluations_equal_the_engine_count(tiny3d, tmp_path):
    index = tiny3d / "shots.sgy.index.h5"
    r = cli("pstm", index, "--velocity", tiny3d / "velocity.csv", "--out", tmp_path / "x.h5",
            "--dry-run", "--ranks", 3, "--aperture", 200, "--rate", 1e8, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    for key in ("traces", "strategy", "units", "evaluations", "max_rank_memory_bytes",
                "rank0_memory_bytes", "read_bytes", "core_hours", "balance"):
        assert key in res, key
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.h5.ckpt").exists()
    idx = TraceIndex.open(index)
    grid = BinGrid.from_attrs(idx.attrs)
    mx, my = idx["mx"], idx["my"]
    nt_pos = idx.ns - 1  # output t > 0
    pairs = _brute_pairs(grid, mx, my, 200.0)
    assert res["traces"] == idx.n_traces
    assert res["evaluations"] == pairs * nt_pos
    # the engine's own cost model: the work of the plan's shard units
    plan = plan_job(grid, idx.ns, idx.ns, mx, my, idx["source_id"], 200.0, "4G")
    assert sum(u.work for u in plan.units) * nt_pos == res["evaluations"]
    assert res["strategy"] == plan.strategy == "shard"
    assert res["core_hours"] == pytest.approx(res["evaluations"] / 1e8 / 3600)
    assert res["read_bytes"] == idx.n_traces * idx.attrs["trace_bytes"]
    assert res["rank0_memory_bytes"] >= res["max_rank_memory_bytes"]
    assert 1.0 <= res["balance"] < 2.0
    # streamed in small chunks: the same figures
    small = dry_run(index, tiny3d / "velocity.csv", ranks=3, aperture=200.0, rate=1e8,
                    chunk=100)
    for key in ("evaluations", "units", "max_rank_memory_bytes", "read_bytes", "balance"):
        assert small[key] == res[key], key
    # tiles: the traces each tile reads are the engine's tile_units (midpoints on bin centres)
    tiles = dry_run(index, tiny3d / "velocity.csv", ranks=3, aperture=200.0, rate=1e8,
                    strategy="tile", tile=4)
    want = tile_units(grid, mx, my, 200.0, 4)
    assert tiles["units"] == len(want)
    assert tiles["read_bytes"] == sum(u.n_traces for u in want) * idx.attrs["trace_bytes"]
    assert tiles["max_unit_traces"] == max(u.n_traces for u in want)
    assert tiles["evaluations"] == res["evaluations"]


def test_dry_run_refuses_without_ranks(tiny3d, tmp_path):
    r = cli("pstm", tiny3d / "shots.sgy.index.h5", "--velocity", tiny3d / "velocity.csv",
            "--out", tmp_path / "x.h5", "--dry-run")
    assert r.returncode == 2 and "--ranks" in r.stderr
    assert r.stderr.startswith("seis-hpc: error:")


def test_headers_only_index_is_refused_without_dry_run(spec_tiny, tmp_path):
    """A headers-only index has no samples: migrating it is one line and exit 2, nothing
    written (planning it with --dry-run is its use)."""
    for cmd in ("pstm", "stack"):
        r = cli(cmd, spec_tiny / "spec3d.index.h5", "--velocity", spec_tiny / "velocity.csv",
                "--out", tmp_path / "x.h5")
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
        assert "headers-only index" in r.stderr and "--dry-run" in r.stderr
        assert not (tmp_path / "x.h5").exists()


def test_rank_memory_does_not_grow_with_other_units_traces(tmp_path):
    """Twice the survey (more sail lines, longer lines): the traces double, the memory of a
    rank stays that of the traces within one tile's aperture."""
    figs = []
    for k, width in enumerate((1600.0, 3200.0)):
        acq = SpecSurvey(width=width, length=width, n_streamers=4, n_channels=24,
                         near_offset=50.0, run_in=150.0, run_out=150.0, segment=100.0,
                         record_length=1.0, dt=0.004)
        d = tmp_path / f"s{k}"
        write_headers_only(d, 1.0, acq, log=None)
        figs.append(dry_run(d / "spec3d.index.h5", d / "velocity.csv", ranks=4,
                            aperture=250.0, mem_per_rank="400M", strategy="tile", tile=8,
                            rate=1e8))
    a, b = figs
    assert b["traces"] > 3 * a["traces"]
    assert b["evaluations"] > 3 * a["evaluations"]
    assert b["max_unit_traces"] <= 1.1 * a["max_unit_traces"]
    assert b["max_rank_memory_bytes"] <= 1.01 * a["max_rank_memory_bytes"]


def test_binned_evaluations_agree_with_the_exact_count(small):
    """Above the exact limit each midpoint counts at its nearest bin centre, scaled by the
    exact / binned ratio of a sample: here the sample is every trace, so the count is exact,
    and the binned count's own error is reported (a few per mille at a 300 m aperture)."""
    d, _ = small
    kw = dict(ranks=8, aperture=300.0, mem_per_rank="1G", rate=1e8)
    exact = dry_run(d / "spec3d.index.h5", d / "velocity.csv", **kw)
    binned = dry_run(d / "spec3d.index.h5", d / "velocity.csv", exact_limit=0, **kw)
    assert exact["evaluations_method"].startswith("exact")
    assert not binned["evaluations_method"].startswith("exact")
    assert binned["evaluations"] == exact["evaluations"]
    assert 0 < abs(binned["evaluations_sample_relative_error"]) < 1e-2
    assert binned["strategy"] == exact["strategy"]
    assert abs(binned["units"] - exact["units"]) <= 2  # cuts from the binned work per shot


def test_engine_plan_memory_does_not_grow_with_other_units_traces():
    """plan_job counts the geometry of the largest unit, not of every trace: twice the
    traces, the second half out of reach of the first half's tiles, the same bytes per rank."""
    grid = BinGrid(0.0, 0.0, 0.0, 12.5, 25.0, 1, 1, 16, 400)  # 400 x 12.5 m along y
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.uniform(0, 15 * 25.0, n)
    y = rng.uniform(500.0, 2000.0, n)  # crosslines 41-161 of 400
    shot = np.arange(n) // 30
    one = plan_job(grid, 50, 100, x, y, shot, 200.0, "1G", strategy="tile", tile=8)
    x2, y2 = np.r_[x, x], np.r_[y, y + 2500.0]  # 2.5 km on (25 tiles), out of reach
    two = plan_job(grid, 50, 100, x2, y2, np.r_[shot, shot + shot.max() + 1], 200.0, "1G",
                   strategy="tile", tile=8)
    assert max(u.n_traces for u in two.units) == max(u.n_traces for u in one.units)
    assert two.bytes_tile == one.bytes_tile
    assert sum(u.n_traces for u in two.units) == 2 * sum(u.n_traces for u in one.units)

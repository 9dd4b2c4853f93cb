"""Decomposition objects, without MPI: sharding, tiles, apertures, balance, the planner."""

from __future__ import annotations

import numpy as np
import pytest

from seis_hpc.engine.decomposition import (
    BASE_BYTES,
    assign_longest_first,
    assign_static,
    balance,
    bins_in_aperture,
    format_size,
    parse_size,
    plan_job,
    shard_traces,
    tile_grid,
    tile_traces,
    tile_units,
)
from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid, offset_classes

GRID3 = BinGrid(1000.0, 2000.0, 30.0, 12.5, 25.0, 100, 10, 23, 57)
GRID2 = BinGrid.line(500.0, 800.0, 75.0, 6.25, 1, 301)


def survey(grid: BinGrid, n_shots=60, per_shot=40, seed=0):
    """Random marine-like traces over ``grid``: midpoints spread a bit beyond its edges."""
    rng = np.random.default_rng(seed)
    n = n_shots * per_shot
    il = rng.uniform(-2, grid.n_inline + 1, n_shots).repeat(per_shot) + grid.inline0
    if grid.is_2d:
        il[:] = grid.inline0
    xl = (rng.uniform(-5, grid.n_crossline + 5, n_shots).repeat(per_shot)
          + rng.normal(0, 3, n) + grid.crossline0)
    mx, my = grid.grid_to_world(il, xl)
    shot = np.arange(n_shots).repeat(per_shot)
    offset = np.tile(np.linspace(50, 3000, per_shot), n_shots)
    return mx, my, shot, offset


def brute_counts(grid, mx, my, aperture):
    px, py = grid.points().T
    d = np.hypot(mx[:, None] - px[None], my[:, None] - py[None])
    return (d <= aperture).sum(axis=1)


@pytest.mark.parametrize("grid", [GRID3, GRID2], ids=["3d", "2d"])
@pytest.mark.parametrize("aperture", [80.0, 333.0, np.inf])
def test_work_estimate_counts_bins_in_aperture(grid, aperture):
    mx, my, _, _ = survey(grid, 20, 10)
    got = bins_in_aperture(grid, mx, my, aperture)
    want = brute_counts(grid, mx, my, aperture) if np.isfinite(aperture) else grid.n_bins
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("grid", [GRID3, GRID2], ids=["3d", "2d"])
@pytest.mark.parametrize("classes", [False, True])
def test_sharding_assigns_every_trace_exactly_once(grid, classes):
    mx, my, shot, offset = survey(grid)
    cls = offset_classes(offset, [100, 1000, 2000, 2800]) if classes else None
    units = shard_traces(grid, mx, my, shot, 250.0, 37, offset_class=cls)
    ids = np.concatenate([u.traces for u in units])
    np.testing.assert_array_equal(np.sort(ids), np.arange(len(mx)))
    assert [u.uid for u in units] == list(range(len(units)))
    if classes:
        for u in units:  # a unit never mixes offset classes (gathers add per class)
            assert np.all(cls[u.traces] == u.offset_class)
        assert {u.offset_class for u in units} == {-1, 0, 1, 2}


@pytest.mark.parametrize("grid", [GRID3, GRID2], ids=["3d", "2d"])
def test_shard_window_holds_every_bin_in_aperture(grid):
    mx, my, shot, _ = survey(grid)
    aperture = 150.0
    px, py = grid.points().T
    for u in shard_traces(grid, mx, my, shot, aperture, 25):
        d = np.hypot(mx[u.traces][:, None] - px, my[u.traces][:, None] - py)
        hit = np.flatnonzero((d <= aperture).any(axis=0))
        i, j = np.unravel_index(hit, (grid.n_inline, grid.n_crossline))
        i0, i1, j0, j1 = u.window
        assert np.all((i >= i0) & (i < i1) & (j >= j0) & (j < j1))


@pytest.mark.parametrize("grid", [GRID3, GRID2], ids=["3d", "2d"])
@pytest.mark.parametrize("tile", [1, 7, 16, 1000])
def test_tiles_cover_every_bin_exactly_once(grid, tile):
    cover = np.zeros((grid.n_inline, grid.n_crossline), np.int64)
    for i0, i1, j0, j1 in tile_grid(grid, tile):
        assert i1 > i0 and j1 > j0
        cover[i0:i1, j0:j1] += 1
    assert np.all(cover == 1)


@pytest.mark.parametrize("grid", [GRID3, GRID2], ids=["3d", "2d"])
@pytest.mark.parametrize("aperture", [60.0, 240.0])
def test_tile_traces_contain_every_trace_in_aperture(grid, aperture):
    mx, my, _, _ = survey(grid)
    px, py = grid.points().T
    near = np.hypot(mx[:, None] - px, my[:, None] - py) <= aperture  # (trace, bin)
    near = near.reshape(len(mx), grid.n_inline, grid.n_crossline)
    n_sets = 0
    for w in tile_grid(grid, 6):
        i0, i1, j0, j1 = w
        need = np.flatnonzero(near[:, i0:i1, j0:j1].any(axis=(1, 2)))
        got = tile_traces(grid, w, mx, my, aperture)
        assert np.isin(need, got).all()
        n_sets += len(got)
    # ... while a tile does not take every trace (the sets are genuinely smaller).
    assert n_sets < len(mx) * len(tile_grid(grid, 6)) / 2


@pytest.mark.parametrize("n_ranks", [2, 4, 16])
def test_balance_within_factor_with_20_units_per_rank(n_ranks):
    mx, my, shot, _ = survey(GRID3, n_shots=400, per_shot=24, seed=3)
    units = shard_traces(GRID3, mx, my, shot, 300.0, 20 * n_ranks)
    assert len(units) >= 20 * n_ranks - 1
    work = np.array([u.work for u in units])
    # Balanced by estimated work, not trace count: units at the grid's edge hold more traces.
    counts = np.array([u.n_traces for u in units])
    assert counts.max() > 1.2 * counts.min()
    assert work.max() <= 1.6 * work.mean()
    assert balance(units, n_ranks) <= 1.15


def test_tile_units_balance_and_work():
    mx, my, _, _ = survey(GRID3, n_shots=200, per_shot=20, seed=5)
    units = tile_units(GRID3, mx, my, 200.0, 4)
    assert len(units) == len(tile_grid(GRID3, 4))
    for u in units:
        assert u.work == u.n_traces * u.n_bins


def test_planner_switches_strategy_at_memory_threshold():
    mx, my, shot, offset = survey(GRID3)
    kw = dict(grid=GRID3, nt=500, ns=600, mx=mx, my=my, shot=shot, aperture=400.0)
    p = plan_job(**kw, mem_per_rank="64G")
    assert p.strategy == "shard"
    need = p.bytes_shard
    assert need > BASE_BYTES + 4 * GRID3.n_bins * 500
    assert plan_job(**kw, mem_per_rank=need).strategy == "shard"
    q = plan_job(**kw, mem_per_rank=need - 1)
    assert q.strategy == "tile" and q.tile >= 1 and q.bytes_tile <= need - 1
    # Gathers multiply the image: the threshold moves up.
    g = plan_job(**kw, mem_per_rank=need, offset=offset, offset_edges=[0, 1000, 2000, 3100])
    assert g.strategy == "tile" and g.n_classes == 3
    with pytest.raises(SeisError, match="too small"):
        plan_job(**kw, mem_per_rank="100M")


def test_plan_prints_readably():
    mx, my, shot, _ = survey(GRID3)
    p = plan_job(GRID3, 200, 300, mx, my, shot, 300.0, "4G", n_units=30)
    text = p.describe(4)
    assert "shard" in text and f"{len(p.units)} units" in text and "balance" in text
    assert repr(p).startswith("Plan(shard,")
    assert repr(p.units[0]).startswith("WorkUnit(0:")
    assert sorted(p.order()) == list(range(len(p.units)))
    works = [p.units[u].work for u in p.order()]
    assert works == sorted(works, reverse=True)


def test_sizes():
    assert parse_size("2G") == 2 << 30
    assert parse_size("512M") == 512 << 20
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size(1000) == 1000
    assert format_size(3 << 29) == "1.5 GiB"
    with pytest.raises(SeisError, match="not understood"):
        parse_size("lots")


def test_offset_classes_against_counted_truth():
    # One definition (seis_hpc.geometry.offset_classes) for the kernel and the planner: each
    # offset's class checked against the edges by hand, including the half-open boundaries.
    off = np.array([-50.0, 0.0, 99.9, 100.0, 250.0, 299.999, 300.0, 499.0, 500.0, 800.0])
    edges = [0.0, 100.0, 300.0, 500.0]
    want = [-1, 0, 0, 1, 1, 1, 2, 2, -1, -1]
    np.testing.assert_array_equal(offset_classes(off, edges), want)
    for o, k in zip(off, offset_classes(off, edges), strict=True):
        inside = [c for c in range(3) if edges[c] <= o < edges[c + 1]]
        assert [k] == (inside or [-1])
    with pytest.raises(SeisError):
        offset_classes(off, [0.0, 0.0])
    with pytest.raises(SeisError):
        offset_classes([np.nan], edges)


def test_longest_first_assignment_by_hand():
    # Worked by hand: 5 -> r0, 4 -> r1, 3 -> r1 (4 < 5), 3 -> r0 (5 < 7), 3 -> r1 (7 < 8).
    assert assign_longest_first([5, 4, 3, 3, 3], 2) == [[0, 3], [1, 2, 4]]
    # Equal work goes in item order; more ranks than items leaves ranks empty.
    assert assign_longest_first([1, 1, 1], 2) == [[0, 2], [1]]
    assert assign_longest_first([2.0], 3) == [[0], [], []]
    # The PSTM planner's assignment is the same rule on unit ids.
    units = shard_traces(GRID2, *survey(GRID2)[:3], 250.0, 9)
    ids = assign_static(units, 3)
    assert ids == [[units[i].uid for i in r]
                   for r in assign_longest_first([u.work for u in units], 3)]
    assert sorted(sum(ids, [])) == [u.uid for u in units]


"""velan's Vrms field block by block (issue 19): equal to the whole-survey field to float32
rounding in 2D and 3D, whatever the block size; the command's file and tables hold it; the
picker reads each location's semblance panel back from its scratch file unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from seis_hpc.geometry import BinGrid
from seis_hpc.velocity.field import (
    field_block_bins,
    field_blocks,
    field_from_picks,
    table_from_field,
)
from seis_hpc.velocity.picks import PickLocation, Picks
from seis_hpc.velocity.velan import _PanelStore

T = np.arange(0, 1.2, 0.004)


def _picks(grid, every, rng):
    """Picks at every ``every`` bins: Vrms rising with time, varying laterally by +-5 %,
    some locations picked from deeper down (so several patterns of valid locations)."""
    locs = []
    for i in range(0, grid.n_inline, 1 if grid.is_2d else every):
        for j in range(0, grid.n_crossline, every):
            t0 = 0.1 if rng.random() < 0.7 else 0.35
            tp = np.array([t0, 0.5, 0.8, 1.1])
            vp = (1500 + 900 * tp) * (1 + 0.05 * rng.uniform(-1, 1))
            il, xl = grid.inline0 + i, grid.crossline0 + j
            locs.append(PickLocation(il, xl, 0, 0.0, 0.0, tp, vp, np.ones(4)))
    return Picks(locs, grid.is_2d)


@pytest.mark.parametrize("grid,every,rows", [
    (BinGrid.line(0.0, 0.0, 0.0, 6.25, 1, 230), 20, (150, 90)),  # halo 40 CMPs
    (BinGrid(0.0, 0.0, 20.0, 6.25, 25.0, 1, 1, 23, 17), 4, (25, 1)),  # halo 10 inlines
])
def test_field_blocks_equal_the_whole_field(grid, every, rows):
    picks = _picks(grid, every, np.random.default_rng(3))
    kw = dict(smooth_m=250.0, smooth_s=0.05, vint_bounds=(1400.0, 6000.0))
    want = field_from_picks(picks, grid, T, **kw)
    assert want.shape == grid.shape + (T.size,)
    assert np.ptp(want[..., 200]) > 30.0  # laterally varying, smoothed
    full = want.reshape(grid.n_inline, grid.n_crossline, T.size)
    one_row = 48 * T.size * (1 if grid.is_2d else grid.n_crossline)
    for bb in (1 << 40, one_row * rows[0], one_row * rows[1]):
        got = np.zeros_like(full)
        blocks = list(field_blocks(picks, grid, T, block_bytes=bb, **kw))
        assert (len(blocks) == 1) == (bb == 1 << 40)
        biggest = max((i1 - i0) * (j1 - j0) for (i0, i1, j0, j1), _ in blocks)
        assert biggest <= field_block_bins(grid, T.size, kw["smooth_m"], bb)
        for (i0, i1, j0, j1), blk in blocks:
            got[i0:i1, j0:j1] = blk
        if bb == 1 << 40:
            np.testing.assert_array_equal(got, full)  # one block: the whole computation
        else:
            # running sums restarted at a block's halo: float64 rounding, not more
            np.testing.assert_allclose(got, full, rtol=2e-7, atol=0)


def test_table_from_the_file_equals_table_from_the_field(tmp_path):
    import h5py

    from seis_hpc.io.volume import VolumeWriter

    grid = BinGrid(0.0, 0.0, 20.0, 6.25, 25.0, 1, 1, 23, 17)
    field = field_from_picks(_picks(grid, 4, np.random.default_rng(5)), grid, T,
                             smooth_m=100.0)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        VolumeWriter(f, grid, T, "vrms").put_all("vrms", field)
        got = table_from_field(f["vrms"], grid, T, every=5)
    want = table_from_field(field, grid, T, every=5)
    assert len(got.locations) == len(want.locations) == 5 * 4
    for a, b in zip(got.locations, want.locations, strict=True):
        assert (a.inline, a.crossline) == (b.inline, b.crossline)
        np.testing.assert_array_equal(a.vrms, b.vrms)


def test_panel_store_gives_back_each_panel():
    rng = np.random.default_rng(0)
    panels = [rng.random((7, 11)).astype(np.float32) for _ in range(5)]
    store = _PanelStore()
    ks = [store.put(p) for p in panels]
    for k in (3, 0, 4, 1, 2):
        got = store.get(ks[k])
        np.testing.assert_array_equal(got, panels[k])
        got[:] = 0  # a fresh array: the stored panel is unchanged
    np.testing.assert_array_equal(store.get(ks[3]), panels[3])


@pytest.mark.parametrize("is_2d", [True, False])
def test_supergathers_by_bisection_equal_the_scan(is_2d):
    """The sorted super-gather lookup gives exactly the traces of the scan over every trace
    (supergather_ids), ascending, at the grid's edges and beyond them too."""
    from seis_hpc.velocity.velan import Supergathers, supergather_ids

    rng = np.random.default_rng(1)
    il, xl = rng.integers(1, 9, 5000), rng.integers(100, 160, 5000)
    finder = Supergathers(il, xl, is_2d)
    for _ in range(300):
        a, b, size = int(rng.integers(0, 11)), int(rng.integers(95, 165)), int(rng.integers(1, 8))
        want = supergather_ids(il, xl, a, b, size, is_2d)
        np.testing.assert_array_equal(finder.ids(a, b, size), want)
    assert finder.ids(4, 130, 5).size > 0

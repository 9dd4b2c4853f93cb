"""Issue 19, what is left of rank 0's and every rank's O(traces): opening a binned survey
(``Survey.open``), its fold and largest offset (``--segy``, ``--gathers``), and the traces
of the flat-reflector response (``--normalise reflector``) stream the index in chunks or read
the blocks near a point, so their memory does not grow with the survey's traces; and they
give what the whole columns give, bit for bit.

Two headers-only spec3d-like surveys share one image grid; the second has twice the sail-line
length (1.8x the traces, the extra ones off the grid: other ranks' units). Peak traced memory
(tracemalloc) of each code path must stay nearly the same, and below what holding the
survey's columns would take.
"""

from __future__ import annotations

import shutil
import tracemalloc
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from _units import assert_same_units

from seis_hpc.engine import normalise, stream_plan
from seis_hpc.engine.normalise import FlatReflectors, RhoFiltered, reflector_response, traces_near
from seis_hpc.engine.stream_plan import column_abs_max, take_columns
from seis_hpc.geometry import BinGrid
from seis_hpc.io.index import TraceIndex
from seis_hpc.io.spec3d import SpecSurvey, write_headers_only
from seis_hpc.survey import Survey, fit_geometry

CHUNK = 2048


@pytest.fixture(scope="module")
def surveys(tmp_path_factory):
    """Two blocked indexes (headers only, made readable by Survey.open: the samples are
    never read here) and the first one's grid."""
    d = tmp_path_factory.mktemp("spec")
    paths = []
    for k, length in enumerate((1600.0, 3200.0)):
        acq = SpecSurvey(width=1200.0, length=length, n_streamers=4, n_channels=24,
                         near_offset=50.0, run_in=150.0, run_out=150.0, segment=100.0,
                         record_length=1.0, dt=0.004)
        write_headers_only(d / f"s{k}", 1.0, acq, log=None)
        p = d / f"s{k}.index.h5"
        shutil.copy(d / f"s{k}" / "spec3d.index.h5", p)
        with h5py.File(p, "a") as f:
            del f.attrs["headers_only"]
        paths.append(p)
    grid = BinGrid.from_attrs(TraceIndex.open(paths[0]).attrs)
    # the second survey binned into the first one's grid (and saved with that request,
    # as `seis-hpc index --grid` would); the first keeps synth's own binning
    Survey.open(paths[1], grid=grid)
    assert "geometry_request" in TraceIndex.open(paths[1]).attrs
    assert "geometry_request" not in TraceIndex.open(paths[0]).attrs
    return paths, grid


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_open_fold_and_offset_edges_stream_the_index(surveys, monkeypatch):
    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", CHUNK)
    paths, grid = surveys

    def open_and_count(path, sel):
        sv = Survey.open(path, grid=grid)
        fold = sv.fold()
        top = column_abs_max(sv.index, "offset")
        part = sv.fold(sel)  # a part's traces (pstm --traces): held by the caller
        rep = sv.report()
        return sv, fold, top, part, rep

    sels = [np.arange(0, TraceIndex.open(p).n_traces, 3) for p in paths]
    open_and_count(paths[0], sels[0])  # imports and first-use allocations out of the figures
    figs = []
    for path, sel in zip(paths, sels, strict=True):
        (sv, fold, top, part, rep), peak = _peak(lambda p=path, s=sel: open_and_count(p, s))
        idx = sv.index
        assert sv.method == "given" and idx._columns == {}  # nothing held whole
        assert idx.n_traces > 8 * CHUNK
        # what the loaded columns give: the binning of the grid and its counts
        full = TraceIndex.open(path)
        geo = fit_geometry(full, grid=grid)
        assert np.array_equal(geo.cmp, full["cmp"]) and np.array_equal(geo.inline,
                                                                       full["inline"])
        b = Survey.from_index(full, grid=grid).bin_serial()
        assert np.array_equal(fold.ravel(), np.bincount(b[b >= 0], minlength=grid.n_bins))
        bs = b[sel]
        assert np.array_equal(part.ravel(), np.bincount(bs[bs >= 0], minlength=grid.n_bins))
        assert top == float(np.abs(full["offset"]).max())
        assert rep["offset_max_m"] == float(full["offset"].max())
        assert rep["shots"] == int(full["source_id"].max()) + 1
        assert fold.sum() > 0.3 * idx.n_traces
        figs.append((idx.n_traces, peak))
    (n0, p0), (n1, p1) = figs
    print(f"Survey.open + fold + offsets: {n0} traces {p0} B, {n1} traces {p1} B")
    assert n1 > 1.8 * n0
    # one float64 column of the other traces alone would take 8 B a trace
    assert p1 - p0 < 0.1 * 8 * (n1 - n0), (p0, p1)


def test_binned_index_is_reused_only_for_the_same_request(tiny3d):
    """An index binned by ``seis-hpc index`` records what it was binned by; the same request
    opens it as it is (columns on file), another bins again."""
    sgy = tiny3d / "shots.sgy"
    a = Survey.open(sgy, save=False)
    assert a.index._columns == {}  # binned by `seis-hpc index`: not binned again
    # binning the loaded columns (an index held in memory is always binned) agrees
    held = TraceIndex.open(a.index.path)
    ref = Survey.from_index(TraceIndex(held.columns(), held.attrs))
    assert ref.grid == a.grid
    assert np.array_equal(ref.fold(), a.fold())
    b = Survey.open(sgy, save=False, cmp_interval=2 * a.grid.bin_inline)
    assert "cmp" in b.index._columns  # binned again


def _nearby_whole(src, xy, aperture):
    """The traces near each point as the whole columns give them (the former code)."""
    sx, sy, rx, ry = (np.asarray(src[k], np.float64) for k in ("sx", "sy", "rx", "ry"))
    mx, my = 0.5 * (sx + rx), 0.5 * (sy + ry)
    return [np.flatnonzero(np.hypot(mx - x, my - y) <= aperture * (1 + 1e-9) + 1e-6)
            for x, y in xy]


def test_traces_near_are_those_of_the_whole_columns(surveys, monkeypatch):
    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", CHUNK)
    paths, grid = surveys
    pts = grid.points()
    xy = [tuple(pts[k]) for k in np.linspace(0, len(pts) - 1, 11).round().astype(int)]
    xy.append((float(pts[:, 0].min()) - 5000.0, float(pts[:, 1].min())))  # none near
    for aperture in (200.0, 700.0):
        blocked = TraceIndex.open(paths[1])
        want = _nearby_whole(TraceIndex.open(paths[1]), xy, aperture)
        assert sum(w.size for w in want) > 0 and want[-1].size == 0
        got = list(traces_near(blocked, xy, aperture, ("offset",)))  # the blocks near each
        assert blocked._columns == {}
        full = TraceIndex.open(paths[1]).columns()
        loaded = TraceIndex(full, {"n_traces": blocked.n_traces})
        got_mem = list(traces_near(loaded, xy, aperture))  # streamed in NEAR_BATCH groups
        for w, (g, gc), (m, mc) in zip(want, got, got_mem, strict=True):
            assert np.array_equal(w, g) and np.array_equal(w, m)
            for k in ("sx", "sy", "rx", "ry", "offset"):  # the columns read with them
                assert np.array_equal(gc[k], full[k][w])
                assert k == "offset" or np.array_equal(mc[k], full[k][w])
    # the reflectors' offsets and the engine's columns: taken for the traces read only
    idx = TraceIndex.open(paths[0])
    ids = np.array([5, 3, 400, 7])
    synth = RhoFiltered(FlatReflectors(idx, np.array([0.4]), np.array([2000.0]), 25.0), 3)
    cols = take_columns(synth, ("sx", "rx", "offset"), ids)
    assert idx._columns == {}
    full = TraceIndex.open(paths[0])
    for k in ("sx", "rx", "offset"):
        assert np.array_equal(cols[k], full[k][ids])


class _Vel:
    def window(self, i0, i1, j0, j1):
        return np.full(((i1 - i0) * (j1 - j0), 250), 2000.0, np.float32)


class _Record:
    """The engine's reads of a unit (geometry and samples of each chunk of traces) without
    the kernel: a sum of the samples stands in for the migrated trace."""

    def __init__(self, src):
        self.src = src

    def migrate(self, ids, window, image, gathers, r0, c0):
        for a in range(0, len(ids), 4096):
            chunk = ids[a:a + 4096]
            take_columns(self.src, ("sx", "sy", "rx", "ry"), chunk)
            image[0, 0] += self.src.read_traces(chunk).sum(axis=0)[:image.shape[-1]]


def test_reflector_response_memory_follows_its_points(surveys, monkeypatch):
    """The response's coarse points on one grid: the traces near them, not the survey's."""
    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", CHUNK)
    monkeypatch.setattr(normalise, "peak_frequency", lambda source: 25.0)  # no samples here
    monkeypatch.setattr(normalise, "MAX_AXIS_3D", 4)  # 4 x 4 coarse points: a rank's share
    paths, grid = surveys
    job = SimpleNamespace(plan=SimpleNamespace(grid=grid, n_classes=0),
                          time=np.arange(250) * 0.004, kernel_args={"aperture": 300.0},
                          rho_filter=False, log_prefix="pstm")

    def response(path):
        idx = TraceIndex.open(path)
        return idx, reflector_response(job, idx, _Vel(), _Record)

    response(paths[0])
    figs = []
    for path in paths:
        (idx, r), peak = _peak(lambda p=path: response(p))
        assert idx._columns == {}
        assert r.image.shape[:2] == (len(r.rows), len(r.cols)) and r.image.max() > 0
        figs.append((idx.n_traces, peak, r.image))
    (n0, p0, im0), (n1, p1, im1) = figs
    print(f"reflector response: {n0} traces {p0} B, {n1} traces {p1} B")
    assert n1 > 1.8 * n0
    # every trace's coordinates (what each rank held before) take 32 B a trace
    assert p1 - p0 < 0.1 * 32 * (n1 - n0), (p0, p1)


@pytest.mark.parametrize("case", ["all", "part", "classes", "few-units", "tile"])
def test_streamed_shard_plan_is_the_in_memory_plan(tiny3d, monkeypatch, case):
    """The shard plan cut by cumulative work in shot order, streamed in chunks smaller than
    a shot, is plan_job's plan: the same units, traces, work and windows."""
    from seis_hpc.engine.decomposition import plan_job
    from seis_hpc.engine.job import compact_plan
    from seis_hpc.engine.stream_plan import plan_shard_streamed

    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", 97)  # cuts fall inside and across chunks
    idx = TraceIndex.open(tiny3d / "shots.sgy.index.h5")
    full = TraceIndex.open(idx.path)
    grid = BinGrid.from_attrs(idx.attrs)
    n = idx.n_traces
    sel = np.flatnonzero(np.arange(n) % 5 != 2) if case == "part" else None
    s = slice(None) if sel is None else sel
    # three classes, and the nearest offsets outside every class (class -1)
    edges = (np.quantile(np.abs(full["offset"]), [0.1, 0.4, 0.7, 1.0]) + [0, 0, 0, 1.0]
             if case == "classes" else None)
    kw = dict(mem_per_rank="2G", n_units={"few-units": 3}.get(case, 64))
    nt, aperture = 200, 400.0
    if case == "tile":  # a byte short of the shard plan: auto takes tiles
        kw["mem_per_rank"] = plan_job(grid, nt, idx.ns, full["mx"], full["my"],
                                      full["source_id"], aperture, "2G").bytes_shard - 1
        kw["tile"] = 8
    ref = plan_job(grid, nt, idx.ns, full["mx"][s], full["my"][s], full["source_id"][s],
                   aperture, offset=full["offset"][s] if edges is not None else None,
                   offset_edges=edges, trace_order=full["byte_offset"][s], **kw)
    if sel is not None:
        for u in ref.units:
            u.traces = sel[u.traces]
    compact_plan(ref)
    got = plan_shard_streamed(grid, nt, idx.ns, idx, aperture, traces=sel, offset_edges=edges,
                              **kw)
    assert idx._columns == {}
    assert got.strategy == ref.strategy == ("tile" if case == "tile" else "shard")
    assert (got.bytes_shard, got.bytes_tile, got.tile) == (ref.bytes_shard, ref.bytes_tile,
                                                           ref.tile)
    if case == "classes":
        assert {u.offset_class for u in got.units} == {-1, 0, 1, 2}
    assert len(got.units) >= 3
    assert_same_units(got.units, ref.units)


@pytest.mark.parametrize("case", ["all", "part-classes"])
def test_shard_plan_of_a_blocked_index_is_streamed(surveys, monkeypatch, case):
    """A spatially blocked index is not in shot order: its shard plan is made from the rows
    put in shot order through temporary files (buckets far smaller than the survey), not
    from the whole columns; the same units as plan_job's, and memory that does not follow
    the survey's traces."""
    from seis_hpc.engine.decomposition import plan_job
    from seis_hpc.engine.job import compact_plan
    from seis_hpc.engine.stream_plan import plan_shard_streamed

    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", CHUNK)
    monkeypatch.setattr(stream_plan, "SPILL_ROWS", 3000)  # several buckets, shots across them
    paths, grid = surveys
    nt, aperture = 50, 300.0
    figs = []
    for path in paths:
        full = TraceIndex.open(path)
        n = full.n_traces
        assert np.any(np.diff(full["source_id"]) < 0)  # not in shot order
        sel = np.flatnonzero(np.arange(n) % 7 != 3) if case != "all" else None
        s = slice(None) if sel is None else sel
        edges = (np.quantile(np.abs(full["offset"]), [0.2, 0.6, 1.0]) + [0, 0, 1.0]
                 if case != "all" else None)
        ref = plan_job(grid, nt, full.ns, full["mx"][s], full["my"][s], full["source_id"][s],
                       aperture, "8G", offset=full["offset"][s] if edges is not None else None,
                       offset_edges=edges, trace_order=full["byte_offset"][s], n_units=16)
        if sel is not None:
            for u in ref.units:
                u.traces = sel[u.traces]
        compact_plan(ref)
        idx = TraceIndex.open(path)

        def plan(i=idx, t=sel, e=edges):
            return plan_shard_streamed(grid, nt, i.ns, i, aperture, "8G", traces=t,
                                       offset_edges=e, n_units=16)

        # memory measured once (tracemalloc slows numpy down); the part and classes: units
        got, peak = _peak(plan) if case == "all" else (plan(), 0)
        assert idx._columns == {}
        assert got.strategy == ref.strategy == "shard"
        assert (got.bytes_shard, got.bytes_tile, got.tile) == (ref.bytes_shard,
                                                               ref.bytes_tile, ref.tile)
        assert_same_units(got.units, ref.units)
        figs.append((n, peak, sum(len(u.runs) for u in got.units)))
    if case != "all":
        return
    (n0, p0, r0), (n1, p1, r1) = figs
    print(f"blocked shard plan ({case}): {n0} traces {p0} B ({r0} runs), "
          f"{n1} traces {p1} B ({r1} runs)")
    assert n1 > 1.8 * n0
    # the former in-memory plan held 4 float64/int64 columns of every trace (32 B a trace)
    # and sorted them; the units' runs (16 B a run) are the plan itself
    assert p1 - p0 < 0.1 * 32 * (n1 - n0) + 16 * 4 * (r1 - r0), (p0, p1)


def _select_whole(idx, traces, ffid):
    """The trace selection as the whole FFID column and a flag per trace gave it (the
    former code)."""
    n = idx.n_traces
    keep = np.ones(n, bool)
    if traces is not None:
        mask = np.zeros(n, bool)
        for a, b in traces:
            mask[a:b] = True
        keep &= mask
    if ffid is not None:
        f = np.asarray(idx["ffid"])
        mask = np.zeros(n, bool)
        for a, b in ffid:
            mask |= (f >= a) & (f <= b)
        keep &= mask
    return np.flatnonzero(keep)


def test_ffid_selection_streams_the_ffid_column(surveys, monkeypatch):
    """``pstm --ffid``: the FFID column is read in chunks, not whole (nor a flag per trace);
    the same trace numbers as the whole column gives, with and without ``--traces``."""
    from seis_hpc.migration.job import select_traces

    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", CHUNK)
    paths, _ = surveys
    figs = []
    for path in paths:
        idx = TraceIndex.open(path)
        f = TraceIndex.open(path)["ffid"]
        lo = int(np.unique(f)[3])
        ffid = [(lo, lo + 2), (lo + 40, lo + 40)]
        n = idx.n_traces
        traces = [(n // 2, n), (5, 3 * CHUNK + 7), (100, 200)]  # overlapping, unsorted
        for t, ff in ((None, ffid), (traces, ffid), (traces, None), (traces, [(lo, lo + 60)])):
            want = _select_whole(TraceIndex.open(path), t, ff)
            got = select_traces(idx, t, ff)
            assert got.dtype == np.int64 and np.array_equal(got, want)
        assert idx._columns == {}  # never the whole column
        select_traces(idx, None, ffid)
        sel, peak = _peak(lambda i=idx, ff=ffid: select_traces(i, None, ff))
        assert 0 < sel.size < 0.05 * n
        figs.append((n, peak))
    (n0, p0), (n1, p1) = figs
    print(f"--ffid selection: {n0} traces {p0} B, {n1} traces {p1} B")
    assert n1 > 1.8 * n0
    # the whole FFID column alone takes 8 B a trace
    assert p1 - p0 < 0.1 * 8 * (n1 - n0), (p0, p1)


def test_rho_filter_works_in_blocks_of_traces():
    """The rho filter of a large chunk of traces (a shard unit of a large survey reads up to
    4096 at a time) holds the FFT's temporaries of RHO_CHUNK traces, not of the chunk, and
    gives each trace's own filter bit for bit."""
    from seis_hpc.migration import pstm as kernel

    rng = np.random.default_rng(3)
    d = rng.standard_normal((3 * kernel.RHO_CHUNK + 17, 400)).astype(np.float32)
    for dims in (2, 3):
        for adjoint in (False, True):
            got = kernel.rho_filter(d, 0.004, dims=dims, adjoint=adjoint)
            one = [kernel.rho_filter(d[k:k + 1], 0.004, dims=dims, adjoint=adjoint)
                   for k in (0, kernel.RHO_CHUNK, len(d) - 1)]
            assert got.dtype == np.float32
            assert np.array_equal(got[[0, kernel.RHO_CHUNK, len(d) - 1]], np.concatenate(one))
    # the same filter by the definition: (-i omega) in 3D, with the zero padding
    spec = np.fft.rfft(d.astype(np.float64), 800, axis=1)
    ref = np.fft.irfft(spec * (-1j * 2 * np.pi * np.fft.rfftfreq(800, 0.004)), 800,
                       axis=1)[:, :400]
    assert np.allclose(kernel.rho_filter(d, 0.004, dims=3), ref, rtol=1e-5,
                       atol=1e-5 * np.abs(ref).max())
    big = rng.standard_normal((4096, 1000)).astype(np.float32)
    kernel.rho_filter(big[:8], 0.002)
    out, peak = _peak(lambda: kernel.rho_filter(big, 0.002))
    print(f"rho filter of 4096 x 1000 float32 ({big.nbytes} B): peak {peak} B")
    # the output plus the temporaries of RHO_CHUNK traces; whole, they were ~12x the input
    assert peak < out.nbytes + 0.5 * big.nbytes, peak


def test_kernel_chunk_memory_is_its_arrays():
    """The kernel on one engine chunk (up to 4096 traces; a shard unit of a large survey
    fills it): the rho-filtered traces and the anti-alias double integral (float64), not
    the FFT's and the running sums' temporaries of the whole chunk; each trace's integral
    is the one it has alone, bit for bit (rho filter: test_rho_filter_works_in_blocks)."""
    from seis_hpc.migration import antialias
    from seis_hpc.migration.pstm import PstmParams, pstm

    rng = np.random.default_rng(5)
    ntr, ns = 2048, 500
    d = rng.standard_normal((ntr, ns)).astype(np.float32)
    sx = rng.uniform(0, 1000, ntr)
    sy = rng.uniform(0, 1000, ntr)
    rx, ry = sx + rng.uniform(100, 900, ntr), sy + rng.uniform(-50, 50, ntr)
    pts = np.array([[700.0, 500.0], [706.25, 500.0]])
    time = np.arange(200) * 0.004
    v = np.full((2, 200), 2000.0, np.float32)
    kw = PstmParams(aperture=400.0, rho=True).kernel_args()
    kw.update(dims=3, dx_aa=6.25)
    assert kw["rho"] and kw.get("antialias", True)

    def run():
        return pstm(d, 0.004, sx, sy, rx, ry, pts, time, v, **kw)

    run()
    img, peak = _peak(run)
    pad = int(np.ceil(kw.get("aa_max", 32.0))) + 2
    s2 = ntr * (ns + 2 * pad) * 8  # the double integral the kernel reads
    print(f"kernel on {ntr} x {ns} traces ({d.nbytes} B): peak {peak} B, its arrays "
          f"{d.nbytes + s2} B")
    # the whole chunk's temporaries were ~12x the traces (rho) and 2 x s2 (integral)
    assert peak < 1.3 * (d.nbytes + s2), peak
    # each trace's double integral alone, and the rho filter of each trace alone: the same
    for k in (0, antialias.BLOCK, ntr - 1):
        one = antialias.double_integral(d[k:k + 1], pad)
        assert np.array_equal(antialias.double_integral(d, pad)[k:k + 1], one)
    assert np.abs(img).max() > 0

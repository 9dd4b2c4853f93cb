"""Issue 19: ``seis-hpc index`` builds the trace index block by block (headers, columns,
header checks, binning written into the index file as they come), in memory bounded by a
block, not by the survey.

The streamed index must be the index the in-memory path gives (``Survey.open(save=False)``
then ``index.save``: whole columns, one block), every column bit for bit and every attribute
but ``created``, with the block size lowered so that small files are cut into many blocks:
on synthetic 2D and 3D surveys, every external file that indexes, and the options
(``--bin-grid``, ``--cmp-interval``, ``--coordinate-units``, ``--header-map``). Bad input
gives the same error, and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from seis_hpc.cli import main
from seis_hpc.engine import stream_plan
from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.io import domain, index
from seis_hpc.io.index import TraceIndex
from seis_hpc.io.segy import write_segy
from seis_hpc.survey import Survey

BLOCK = 7  # traces per block: many blocks, the last one short


def _block(path) -> int:
    """Block size cutting ``path`` into about 6 blocks (at least :data:`BLOCK` traces)."""
    from seis_hpc.io.segy import probe

    try:
        n = probe(path).n_traces
    except (SeisError, OSError, ValueError):
        return BLOCK
    return max(BLOCK, -(-n // 6))


def _load(path):
    with h5py.File(path, "r") as f:
        cols = {k: f[k][...] for k in f if isinstance(f[k], h5py.Dataset)}
        units = {k: dict(f[k].attrs) for k in cols}
        attrs = {k: v for k, v in f.attrs.items() if k != "created"}
    return cols, units, attrs


def _assert_same_file(old, new):
    co, uo, ao = _load(old)
    cn, un, an = _load(new)
    assert sorted(co) == sorted(cn)
    for k in co:
        assert co[k].dtype == cn[k].dtype, k
        assert co[k].tobytes() == cn[k].tobytes(), k  # bit for bit
    assert uo == un
    assert sorted(ao) == sorted(an)
    for k in ao:
        assert type(ao[k]) is type(an[k]) and np.array_equal(ao[k], an[k]), (k, ao[k], an[k])


def _old_index(path, out, **kw):
    """What ``seis-hpc index`` wrote before issue 19: the whole index in memory, saved."""
    kw = {k: v for k, v in kw.items() if v is not None}
    s = Survey.open(path, index_path=out, save=False, **kw)
    s.index.save(out)


def _cli(args):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(args)
    return rc, err.getvalue()


def _compare(path, tmp_path, monkeypatch, header_map=None, cmp_interval=None, grid=None,
             units=None):
    """Index ``path`` both ways (streamed in about 6 blocks); same file, or the same error
    and no file."""
    old, new = tmp_path / "old.index.h5", tmp_path / "new.index.h5"
    before = new.read_bytes() if new.exists() else None  # re-indexing over an index
    try:
        _old_index(path, old, headermap=header_map, cmp_interval=cmp_interval, grid=grid,
                   coordinate_units=units)
        error = None
    except SeisError as exc:
        error = str(exc)
    monkeypatch.setattr(index, "_CHUNK", _block(path))
    args = ["index", str(path), "--index", str(new)]
    for opt, v in (("--header-map", header_map), ("--cmp-interval", cmp_interval),
                   ("--bin-grid", grid), ("--coordinate-units", units)):
        if v is not None:
            args += [opt, str(v)]
    rc, err = _cli(args)
    monkeypatch.undo()
    if error is not None:
        assert rc == 2 and err.strip() == f"seis-hpc: error: {error}"
        assert (new.read_bytes() if new.exists() else None) == before  # nothing written
        assert not [q for q in tmp_path.iterdir() if ".tmp-" in q.name]
        return False
    assert rc == 0, err
    _assert_same_file(old, new)
    # binned by `index`: opening it bins nothing again
    s = Survey.open(new, cmp_interval=cmp_interval, grid=grid, coordinate_units=units)
    assert s.index._columns == {}
    return True


def _grid_toml(path: Path, g: BinGrid, **change) -> Path:
    d = {k: getattr(g, k) for k in ("x0", "y0", "azimuth", "bin_inline", "bin_crossline",
                                    "inline0", "crossline0", "n_inline", "n_crossline")}
    d.update(change)
    path.write_text("\n".join(f"{k} = {v!r}" for k, v in d.items()) + "\n")
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Small synthetic surveys of the 2D and 3D presets."""
    d = tmp_path_factory.mktemp("synth")
    out = {}
    for preset, more in (("marine2d", ["--shots", "12", "--channels", "48"]),
                         ("tiny3d", []), ("tiny3d-midpoints", []),
                         ("marine3d-small", ["--shots", "6", "--channels", "16"])):
        rc, err = _cli(["synth", "--preset", preset, "--out", str(d / preset),
                        "--record-length", "0.1", *more])
        assert rc == 0, err
        out[preset] = d / preset / "shots.sgy"
    return out


@pytest.mark.parametrize("preset", ["marine2d", "tiny3d", "tiny3d-midpoints",
                                    "marine3d-small"])
@pytest.mark.parametrize("case", ["plain", "cmp-interval", "feet", "metres", "bin-grid"])
def test_streamed_index_is_the_in_memory_index(synth, preset, case, tmp_path, monkeypatch):
    path = synth[preset]
    kw = {}
    if case == "cmp-interval":
        kw["cmp_interval"] = 12.5
    elif case in ("feet", "metres"):
        kw["units"] = case
    elif case == "bin-grid":
        g = Survey.from_index(TraceIndex.scan(path)).grid
        # a grid cut short by 3 crosslines and numbered from 101: traces fall outside it
        x0, y0 = g.grid_to_world(g.inline0, g.crossline0 + 3)
        kw["grid"] = _grid_toml(tmp_path / "g.toml", g, x0=float(x0), y0=float(y0),
                                crossline0=101, n_crossline=g.n_crossline - 3)
    assert _compare(path, tmp_path, monkeypatch, **kw)
    if case == "bin-grid":
        assert TraceIndex.open(tmp_path / "new.index.h5").attrs["outside_grid"] > 0


def test_streamed_index_with_header_map(tmp_path, monkeypatch):
    """Fields moved by a header map; inline/crossline from there (a 3D header grid)."""
    n, ns = 96, 4
    k = np.arange(n)
    il, xl = 300 + k // 8, 1000 + k % 8
    x = 1000.0 + 25.0 * (xl - 1000) + 0.0 * il
    y = 5000.0 + 50.0 * (il - 300)
    h = {"FieldRecord": 1 + k // 24, "TraceNumber": 1 + k % 24, "SourceX": x - 100.0,
         "SourceY": y, "GroupX": x + 100.0, "GroupY": y, "offset": np.full(n, 200),
         "UnassignedInt1": il, "UnassignedInt2": xl, "CDP_X": x, "CDP_Y": y}
    p = tmp_path / "moved.sgy"
    write_segy(p, np.zeros((n, ns), np.float32), h, 0.004)
    m = tmp_path / "map.toml"
    m.write_text('[fields]\ninline = { byte = 233, type = "int32" }\ncrossline = 237\n')
    assert _compare(p, tmp_path, monkeypatch, header_map=m)
    assert TraceIndex.open(tmp_path / "new.index.h5").attrs["geometry"] == "headers"


def test_streamed_index_of_every_external_file(external_data, tmp_path, monkeypatch):
    """Every SEG-Y/SU file of the external data: the same index, or the same error."""
    files = sorted(p for p in external_data.rglob("*")
                   if p.suffix.lower() in (".sgy", ".segy", ".su"))
    assert files
    indexed = 0
    for k, p in enumerate(files):
        d = tmp_path / str(k)
        d.mkdir()
        indexed += _compare(p, d, monkeypatch)
    assert indexed >= 50  # most of them index (the rest are refused alike)


@pytest.mark.parametrize("given", [False, True])
def test_streamed_index_refuses_a_wild_coordinate_alike(tmp_path, monkeypatch, given):
    """A coordinate beyond 1e8 m (scalar +10000 on one trace, in the last block): the same
    error naming trace, FFID, channel and scalar, with and without a grid; nothing left."""
    n = 60
    k = np.arange(n)
    sx = 25.0 * (k // 12)
    gx = sx + 100.0 + 12.5 * (k % 12)
    scalar = np.ones(n, np.int64)
    scalar[53] = 10000  # with its SX of 50,000: 5e8 m
    sx[53] = 50000.0
    h = {"FieldRecord": 1 + k // 12, "TraceNumber": 1 + k % 12, "SourceX": sx.astype(int),
         "SourceY": 0, "GroupX": gx.astype(int), "GroupY": 0, "SourceGroupScalar": scalar,
         "offset": (gx - sx).astype(np.int64)}
    p = tmp_path / "wild.sgy"
    write_segy(p, np.zeros((n, 2), np.float32), h, 0.004)
    grid = _grid_toml(tmp_path / "g.toml", BinGrid.line(0.0, 0.0, 90.0, 6.25, 1, 80)) \
        if given else None
    assert not _compare(p, tmp_path, monkeypatch, grid=grid)
    with pytest.raises(SeisError, match=r"trace 53 \(FFID 5, channel 6\): sx .* \+10000"):
        _old_index(p, tmp_path / "x.h5", grid=grid)


@pytest.mark.parametrize("second", [{}, {"cmp_interval": 12.5}, {"units": "feet"},
                                    {"units": "metres"}, {"grid": "cut"}])
def test_reindex_over_an_existing_index(synth, tmp_path, monkeypatch, second):
    """`index` again over an up-to-date index (reused, binned again or not, units recorded)
    and over an index given as FILE: the file Survey.open + save gave."""
    path = synth["tiny3d"]
    assert _compare(path, tmp_path, monkeypatch)
    if second.get("grid"):
        g = BinGrid.from_attrs(TraceIndex.open(tmp_path / "old.index.h5").attrs)
        second = {"grid": _grid_toml(tmp_path / "g.toml", g, n_crossline=g.n_crossline - 2)}
    assert _compare(path, tmp_path, monkeypatch, **second)
    if second.get("units") == "feet":  # and refused alike, the file left as it was
        assert not _compare(path, tmp_path, monkeypatch, units="metres")
    # an index file as FILE
    old, new = tmp_path / "old2.index.h5", tmp_path / "new2.index.h5"
    _old_index(tmp_path / "old.index.h5", old, cmp_interval=25.0)
    monkeypatch.setattr(index, "_CHUNK", 101)
    assert _cli(["index", str(tmp_path / "new.index.h5"), "--index", str(new),
                 "--cmp-interval", "25"])[0] == 0
    _assert_same_file(old, new)


# -- pieces ------------------------------------------------------------------------------------
def test_source_numbers_across_blocks():
    """First-appearance numbering carried from block to block (a source seen again later,
    in another block, keeps its number)."""
    rng = np.random.default_rng(3)
    ffid = rng.integers(0, 40, 1000)
    sx, sy = ffid * 25.0, np.where(ffid % 3 == 0, 10.0, 0.0)
    whole = index.source_numbers(ffid, sx, sy)
    num = index.SourceNumbers()
    parts = [num.number(ffid[a:a + 37], sx[a:a + 37], sy[a:a + 37]) for a in range(0, 1000, 37)]
    assert np.array_equal(np.concatenate(parts), whole)
    assert whole[0] == 0 and np.all(np.diff(np.maximum.accumulate(whole)) <= 1)
    assert len(num.table) == whole.max() + 1 == np.unique(ffid).size


@pytest.mark.parametrize("m", [1, 2, 5, 6, 1001, 3000])
def test_streamed_median_is_numpy_median(m, monkeypatch):
    """The exact median in bounded memory: equal to np.median, ties and even counts too."""
    rng = np.random.default_rng(m)
    off = np.round(rng.uniform(1.0, 3000.0, m), 2)
    off[: m // 3] = 100.0  # many equal values
    hdr = np.round(off * rng.choice([1.0, 1.0004, 0.9999, 12.0], m)).astype(np.int64)
    hdr[hdr == 0] = 1
    store = domain.ArrayColumns({"offset": off, "header_offset": hdr, "sx": off}, m, 101)
    hist = sum(domain._ratio_histogram(domain._ratios(
        off[a:a + 97], np.abs(hdr[a:a + 97]).astype(np.float64))) for a in range(0, m, 97))
    monkeypatch.setattr(domain, "_GATHER", 10)  # refine by further histograms, then gather
    got = domain._median_ratio(store, m, hist)
    assert got == float(np.median(off / np.abs(hdr)))


# -- memory ------------------------------------------------------------------------------------
def _line(path: Path, n_shots: int, channels: int = 96, ns: int = 2) -> Path:
    """A 2D marine line: shots every 25 m, ``channels`` x 12.5 m, offsets from 100 m."""
    s = np.repeat(np.arange(n_shots), channels)
    c = np.tile(np.arange(channels), n_shots)
    sx = 25.0 * s
    gx = sx + 100.0 + 12.5 * c
    h = {"FieldRecord": 1 + s, "TraceNumber": 1 + c, "SourceX": sx, "SourceY": 0.0,
         "GroupX": gx, "GroupY": 0.0, "offset": (gx - sx).astype(np.int64),
         "CDP": 1 + 2 * s + c}

    class Zeros:
        shape, ndim = (len(s), ns), 2

        def __getitem__(self, sl):
            return np.zeros((len(range(*sl.indices(self.shape[0]))), ns), np.float32)

    write_segy(path, Zeros(), h, 0.004)
    return path


def _peak_of_index(path, out, more, monkeypatch) -> int:
    monkeypatch.setattr(index, "_CHUNK", 2048)
    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", 2048)
    _cli(["index", str(path), "--index", str(out.with_suffix(".warm.h5")), *more])  # imports
    tracemalloc.start()
    try:
        rc, err = _cli(["index", str(path), "--index", str(out), *more])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert rc == 0, err


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    d = tmp_path_factory.mktemp("lines")
    return _line(d / "a.sgy", 200), _line(d / "b.sgy", 400)  # 19200 and 38400 traces


def test_index_memory_bounded_by_a_block_with_a_grid(lines, tmp_path, monkeypatch):
    """With --bin-grid: twice the traces, the same peak (a block's, within a small margin),
    far below the survey's columns (about 240 B a trace held before issue 19)."""
    a, b = lines
    g = Survey.from_index(TraceIndex.scan(b)).grid
    toml = _grid_toml(tmp_path / "g.toml", g)
    peaks = [_peak_of_index(p, tmp_path / f"{k}.h5", ["--bin-grid", str(toml)], monkeypatch)
             for k, p in enumerate((a, b))]
    print("peaks with grid", peaks)
    n = 19200
    assert peaks[1] - peaks[0] < 0.05 * peaks[0] + 200_000, peaks  # bounded by the block
    assert peaks[1] < 100 * 2 * n, peaks  # < 100 B a trace of b, all held would be >= 240


def test_index_memory_without_grid_grows_by_the_fit_columns(lines, tmp_path, monkeypatch):
    """Without a grid the fit holds the columns it uses (see survey.bin_index_file):
    the growth per trace stays well below the ~240 B of every column (~500 B at the peak
    before issue 19)."""
    a, b = lines
    peaks = [_peak_of_index(p, tmp_path / f"{k}.h5", [], monkeypatch)
             for k, p in enumerate((a, b))]
    print("peaks without grid", peaks)
    per_trace = (peaks[1] - peaks[0]) / 19200
    assert per_trace < 100, (peaks, per_trace)  # measured 68 B (header-CDP line fit)

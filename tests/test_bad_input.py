"""Bad input through the command line: one line naming the file and the problem, exit 2,
no traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seis_hpc.cli import main
from seis_hpc.io.segy import write_segy

NTR, NS, DT = 8, 20, 0.004


def _good(path: Path, data=None, **over) -> Path:
    i = np.arange(NTR)
    h = {"FieldRecord": 1 + 0 * i, "TraceNumber": 1 + i, "SourceX": 1000.0 + 0 * i,
         "GroupX": 900.0 - 12.5 * i, "offset": -(100 + 12.5 * i)}
    h.update(over)
    if data is None:
        data = np.ones((NTR, NS), dtype=np.float32)
    write_segy(path, data, h, DT)
    return path


def _patch(path: Path, pos: int, value: int, nbytes: int = 2) -> None:
    """Overwrite the big-endian integer at 1-based byte ``pos``."""
    raw = bytearray(path.read_bytes())
    raw[pos - 1:pos - 1 + nbytes] = value.to_bytes(nbytes, "big", signed=value < 0)
    path.write_bytes(bytes(raw))


def truncated(d):
    p = _good(d / "short.sgy")
    p.write_bytes(p.read_bytes()[:2000])
    return p


def partial_trace(d):
    p = _good(d / "cut.sgy")
    p.write_bytes(p.read_bytes()[:-37])
    return p


def empty(d):
    p = d / "empty.sgy"
    p.write_bytes(b"")
    return p


def zero_ns(d):
    p = _good(d / "ns0.sgy")
    _patch(p, 3221, 0)
    raw = bytearray(p.read_bytes())
    for k in range(NTR):  # the trace headers' own count, bytes 115-116
        at = 3600 + k * (240 + 4 * NS) + 114
        raw[at:at + 2] = b"\0\0"
    p.write_bytes(bytes(raw))
    return p


def absurd_ns(d):
    p = _good(d / "ns60000.sgy")
    _patch(p, 3221, 60000)
    for k in range(NTR):  # and in every trace header, so no count fits the file
        _patch(p, 3600 + k * (240 + 4 * NS) + 115, 60000)
    return p


def zero_dt(d):
    p = _good(d / "dt0.sgy")
    _patch(p, 3217, 0)
    raw = bytearray(p.read_bytes())
    for k in range(NTR):
        at = 3600 + k * (240 + 4 * NS) + 116
        raw[at:at + 2] = b"\0\0"
    p.write_bytes(bytes(raw))
    return p


def negative_dt(d):
    p = zero_dt(d)
    _patch(p, 3217, -4000)
    return p


def bad_format(d):
    p = _good(d / "fmt99.sgy")
    _patch(p, 3225, 99)
    return p


def no_coordinates(d):
    return _good(d / "nocoords.sgy", SourceX=0.0, GroupX=0.0)


def zero_headers(d):
    p = _good(d / "zeros.sgy")
    raw = bytearray(p.read_bytes())
    for k in range(NTR):
        at = 3600 + k * (240 + 4 * NS)
        raw[at:at + 240] = bytes(240)
    p.write_bytes(bytes(raw))
    return p


def nan_samples(d):
    data = np.ones((NTR, NS), dtype=np.float32)
    data[3, 7] = np.inf
    return _good(d / "inf.sgy", data=data)


def missing(d):
    return d / "nowhere.sgy"


def directory(d):
    (d / "adir.sgy").mkdir()
    return d / "adir.sgy"


def unreadable(d):
    p = _good(d / "secret.sgy")
    p.chmod(0)
    return p


# (name, make file, extra CLI args, fragment the message must contain)
CASES = [
    ("truncated", truncated, [], "truncated"),
    ("empty", empty, [], "truncated"),
    ("partial trace", partial_trace, [], "trace count not whole"),
    ("zero ns", zero_ns, [], "sample count is 0"),
    ("absurd ns", absurd_ns, [], "absurd sample count"),
    ("zero dt", zero_dt, [], "sample interval is 0"),
    ("negative dt", negative_dt, [], "sample interval is -4000"),
    ("unknown format", bad_format, [], "unknown sample format code 99"),
    ("no coordinates", no_coordinates, [], "missing coordinates"),
    ("zero headers", zero_headers, [], "all trace headers are zero"),
    ("inf samples", nan_samples, ["--check-samples"], "trace 3 (FFID 1, channel 4): sample 7"),
    ("missing file", missing, [], "no such file"),
    ("directory", directory, [], "directory"),
    ("no read permission", unreadable, [], "permission denied"),
]


@pytest.mark.parametrize("name,make,extra,fragment", CASES, ids=[c[0] for c in CASES])
def test_index_refuses(tmp_path, capsys, name, make, extra, fragment):
    if name == "no read permission" and os.geteuid() == 0:
        pytest.skip("root reads any file whatever its mode")
    path = make(tmp_path)
    before = set(tmp_path.rglob("*"))
    out_index = tmp_path / "out" / "idx.h5"
    code = main(["index", str(path), "--index", str(out_index), *extra])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seis-hpc: error: ")
    assert str(path) in lines[0] and fragment in lines[0]
    assert "Traceback" not in err
    # nothing written: no index, no temporary file
    assert set(tmp_path.rglob("*")) - before <= {tmp_path / "out"}
    assert not out_index.exists()


@pytest.mark.parametrize("name,make,fragment", [
    ("truncated", truncated, "truncated"),
    ("unknown format", bad_format, "unknown sample format code 99"),
    ("directory", directory, "directory"),
])
def test_info_refuses(tmp_path, capsys, name, make, fragment):
    path = make(tmp_path)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and fragment in err


@pytest.mark.parametrize("text,fragment", [
    ('inline = { byte = 300 }', "'inline': byte 300 is outside"),
    ('sx = { byte = 239, type = "int32" }', "'sx': a 4-byte field at byte 239 runs past"),
    ('gy = { byte = 85, type = "int48" }', "'gy': unknown type 'int48'"),
])
def test_header_map_refused_by_cli(tmp_path, capsys, text, fragment):
    seg = _good(tmp_path / "line.sgy")
    m = tmp_path / "map.toml"
    m.write_text(text + "\n")
    assert main(["index", str(seg), "--header-map", str(m)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(m) in err and fragment in err
    assert not list(tmp_path.glob("*.h5"))


def test_real_process_no_traceback(tmp_path):
    path = partial_trace(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "seis_hpc", "index", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "trace count not whole" in proc.stderr and str(path) in proc.stderr
    assert not list(tmp_path.glob("*.h5")) and not list(tmp_path.glob(".*tmp*"))


def test_unreadable_file_as_unprivileged_user(tmp_path_factory):
    """Root reads any file, so under root the permission row runs as user nobody (setpriv)."""
    import shutil

    if os.geteuid() != 0:
        pytest.skip("covered by the 'no read permission' row when not root")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv not available to drop root")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="seis_hpc_perm_"))
    try:
        folder.chmod(0o755)
        path = unreadable(folder)
        proc = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-m", "seis_hpc", "index", str(path), "--index", str(folder / "out.h5")],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "SEIS_HPC_CACHE": str(folder / "cache")})
        if "seis-hpc: error" not in proc.stderr:
            pytest.skip(f"cannot run Python as nobody here: {proc.stderr.strip()[-200:]}")
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and "permission denied" in lines[0]
        assert not (folder / "out.h5").exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

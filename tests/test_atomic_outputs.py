"""A command writes all its outputs or none, and its messages name the user's paths, never a
temporary name (issue 13)."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import velocity_line as vl

from seis_hpc.cli import main
from seis_hpc.io.atomic import atomic_output, atomic_outputs, prepare_outputs, temporary_name


def _one_error(err: str) -> str:
    """The error line of a failed command (progress lines may come before it)."""
    errors = [ln for ln in err.splitlines() if ln.startswith("seis-hpc: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_all_outputs_renamed_together(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "sub" / "b.sgy"
    with atomic_outputs(a, None, b) as (ta, none, tb):
        assert none is None and ta != a and tb != b
        ta.write_text("A")
        assert not a.exists()  # nothing visible until every output is complete
        tb.write_text("B")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "A" and b.read_text() == "B"
    assert _listing(tmp_path) == ["a.h5", "sub"] and _listing(tmp_path / "sub") == ["b.sgy"]


def test_a_failure_leaves_none_and_keeps_previous_versions(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.sgy"
    a.write_text("old A")
    with pytest.raises(RuntimeError), atomic_outputs(a, b) as (ta, tb):
        ta.write_text("new A")
        tb.write_text("half of B")
        raise RuntimeError("the second writer failed")
    assert a.read_text() == "old A" and not b.exists()
    assert _listing(tmp_path) == ["a.h5"]  # no temporary left


def test_an_output_never_written_is_an_error_and_leaves_none(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.sgy"
    with pytest.raises(FileNotFoundError) as info, atomic_outputs(a, b) as (ta, _):
        ta.write_text("A")
    assert info.value.filename == str(b)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("nested", [False, True])
def test_os_errors_name_the_users_path(tmp_path, nested):
    """An error on the temporary file (ENOSPC from a writer, or h5py's text with the name and
    no errno) is re-raised naming the output, also through nested atomic writers."""
    out = tmp_path / "image.h5"
    for make in (lambda t: OSError(errno.ENOSPC, "No space left on device", str(t)),
                 lambda t: OSError(f"Unable to create file (name = '{t}', error message = "
                                   "'Permission denied')")):
        with pytest.raises(OSError) as info, atomic_outputs(out) as (tmp,):
            if nested:
                with atomic_output(tmp) as inner:
                    raise make(inner)
            raise make(tmp)
        text = f"{info.value} {info.value.filename}"
        assert ".tmp-" not in text and str(out) in text, text
        assert _listing(tmp_path) == []


def test_bad_output_names_fail_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError) as info:
        prepare_outputs(tmp_path / "ok.h5", None, tmp_path / "afile" / "x.sgy")
    assert info.value.filename == str(tmp_path / "afile" / "x.sgy")
    with pytest.raises(IsADirectoryError):
        prepare_outputs(tmp_path / "folder")


def _stack_inputs(tmp_path):
    path, truth = vl.line("marine2d")
    vel = tmp_path / "v.csv"
    vel.write_text("time_s,vrms_mps\n" + "".join(
        f"{t:.3f},{v:.1f}\n" for t, v in zip(truth["vrms"]["time_s"],
                                             truth["vrms"]["vrms_mps"], strict=True)))
    return path, vel


def test_stack_with_an_unwritable_segy_leaves_no_image(tmp_path, capsys):
    """Issue 13: ``stack -o st.h5 --segy unwritable/x.sgy`` left st.h5; now nothing, exit 2."""
    path, vel = _stack_inputs(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    out, sgy = tmp_path / "st.h5", tmp_path / "afile" / "x.sgy"
    assert main(["stack", str(path), "-v", str(vel), "-o", str(out), "--segy", str(sgy)]) == 2
    err = _one_error(capsys.readouterr().err)
    assert str(sgy) in err and ".tmp-" not in err, err
    assert _listing(tmp_path) == ["afile", "v.csv"]


def test_stack_segy_failing_while_written_leaves_no_image(tmp_path, capsys, monkeypatch):
    """The SEG-Y writer fails after the image is complete (disk full): neither output is
    left, no temporary, and the message names the user's SEG-Y path."""
    import seis_hpc.io.export as export

    def full_disk(path, vol, **kw):
        with open(path, "wb") as f:
            f.write(b"\0" * 3600)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(export, "write_volume_segy", full_disk)
    path, vel = _stack_inputs(tmp_path)
    out, sgy = tmp_path / "st.h5", tmp_path / "st.sgy"
    assert main(["stack", str(path), "-v", str(vel), "-o", str(out), "--segy", str(sgy)]) == 2
    err = _one_error(capsys.readouterr().err)
    assert str(sgy) in err and ".tmp-" not in err, err
    assert _listing(tmp_path) == ["v.csv"]
    monkeypatch.undo()
    # The same command with a working writer writes both, the image a real stack.
    assert main(["stack", str(path), "-v", str(vel), "-o", str(out), "--segy", str(sgy)]) == 0
    from seis_hpc.io.volume import read_volume

    img = read_volume(out, "image")
    assert np.isfinite(img.data).all() and np.abs(img.data).max() > 0
    assert sgy.stat().st_size > 3600
    assert _listing(tmp_path) == ["st.h5", "st.sgy", "v.csv"]


def test_velan_su_table_failing_leaves_no_velocity_nor_picks(tmp_path, capsys, monkeypatch):
    from seis_hpc.velocity import picks

    def broken(path, table):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(picks, "write_su_picks", broken)
    path, _ = vl.line("marine2d")
    out, picks, su = tmp_path / "v.h5", tmp_path / "p.toml", tmp_path / "v.par"
    assert main(["velan", str(path), "-o", str(out), "--picks", str(picks), "--su-table",
                 str(su), "--every", "60", "--vmax", "3000"]) == 2
    err = _one_error(capsys.readouterr().err)
    assert str(su) in err and ".tmp-" not in err, err
    assert _listing(tmp_path) == []


def test_migstack_bad_segy_name_fails_before_any_pass(tmp_path, capsys):
    path, vel = _stack_inputs(tmp_path)
    (tmp_path / "afile").write_text("x")
    sgy = tmp_path / "afile" / "img.sgy"
    assert main(["migstack", str(path), "-v", str(vel), "-o", str(tmp_path / "img.h5"),
                 "--segy", str(sgy)]) == 2
    err = _one_error(capsys.readouterr().err)
    assert str(sgy) in err, err
    assert _listing(tmp_path) == ["afile", "v.csv"]


def test_temporary_name_is_hidden_beside_the_output(tmp_path):
    t = temporary_name(tmp_path / "x.h5")
    assert t.parent == tmp_path and t.name.startswith(".x.h5.tmp-")


def test_flow_step_leaves_no_output_without_its_qc_summary(tmp_path, capsys):
    """A step whose OUT.qc.json cannot be written (a folder of that name) leaves no OUT and
    no temporary; the message names OUT.qc.json."""
    from seis_hpc.io.segy import write_segy

    x = tmp_path / "X.sgy"
    write_segy(x, np.random.default_rng(2).normal(size=(8, 64)).astype(np.float32),
               {"FieldRecord": np.repeat([1, 2], 4), "TraceNumber": np.tile([1, 2, 3, 4], 2),
                "SourceX": np.repeat([0, 50], 4),
                "GroupX": np.repeat([0, 50], 4) + np.tile([100, 125, 150, 175], 2),
                "offset": np.tile([100, 125, 150, 175], 2)}, 0.004)
    (tmp_path / "o.sgy.qc.json").mkdir()
    # An OS error in a flow step stops every rank with status 2, as bad input does
    # (engine.comm.abort_on_error).
    with pytest.raises(SystemExit) as info:
        main(["gain", str(x), "-o", str(tmp_path / "o.sgy")])
    assert info.value.code == 2
    err = _one_error(capsys.readouterr().err)
    assert str(tmp_path / "o.sgy.qc.json") in err and ".tmp-" not in err, err
    assert _listing(tmp_path) == ["X.sgy", "o.sgy.qc.json"]
    (tmp_path / "o.sgy.qc.json").rmdir()
    assert main(["gain", str(x), "-o", str(tmp_path / "o.sgy")]) == 0
    assert _listing(tmp_path) == ["X.sgy", "o.sgy", "o.sgy.qc.json"]

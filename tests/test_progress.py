"""The progress helper: plain periodic lines in batch jobs (no control characters), a tqdm bar
with rate and ETA in a terminal, silence on other ranks."""

from __future__ import annotations

import io
import re

import pytest

from seis_hpc import progress
from seis_hpc.progress import Progress, choose_mode, hms, track


class Clock:
    """A fake monotonic clock the test advances by hand."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clean_env(monkeypatch):
    for k in (*progress.BATCH_ENV, "SEIS_HPC_PROGRESS"):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def _assert_plain(text: str) -> None:
    assert "\r" not in text and "\x1b" not in text
    assert re.fullmatch(r"[\x20-\x7e\n]*", text), repr(text)


def test_batch_job_prints_plain_periodic_lines(clean_env):
    # A SLURM job whose stderr is (even) a terminal still gets plain lines.
    clean_env.setenv("SLURM_JOB_ID", "4242")
    out, clock = TTY(), Clock()
    p = Progress(200, "pstm", "trace", stream=out, period=10.0, clock=clock)
    assert p.mode == "log" and p.bar is None
    clock.t += 4.0
    p.update(40)  # before the first period: nothing yet
    assert out.getvalue() == ""
    clock.t += 6.0
    p.update(60)  # 100 traces in 10 s: 10 traces/s, 100 left -> ETA 10 s
    clock.t += 5.0
    p.update(50)  # 5 s after the last line: still quiet
    clock.t += 5.0
    p.update(50)
    p.close()
    p.close()  # twice is harmless
    text = out.getvalue()
    _assert_plain(text)
    lines = text.splitlines()
    assert lines == [
        "pstm: 100/200 traces (50.0%), 10 trace/s, elapsed 0:00:10, ETA 0:00:10",
        "pstm: 200/200 traces (100.0%), 10 trace/s, elapsed 0:00:20, ETA 0:00:00",
    ]  # close() does not repeat a line already shown


def test_not_a_terminal_means_batch_lines(clean_env):
    out, clock = io.StringIO(), Clock()
    with Progress(None, "ingest \x1b[31mred\r", "byte", stream=out, period=1.0,
                  clock=clock) as p:
        assert p.mode == "log"
        clock.t += 2.0
        p.update(3 * 1024 * 1024)
    text = out.getvalue()
    _assert_plain(text)  # even a label with escape codes comes out plain
    assert text.splitlines()[0] == ("ingest ?[31mred?: 3.0 MiB, 1.5 MiB/s, elapsed 0:00:02, "
                                    "ETA ?")


def test_resumed_run_counts_rate_from_this_run_only(clean_env):
    out, clock = io.StringIO(), Clock()
    p = Progress(1000, "pstm", "unit", stream=out, period=1.0, initial=600, clock=clock)
    clock.t += 20.0
    p.set(800)  # 200 units in 20 s: 10/s, 200 left -> 20 s
    assert p.rate() == pytest.approx(10.0)
    assert p.eta() == pytest.approx(20.0)
    assert out.getvalue().startswith("pstm: 800/1000 units (80.0%), 10 unit/s")


def test_short_step_in_batch_prints_nothing(clean_env):
    out, clock = io.StringIO(), Clock()
    with Progress(10, "hash", stream=out, clock=clock) as p:
        p.update(10)
        clock.t += 0.5
    assert out.getvalue() == ""


def test_terminal_uses_tqdm_with_rate_and_eta(clean_env):
    from tqdm import tqdm

    out = TTY()
    p = Progress(50, "nmo", "trace", stream=out)
    assert p.mode == "bar" and isinstance(p.bar, tqdm)
    for _ in range(50):
        p.update(1)
    p.close()
    text = out.getvalue()
    assert "\r" in text  # a bar redrawn in place
    last = text.split("\r")[-1]
    assert "nmo" in last and "50/50" in last
    assert re.search(r"trace/s|s/trace", last)  # rate
    assert re.search(r"\d\d:\d\d<\d\d:\d\d", last)  # elapsed<ETA


def test_environment_override_and_other_ranks(clean_env):
    clean_env.setenv("SEIS_HPC_PROGRESS", "log")
    assert choose_mode(TTY()) == "log"
    clean_env.setenv("SEIS_HPC_PROGRESS", "off")
    out = TTY()
    with Progress(5, "x", stream=out, period=0.0) as p:
        p.update(5)
    assert out.getvalue() == ""
    clean_env.delenv("SEIS_HPC_PROGRESS")
    assert choose_mode(TTY()) == "bar"
    out = TTY()
    with Progress(5, "x", stream=out, rank=1, period=0.0) as p:
        p.update(5)
    assert p.mode == "off" and out.getvalue() == ""
    with pytest.raises(ValueError):
        choose_mode(out, "fancy")


def test_track_counts_every_item(clean_env):
    out, clock = io.StringIO(), Clock()
    seen = []
    for item in track(range(7), "semblance", "CMP", stream=out, clock=clock, quiet=0.0):
        seen.append(item)
    assert seen == list(range(7))
    assert out.getvalue().startswith("semblance: 7/7 CMPs (100.0%)")


def test_hms():
    assert hms(3725.9) == "1:02:05"
    assert hms(float("nan")) == "?"
    assert hms(-3) == "0:00:00"

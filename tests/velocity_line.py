"""Shared synthetic line for the velocity, stack and RMO tests: a subset of the ``marine2d``
preset (72 shots, 1.3 s), written once per test session into a temporary folder."""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from seis_hpc import synth

SHOTS = 72
RECORD = 1.3


def subset(name: str = "marine2d") -> synth.Preset:
    """The preset with fewer shots and a shorter record (same events, same medium)."""
    p = synth.preset(name)
    return replace(p, acquisition=replace(p.acquisition, shots_per_line=SHOTS,
                                          record_length=RECORD))


@functools.cache
def line(name: str = "marine2d") -> tuple[Path, dict]:
    """(path of shots.sgy, truth) of the subset line, modelled once per process."""
    out = Path(tempfile.mkdtemp(prefix=f"seis_hpc_{name}_"))
    synth.write_survey(subset(name), out)
    return out / "shots.sgy", json.loads((out / "truth.json").read_text())


@functools.cache
def arrays(name: str = "marine2d"):
    """(data, headers, truth) of the subset line in memory."""
    return synth.make_survey(subset(name))


def true_vrms(truth: dict, time, cmp=None) -> np.ndarray:
    """True Vrms (m/s) at two-way times ``time`` (s); with ``cmp`` numbers, shape (ncmp, nt)
    including the preset's lateral variation."""
    t = np.interp(np.asarray(time, dtype=np.float64), truth["vrms"]["time_s"],
                  truth["vrms"]["vrms_mps"])
    if cmp is None:
        return t
    return t[None, :] * synth.lateral_factor(truth, np.asarray(cmp, dtype=np.float64))[:, None]

"""Comparing two plans' work units (the streamed planners against the in-memory ones)."""

from __future__ import annotations

import numpy as np


def assert_same_units(a, b) -> None:
    """Assert that unit lists ``a`` and ``b`` are the same, field by field and run by run."""
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert (u.uid, u.window, u.work, u.n_traces, u.offset_class) == (
            v.uid, v.window, v.work, v.n_traces, v.offset_class)
        assert np.array_equal(u.runs, v.runs)

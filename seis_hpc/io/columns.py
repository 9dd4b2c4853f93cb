"""Streamed reads of a trace index's columns, chunk by chunk (numpy and h5py only: no
segyio, so that the engine imports it in environments without one, e.g. parallel HDF5)."""

from __future__ import annotations

import h5py

COLUMN_CHUNK = 1 << 16  # rows of an index file read at a time by column_chunks


def n_rows(source) -> int:
    """Traces of a source (a :class:`~seis_hpc.io.index.TraceIndex` says so without loading a column)."""
    n = getattr(source, "n_traces", None)
    return int(n) if n is not None else len(source["mx"])


def columns_on_file(source, names) -> bool:
    """True when ``source`` is an index file whose columns ``names`` are not in memory."""
    loaded = getattr(source, "_columns", None)
    return (getattr(source, "path", None) is not None and loaded is not None
            and hasattr(source, "take") and not all(k in loaded for k in names))


def column_chunks(source, names, chunk: int | None = None):
    """The columns ``names`` of every trace of ``source``, ``chunk`` rows at a time
    (default :data:`COLUMN_CHUNK`).

    An index file whose columns are not in memory is read slice by slice (memory: one
    chunk); columns already in memory (or an in-memory source) are sliced.

    Yields
    ------
    (int, dict)
        The first trace number of the chunk and its columns.
    """
    size = int(chunk or COLUMN_CHUNK)
    n = getattr(source, "n_traces", None)  # else a mapping of arrays: its own columns say
    n = int(n) if n is not None else len(source[list(names)[0]])
    if columns_on_file(source, names):
        with h5py.File(source.path, "r") as f:
            for a in range(0, n, size):
                b = min(n, a + size)
                yield a, {k: f[k][a:b] for k in names}
        return
    full = {k: source[k] for k in names}
    for a in range(0, n, size):
        yield a, {k: v[a:a + size] for k, v in full.items()}

"""The one trace reader: samples and header bytes of a SEG-Y/SU file by trace number.

Every part of seis_hpc that reads traces goes through :class:`TraceReader`: the trace index
(:meth:`seis_hpc.io.index.TraceIndex.read_traces`, and so the PSTM engine, ``stack`` and
``velan``, which read through the index) and the flow-step driver
(:mod:`seis_hpc.engine.gather_run`). Only the traces asked for are read, by byte position
(a memory map of the data part of the file); samples are decoded to float32 by
:func:`seis_hpc.io.segy.decode_samples`.

NaN/Inf samples raise a :class:`~seis_hpc.errors.SeisError` naming the trace (its FFID and
channel when an index is at hand), unless the caller asks for them (``allow_bad=True``, for
bad-trace editing).
"""

from __future__ import annotations

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.io.segy import TRACE_HEADER_BYTES, Layout, decode_samples

# Index columns a flow step sees for its gather (see TraceReader.columns).
# Bytes read through one memory map before it is dropped (see TraceReader._count).
_REMAP_BYTES = 32 << 20
COLUMNS = ("ffid", "channel", "cmp", "offset", "sx", "sy", "rx", "ry", "source_id")


class TraceReader:
    """Samples and header bytes of a SEG-Y/SU file by trace number (file order, from 0).

    Parameters
    ----------
    layout : seis_hpc.io.segy.Layout
        Where everything is in the file (:func:`seis_hpc.io.segy.probe`).
    index : TraceIndex, optional
        The file's trace index: names traces in error messages (FFID, channel) and gives
        :meth:`columns`.

    Get one from a trace index (:meth:`seis_hpc.io.index.TraceIndex.reader`) or for a file
    (:func:`seis_hpc.survey.open_traces`).
    """

    def __init__(self, layout: Layout, index=None):
        self.layout = layout
        self.path = layout.path
        self.index = index
        self._mm: np.memmap | None = None
        self._touched = 0  # bytes read through the current map

    # -- file facts ---------------------------------------------------------------------------
    @property
    def dt(self) -> float:
        """Sample interval (s)."""
        return self.layout.dt

    @property
    def t_start(self) -> float:
        """Time of the first sample (s)."""
        return self.layout.t_start

    @property
    def ns(self) -> int:
        """Samples per trace."""
        return self.layout.ns

    @property
    def n_traces(self) -> int:
        """Number of traces."""
        return self.layout.n_traces

    def _memmap(self) -> np.memmap:
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r",
                                 offset=self.layout.data_offset,
                                 shape=(self.layout.n_traces, self.layout.trace_bytes))
            self._touched = 0
        return self._mm

    def _count(self, n_traces: int) -> None:
        """After a read (a copy) of ``n_traces``: drop the map once ~32 MB went through it.
        Every page a map touched stays in this process's RSS until it is unmapped, so one
        map over a whole survey makes a rank look as big as the part of the file it read
        (with 256 MB, a PSTM rank's peak RSS held up to 256 MB of file pages, more as the
        survey grew; a new map costs microseconds against 32 MB of reads)."""
        self._touched += n_traces * self.layout.trace_bytes
        if self._touched > _REMAP_BYTES:
            self._mm = None

    def close(self) -> None:
        """Release the memory map (it is made again when next needed)."""
        self._mm = None

    # -- reading ------------------------------------------------------------------------------
    def raw(self, ids) -> np.ndarray:
        """Traces ``ids`` as they lie in the file (uint8, ``(len(ids), trace bytes)``: header
        then encoded samples), in the order of ``ids``; read in file order."""
        ids = np.asarray(ids, np.int64)
        srt = np.argsort(ids, kind="stable")
        out = np.empty((len(ids), self.layout.trace_bytes), np.uint8)
        out[srt] = self._memmap()[ids[srt]]
        self._count(len(ids))
        return out

    def read(self, ids, allow_bad: bool = False) -> np.ndarray:
        """Samples of the traces ``ids``.

        Parameters
        ----------
        ids : array-like of int
            Trace numbers (file order, from 0).
        allow_bad : bool
            Return NaN/Inf samples as they are instead of raising.

        Returns
        -------
        numpy.ndarray
            float32, shape ``(len(ids), ns)``, in the file's amplitude units.

        Raises
        ------
        SeisError
            A trace number out of range, or (unless ``allow_bad``) a NaN/Inf sample, naming
            the trace.
        """
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        n = self.layout.n_traces
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            bad = ids[(ids < 0) | (ids >= n)][0]
            raise SeisError(f"trace {bad} out of range (file has {n} traces)", self.path)
        raw = self._memmap()[ids, self.layout.header_bytes:]  # past any rev 2 extensions
        self._count(ids.size)
        data = decode_samples(raw, self.layout.format, self.layout.endian, self.layout.ns)
        if not allow_bad:
            finite = np.isfinite(data).all(axis=1)
            if not finite.all():
                row = int(np.flatnonzero(~finite)[0])
                self._raise_bad_sample(int(ids[row]), data[row])
        return data

    def _raise_bad_sample(self, trace: int, samples: np.ndarray) -> None:
        k = int(np.flatnonzero(~np.isfinite(samples))[0])
        who = f"trace {trace}"
        if self.index is not None:
            who += (f" (FFID {int(self.index['ffid'][trace])}, channel "
                    f"{int(self.index['channel'][trace])})")
        raise SeisError(f"{who}: sample {k} is {samples[k]} (NaN/Inf; run seis-hpc edit "
                        "first)", self.path)

    def header_bytes(self, ids) -> np.ndarray:
        """The trace headers of ``ids``, verbatim: 240 bytes, plus the rev 2 trace header
        extensions where the file has them (uint8 ``(n, layout.header_bytes)``)."""
        ids = np.asarray(ids, np.int64)
        out = np.ascontiguousarray(self._memmap()[ids, :self.layout.header_bytes])
        self._count(ids.size)
        return out

    def file_header(self) -> bytes:
        """Everything before the first trace (textual, binary and extended headers)."""
        with open(self.path, "rb") as f:
            return f.read(self.layout.data_offset)

    def columns(self, ids) -> dict[str, np.ndarray]:
        """Index columns of the traces ``ids``: ``offset``, ``sx``, ``sy``, ``rx``, ``ry``
        (m), ``ffid``, ``channel``, ``cmp``, ``source_id``."""
        if self.index is None:
            raise ValueError("this reader has no trace index")
        ids = np.asarray(ids, np.int64)
        return {k: np.asarray(self.index[k])[ids] for k in COLUMNS}


def layout_of_index(attrs: dict) -> Layout:
    """The :class:`~seis_hpc.io.segy.Layout` recorded in a trace index's attributes.

    Reading needs only the positions, format and byte order; the descriptive fields an index
    written by an older version may lack take neutral values.
    """
    fmt = int(attrs["format"])
    return Layout(path=str(attrs["segy_path"]), kind=str(attrs.get("kind", "segy")),
                  endian=str(attrs["endian"]), format=fmt,
                  declared_format=int(attrs.get("declared_format", fmt)), ns=int(attrs["ns"]),
                  dt=float(attrs["dt"]), t_start=float(attrs["t_start"]),
                  data_offset=int(attrs["data_offset"]), trace_bytes=int(attrs["trace_bytes"]),
                  n_traces=int(attrs["n_traces"]), revision=str(attrs.get("revision", "")),
                  file_size=int(attrs["file_size"]),
                  header_bytes=int(attrs.get("header_bytes", TRACE_HEADER_BYTES)))

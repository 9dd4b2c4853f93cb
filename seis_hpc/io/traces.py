"""The one trace reader: samples and header bytes of a SEG-Y/SU file by trace number.

Every part of seis_hpc that reads traces goes through :class:`TraceReader`: the trace index
(:meth:`seis_hpc.io.index.TraceIndex.read_traces`, and so the PSTM engine, ``stack`` and
``velan``, which read through the index) and the flow-step driver
(:mod:`seis_hpc.engine.gather_run`). Only the traces asked for are read, by byte position
(``pread`` of each run of consecutive traces, in file order: no memory map, whose touched
pages - a whole large folio for each scattered trace - stay in the process's RSS); samples
are decoded to float32 by :func:`seis_hpc.io.segy.decode_samples`.

NaN/Inf samples raise a :class:`~seis_hpc.errors.SeisError` naming the trace (its FFID and
channel when an index is at hand), unless the caller asks for them (``allow_bad=True``, for
bad-trace editing).
"""

from __future__ import annotations

import os
import weakref

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.io.segy import TRACE_HEADER_BYTES, Layout, decode_samples

# Index columns a flow step sees for its gather (see TraceReader.columns).
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
        self._fd: int | None = None

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

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
            self._closer = weakref.finalize(self, os.close, self._fd)
        return self._fd

    def close(self) -> None:
        """Close the file (it is opened again when next needed)."""
        if self._fd is not None:
            self._closer()
            self._fd = None

    def _rows(self, ids: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Bytes ``lo:hi`` of each trace ``ids`` (uint8 ``(len(ids), hi - lo)``), in the order
        of ``ids``: each run of consecutive traces read whole by ``pread``, in file order.

        Not through a memory map: every page a map touches stays in the process's RSS until
        it is unmapped, and a scattered trace maps a whole large folio (1 MB a trace for the
        256 traces of the calibration's spectrum on a 4.2 GB file: 290 MB of one rank's RSS).
        """
        ids = np.asarray(ids, np.int64)
        tb, n = self.layout.trace_bytes, self.layout.n_traces
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            bad = ids[(ids < 0) | (ids >= n)][0]
            raise SeisError(f"trace {bad} out of range (file has {n} traces)", self.path)
        srt = np.argsort(ids, kind="stable")
        s = ids[srt]
        buf = np.empty((ids.size, tb), np.uint8)
        brk = np.flatnonzero(np.diff(s) != 1) + 1
        fd = self._file()
        for a, b in zip(np.r_[0, brk], np.r_[brk, ids.size], strict=True):
            if b <= a:
                continue
            view = memoryview(buf[a:b]).cast("B")
            pos, got = self.layout.data_offset + int(s[a]) * tb, 0
            while got < len(view):
                k = os.preadv(fd, [view[got:]], pos + got)
                if k <= 0:
                    raise SeisError(f"file ends inside trace {int(s[a]) + got // tb} "
                                    "(truncated since it was indexed?)", self.path)
                got += k
        if np.array_equal(srt, np.arange(ids.size)):
            return buf[:, lo:hi] if (lo, hi) != (0, tb) else buf
        out = np.empty((ids.size, hi - lo), np.uint8)
        out[srt] = buf[:, lo:hi]
        return out

    # -- reading ------------------------------------------------------------------------------
    def raw(self, ids) -> np.ndarray:
        """Traces ``ids`` as they lie in the file (uint8, ``(len(ids), trace bytes)``: header
        then encoded samples), in the order of ``ids``; read in file order."""
        return self._rows(ids, 0, self.layout.trace_bytes)

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
        # past any rev 2 extensions
        raw = self._rows(ids, self.layout.header_bytes, self.layout.trace_bytes)
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
        return np.ascontiguousarray(self._rows(ids, 0, self.layout.header_bytes))

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

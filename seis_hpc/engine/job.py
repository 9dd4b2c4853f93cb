"""The description of one PSTM job, the same on every rank
(:func:`seis_hpc.engine.pstm_run.execute` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from seis_hpc.engine.decomposition import Plan, WorkUnit

if TYPE_CHECKING:
    from seis_hpc.io.shotpoint import ShotPoints


def to_runs(ids: np.ndarray) -> np.ndarray:
    """Trace numbers as runs of consecutive numbers: int64 ``(n_runs, 2)``, ``[start, stop)``.

    ``np.concatenate([np.arange(a, b) for a, b in runs])`` gives ``ids`` back, in their order.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        return np.zeros((0, 2), np.int64)
    brk = np.flatnonzero(np.diff(ids) != 1) + 1
    starts = ids[np.r_[0, brk]]
    stops = ids[np.r_[brk - 1, ids.size - 1]] + 1
    return np.column_stack([starts, stops])


def from_runs(runs: np.ndarray) -> np.ndarray:
    """The trace numbers of :func:`to_runs` runs (int64, in run order)."""
    runs = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
    if runs.size == 0:
        return np.zeros(0, np.int64)
    lengths = runs[:, 1] - runs[:, 0]
    # each run's start, then steps of one: a cumulative sum rebuilds every run at once
    steps = np.ones(int(lengths.sum()), np.int64)
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    steps[first] = runs[:, 0] - np.r_[0, runs[:-1, 1] - 1]
    return np.cumsum(steps)


class CompactUnit(WorkUnit):
    """A :class:`~seis_hpc.engine.decomposition.WorkUnit` whose traces are kept as runs of
    consecutive trace numbers (:func:`to_runs`) and rebuilt when the unit is run.

    The job broadcast to every rank holds every unit; with the traces as runs it costs
    16 bytes per run instead of 8 per trace (a unit of whole shot records, or a tile's
    traces in a file sorted by shot and channel, is a few runs), so a rank's memory does not
    grow with the traces of the units that other ranks take.
    """

    def __init__(self, unit: WorkUnit):  # noqa: D107 - not the dataclass's __init__
        self.uid, self.work, self.window = unit.uid, unit.work, unit.window
        self.offset_class = unit.offset_class
        self.runs = to_runs(unit.traces)
        self._n = int(len(unit.traces))

    @classmethod
    def of_runs(cls, uid: int, runs: np.ndarray, work: float,
                window: tuple[int, int, int, int], offset_class: int = -1) -> CompactUnit:
        """A unit made from its runs (:func:`to_runs`) directly, never listing its traces."""
        u = cls.__new__(cls)
        u.uid, u.work, u.window, u.offset_class = uid, work, window, offset_class
        u.runs = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
        u._n = int((u.runs[:, 1] - u.runs[:, 0]).sum())
        return u

    @property
    def traces(self) -> np.ndarray:  # type: ignore[override]
        """Trace numbers (0-based, file order), rebuilt from the runs."""
        return from_runs(self.runs)

    @property
    def n_traces(self) -> int:
        """Number of traces."""
        return self._n


def merge_runs(runs: np.ndarray) -> np.ndarray:
    """Runs in increasing order, not overlapping, with the runs that touch (one's stop is the
    next one's start) joined: ``to_runs(from_runs(runs))`` without listing the traces."""
    runs = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
    if len(runs) < 2:
        return runs
    new = np.r_[True, runs[1:, 0] != runs[:-1, 1]]
    starts = runs[new, 0]
    stops = runs[np.r_[np.flatnonzero(new)[1:] - 1, len(runs) - 1], 1]
    return np.column_stack([starts, stops])


def distinct_traces(units) -> int:
    """Traces that at least one of ``units`` (:class:`CompactUnit`) holds, from their runs
    (memory: the runs of every unit, not a flag per trace of the survey)."""
    runs = [u.runs for u in units if len(u.runs)]
    if not runs:
        return 0
    r = np.concatenate(runs)
    r = r[np.argsort(r[:, 0], kind="stable")]
    # a run starts a new stretch when it begins past every stop before it
    reach = np.maximum.accumulate(r[:, 1])
    new = np.r_[True, r[1:, 0] > reach[:-1]]
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(r) - 1]
    return int((reach[last] - r[first, 0]).sum())


def compact_plan(plan: Plan) -> Plan:
    """``plan`` with its units' traces held as runs (:class:`CompactUnit`), in place."""
    plan.units = [u if isinstance(u, CompactUnit) else CompactUnit(u) for u in plan.units]
    return plan


@dataclass
class PstmJob:
    """Everything a rank needs to run its share of a PSTM job (picklable, broadcast by rank 0).

    Attributes
    ----------
    plan : Plan
        Decomposition (strategy, units, grid, classes).
    time : numpy.ndarray
        Output two-way times (s).
    out : str
        Output HDF5 path.
    kernel_args : dict
        Keyword arguments of ``seis_hpc.migration.pstm`` (aperture, max_angle, ...).
    checkpoint_dir : str
        Checkpoint directory.
    phash : str
        Parameter hash (the checkpoint refuses another job's files).
    offset_edges : numpy.ndarray or None
        Offset-class edges (m) with gathers.
    pending : list of int
        Units still to do, in hand-out order (set by rank 0 after reading the checkpoint).
    partial_files : dict
        Shard mode: checkpoint partials to absorb, by file index.
    checkpoint_interval : float
        Seconds between flushes of the partial image (shard mode); 0 flushes after each unit.
    config : str
        The job's configuration text (written to the output).
    history : list of str
        History lines for the output.
    progress_period : float
        Seconds between plain progress lines.
    keep_checkpoint : bool
        Keep the checkpoint directory after success.
    parallel_hdf5 : {"auto", "on", "off"}
        Output writer: ``on`` every rank writes its share through parallel HDF5 (h5py built
        with MPI); ``off`` rank 0 assembles the file; ``auto`` parallel when h5py has MPI and
        there is more than one rank.
    index_path : str
        The trace index file the other ranks open (each reads only the rows of the units
        it takes); empty when the survey is only in memory.
    image_attrs : dict
        Further attributes of the output image (the input and velocity stamps, a trace
        selection: what ``seis-hpc image sum`` checks).
    n_input_traces : int
        Traces of the input survey.
    part_runs : numpy.ndarray or None
        A part of a job split by input traces: its trace numbers as runs
        (:func:`to_runs`), written to the image's ``part_traces`` data set.
    cache_traces : int
        Tile mode: traces each rank keeps after reading them (``TraceCache``), within
        the memory budget; 0 for none.
    traces_distinct : int
        Traces that some unit reads: the plan's trace reads over this give the reads per
        trace (1 in shard mode; tiles re-read the traces that reach several tiles).
    normalise : {"none", "reflector"}
        Amplitude scale of the output (:mod:`seis_hpc.engine.normalise`): ``reflector``
        divides the image (and each offset class) by the operator's flat-reflector response
        when it is written; ``none`` writes the plain sum over traces.
    rho_filter : bool
        Rho-filter the traces before migrating them (zero-phase reflector images; needed by
        ``reflector``).
    shotpoint : ShotPoints or None
        2D: the shot point of each CMP of the output grid
        (:func:`seis_hpc.io.shotpoint.line_shotpoints`), written to the image's
        ``shotpoint`` data set; None in 3D or when unknown.
    scratch : str or None
        Folder for each rank's temporary files, ideally node-local (``%n``: the node's name);
        None: the checkpoint folder (shared). The checkpoint is always in ``checkpoint_dir``.
    """

    plan: Plan
    time: np.ndarray
    out: str
    kernel_args: dict
    checkpoint_dir: str
    phash: str
    offset_edges: np.ndarray | None = None
    pending: list[int] = field(default_factory=list)
    partial_files: dict = field(default_factory=dict)
    checkpoint_interval: float = 120.0
    config: str = ""
    history: list[str] = field(default_factory=list)
    progress_period: float = 10.0
    keep_checkpoint: bool = False
    log_prefix: str = "pstm"
    parallel_hdf5: str = "auto"
    index_path: str = ""
    image_attrs: dict = field(default_factory=dict)
    n_input_traces: int = 0
    traces_distinct: int = 0
    cache_traces: int = 0
    part_runs: np.ndarray | None = None
    normalise: str = "none"
    rho_filter: bool = False
    shotpoint: ShotPoints | None = None
    scratch: str | None = None

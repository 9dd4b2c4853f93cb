"""The description of one PSTM job, the same on every rank
(:func:`seis_hpc.engine.pstm_run.execute` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seis_hpc.engine.decomposition import Plan


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
    scratch: str | None = None

"""The MPI engine: decomposition (plain objects), scheduling, checkpoints, execution.

Where it sits among the other packages: ``docs/architecture.md``.

Modules, one idea each:

* :mod:`~seis_hpc.engine.decomposition` - work units, tiles, the longest-first assigner, the
  planner; no MPI.
* :mod:`~seis_hpc.engine.schedule` - dynamic hand-out of units (RMA counter on rank 0).
* :mod:`~seis_hpc.engine.comm` - fail-fast errors, checked broadcasts, slab-wise reductions.
* :mod:`~seis_hpc.engine.checkpoint` - journal and partial results, restart.
* :mod:`~seis_hpc.engine.timers` - per-rank timings (the progress line: :mod:`seis_hpc.progress`).
* :mod:`~seis_hpc.engine.job` - :class:`~seis_hpc.engine.job.PstmJob`, what every rank runs.
* :mod:`~seis_hpc.engine.pstm_run` - running a planned PSTM job on every rank (compute and
  checkpointed results).
* :mod:`~seis_hpc.engine.outputs` - the job's image file (rank-0 assembly or parallel HDF5).
* :mod:`~seis_hpc.engine.gather_run` - the gathers of a SEG-Y/SU file and the driver that runs
  one flow step over them on every rank.
* :mod:`~seis_hpc.engine.faults` - the test hooks (injected failures and delays), in one
  place.
* :mod:`~seis_hpc.engine.memory_source` - traces in memory behind the trace-index interface.
"""

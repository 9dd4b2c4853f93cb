"""Test hooks: faults and delays that tests and job-script checks inject into a running job.

Production modules never read these environment variables themselves; they call one function
here per hook. The variables are read once, at the first call in a process, so the cost in a
run without them is a dictionary look-up.

=============================  ===============================================================
Variable                       Effect
=============================  ===============================================================
``SEIS_HPC_FAIL_UNIT=N``       PSTM: the rank that takes work unit N raises (:func:`before_unit`)
``SEIS_HPC_UNIT_DELAY=S``      PSTM: sleep S seconds after each unit, so that a test can stop
                               the job part-way (:func:`after_unit`)
``SEIS_HPC_FAIL_WRITE_RANK=R`` PSTM, parallel HDF5 writer: rank R raises while writing its
                               share of the output (:func:`before_parallel_write`)
``SEIS_HPC_FAIL_SETUP_RANK=R`` PSTM: rank R (not 0) cannot open its inputs after the plan was
                               broadcast (:func:`before_rank_setup`)
``SEIS_HPC_GATHER_DELAY=S``    Flow steps: sleep S seconds after writing each gather, so that a
                               test can interrupt a step while its temporary output exists
                               (:func:`after_gather`)
``SEIS_HPC_LAG_RANK=R:S``      Flow steps: rank R sleeps S seconds after it learns the shared
                               temporary's name, before it lists it (a rank that lags behind
                               rank 0; :func:`before_listing_shared`)
=============================  ===============================================================
"""

from __future__ import annotations

import os
import time
from functools import cache

FAIL_UNIT = "SEIS_HPC_FAIL_UNIT"
UNIT_DELAY = "SEIS_HPC_UNIT_DELAY"
FAIL_WRITE_RANK = "SEIS_HPC_FAIL_WRITE_RANK"
GATHER_DELAY = "SEIS_HPC_GATHER_DELAY"
FAIL_SETUP_RANK = "SEIS_HPC_FAIL_SETUP_RANK"
LAG_RANK = "SEIS_HPC_LAG_RANK"


@cache
def _settings() -> dict:
    """The hooks in force in this process (read from the environment once)."""
    env = os.environ
    return {
        "fail_unit": int(env.get(FAIL_UNIT, "-1") or -1),
        "unit_delay": float(env.get(UNIT_DELAY, "0") or 0),
        "fail_write_rank": env.get(FAIL_WRITE_RANK, ""),
        "gather_delay": float(env.get(GATHER_DELAY, "0") or 0),
        "fail_setup_rank": env.get(FAIL_SETUP_RANK, ""),
        "lag_rank": env.get(LAG_RANK, ""),
    }


def reload() -> None:
    """Read the environment again at the next call (for tests that change it in-process)."""
    _settings.cache_clear()


def before_unit(uid: int) -> None:
    """Raise when ``uid`` is the unit ``$SEIS_HPC_FAIL_UNIT`` names.

    Parameters
    ----------
    uid : int
        Work-unit number about to be computed.
    """
    if uid == _settings()["fail_unit"]:
        raise RuntimeError(f"unit {uid}: injected failure ({FAIL_UNIT}={uid})")


def after_unit() -> None:
    """Sleep ``$SEIS_HPC_UNIT_DELAY`` seconds (none by default) after a work unit."""
    delay = _settings()["unit_delay"]
    if delay:
        time.sleep(delay)


def before_parallel_write(rank: int) -> None:
    """Raise on the rank ``$SEIS_HPC_FAIL_WRITE_RANK`` names, before it writes its share.

    Parameters
    ----------
    rank : int
        This process's MPI rank.
    """
    if _settings()["fail_write_rank"] == str(rank):
        raise RuntimeError(f"injected failure while writing its share "
                           f"({FAIL_WRITE_RANK}={rank})")


def before_rank_setup(rank: int) -> None:
    """Raise an OSError on the rank ``$SEIS_HPC_FAIL_SETUP_RANK`` names, as if this node
    could not read the inputs that rank 0 checked.

    Parameters
    ----------
    rank : int
        This process's MPI rank.
    """
    if _settings()["fail_setup_rank"] == str(rank):
        raise OSError(5, f"injected read failure on rank {rank} ({FAIL_SETUP_RANK}={rank})")


def after_gather() -> None:
    """Sleep ``$SEIS_HPC_GATHER_DELAY`` seconds (none by default) after writing a gather."""
    delay = _settings()["gather_delay"]
    if delay:
        time.sleep(delay)


def before_listing_shared(rank: int) -> None:
    """Sleep on the rank ``$SEIS_HPC_LAG_RANK`` (``R:S``) names, for S seconds.

    Parameters
    ----------
    rank : int
        This process's MPI rank.
    """
    who, _, seconds = _settings()["lag_rank"].partition(":")
    if who == str(rank) and seconds:
        time.sleep(float(seconds))

"""seis_hpc: MPI-parallel seismic processing with Cython kernels.

The public API, importable from here (``from seis_hpc import Survey, pstm``):

* whole surveys, file to file (MPI-aware where the command is): :func:`migrate` (PSTM into
  an HDF5 image), :func:`migstack` (PSTM with RMO velocity updates), :func:`stack` (NMO
  stack), :func:`velan` (velocity analysis to a Vrms volume)
* surveys and grids: :class:`Survey`, :class:`BinGrid`
* migration: :func:`pstm`, :func:`kirchhoff_model`, :func:`dsr_traveltime`
* velocity: :func:`nmo_correct`, :func:`semblance`, :func:`open_vrms`, :func:`read_picks`,
  :func:`write_picks`
* images: :func:`write_volume`, :func:`read_volume`
* synthetic surveys: :func:`make_survey`, :func:`preset`, :func:`write_survey`
* errors: :class:`SeisError` (bad input; the CLI prints it as one line and exits 2)

The names load on first use (PEP 562), so ``import seis_hpc`` and ``seis-hpc --help`` import
neither NumPy nor the kernels. Where each module sits: ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it. Strings, not imports: nothing loads until a name is used,
# and the package's own modules may import seis_hpc (for __version__) without a cycle.
_API = {
    "migrate": "seis_hpc.migration.job",
    "migstack": "seis_hpc.velocity.mva",
    "stack": "seis_hpc.velocity.stack",
    "velan": "seis_hpc.velocity.analysis",
    "Survey": "seis_hpc.survey",
    "BinGrid": "seis_hpc.geometry",
    "pstm": "seis_hpc.migration.pstm",
    "kirchhoff_model": "seis_hpc.migration.pstm",
    "dsr_traveltime": "seis_hpc.migration.traveltime",
    "nmo_correct": "seis_hpc.velocity.nmo",
    "semblance": "seis_hpc.velocity.semblance",
    "open_vrms": "seis_hpc.velocity.model",
    "read_picks": "seis_hpc.velocity.picks",
    "write_picks": "seis_hpc.velocity.picks",
    "write_volume": "seis_hpc.io.volume",
    "read_volume": "seis_hpc.io.volume",
    "SeisError": "seis_hpc.errors",
    "make_survey": "seis_hpc.synth",
    "preset": "seis_hpc.synth",
    "write_survey": "seis_hpc.synth",
}

__all__ = list(_API)


def __getattr__(name: str):
    """Load a public name from its module on first access (then cached in this module)."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'seis_hpc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))

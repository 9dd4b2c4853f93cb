"""seis_hpc: MPI-parallel seismic processing with Cython kernels.

Modules are named after what a processor holds: ``survey`` (SEG-Y and its trace index),
``geometry`` (bin grids), ``gather``, ``velocity``, ``image`` (HDF5 volumes), ``migration``
(Kirchhoff PSTM and modelling), ``synth`` (built-in synthetic surveys), ``engine`` (MPI).
"""

__version__ = "0.1.0"

#!/usr/bin/env bash
# Install what the parallel-HDF5 test (tests/test_pstm_phdf5.py) needs, from Debian: h5py built
# against OpenMPI's parallel HDF5, with mpi4py, numpy and pytest for /usr/bin/python3, and
# OpenMPI's mpiexec. The .venv keeps its serial h5py wheel; only this test uses these.
exec "$(dirname -- "$0")/apt-ensure.sh" phdf5-setup "the parallel-HDF5 tests" \
    python3-h5py python3-h5py-mpi python3-mpi4py python3-numpy python3-pytest openmpi-bin

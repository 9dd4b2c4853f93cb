#!/usr/bin/env bash
# Install what the parallel-HDF5 test (tests/test_pstm_phdf5.py) needs, from Debian: h5py built
# against OpenMPI's parallel HDF5, with mpi4py, numpy and pytest for /usr/bin/python3, and
# OpenMPI's mpiexec. The .venv keeps its serial h5py wheel; only this test uses these.
# Idempotent: does nothing (and is fast) when they are installed; needs root and apt-get
# (Debian/Ubuntu), otherwise it says so and exits 0, and the parallel-HDF5 tests skip.
set -euo pipefail

PACKAGES=(python3-h5py python3-h5py-mpi python3-mpi4py python3-numpy python3-pytest openmpi-bin)
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "phdf5-setup: ${PACKAGES[*]} already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "phdf5-setup: need root and apt-get to install ${missing[*]}; the parallel-HDF5 tests will skip"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "phdf5-setup: installing ${missing[*]}"
# --no-install-recommends: no compilers, docs or MPI development headers; the test needs
# only the runtime. No repository reachable: say so and leave it to the tests to skip.
if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null; then
    echo "phdf5-setup: installed ${missing[*]}"
else
    echo "phdf5-setup: could not install ${missing[*]}; the parallel-HDF5 tests will skip"
fi

# seis_hpc: the two commands of the README are `make demo` and `make test`.
# Everything they need is installed here into .venv, so a fresh clone (and CI) behaves like
# a developer's machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.seis_hpc-installed
MPIEXEC ?= $(BIN)/mpiexec
DEMO   ?= demo_out
PYTEST := $(BIN)/python -m pytest
# One thread per MPI rank in tests, so `-n 2` on 2 cores does not oversubscribe.
export OMP_NUM_THREADS ?= 1

.PHONY: all install build demo test test-serial test-mpi test-slurm test-phdf5 bench lint clean

all: install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Build dependencies first, then the package without build isolation: rebuilding after a
# kernel edit then takes seconds, not a fresh download of the build environment.
$(STAMP): $(BIN)/python pyproject.toml setup.py $(wildcard kernels/*.pyx kernels/*.pxd)
	$(BIN)/python -m pip install -q "setuptools>=64" wheel "Cython>=3.0" "numpy>=1.24"
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[dev,mpich]"
	touch $@

install: $(STAMP)

# In-place rebuild of the kernels only (after editing kernels/*.pyx).
build: $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace

demo: install
	OMP_NUM_THREADS=1 $(BIN)/python -m seis_hpc.demo --out "$(DEMO)" --mpiexec "$(MPIEXEC)"

test: install test-serial test-mpi test-slurm test-phdf5

# pytest-xdist: one worker per core (at most 4), whole files per worker so that a module's
# fixtures (synthetic surveys) are made once.
XDIST ?= -n auto --maxprocesses 4 --dist loadfile
test-serial: install
	$(PYTEST) -q $(XDIST) -m "not mpi and not slurm" tests

# pytest-mpi runs the tests marked `mpi` only with --with-mpi; a failure on one rank aborts
# all of them (tests/conftest.py), so a broken collective cannot hang CI.
test-mpi: install
	$(MPIEXEC) -n 1 $(PYTEST) -q --with-mpi -m mpi -p no:cacheprovider tests
	$(MPIEXEC) -n 2 $(PYTEST) -q --with-mpi -m mpi -p no:cacheprovider tests
	$(MPIEXEC) -n 3 $(PYTEST) -q --with-mpi -m mpi -p no:cacheprovider tests

# A real SLURM: a single-node cluster (tests/test_slurm_cluster.py) and a two-node one on this
# host (tests/test_slurm_twonode.py: two slurmd, loopback only). Install Debian's slurm-wlm
# packages when root and apt-get are there (fast when already installed); the tests skip
# otherwise, and fail in CI (CI=true) when a cluster cannot start.
test-slurm: install
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then .ci/slurm-setup.sh; fi
	$(PYTEST) -q -m slurm tests

# The parallel-HDF5 writer (tests/test_pstm_phdf5.py): the .venv's h5py wheel is serial, so
# install Debian's MPI h5py for /usr/bin/python3 when root and apt-get are there
# (.ci/phdf5-setup.sh, fast when already installed) and run the test with that Python under
# OpenMPI's mpiexec -n 2 and -n 3; the kernels built in place import there via PYTHONPATH.
# Without such a Python it says so and does nothing (the tests skip in the .venv runs); in CI
# (CI=true) it fails instead, as do the SLURM tests and those needing ../shared/data/external.
PHDF5_PYTHON  ?= /usr/bin/python3
PHDF5_MPIEXEC ?= /usr/bin/mpiexec.openmpi --allow-run-as-root --oversubscribe
# Shared-memory copies by ptrace are often forbidden in containers; plain copies work anywhere.
PHDF5_ENV := PYTHONPATH="$(CURDIR)" OMPI_MCA_btl_vader_single_copy_mechanism=none \
	SEIS_HPC_PHDF5_MPIEXEC="$(PHDF5_MPIEXEC)"
PHDF5_PYTEST := $(PHDF5_PYTHON) -m pytest -q -p no:cacheprovider tests/test_pstm_phdf5.py
test-phdf5: install
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then .ci/phdf5-setup.sh; fi
	@if $(PHDF5_ENV) timeout 60 $(PHDF5_MPIEXEC) -n 1 $(PHDF5_PYTHON) -c \
		'import sys, h5py; sys.exit(not h5py.get_config().mpi)' >/dev/null 2>&1; then \
		set -e; \
		$(PHDF5_ENV) timeout 300 $(PHDF5_MPIEXEC) -n 2 $(PHDF5_PYTEST) -m mpi; \
		$(PHDF5_ENV) timeout 300 $(PHDF5_MPIEXEC) -n 3 $(PHDF5_PYTEST) -m mpi; \
		$(PHDF5_ENV) timeout 300 $(PHDF5_PYTEST) -k failure_while_writing; \
	elif [ "$$CI" = true ]; then \
		echo "test-phdf5: no MPI h5py for $(PHDF5_PYTHON) under $(PHDF5_MPIEXEC); CI=true: failed" >&2; \
		exit 1; \
	else \
		echo "test-phdf5: no MPI h5py for $(PHDF5_PYTHON) under $(PHDF5_MPIEXEC); skipped"; \
	fi

bench: install
	$(BIN)/python benchmarks/bench_kernels.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_nmo.py

lint: install
	$(BIN)/ruff check seis_hpc tests benchmarks setup.py

clean:
	rm -rf build *.egg-info seis_hpc/kernels/*.so kernels/*.c $(DEMO)

"""``seis-hpc version``: software version and the build of the kernels."""

HELP = "print the version, the kernels' build (OpenMP) and the MPI library"
DESCRIPTION = """Print the seis_hpc version, whether the kernels use OpenMP and how many threads
they get, and which MPI library mpi4py is linked to."""
NEEDS_ARGS = False


def add_arguments(parser) -> None:
    """No parameters."""


def run(args) -> int:
    from seis_hpc import __version__
    from seis_hpc.kernels import openmp

    print(f"seis_hpc {__version__}")
    print(f"kernels: OpenMP {'on' if openmp.have_openmp() else 'off'}, "
          f"{openmp.max_threads()} thread(s)")
    try:
        from mpi4py import MPI

        print(f"MPI: {MPI.Get_library_version().splitlines()[0].strip()}")
    except ImportError:
        print("MPI: mpi4py not installed")
    return 0

"""Report and set the OpenMP threads the kernels use (1 when built without OpenMP)."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int seis_max_threads(void) { return omp_get_max_threads(); }
    static void seis_set_threads(int n) { omp_set_num_threads(n); }
    static int seis_have_openmp(void) { return 1; }
    #else
    static int seis_max_threads(void) { return 1; }
    static void seis_set_threads(int n) { (void)n; }
    static int seis_have_openmp(void) { return 0; }
    #endif
    """
    int seis_max_threads() nogil
    void seis_set_threads(int n) nogil
    int seis_have_openmp() nogil


def max_threads() -> int:
    """Number of OpenMP threads a ``prange`` loop would use now."""
    return seis_max_threads()


def set_threads(int n) -> None:
    """Set the OpenMP thread count for later ``prange`` loops (``n >= 1``)."""
    if n < 1:
        raise ValueError("thread count must be >= 1")
    seis_set_threads(n)


def have_openmp() -> bool:
    """True when the kernels were compiled with OpenMP."""
    return bool(seis_have_openmp())

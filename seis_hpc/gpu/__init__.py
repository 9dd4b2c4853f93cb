"""GPU backend of the PSTM kernels (``backend="gpu"``): CUDA kernels run through CuPy.

* ``kernels.cu``: the kernels (migration, its modelling adjoint, the bare loop of the
  benchmark), float32 arithmetic arranged to keep the precision of the Cython kernels.
* :mod:`seis_hpc.gpu.runtime`: CuPy/NVRTC on a GPU, or a CPU emulator of the same source
  (``SEIS_HPC_GPU_EMULATE=1``) so that the kernels are tested where there is no GPU.
* :mod:`seis_hpc.gpu.pstm`: host preparation, batching of traces and launches.

CuPy is optional: the package imports and every CPU path works without it.
"""

from seis_hpc.gpu.runtime import EMULATE_ENV, available, get_runtime

__all__ = ["EMULATE_ENV", "available", "get_runtime"]

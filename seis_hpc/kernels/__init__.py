"""Compiled Cython kernels (built from ``kernels/*.pyx``); call them through the public modules."""

"""Kirchhoff prestack time migration: the validating entry point (:mod:`.pstm`), DSR traveltimes
(:mod:`.traveltime`), the anti-alias integral (:mod:`.antialias`) and the NumPy twin of the
kernels (:mod:`.reference`, the ``backend="numpy"`` and the tests' yardstick).
"""

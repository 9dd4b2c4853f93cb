"""QC pictures: plot primitives (:mod:`.figures`) and the standard sets for a survey, a volume or a
before/after pair (:mod:`.pictures`).
"""

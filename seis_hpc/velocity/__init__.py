"""Velocities: the Vrms model a job reads (:mod:`.model`), picks and Dix (:mod:`.picks`), the field
built from picks (:mod:`.field`), velocity analysis (:mod:`.velan`, :mod:`.semblance`), NMO and
the NMO stack (:mod:`.nmo`, :mod:`.stack`) and residual moveout (:mod:`.rmo`).
"""

"""Running on a cluster: job configuration and SLURM script rendering (:mod:`.slurm`).
"""

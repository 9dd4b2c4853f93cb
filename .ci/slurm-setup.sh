#!/usr/bin/env bash
# Install what tests/test_slurm_cluster.py needs to run a single-node SLURM: the controller,
# the node daemon, the client commands (sbatch, scontrol, ...) and munge. The tests start
# their own daemons from a generated slurm.conf; nothing else (mail, accounting) is needed.
exec "$(dirname -- "$0")/apt-ensure.sh" slurm-setup "the slurm tests" \
    slurmctld slurmd slurm-client munge

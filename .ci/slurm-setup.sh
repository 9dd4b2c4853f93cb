#!/usr/bin/env bash
# Install what tests/test_slurm_cluster.py and tests/test_slurm_twonode.py need to run a
# single-node and a two-node SLURM on this host: the controller, the node daemon, the client
# commands (sbatch, scontrol, ...) and munge (unshare, for the nodes' own host names, is in
# util-linux). The tests start their own daemons from a generated slurm.conf; nothing else
# (mail, accounting) is needed.
exec "$(dirname -- "$0")/apt-ensure.sh" slurm-setup "the slurm tests" \
    slurmctld slurmd slurm-client munge

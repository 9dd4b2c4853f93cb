#!/usr/bin/env bash
# Install what tests/test_slurm_cluster.py needs to run a single-node SLURM: the controller,
# the node daemon, the client commands (sbatch, scontrol, ...) and munge.
# Idempotent: does nothing (and is fast) when they are installed; needs root and apt-get
# (Debian/Ubuntu), otherwise it says so and exits 0, and the `slurm` tests skip.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "slurm-setup: ${PACKAGES[*]} already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "slurm-setup: need root and apt-get to install ${missing[*]}; the slurm tests will skip"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "slurm-setup: installing ${missing[*]}"
# --no-install-recommends: the tests start their own daemons from a generated slurm.conf;
# nothing else (mail, docs, accounting database) is needed. No repository reachable: say
# so and leave it to the tests to skip.
if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null; then
    echo "slurm-setup: installed ${missing[*]}"
else
    echo "slurm-setup: could not install ${missing[*]}; the slurm tests will skip"
fi

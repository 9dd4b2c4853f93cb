#!/bin/bash
#SBATCH --job-name=pstm_2d
#SBATCH --nodes=1
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --output=pstm_2d-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
# 2D Kirchhoff PSTM of a line into an HDF5 section, plus QC pictures.
#
#   sbatch jobs/pstm_2d.sh [options] [-- seis-hpc pstm options]
#   bash jobs/pstm_2d.sh [options] [-- seis-hpc pstm options]      (no SLURM: mpiexec -n <cores>)
#
# Options (each also an environment variable; the option wins):
#   --input F.sgy      SEIS_HPC_INPUT      line (default: the built-in synthetic line)
#   --velocity V       SEIS_HPC_VELOCITY   vrms: HDF5 volume or time_s,vrms_mps CSV (m/s)
#   --out DIR          SEIS_HPC_OUT        output folder (default pstm_2d_out): image.h5, qc/
#   --preset NAME      SEIS_HPC_PRESET     synthetic preset without --input (marine2d)
#   --aperture M       SEIS_HPC_APERTURE   migration aperture (m; default 1000)
#   --max-angle DEG    SEIS_HPC_MAX_ANGLE  max emergence angle (degrees; default 60)
#   --tmax S           SEIS_HPC_TMAX       last output time (s; default the input's)
#   --ranks N          SEIS_HPC_RANKS      MPI ranks without SLURM (default: the cores)
#   --scratch DIR      SEIS_HPC_SCRATCH    node-local folder for each rank's temporary files
#                                          (%n: the node's name; default: beside the
#                                          checkpoint); the checkpoint stays in OUT (shared)
#   --qc 0|1           SEIS_HPC_QC         QC pictures and the diffractor check (default 1)
#   --backend B        SEIS_HPC_BACKEND    PSTM kernel: cython (CPU, default) or gpu (one
#                                          GPU per rank, CuPy; docs/cluster.md "GPU nodes")
# and the installation and launcher settings described in jobs/lib.sh (SEIS_HPC_VENV, ...).
#
# On SIGUSR1 (120 s before the time limit) every rank checkpoints and the job requeues
# itself; the next run resumes from OUT/image.h5.ckpt. Without SLURM, run it again to resume.
set -euo pipefail

# sbatch runs a copy of this script: find jobs/lib.sh beside it, in SEIS_HPC_ROOT, in the
# submit folder, or beside the script SLURM was given (scontrol's Command=, arguments cut).
_seis_lib() {
    local d c
    for d in "${SEIS_HPC_ROOT:-}" "$(dirname -- "${BASH_SOURCE[0]}")/.." "${SLURM_SUBMIT_DIR:-}"; do
        if [ -n "$d" ] && [ -f "$d/jobs/lib.sh" ]; then printf '%s\n' "$d/jobs/lib.sh"; return; fi
    done
    c=$(scontrol show job "${SLURM_JOB_ID:-none}" 2>/dev/null | sed -n 's/^ *Command=//p') || true
    while [ -n "$c" ] && [ ! -f "$c" ]; do case $c in *" "*) c=${c% *} ;; *) c= ;; esac; done
    if [ -n "$c" ] && [ -f "$(dirname -- "$c")/lib.sh" ]; then
        printf '%s\n' "$(dirname -- "$c")/lib.sh"; return
    fi
    echo "cannot find jobs/lib.sh: set SEIS_HPC_ROOT to the seis_hpc checkout" >&2
    return 1
}
_lib=$(_seis_lib)
# shellcheck source=jobs/lib.sh
. "$_lib"

seis_init pstm_2d
SEIS_HPC_OUT=${SEIS_HPC_OUT:-pstm_2d_out}
SEIS_HPC_PRESET=${SEIS_HPC_PRESET:-marine2d}
SEIS_HPC_APERTURE=${SEIS_HPC_APERTURE-1000}
SEIS_HPC_MAX_ANGLE=${SEIS_HPC_MAX_ANGLE:-60}
seis_pstm_main "$@"

#!/bin/bash
#SBATCH --job-name=velan
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --time=02:00:00
#SBATCH --output=velan-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
# Velocity analysis of CMP gathers: semblance, automatic picks, smooth Vrms field (HDF5),
# picks table and SU par file, QC pictures of the field.
#
#   sbatch jobs/velan.sh [options] [-- seis-hpc velan options]
#   bash jobs/velan.sh [options] [-- seis-hpc velan options]
#
# Options (each also an environment variable; the option wins):
#   --input F.sgy      SEIS_HPC_INPUT      CMP-sortable prestack data (default: the built-in
#                                          synthetic 2D line)
#   --out DIR          SEIS_HPC_OUT        output folder (default velan_out): velocity.h5,
#                                          picks.toml, vnmo.par, qc/
#   --preset NAME      SEIS_HPC_PRESET     synthetic preset without --input (marine2d)
#   --every N          SEIS_HPC_EVERY      analysis every N CMPs (default 20)
#   --reference CSV    SEIS_HPC_REFERENCE  guide function time_s,vrms_mps (optional; with
#                                          the synthetic survey its true velocity.csv is not
#                                          used, the picks are blind)
# and the installation settings described in jobs/lib.sh (SEIS_HPC_VENV, ...). One task;
# its OpenMP threads are the job's --cpus-per-task. A step whose output exists is not rerun
# (a requeued job goes on where it stopped): delete OUT to start over.
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

seis_init velan
SEIS_HPC_OUT=${SEIS_HPC_OUT:-velan_out}
SEIS_HPC_PRESET=${SEIS_HPC_PRESET:-marine2d}
SEIS_HPC_EVERY=${SEIS_HPC_EVERY:-20}
SEIS_HPC_REFERENCE=${SEIS_HPC_REFERENCE:-}
seis_options input=SEIS_HPC_INPUT out=SEIS_HPC_OUT preset=SEIS_HPC_PRESET \
    every=SEIS_HPC_EVERY reference=SEIS_HPC_REFERENCE
seis_parse "$@"
SEIS_HPC_LAUNCHER=none seis_launcher
seis_banner
out=$SEIS_HPC_OUT
input=${SEIS_HPC_INPUT:-}
mkdir -p -- "$out"
if [ -z "$input" ]; then
    seis_synth "$SEIS_HPC_PRESET" "$out/survey"
    input=$out/survey/shots.sgy
fi
args=("$input" --out "$out/velocity.h5" --picks "$out/picks.toml" --su-table "$out/vnmo.par"
      --every "$SEIS_HPC_EVERY")
[ -z "$SEIS_HPC_REFERENCE" ] || args+=(--reference "$SEIS_HPC_REFERENCE")
seis_step "${SEIS[@]}" index "$input"
seis_unless "$out/velocity.h5" "${SEIS[@]}" velan "${args[@]}" "${SEIS_EXTRA[@]}"
seis_step "${SEIS[@]}" qc "$out/velocity.h5" --out "$out/qc"
seis_log "done: $out/velocity.h5, $out/picks.toml, $out/vnmo.par, pictures in $out/qc"

#!/bin/bash
#SBATCH --job-name=process_2d
#SBATCH --nodes=1
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --output=process_2d-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
# The whole 2D flow, raw SEG-Y to both deliverable stacks: conditioning (a seis-hpc run flow
# file: editing, swell noise, SRME, bandpass, ...; MPI), index, velocity analysis (automatic
# picks -> Vrms field), NMO stack (the stack before migration), PSTM stack with
# residual-moveout velocity updates (the stack after migration, MPI), QC pictures, and the
# processing report when the steps recorded a run log.
#
#   sbatch jobs/process_2d.sh [options]
#   bash jobs/process_2d.sh [options]                 (no SLURM: mpiexec -n <cores>)
#
# Options (each also an environment variable; the option wins):
#   --input F.sgy      SEIS_HPC_INPUT      raw 2D line (default: the built-in synthetic line,
#                                          with swell noise, spikes and dead traces)
#   --out DIR          SEIS_HPC_OUT        output folder (default process_2d_out)
#   --preset NAME      SEIS_HPC_PRESET     synthetic preset without --input (marine2d)
#   --flow FLOW.toml   SEIS_HPC_FLOW       conditioning flow (default: the packaged example,
#                                          seis-hpc example marine2d; "none": no conditioning). Its steps
#                                          run on --input; its own input/output are replaced.
#   --every N          SEIS_HPC_EVERY      velocity analysis every N CMPs (default 20)
#   --reference CSV    SEIS_HPC_REFERENCE  velan guide function time_s,vrms_mps (optional)
#   --iterations N     SEIS_HPC_ITERATIONS RMO velocity updates of the PSTM stack (default 1)
#   --aperture M       SEIS_HPC_APERTURE   migration aperture (m; default 1000)
#   --tmax S           SEIS_HPC_TMAX       last output time of the PSTM stack (s; optional)
#   --ranks N          SEIS_HPC_RANKS      MPI ranks without SLURM (default: the cores)
#   --qc 0|1           SEIS_HPC_QC         QC pictures of the stacks and velocity (default 1)
# and the installation and launcher settings described in jobs/lib.sh (SEIS_HPC_VENV, ...).
#
# Deliverables in OUT: conditioned.sgy, nmo_stack.h5 + nmo_stack.sgy, pstm_stack.h5 + pstm_stack.sgy,
# velocity.h5 (picked), velocity_final.h5 (after RMO), picks.toml, qc/, report.html.
# A step whose output exists is not rerun, so a requeued job (SIGUSR1 before the time limit)
# goes on where it stopped: delete OUT to start over.
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

seis_init process_2d
SEIS_HPC_OUT=${SEIS_HPC_OUT:-process_2d_out}
SEIS_HPC_PRESET=${SEIS_HPC_PRESET:-marine2d}
SEIS_HPC_EVERY=${SEIS_HPC_EVERY:-20}
SEIS_HPC_REFERENCE=${SEIS_HPC_REFERENCE:-}
SEIS_HPC_ITERATIONS=${SEIS_HPC_ITERATIONS:-1}
SEIS_HPC_APERTURE=${SEIS_HPC_APERTURE:-1000}
SEIS_HPC_TMAX=${SEIS_HPC_TMAX:-}
SEIS_HPC_FLOW=${SEIS_HPC_FLOW:-}
seis_options input=SEIS_HPC_INPUT out=SEIS_HPC_OUT preset=SEIS_HPC_PRESET flow=SEIS_HPC_FLOW \
    every=SEIS_HPC_EVERY reference=SEIS_HPC_REFERENCE iterations=SEIS_HPC_ITERATIONS \
    aperture=SEIS_HPC_APERTURE tmax=SEIS_HPC_TMAX ranks=SEIS_HPC_RANKS qc=SEIS_HPC_QC
seis_parse "$@"
case ${SEIS_HPC_QC:-1} in
    0|1) ;;
    *) seis_die "--qc must be 1 (pictures) or 0 (none) (got $SEIS_HPC_QC)" ;;
esac
seis_launcher
seis_banner
out=$SEIS_HPC_OUT
input=${SEIS_HPC_INPUT:-}
mkdir -p -- "$out"
# Steps that keep a run record append to it; the report is built from it.
export SEIS_HPC_RUNDIR=$out
if [ -z "$input" ]; then
    # With the damage the default conditioning flow is there to repair.
    seis_synth "$SEIS_HPC_PRESET" "$out/survey" --swell 5 --spikes 20 --dead 10
    input=$out/survey/shots.sgy
fi
for c in velan stack migstack qc; do
    seis_has_command "$c" || seis_die "this seis_hpc has no 'seis-hpc $c' step"
done

if [ "$SEIS_HPC_FLOW" != none ]; then
    seis_has_command run || seis_die "this seis_hpc has no 'seis-hpc run' (use --flow none)"
    if [ -z "$SEIS_HPC_FLOW" ]; then
        # The example flow shipped in the package: works from a wheel install as from a checkout.
        mkdir -p -- "$out/work"
        SEIS_HPC_FLOW=$out/work/marine2d.example.toml
        [ -f "$SEIS_HPC_FLOW" ] || seis_step "${SEIS[@]}" example marine2d --out "$SEIS_HPC_FLOW"
    fi
    [ -f "$SEIS_HPC_FLOW" ] || [ "${SEIS_HPC_DRY_RUN:-0}" = 1 ] \
        || seis_die "no flow file $SEIS_HPC_FLOW"
    if [ -f "$out/conditioned.sgy" ]; then
        seis_log "conditioned.sgy exists: skipping the conditioning flow"
    else
        mkdir -p -- "$out/work"
        seis_step seis_flow_copy "$SEIS_HPC_FLOW" "$input" "$out/conditioned.sgy" "$out/work" \
            "$out/flow.toml"
        seis_step "${SEIS[@]}" run --check "$out/flow.toml"
        seis_parallel "${SEIS[@]}" run "$out/flow.toml"
    fi
    input=$out/conditioned.sgy
fi
seis_step "${SEIS[@]}" index "$input"

velan=("$input" --out "$out/velocity.h5" --picks "$out/picks.toml" --every "$SEIS_HPC_EVERY")
[ -z "$SEIS_HPC_REFERENCE" ] || velan+=(--reference "$SEIS_HPC_REFERENCE")
seis_unless "$out/velocity.h5" "${SEIS[@]}" velan "${velan[@]}"

seis_unless "$out/nmo_stack.h5" "${SEIS[@]}" stack "$input" --velocity "$out/velocity.h5" \
    --out "$out/nmo_stack.h5" --segy "$out/nmo_stack.sgy"

mig=("$input" --velocity "$out/velocity.h5" --out "$out/pstm_stack.h5"
     --segy "$out/pstm_stack.sgy" --velocity-out "$out/velocity_final.h5"
     --iterations "$SEIS_HPC_ITERATIONS" --aperture "$SEIS_HPC_APERTURE")
[ -z "$SEIS_HPC_TMAX" ] || mig+=(--tmax "$SEIS_HPC_TMAX")
if [ -f "$out/pstm_stack.h5" ]; then
    seis_log "pstm_stack.h5 exists: skipping migstack"
else
    seis_parallel "${SEIS[@]}" migstack "${mig[@]}"
fi

if [ "${SEIS_HPC_QC:-1}" = 1 ]; then
    for f in nmo_stack.h5 pstm_stack.h5 velocity_final.h5; do
        seis_step "${SEIS[@]}" qc "$out/$f" --out "$out/qc"
    done
fi
if seis_has_command report && [ -f "$out/steps.jsonl" ]; then
    seis_step "${SEIS[@]}" report "$out"
else
    seis_log "no run record in $out (steps.jsonl): no report"
fi
seis_log "done: $out/nmo_stack.sgy, $out/pstm_stack.sgy, pictures in $out/qc"

#!/bin/bash
#SBATCH --job-name=bench
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=1
#SBATCH --exclusive
#SBATCH --time=00:30:00
#SBATCH --output=bench-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
# Benchmarks: PSTM kernel throughput (seis-hpc bench) and the engine's strong and weak
# scaling table (benchmarks/bench_scaling.py) on the ranks of this job.
#
#   sbatch jobs/bench.sh [options]          (--ntasks sets the largest rank count)
#   bash jobs/bench.sh [options]            (no SLURM: up to the number of cores)
#
# Options (each also an environment variable; the option wins):
#   --out DIR          SEIS_HPC_OUT        output folder (default bench_out): kernels.txt,
#                                          kernels.json, scaling.txt
#   --repeat N         SEIS_HPC_REPEAT     runs per kernel variant, best kept (default 3)
#   --ranks LIST       SEIS_HPC_BENCH_RANKS  rank counts of the scaling table (default 1,2,4,..
#                                          up to the job's tasks or the cores)
#   --scale F          SEIS_HPC_SCALE      problem size factor of the scaling runs (default 1)
# and the installation settings described in jobs/lib.sh (SEIS_HPC_VENV, ...). The scaling
# runs start their own mpiexec inside the allocation.
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

seis_init bench
SEIS_HPC_OUT=${SEIS_HPC_OUT:-bench_out}
SEIS_HPC_REPEAT=${SEIS_HPC_REPEAT:-3}
SEIS_HPC_SCALE=${SEIS_HPC_SCALE:-1}
SEIS_HPC_BENCH_RANKS=${SEIS_HPC_BENCH_RANKS:-}
seis_options out=SEIS_HPC_OUT repeat=SEIS_HPC_REPEAT ranks=SEIS_HPC_BENCH_RANKS \
    scale=SEIS_HPC_SCALE
seis_parse "$@"
seis_launcher
seis_banner
if [ -z "$SEIS_HPC_BENCH_RANKS" ]; then
    # 1, 2, 4, ... up to the ranks this job may use, and that count itself.
    n=1
    SEIS_HPC_BENCH_RANKS=1
    while [ $((n * 2)) -le "$SEIS_RANKS" ]; do n=$((n * 2)); SEIS_HPC_BENCH_RANKS+=",$n"; done
    [ "$n" -eq "$SEIS_RANKS" ] || SEIS_HPC_BENCH_RANKS+=",$SEIS_RANKS"
fi
out=$SEIS_HPC_OUT
mkdir -p -- "$out"
scaling=$SEIS_ROOT/benchmarks/bench_scaling.py
[ -f "$scaling" ] || seis_die "benchmarks/bench_scaling.py not found in $SEIS_ROOT (needs the source checkout)"
# The kernels on one rank: one thread, then the figures as JSON for scripts.
OMP_NUM_THREADS=1 seis_tee "$out/kernels.txt" "${SEIS[@]}" bench --repeat "$SEIS_HPC_REPEAT"
OMP_NUM_THREADS=1 seis_tee "$out/kernels.json" "${SEIS[@]}" bench --repeat 1 --json
OMP_NUM_THREADS=1 seis_tee "$out/scaling.txt" "${SEIS_PY[@]}" "$scaling" \
    --ranks "$SEIS_HPC_BENCH_RANKS" --scale "$SEIS_HPC_SCALE"
seis_log "done: $out/kernels.txt, $out/kernels.json, $out/scaling.txt"

# shellcheck shell=bash
# Shared functions of the seis_hpc job scripts (jobs/*.sh); sourced, never run.
#
# One place for: finding the installation (venv or seis-hpc on PATH), choosing the launcher
# (srun inside a SLURM allocation, else mpiexec -n <cores>, else one process), parsing the
# scripts' options (--name VALUE, each also an environment variable), running a parallel step
# that checkpoints on SIGUSR1/SIGTERM and requeues itself under SLURM, and QC pictures.
#
# Quoting rule: every path and value stays in one shell word from the command line or the
# environment to the program's argv: arrays and "$@" only, no eval, no unquoted expansion,
# no value ever pasted into a command string. A path with spaces, quotes, ';' or '$(...)'
# is just a path.
#
# Environment (all optional):
#   SEIS_HPC_ROOT       the seis_hpc checkout (default: the folder above jobs/); in a script
#                       rendered from an installed wheel, the package's data folder
#                       (seis_hpc/cluster/data, which holds this file as jobs/lib.sh)
#   SEIS_HPC_VENV       its virtual environment (default $SEIS_HPC_ROOT/.venv); if it has no
#                       bin/python, `seis-hpc` on PATH is used
#   SEIS_HPC_LAUNCHER   auto (default) | srun | mpiexec | none
#   SEIS_HPC_MPIEXEC    mpiexec to use (default: the venv's, else the one on PATH)
#   SEIS_HPC_SRUN_MPI   srun --mpi= plugin (default pmi2, right for the MPICH wheel; empty:
#                       the cluster's MpiDefault)
#   SEIS_HPC_RANKS      MPI ranks without SLURM (default: the number of cores)
#   SEIS_HPC_REQUEUE    1 (default): requeue the job after a checkpoint on SIGUSR1
#   SEIS_HPC_DRY_RUN    1: print each command (shell-quoted) instead of running it
#   SEIS_HPC_BACKEND    PSTM kernel: cython (default) | gpu (one GPU per rank; request the
#                       GPUs yourself, e.g. sbatch --gpus-per-task=1)
#   OMP_NUM_THREADS     threads per rank (default: SLURM_CPUS_PER_TASK, else 1)

# Exit status of a step stopped by a signal after a clean checkpoint (seis_hpc.engine.comm).
SEIS_EXIT_CHECKPOINTED=75

seis_log() {
    printf '%s %s: %s\n' "$(date +%H:%M:%S)" "${SEIS_JOB:-job}" "$*" >&2
}

seis_die() {
    printf '%s: error: %s\n' "${SEIS_JOB:-job}" "$*" >&2
    exit 2
}

# seis_usage: the script's header comment (lines starting with '# '), without #SBATCH lines.
seis_usage() {
    sed -n '2,/^[^#]/{/^#SBATCH/d;/^# \{0,1\}/{s/^# \{0,1\}//;p}}' "$0"
}

# --- options ----------------------------------------------------------------------------------
# seis_options NAME=VAR ...   declares --NAME VALUE options, each stored in the variable VAR
# (whose value from the environment is the default). seis_parse "$@" then sets them; what
# follows "--" is kept in the array SEIS_EXTRA (passed to the main command unchanged).
SEIS_OPTS=()
SEIS_EXTRA=()

seis_options() {
    SEIS_OPTS+=("$@")
}

seis_parse() {
    local arg spec name var found
    while [ "$#" -gt 0 ]; do
        arg=$1
        shift
        case $arg in
            -h|--help) seis_usage; exit 0 ;;
            --) SEIS_EXTRA=("$@"); return 0 ;;
        esac
        found=
        for spec in "${SEIS_OPTS[@]}"; do
            name=${spec%%=*}
            var=${spec#*=}
            case $arg in
                "--$name")
                    [ "$#" -gt 0 ] || seis_die "option --$name needs a value"
                    printf -v "$var" '%s' "$1"
                    shift
                    found=1
                    break ;;
                "--$name="*)
                    printf -v "$var" '%s' "${arg#*=}"
                    found=1
                    break ;;
            esac
        done
        [ -n "$found" ] || seis_die "unknown argument: $arg (try --help)"
    done
}

# --- installation -------------------------------------------------------------------------------
# seis_init JOBNAME: sets SEIS_ROOT, SEIS (the seis-hpc command as an array), SEIS_PY (python).
seis_init() {
    SEIS_JOB=$1
    local here
    here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
    SEIS_ROOT=${SEIS_HPC_ROOT:-$(dirname -- "$here")}
    local venv=${SEIS_HPC_VENV:-$SEIS_ROOT/.venv}
    if [ -x "$venv/bin/python" ]; then
        SEIS_PY=("$venv/bin/python")
        SEIS=("$venv/bin/python" -m seis_hpc)
        SEIS_VENV=$venv
    elif command -v seis-hpc >/dev/null 2>&1; then
        local exe first
        exe=$(command -v seis-hpc)
        # The interpreter seis-hpc was installed with (its #! line) runs the QC snippets.
        IFS= read -r first < "$exe" || true
        first=${first#\#!}
        if [ -x "$first" ]; then SEIS_PY=("$first"); else SEIS_PY=(python3); fi
        SEIS=("$exe")
        SEIS_VENV=
    else
        seis_die "no seis_hpc installation: neither $venv/bin/python nor seis-hpc on PATH (set SEIS_HPC_VENV)"
    fi
    # Outside a parallel step SIGUSR1 (the warning before the time limit) must not kill the
    # job script: say so and go on; only the parallel steps can checkpoint.
    trap '_seis_late USR1' USR1
    # One OpenMP thread per rank unless SLURM gave each task several CPUs.
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
}

# seis_has_command NAME: true if this installation's seis-hpc has the subcommand NAME.
seis_has_command() {
    "${SEIS_PY[@]}" -c 'import sys; from seis_hpc.commands import COMMANDS; sys.exit(sys.argv[1] not in COMMANDS)' "$1"
}

# --- launcher -----------------------------------------------------------------------------------
# seis_launcher: sets the array SEIS_LAUNCH (prefix for a parallel command) and SEIS_RANKS.
seis_cores() {
    # nproc counts the cores this process may use, but honours OMP_NUM_THREADS: unset it.
    env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null \
        || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1
}

seis_find_mpiexec() {
    if [ -n "${SEIS_HPC_MPIEXEC:-}" ]; then
        printf '%s\n' "$SEIS_HPC_MPIEXEC"
    elif [ -n "${SEIS_VENV:-}" ] && [ -x "$SEIS_VENV/bin/mpiexec" ]; then
        printf '%s\n' "$SEIS_VENV/bin/mpiexec"
    else
        command -v mpiexec 2>/dev/null || command -v mpirun 2>/dev/null || return 1
    fi
}

seis_launcher() {
    local kind=${SEIS_HPC_LAUNCHER:-auto} mpiexec
    if [ "$kind" = auto ]; then
        if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null 2>&1; then
            kind=srun
        elif seis_find_mpiexec >/dev/null; then
            kind=mpiexec
        else
            kind=none
        fi
    fi
    case $kind in
        srun)
            SEIS_RANKS=${SLURM_NTASKS:-1}
            SEIS_LAUNCH=(srun)
            # MPICH (the mpich wheel) talks PMI-2; srun's pmix plugin does not start it and
            # --mpi=none would start N separate one-rank jobs.
            if [ -n "${SEIS_HPC_SRUN_MPI-pmi2}" ]; then
                SEIS_LAUNCH+=("--mpi=${SEIS_HPC_SRUN_MPI-pmi2}")
            fi
            # MPICH's UCX netmod exchanges business cards of several KB as PMI-1 puts of up
            # to 1,024 value bytes; srun's pmi2 plugin reads a PMI-1 command in one read of
            # 1,023 bytes, so a put that happens to be longer (it depends on the card's bytes)
            # is cut and MPI_Init hangs on every rank. OFI's cards are 16 bytes (the wheel's
            # libfabric has verbs, psm2/3 and efa). Set MPIR_CVAR_CH4_NETMOD to choose;
            # Open MPI ignores it.
            if [ "${SEIS_HPC_SRUN_MPI-pmi2}" = pmi2 ] \
                    && [ -z "${MPIR_CVAR_CH4_NETMOD:-}${MPICH_CH4_NETMOD:-}" ]; then
                export MPIR_CVAR_CH4_NETMOD=ofi
            fi ;;
        mpiexec)
            mpiexec=$(seis_find_mpiexec) || seis_die "SEIS_HPC_LAUNCHER=mpiexec but no mpiexec found"
            SEIS_RANKS=${SEIS_HPC_RANKS:-${SLURM_NTASKS:-$(seis_cores)}}
            SEIS_LAUNCH=("$mpiexec" -n "$SEIS_RANKS") ;;
        none)
            SEIS_RANKS=1
            SEIS_LAUNCH=() ;;
        *)
            seis_die "SEIS_HPC_LAUNCHER must be auto, srun, mpiexec or none (got $kind)" ;;
    esac
    case $SEIS_RANKS in
        ''|*[!0-9]*|0) seis_die "number of ranks must be a positive integer (got $SEIS_RANKS)" ;;
    esac
    # sbatch --nodes=2 --ntasks-per-node=2 on a script whose header says --ntasks=2: the
    # header's task count wins (per node is then a maximum) and the job has half the ranks.
    local tpn=${SLURM_NTASKS_PER_NODE:-} nn=${SLURM_NNODES:-} nt=${SLURM_NTASKS:-}
    case $tpn$nn$nt in
        *[!0-9]*|'') ;;
        *) if [ -n "$tpn" ] && [ -n "$nn" ] && [ -n "$nt" ] && [ $((tpn * nn)) -gt "$nt" ]; then
               seis_log "warning: $nt tasks on $nn nodes, not $nn x $tpn (--ntasks-per-node=$tpn): a --ntasks (the script's #SBATCH --ntasks) limits them; submit with --ntasks=$((tpn * nn)) too"
           fi ;;
    esac
}

# --- running steps ------------------------------------------------------------------------------
# seis_show CMD...: the command, shell-quoted (what SEIS_HPC_DRY_RUN prints).
seis_show() {
    local out
    printf -v out '%q ' "$@"
    printf '%s\n' "${out% }"
}

# seis_step CMD...: run a serial step (or print it in a dry run); stop the job if it fails.
seis_step() {
    if [ "${SEIS_HPC_DRY_RUN:-0}" = 1 ]; then
        seis_show "$@"
        return 0
    fi
    seis_log "+ $(seis_show "$@")"
    local rc=0
    "$@" || rc=$?
    [ "$rc" -eq 0 ] || { seis_log "step failed (exit $rc)"; exit "$rc"; }
}

# seis_unless OUTPUT CMD...: seis_step, unless OUTPUT exists (outputs are written atomically,
# so one that exists is complete): a requeued or rerun job skips the steps it finished.
seis_unless() {
    local output=$1
    shift
    if [ -e "$output" ] && [ "${SEIS_HPC_DRY_RUN:-0}" != 1 ]; then
        seis_log "$output exists: skipping $(seis_show "${@:1:4}") ..."
        return 0
    fi
    seis_step "$@"
}

# seis_tee FILE CMD...: like seis_step, with CMD's standard output also written to FILE.
seis_tee() {
    local file=$1
    shift
    if [ "${SEIS_HPC_DRY_RUN:-0}" = 1 ]; then
        seis_show "$@"
        return 0
    fi
    seis_log "+ $(seis_show "$@") > $file"
    local rc=0
    "$@" | tee -- "$file" || rc=$?
    [ "$rc" -eq 0 ] || { seis_log "step failed (exit $rc)"; exit "$rc"; }
}

_seis_forward() {
    # Bash runs a trap only between commands: the step runs in the background and the
    # batch shell waits for it, so the signal is handled at once and passed on. srun and
    # mpiexec forward SIGUSR1 to every rank; each rank checkpoints and exits with 75.
    SEIS_SIGNAL=$1
    seis_log "got SIG$1: asking the ranks to checkpoint"
    if [ -n "${_SEIS_PID:-}" ]; then kill -USR1 "$_SEIS_PID" 2>/dev/null || true; fi
}

_seis_late() {
    seis_log "got SIG$1 during a serial step: no checkpoint possible, going on"
}

# seis_parallel CMD...: run CMD under the launcher; on SIGUSR1 (SLURM's warning before the
# time limit, #SBATCH --signal=B:USR1@120) or SIGTERM the ranks checkpoint and stop with 75.
# After SIGUSR1 inside SLURM the job is requeued (it resumes from the checkpoint); otherwise
# the script exits with 75 and running it again resumes.
seis_parallel() {
    local cmd=("${SEIS_LAUNCH[@]}" "$@")
    if [ "${SEIS_HPC_DRY_RUN:-0}" = 1 ]; then
        seis_show "${cmd[@]}"
        return 0
    fi
    seis_log "+ $(seis_show "${cmd[@]}")"
    SEIS_SIGNAL=
    trap '_seis_forward USR1' USR1
    trap '_seis_forward TERM' TERM
    "${cmd[@]}" &
    _SEIS_PID=$!
    local rc=0
    while :; do
        rc=0
        wait "$_SEIS_PID" || rc=$?
        # A status above 128 while the step still runs means a trap interrupted wait.
        if [ "$rc" -gt 128 ] && kill -0 "$_SEIS_PID" 2>/dev/null; then continue; fi
        break
    done
    trap '_seis_late USR1' USR1
    trap - TERM
    _SEIS_PID=
    if [ "$rc" -eq "$SEIS_EXIT_CHECKPOINTED" ]; then
        if [ "$SEIS_SIGNAL" = USR1 ] && [ -n "${SLURM_JOB_ID:-}" ] \
                && [ "${SEIS_HPC_REQUEUE:-1}" = 1 ]; then
            seis_log "checkpointed; requeueing job $SLURM_JOB_ID to resume"
            if scontrol requeue "$SLURM_JOB_ID"; then
                # SLURM now ends this run of the script; the next one resumes.
                sleep 600 &
                wait $! || true
            fi
            seis_log "requeue failed: resubmit the same job to resume"
        else
            seis_log "checkpointed; run the same job again to resume"
        fi
        exit "$SEIS_EXIT_CHECKPOINTED"
    fi
    [ "$rc" -eq 0 ] || { seis_log "step failed (exit $rc)"; exit "$rc"; }
}

# seis_banner: where the job runs, for the log.
seis_banner() {
    seis_log "seis_hpc $SEIS_ROOT; $(seis_show "${SEIS[@]}")"
    if [ -n "${SLURM_JOB_ID:-}" ]; then
        seis_log "SLURM job $SLURM_JOB_ID (${SLURM_JOB_NAME:-}) on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-?} tasks, restart ${SLURM_RESTART_COUNT:-0}"
    fi
    seis_log "launcher: ${SEIS_LAUNCH[*]:-(one process)}; OMP_NUM_THREADS=$OMP_NUM_THREADS${MPIR_CVAR_CH4_NETMOD:+; MPIR_CVAR_CH4_NETMOD=$MPIR_CVAR_CH4_NETMOD}"
}

# --- the built-in synthetic survey ----------------------------------------------------------------
# seis_synth PRESET DIR [OPTIONS]: write the synthetic survey into DIR unless it is there
# already (a requeued job must not rewrite the input its checkpoint belongs to).
seis_synth() {
    if [ -f "$2/shots.sgy" ] && [ -f "$2/velocity.csv" ] && [ -f "$2/truth.json" ]; then
        seis_log "synthetic survey already in $2"
        return 0
    fi
    seis_step "${SEIS[@]}" synth --preset "$1" --out "$2" "${@:3}"
}

# --- PSTM (jobs/pstm_3d.sh and jobs/pstm_2d.sh) ---------------------------------------------------
# seis_pstm_main "$@": the whole PSTM job; the caller sets the defaults of the variables
# named in its header (SEIS_HPC_PRESET, SEIS_HPC_OUT, ...).
seis_pstm_main() {
    seis_options input=SEIS_HPC_INPUT velocity=SEIS_HPC_VELOCITY out=SEIS_HPC_OUT \
        preset=SEIS_HPC_PRESET aperture=SEIS_HPC_APERTURE max-angle=SEIS_HPC_MAX_ANGLE \
        tmax=SEIS_HPC_TMAX ranks=SEIS_HPC_RANKS backend=SEIS_HPC_BACKEND \
        scratch=SEIS_HPC_SCRATCH qc=SEIS_HPC_QC
    seis_parse "$@"
    case ${SEIS_HPC_QC:-1} in
        0|1) ;;
        *) seis_die "--qc must be 1 (pictures) or 0 (none) (got $SEIS_HPC_QC)" ;;
    esac
    case ${SEIS_HPC_BACKEND:-} in
        ''|cython|gpu) ;;
        *) seis_die "--backend must be cython or gpu (got $SEIS_HPC_BACKEND)" ;;
    esac
    seis_launcher
    seis_banner
    if [ "${SEIS_HPC_BACKEND:-}" = gpu ] && [ "${SEIS_LAUNCH[0]:-}" = srun ]; then
        # One GPU per rank. --gpus-per-task implies this binding, but SLURM 22.05 skips it
        # for a typed request (--gpus-per-task=h100:1); a binding given to sbatch wins.
        [ -n "${SLURM_GPU_BIND:-}" ] || SEIS_LAUNCH+=(--gpu-bind=per_task:1)
    elif [ "${SEIS_HPC_BACKEND:-}" = gpu ] && [ -n "${SLURM_JOB_ID:-}" ]; then
        # mpiexec starts its node daemons with srun, one task per node, which inherits
        # --gpus-per-task=1: every rank of a node would get that one GPU.
        seis_log "warning: backend gpu under SLURM without srun: the ranks of a node may share one GPU"
    fi
    local out=$SEIS_HPC_OUT input=${SEIS_HPC_INPUT:-} velocity=${SEIS_HPC_VELOCITY:-} truth=
    [ -n "$out" ] || seis_die "no output folder (--out or SEIS_HPC_OUT)"
    mkdir -p -- "$out"
    if [ -z "$input" ]; then
        seis_synth "$SEIS_HPC_PRESET" "$out/survey"
        input=$out/survey/shots.sgy
        velocity=${velocity:-$out/survey/velocity.csv}
        truth=$out/survey/truth.json
    fi
    [ -n "$velocity" ] || seis_die "no velocity for $input (--velocity or SEIS_HPC_VELOCITY)"
    local image=$out/image.h5
    local args=("$input" --velocity "$velocity" --out "$image"
                --checkpoint-dir "$out/image.h5.ckpt" --max-angle "$SEIS_HPC_MAX_ANGLE")
    [ -z "${SEIS_HPC_APERTURE:-}" ] || args+=(--aperture "$SEIS_HPC_APERTURE")
    [ -z "${SEIS_HPC_TMAX:-}" ] || args+=(--tmax "$SEIS_HPC_TMAX")
    # Per-rank temporaries on node-local disk; the checkpoint stays in $out (shared).
    [ -z "${SEIS_HPC_SCRATCH:-}" ] || args+=(--scratch "$SEIS_HPC_SCRATCH")
    # No GPU visible (or no CuPy): seis-hpc pstm says so in one line and exits 2, which
    # seis_parallel passes on. The job requests no GPU itself: sbatch --gpus-per-task=1.
    [ -z "${SEIS_HPC_BACKEND:-}" ] || args+=(--backend "$SEIS_HPC_BACKEND")
    # Index once, serially, so that the ranks do not each scan the headers.
    seis_step "${SEIS[@]}" index "$input"
    seis_parallel "${SEIS[@]}" pstm "${args[@]}" "${SEIS_EXTRA[@]}"
    if [ "${SEIS_HPC_QC:-1}" = 1 ]; then
        seis_qc "$image" "$out/qc" "$input" "$truth"
        seis_log "done: $image, pictures in $out/qc"
    else
        seis_log "done: $image (no QC pictures: --qc 0)"
    fi
}

# seis_qc IMAGE DIR INPUT [TRUTH]: QC pictures of a PSTM image and its input (seis-hpc qc).
# With the truth of a synthetic survey the sections go through the first diffractor, and one
# line per diffractor says where the image peaks against where it should.
seis_qc() {
    local image=$1 dir=$2 input=$3 truth=${4:-} where=() il t0
    if [ -n "$truth" ] && [ "${SEIS_HPC_DRY_RUN:-0}" != 1 ]; then
        read -r il t0 < <(seis_focus "$image" "$truth") || seis_die "focus check failed"
        # 2D: the section is the line; 3D: the inline and the time slice of the diffractor.
        [ "$il" = - ] || where=(--inline "$il" --time "$t0")
    fi
    if ! seis_has_command qc; then
        seis_log "this seis_hpc has no 'seis-hpc qc': no pictures"
        return 0
    fi
    seis_step "${SEIS[@]}" qc "$image" --out "$dir" "${where[@]}"
    seis_step "${SEIS[@]}" qc "$input" --what shot,maps --out "$dir"
}

# seis_focus IMAGE TRUTH: for each diffractor of TRUTH, a log line with the peak of |IMAGE|
# near it; prints the first diffractor's inline (- for a 2D line) and t0 (s).
seis_focus() {
    "${SEIS_PY[@]}" - "$@" <<'PY'
import json
import sys

import numpy as np

from seis_hpc.io.volume import read_volume

vol = read_volume(sys.argv[1])
truth = json.loads(open(sys.argv[2]).read())
g = vol.grid
data = vol.data[None] if g.is_2d else vol.data  # (inline, crossline, time)
for d in truth["diffractors"]:
    il = 0 if g.is_2d else int(round(d["inline"])) - g.inline0
    xl = int(round(d["crossline"])) - g.crossline0
    it = int(round((d["t0_s"] - vol.time[0]) / vol.dt))
    lo = (max(il - 3, 0), max(xl - 6, 0), max(it - 10, 0))
    win = np.abs(data[lo[0]:il + 4, lo[1]:xl + 7, lo[2]:it + 11])
    k = np.unravel_index(np.argmax(win), win.shape)
    where = "" if g.is_2d else f"inline {lo[0] + k[0] + g.inline0}, "
    want = "" if g.is_2d else f"inline {d['inline']:.1f}, "
    line = "CMP" if g.is_2d else "crossline"
    print(f"qc: diffractor at {want}{line} {d['crossline']:.1f}, t0 {d['t0_s']:.3f} s -> image "
          f"peak at {where}{line} {lo[1] + k[1] + g.crossline0}, "
          f"{vol.time[lo[2] + k[2]]:.3f} s", file=sys.stderr)
d = truth["diffractors"][0] if truth["diffractors"] else None
if d is None:
    print("- -")
else:
    print("-" if g.is_2d else int(round(d["inline"])), f"{d['t0_s']:.4f}")
PY
}

# seis_flow_copy FLOW INPUT OUTPUT WORKDIR DEST: write DEST, the conditioning flow FLOW
# (seis-hpc run) with its [flow] input, output and workdir replaced by these paths; file
# parameters of the steps are made absolute (relative to FLOW), edit reports go to WORKDIR.
seis_flow_copy() {
    "${SEIS_PY[@]}" - "$@" <<'PY' || seis_die "cannot adapt the flow file $1"
import json
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from seis_hpc.flows.steps import STEPS

src, inp, out, work, dest = (Path(a) for a in sys.argv[1:6])
data = tomllib.loads(src.read_text())
base = src.resolve().parent
lines = [f"# {src.resolve()} for {inp.resolve()} (written by the job script)", "[flow]",
         f"name = {json.dumps(str(data.get('flow', {}).get('name', src.stem)))}"]
for key, path in (("input", inp), ("output", out), ("workdir", work)):
    lines.append(f"{key} = {json.dumps(str(path.resolve()))}")
for step in data.get("step", []):
    units = {p.name: p.unit for p in STEPS[step["name"]].params} if step.get("name") in STEPS \
        else {}
    lines += ["", "[[step]]"]
    for key, value in step.items():
        if units.get(key) == "path" and isinstance(value, str):
            value = str(work.resolve() / Path(value).name) if key == "report" else \
                str((base / value).resolve())
        lines.append(f"{key} = {json.dumps(value)}")  # JSON scalars and arrays are TOML
dest.write_text("\n".join(lines) + "\n")
PY
}

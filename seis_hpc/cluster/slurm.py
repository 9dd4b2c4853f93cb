"""SLURM job scripts for a user's cluster, rendered from a TOML job description.

A job description (``job.toml``) names the cluster's resources and the step to run::

    [cluster]
    partition = "compute"          # optional: account, qos, constraint, exclusive
    nodes = 4
    tasks_per_node = 32
    cpus_per_task = 1              # OpenMP threads per rank
    memory = "180G"                # per node (sbatch --mem)
    time = "12:00:00"
    modules = ["gcc/12", "openmpi/4.1"]
    launcher = "srun"              # or "mpiexec"
    mpi = "pmix"                   # srun --mpi= plugin: "pmi2" (MPICH wheel) or "pmix"
    root = "/project/seis_hpc"     # the checkout with jobs/lib.sh (default: this one; an
                                   #   installed wheel: the lib.sh inside the package)
    venv = "/project/seis_hpc/.venv"  # default root/.venv; an installed wheel: its own
    env = { HDF5_USE_FILE_LOCKING = "FALSE" }
    log_dir = "logs"
    templates = "site/templates"   # default: slurm/templates (shipped in the package)
    gpus_per_task = 1              # optional: GPUs per rank (sbatch --gpus-per-task), for
    gpu_type = "h100"              #   backend = "gpu"; gpu_type: the site's GPU type name
    scratch = "/local/scratch"     # optional: node-local folder for each rank's temporary
                                   #   files (pstm --scratch; %n: the node's name); default
                                   #   beside the checkpoint, which is always shared

    [job]
    name = "survey1_pstm"
    command = "pstm"
    input = "/data/survey1/shots.sgy"
    velocity = "/data/survey1/vrms.h5"
    out = "/scratch/survey1/image.h5"
    args = ["--aperture", "3000", "--tmax", "5.0"]
    backend = "cython"             # or "gpu": seis-hpc pstm --backend gpu, one GPU per rank

    [array]                        # optional: split the image into parts
    parts = 8                      # inline ranges (2D: CMP ranges), one array task each;
                                   # the parts and the merged image hold the plain sum
                                   # (--normalise none: a per-part response would not join)
    max_running = 4                # optional %N throttle
    merge_time = "01:00:00"        # the dependent merge job's limit

The scripts are filled in from the templates in ``slurm/templates`` (``{{key}}``
placeholders; a site can copy and edit them) and source ``jobs/lib.sh``. A wheel carries
both inside the package (``seis_hpc/cluster/data``, copied there by setup.py), so a script
rendered from an installed package names only that installation: its ``lib.sh`` and, unless
``cluster.venv`` says otherwise, its environment. Without ``[array]`` :func:`render` returns one
sbatch script. With it, it returns a bash
script that submits the array (each task migrates its part, ``seis-hpc slurm part`` finds the
part's range) and then a merge job with ``--dependency=afterok:<array job>`` that assembles
the parts into ``out`` (``seis-hpc slurm merge``).

With ``backend = "gpu"`` every rank drives one GPU: the scripts request
``--gpus-per-task=[TYPE:]1`` with ``--ntasks`` (which that option needs) and
``--gpu-bind=per_task:1``, and pass ``--backend gpu`` to ``seis-hpc pstm``; the merge job of
an array asks for no GPU.

Every value reaches the job as one shell word: values are single-quoted (:func:`shlex.quote`)
in shell lines, and ``#SBATCH`` values are restricted to characters sbatch reads literally.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from seis_hpc.errors import SeisError

LAUNCHERS = ("srun", "mpiexec")
BACKENDS = ("cython", "gpu")
MPI_PLUGINS = ("pmi2", "pmix")
# Job names, partitions, accounts, modules: what sbatch and `module` read as one token.
_NAME = re.compile(r"^[A-Za-z0-9_.+\-/:@=,]+$")
_TIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")
_MEMORY = re.compile(r"^\d+[KMGT]?$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A GPU type as gres.conf names it (Type=h100, a100_80gb): one word, no ':' or ','.
_GPU_TYPE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_HEREDOC = "SEIS_HPC_JOB_SCRIPT"
CHECKPOINT_WARNING_S = 120


@dataclass
class Cluster:
    """Resources and environment of the user's cluster (the ``[cluster]`` table)."""

    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: int = 1
    time: str = "01:00:00"
    memory: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    exclusive: bool = False
    modules: list[str] = field(default_factory=list)
    launcher: str = "srun"
    mpi: str | None = "pmi2"
    root: str | None = None
    venv: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    log_dir: str | None = None
    templates: str | None = None
    gpus_per_task: int = 0
    gpu_type: str | None = None
    scratch: str | None = None


@dataclass
class Job:
    """The step to run (the ``[job]`` table): a ``seis-hpc`` command on its input."""

    name: str
    input: str
    out: str
    command: str = "pstm"
    velocity: str | None = None
    args: list[str] = field(default_factory=list)
    backend: str = "cython"


@dataclass
class Array:
    """Split of the image into parts, one array task each (the ``[array]`` table)."""

    parts: int
    max_running: int | None = None
    merge_time: str = "01:00:00"


@dataclass
class JobConfig:
    """A whole job description (see the module text)."""

    cluster: Cluster
    job: Job
    array: Array | None = None
    source: str = "job.toml"


# -- loading ------------------------------------------------------------------------------------
def _table(cls, data: dict, where: str, path: str, required=()):
    fields = cls.__dataclass_fields__
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SeisError(f"[{where}] unknown key {unknown[0]!r}; known: {', '.join(fields)}",
                        path)
    missing = [k for k in required if k not in data]
    if missing:
        raise SeisError(f"[{where}] needs {missing[0]!r}", path)
    return cls(**data)


def _check_word(value, key: str, path: str, pattern=_NAME, what="letters, digits and . _ + - "
                "/ : @ = ,") -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise SeisError(f"{key} = {value!r}: use only {what}", path)
    return value


def _check_text(value, key: str, path: str) -> str:
    """A path or argument: any text on one line (it is quoted wherever it is used)."""
    if not isinstance(value, str) or not value:
        raise SeisError(f"{key} must be a non-empty string (got {value!r})", path)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SeisError(f"{key} = {value!r}: control characters (newline, tab) are not allowed",
                        path)
    return value


def _check_int(value, key: str, path: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise SeisError(f"{key} must be an integer >= {lo} (got {value!r})", path)
    return value


def validate(cfg: JobConfig) -> JobConfig:
    """Check every value of ``cfg``; raise :class:`SeisError` naming the key on the first bad one.

    Parameters
    ----------
    cfg : JobConfig
        Loaded description.

    Returns
    -------
    JobConfig
        ``cfg`` itself.
    """
    p, c, j = cfg.source, cfg.cluster, cfg.job
    for key in ("nodes", "tasks_per_node", "cpus_per_task"):
        _check_int(getattr(c, key), f"cluster.{key}", p)
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(c, key) is not None:
            _check_word(getattr(c, key), f"cluster.{key}", p)
    if not isinstance(c.time, str) or not _TIME.match(c.time):
        raise SeisError(f"cluster.time = {c.time!r}: use [D-]HH:MM:SS, MM:SS or minutes", p)
    if c.memory is not None and (not isinstance(c.memory, str) or not _MEMORY.match(c.memory)):
        raise SeisError(f"cluster.memory = {c.memory!r}: use e.g. 180G, 512M", p)
    if not isinstance(c.modules, list):
        raise SeisError("cluster.modules must be a list of module names", p)
    for m in c.modules:
        _check_word(m, "cluster.modules", p)
    if c.launcher not in LAUNCHERS:
        raise SeisError(f"cluster.launcher = {c.launcher!r}: choose {' or '.join(LAUNCHERS)}", p)
    if c.mpi is not None and c.mpi not in MPI_PLUGINS:
        raise SeisError(f"cluster.mpi = {c.mpi!r}: choose {' or '.join(MPI_PLUGINS)}", p)
    for key in ("root", "venv", "log_dir", "templates", "scratch"):
        if getattr(c, key) is not None:
            _check_text(getattr(c, key), f"cluster.{key}", p)
    if not isinstance(c.env, dict):
        raise SeisError("cluster.env must be a table of NAME = \"value\"", p)
    for k, v in c.env.items():
        _check_word(k, "cluster.env", p, _ENV, "a shell variable name")
        _check_text(v, f"cluster.env.{k}", p)
    if not isinstance(c.exclusive, bool):
        raise SeisError(f"cluster.exclusive must be true or false (got {c.exclusive!r})", p)
    _check_int(c.gpus_per_task, "cluster.gpus_per_task", p, lo=0)
    if c.gpu_type is not None:
        _check_word(c.gpu_type, "cluster.gpu_type", p, _GPU_TYPE, "letters, digits and . _ -")
        if c.gpus_per_task == 0:
            raise SeisError(f"cluster.gpu_type = {c.gpu_type!r} needs cluster.gpus_per_task "
                            ">= 1", p)
    _check_word(j.name, "job.name", p, re.compile(r"^[A-Za-z0-9_.+\-]+$"),
                "letters, digits and . _ + -")
    _check_word(j.command, "job.command", p, re.compile(r"^[a-z][a-z0-9\-]*$"),
                "a seis-hpc subcommand name")
    for key in ("input", "out"):
        _check_text(getattr(j, key), f"job.{key}", p)
    if j.velocity is not None:
        _check_text(j.velocity, "job.velocity", p)
    if not isinstance(j.args, list):
        raise SeisError("job.args must be a list of strings", p)
    for a in j.args:
        _check_text(a, "job.args", p)
    _check_backend(cfg)
    if c.scratch is not None and j.command != "pstm":
        raise SeisError(f"cluster.scratch is for seis-hpc pstm (--scratch); job.command is "
                        f"{j.command!r}", p)
    if c.scratch is not None and "--scratch" in j.args:
        raise SeisError("cluster.scratch sets --scratch; remove it from job.args", p)
    if cfg.array is not None:
        a = cfg.array
        _check_int(a.parts, "array.parts", p)
        if a.max_running is not None:
            _check_int(a.max_running, "array.max_running", p)
        if not isinstance(a.merge_time, str) or not _TIME.match(a.merge_time):
            raise SeisError(f"array.merge_time = {a.merge_time!r}: use [D-]HH:MM:SS", p)
        if j.command != "pstm":
            raise SeisError(f"[array] splits a pstm image; job.command is {j.command!r}", p)
        if "--grid" in j.args:
            raise SeisError("[array] chooses each part's --grid; remove it from job.args", p)
        if "--normalise" in j.args and j.args[j.args.index("--normalise") + 1:][:1] != ["none"]:
            raise SeisError("[array] parts write the plain sum (--normalise none): the "
                            "flat-reflector response is measured on a job's own grid, so "
                            "parts normalised each on its own would not join seamlessly; "
                            "remove --normalise from job.args", p)
    return cfg


def _check_backend(cfg: JobConfig) -> None:
    """``job.backend`` against ``cluster.gpus_per_task``: a GPU job without GPUs would stop at
    its first step, GPUs without the GPU backend would idle for the whole job."""
    p, c, j = cfg.source, cfg.cluster, cfg.job
    if j.backend not in BACKENDS:
        raise SeisError(f"job.backend = {j.backend!r}: choose {' or '.join(BACKENDS)}", p)
    if any(a == "--backend" or a.startswith("--backend=") for a in j.args):
        raise SeisError("job.backend chooses the kernel; remove --backend from job.args", p)
    if j.backend == "gpu":
        if j.command != "pstm":
            raise SeisError(f"job.backend = 'gpu' runs seis-hpc pstm; job.command is "
                            f"{j.command!r}", p)
        if c.gpus_per_task == 0:
            raise SeisError("job.backend = 'gpu' needs cluster.gpus_per_task = 1 (one GPU "
                            "per rank)", p)
    elif c.gpus_per_task:
        raise SeisError(f"cluster.gpus_per_task = {c.gpus_per_task} but job.backend is "
                        f"{j.backend!r}: the GPUs would idle; set job.backend = \"gpu\"", p)
    if c.gpus_per_task and c.launcher != "srun":
        raise SeisError(f"cluster.launcher = {c.launcher!r} with GPUs: mpiexec starts its node "
                        "daemons through srun, which inherits --gpus-per-task and would give "
                        "all ranks of a node one GPU; use launcher = \"srun\"", p)
    if c.gpus_per_task > 1:
        raise SeisError(f"cluster.gpus_per_task = {c.gpus_per_task}: a rank drives one GPU; "
                        "use gpus_per_task = 1 and one task per GPU (tasks_per_node)", p)


def load_config(path: str | Path) -> JobConfig:
    """Read and check a job description (TOML).

    Parameters
    ----------
    path : path-like
        The ``job.toml`` file.

    Returns
    -------
    JobConfig
        The checked description.

    Raises
    ------
    SeisError
        Unreadable TOML, unknown or missing keys, bad values (the message names the key).
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from seis_hpc.limits import read_text

    path = str(path)
    text = read_text(path, "job file (TOML)")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SeisError(f"not valid TOML: {exc}", path) from None
    unknown = sorted(set(data) - {"cluster", "job", "array"})
    if unknown:
        raise SeisError(f"unknown table [{unknown[0]}]; known: [cluster], [job], [array]", path)
    if "job" not in data:
        raise SeisError("no [job] table", path)
    cluster = _table(Cluster, data.get("cluster", {}), "cluster", path)
    job = _table(Job, data["job"], "job", path, required=("name", "input", "out"))
    array = _table(Array, data["array"], "array", path, ("parts",)) if "array" in data else None
    return validate(JobConfig(cluster, job, array, path))


# -- rendering ----------------------------------------------------------------------------------
def _shipped() -> Path | None:
    """The ``data`` folder inside this package (``templates/``, ``jobs/lib.sh``): copied there
    when a wheel is built (setup.py), absent in the source checkout."""
    d = resources.files("seis_hpc.cluster").joinpath("data")
    return d if isinstance(d, Path) and (d / "jobs" / "lib.sh").is_file() else None


def _checkout() -> Path | None:
    """The source checkout this package runs from (editable install), if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "jobs" / "lib.sh").is_file() else None


def default_root() -> str | None:
    """The folder whose ``jobs/lib.sh`` the rendered scripts source when ``cluster.root`` is
    not set: the ``data`` folder of the installed package, else the checkout this package
    runs from (None without either)."""
    root = _shipped() or _checkout()
    return None if root is None else str(root)


def _default_venv() -> str | None:
    """The environment this ``seis-hpc`` runs in, for a package installed without a checkout
    (whose ``root`` has no ``.venv``): the jobs run the same installation."""
    prefix = Path(sys.prefix)
    return str(prefix) if (prefix / "bin" / "python").is_file() else None


def _q(value) -> str:
    return shlex.quote(str(value))


def _sbatch_lines(c: Cluster, name: str, time: str, log: str, nodes: int | None = None,
                  tasks_per_node: int | None = None, cpus: int | None = None,
                  extra=(), serial: bool = False) -> list[str]:
    lines = [f"--job-name={name}", f"--nodes={nodes or c.nodes}",
             f"--ntasks-per-node={tasks_per_node or c.tasks_per_node}",
             f"--cpus-per-task={cpus or c.cpus_per_task}", f"--time={time}"]
    gpu = c.gpus_per_task > 0 and not serial
    if gpu:
        # The sbatch manual asks --gpus-per-task for an explicit task count (-n); newer
        # SLURM refuses the job without one (22.05 accepts nodes x tasks per node).
        lines.insert(3, f"--ntasks={(nodes or c.nodes) * (tasks_per_node or c.tasks_per_node)}")
        lines.insert(5, f"--gpus-per-task={c.gpu_type + ':' if c.gpu_type else ''}"
                        f"{c.gpus_per_task}")
        lines.insert(6, f"--gpu-bind=per_task:{c.gpus_per_task}")
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(c, key):
            lines.append(f"--{key}={getattr(c, key)}")
    if c.memory and not serial:
        lines.append(f"--mem={c.memory}")
    if c.exclusive and not serial:
        lines.append("--exclusive")
    # sbatch reads a double-quoted #SBATCH value literally; a validated path has no '"'.
    lines.append(f'--output="{log}"')
    lines += list(extra)
    return [f"#SBATCH {x}" for x in lines] + (_GPU_BINDING if gpu else [])


# Why the rendered GPU jobs bind explicitly: the comment they carry.
_GPU_BINDING = [
    "# One MPI rank per GPU: srun inherits --gpu-bind=per_task:1 (SLURM_GPU_BIND), so each",
    "# rank sees only its own GPU. Explicit because the binding that --gpus-per-task implies",
    "# is not applied to a typed request (TYPE:1) by SLURM 22.05; not single:1, which binds",
    "# by socket affinity (gres.conf Cores=) and so depends on the site.",
]


def _log_path(c: Cluster, stem: str) -> str:
    if '"' in stem or (c.log_dir and '"' in c.log_dir):
        raise SeisError(f'log path {stem!r}: no \'"\' allowed in #SBATCH --output')
    return f"{c.log_dir.rstrip('/')}/{stem}" if c.log_dir else stem


def _environment(c: Cluster) -> str:
    """Modules, the seis_hpc settings and jobs/lib.sh: the lines every rendered job starts with."""
    root = c.root or default_root()
    if root is None:
        raise SeisError("cluster.root: no seis_hpc checkout with jobs/lib.sh found; set it")
    venv = c.venv
    if venv is None and c.root is None and _shipped() is not None:
        venv = _default_venv()  # an installed wheel: its environment, not root/.venv
    out = []
    if c.modules:
        out += ["# Site software (environment modules).", "module purge",
                *(f"module load {_q(m)}" for m in c.modules), ""]
    out.append(f"export SEIS_HPC_ROOT={_q(root)}")
    if venv:
        out.append(f"export SEIS_HPC_VENV={_q(venv)}")
    out.append(f"export SEIS_HPC_LAUNCHER={_q(c.launcher)}")
    out.append(f"export SEIS_HPC_SRUN_MPI={_q(c.mpi or '')}")
    for k, v in c.env.items():
        out.append(f"export {k}={_q(v)}")
    out += ["# shellcheck source=jobs/lib.sh", '. "$SEIS_HPC_ROOT/jobs/lib.sh"']
    return "\n".join(out)


def _words(values) -> str:
    return " ".join(_q(v) for v in values)


def _comment(text: str) -> str:
    """``text`` made safe for a comment line (no control characters)."""
    return "".join(ch if ord(ch) >= 32 and ord(ch) != 127 else "?" for ch in str(text))


def _step_args(j: Job, c: Cluster) -> list[str]:
    args = [j.input]
    if j.velocity is not None:
        args += ["--velocity", j.velocity]
    if j.backend != "cython":
        args += ["--backend", j.backend]
    if c.scratch is not None:
        args += ["--scratch", c.scratch]
    return args


def part_out(out: str, k: int) -> str:
    """Output path of array part ``k`` of the image ``out`` (``image.part003.h5``)."""
    p = Path(out)
    suffix = p.suffix or ".h5"
    return str(p.with_name(f"{p.stem}.part{k:03d}{suffix}"))


def template_dir(cfg: JobConfig) -> Path:
    """The folder of the script templates: ``cluster.templates``, else the templates shipped
    in this package (a wheel), else ``slurm/templates`` of this checkout."""
    if cfg.cluster.templates:
        d = Path(cfg.cluster.templates)
    elif _shipped() is not None:
        d = _shipped() / "templates"
    else:
        d = Path(__file__).resolve().parents[2] / "slurm" / "templates"
    if not d.is_dir():
        raise SeisError("no template folder (set cluster.templates)", d)
    return d


_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


def fill(template: str, values: dict[str, str], name: str = "template") -> str:
    """Replace each ``{{key}}`` of ``template`` by ``values[key]`` (values are inserted as
    they are: quote them first). An unknown key is an error, so a typo cannot vanish."""
    def one(m: re.Match) -> str:
        if m.group(1) not in values:
            raise SeisError(f"unknown placeholder {{{{{m.group(1)}}}}}", name)
        return values[m.group(1)]

    return _PLACEHOLDER.sub(one, template)


def _template(cfg: JobConfig, name: str) -> tuple[str, str]:
    path = template_dir(cfg) / name
    try:
        return path.read_text(), str(path)
    except OSError as exc:
        raise SeisError(f"cannot read the template ({exc.strerror})", path) from None


def _common(cfg: JobConfig, name: str) -> dict[str, str]:
    return {"source": _comment(cfg.source), "name": name, "name_q": _q(name),
            "environment": _environment(cfg.cluster), "command": cfg.job.command}


def render_single(cfg: JobConfig) -> str:
    """One sbatch script running ``cfg.job`` on the cluster of ``cfg`` (no array)."""
    c, j = cfg.cluster, cfg.job
    text, where = _template(cfg, "job.sbatch")
    sbatch = _sbatch_lines(c, j.name, c.time, _log_path(c, f"{j.name}-%j.out"), extra=(
        "--open-mode=append", f"--signal=B:USR1@{CHECKPOINT_WARNING_S}", "--requeue"))
    return fill(text, {
        **_common(cfg, j.name), "sbatch": "\n".join(sbatch),
        "ranks": f"{c.nodes} x {c.tasks_per_node} ranks"
                 + (", one GPU each" if c.gpus_per_task else ""),
        "step": _words([j.command, *_step_args(j, c), "--out", j.out, *j.args])}, where)


def render_array(cfg: JobConfig) -> tuple[str, str]:
    """The array script (one task per image part) and the merge script of ``cfg``."""
    c, j, a = cfg.cluster, cfg.job, cfg.array
    throttle = f"%{a.max_running}" if a.max_running else ""
    parts = _words(part_out(j.out, k) for k in range(a.parts))
    text, where = _template(cfg, "array.sbatch")
    sbatch = _sbatch_lines(c, j.name, c.time, _log_path(c, f"{j.name}-%A_%a.out"), extra=(
        f"--array=0-{a.parts - 1}{throttle}", "--open-mode=append",
        f"--signal=B:USR1@{CHECKPOINT_WARNING_S}", "--requeue"))
    array = fill(text, {
        **_common(cfg, j.name), "sbatch": "\n".join(sbatch), "parts": str(a.parts),
        "part_files": parts, "input_q": _q(j.input),
        "step": _words([j.command, *_step_args(j, c)]),
        # the plain sum: a response measured per part would differ at the parts' seams
        "args": _words([*j.args, *([] if "--normalise" in j.args else
                                   ["--normalise", "none"])])}, where)
    text, where = _template(cfg, "merge.sbatch")
    name = f"{j.name}-merge"
    sbatch = _sbatch_lines(c, name, a.merge_time, _log_path(c, f"{name}-%j.out"), nodes=1,
                           tasks_per_node=1, cpus=1, serial=True)
    merge = fill(text, {
        **_common(cfg, name), "sbatch": "\n".join(sbatch), "parts": str(a.parts),
        "part_files": parts, "out_q": _q(j.out)}, where)
    return array, merge


def render(cfg: JobConfig) -> str:
    """The file to hand to the user: an sbatch script, or (with ``[array]``) a bash script
    that submits the array and the merge job that depends on it.

    Parameters
    ----------
    cfg : JobConfig
        A checked job description (:func:`load_config`).

    Returns
    -------
    str
        Script text, from the templates ``job.sbatch`` or ``submit_array.sh`` (with
        ``array.sbatch`` and ``merge.sbatch`` inside) of :func:`template_dir`.
    """
    validate(cfg)
    if cfg.array is None:
        return render_single(cfg)
    array, merge = render_array(cfg)
    for text in (array, merge):
        if _HEREDOC in text:
            raise SeisError(f"the job description contains {_HEREDOC!r}", cfg.source)
    text, where = _template(cfg, "submit_array.sh")
    log_dir = cfg.cluster.log_dir
    return fill(text, {
        "source": _comment(cfg.source), "name": cfg.job.name, "parts": str(cfg.array.parts),
        "mkdir_logs": f"mkdir -p -- {_q(log_dir)}  # sbatch does not create it" if log_dir
        else "", "eof": _HEREDOC, "array_script": array.rstrip("\n"),
        "merge_script": merge.rstrip("\n")}, where)


# -- array parts --------------------------------------------------------------------------------
def part_ranges(first: int, count: int, parts: int) -> list[tuple[int, int]]:
    """Split ``count`` consecutive line numbers from ``first`` into ``parts`` inclusive ranges
    of sizes differing by at most one (fewer ranges when there are fewer lines than parts)."""
    if count < 1 or parts < 1:
        raise SeisError(f"cannot split {count} lines into {parts} parts")
    edges = np.linspace(0, count, min(parts, count) + 1).round().astype(int)
    pairs = zip(edges[:-1], edges[1:], strict=True)
    return [(first + int(a), first + int(b) - 1) for a, b in pairs]


def part_grid(grid, parts: int, task: int) -> list[int]:
    """The ``seis-hpc pstm --grid`` values of part ``task`` of ``parts``.

    3D grids split by inline (each part keeps every crossline), 2D lines by CMP.

    Parameters
    ----------
    grid : BinGrid
        The survey's grid.
    parts, task : int
        Number of parts and this part (0-based).
    """
    along = (grid.crossline0, grid.n_crossline) if grid.is_2d else (grid.inline0, grid.n_inline)
    ranges = part_ranges(along[0], along[1], parts)
    if not 0 <= task < parts:
        raise SeisError(f"--task must be in 0..{parts - 1} (got {task})")
    if task >= len(ranges):
        raise SeisError(f"part {task}: the survey has only {along[1]} lines for {parts} parts")
    lo, hi = ranges[task]
    if grid.is_2d:
        return [lo, hi]
    return [lo, hi, grid.crossline0, grid.crossline0 + grid.n_crossline - 1]


def _merged_shotpoint(heads) -> tuple[np.ndarray | None, dict]:
    """A 2D line's ``shotpoint`` from its parts (sorted by first CMP): each part holds the SP
    of its own CMPs, so the line's is their concatenation; (None, {}) unless every part has
    one for each of its CMPs, with the same attributes (source, method)."""
    import h5py

    from seis_hpc.io.volume import read_shotpoint

    values, first = [], None
    for g, _, p, _, _ in heads:
        with h5py.File(p, "r") as f:
            sp, attrs = read_shotpoint(f)
        if sp is None or len(sp) != g.n_crossline:
            return None, {}
        key = {k: str(v) for k, v in attrs.items()}
        if first is None:
            first = (key, attrs)
        elif key != first[0]:
            return None, {}
        values.append(sp)
    return np.concatenate(values), first[1]


def merge_parts(paths: list[str], out: str) -> tuple[int, ...]:
    """Assemble part images (consecutive inline or CMP ranges of one grid) into ``out``.

    Parameters
    ----------
    paths : list of path-like
        Part images written by ``seis-hpc pstm --grid``; any order.
    out : path-like
        The whole image (written atomically).

    Returns
    -------
    tuple of int
        Shape of the assembled image.

    Raises
    ------
    SeisError
        Parts of different grids or time axes, gaps or overlaps between them.
    """
    import h5py

    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.atomic import atomic_output
    from seis_hpc.io.volume import VolumeWriter

    heads, scale = [], []
    for p in paths:
        with h5py.File(p, "r") as f:
            if f.attrs.get("kind") != "image" or "image" not in f:
                raise SeisError("not a seis_hpc image", p)
            heads.append((BinGrid.from_attrs(f.attrs), f["time"][...], p,
                          f.attrs.get("config", ""), f.attrs.get("history", "[]")))
            scale.append({k: f.attrs[k] for k in ("normalise", "normalised", "rho_filter")
                          if k in f.attrs})
    if not heads:
        raise SeisError("no parts to merge")
    for sc, h in zip(scale[1:], heads[1:], strict=True):
        if {k: str(v) for k, v in sc.items()} != {k: str(v) for k, v in scale[0].items()}:
            raise SeisError(f"part has another amplitude scale ({sc}) than {heads[0][2]} "
                            f"({scale[0]})", h[2])
    g0 = heads[0][0]
    key = (lambda h: h[0].crossline0) if g0.is_2d else (lambda h: h[0].inline0)
    heads.sort(key=key)
    first, time = heads[0][0], heads[0][1]
    nxt = None
    for g, t, p, _, _ in heads:
        same = (g.is_2d == first.is_2d and np.isclose(g.azimuth, first.azimuth)
                and np.isclose(g.bin_inline, first.bin_inline)
                and np.isclose(g.bin_crossline, first.bin_crossline)
                and g.handedness == first.handedness)
        if not same or len(t) != len(time) or not np.allclose(t, time):
            raise SeisError("part is on another grid or time axis than "
                            f"{heads[0][2]}", p)
        lat = (g.inline0, g.n_crossline, g.crossline0) if not g.is_2d else None
        if lat is not None and lat[1:] != (first.n_crossline, first.crossline0):
            raise SeisError("part covers other crosslines than the first part", p)
        start = g.crossline0 if g.is_2d else g.inline0
        if nxt is not None and start != nxt:
            raise SeisError(f"part starts at line {start}, expected {nxt} (gap or overlap)", p)
        nxt = start + (g.n_crossline if g.is_2d else g.n_inline)
    if g0.is_2d:
        n_i, n_j = 1, nxt - first.crossline0
    else:
        n_i, n_j = nxt - first.inline0, first.n_crossline
    grid = BinGrid(first.x0, first.y0, first.azimuth, first.bin_inline, first.bin_crossline,
                   first.inline0, first.crossline0, n_i, n_j, first.handedness, first.is_2d)
    shape = grid.shape + (len(time),)
    history = []
    for h in heads:
        history += json.loads(h[4]) if isinstance(h[4], str) else []
    history.append(f"seis-hpc slurm merge: {len(heads)} parts")
    sp, sp_attrs = _merged_shotpoint(heads) if grid.is_2d else (None, {})
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as f:
        w = VolumeWriter(f, grid, time, "image", config=heads[0][3], history=history,
                         shotpoint=sp, shotpoint_attrs=sp_attrs)
        f.attrs.update(scale[0])  # the parts' amplitude scale (the plain sum for [array])
        for g, _, p, _, _ in heads:
            with h5py.File(p, "r") as src:
                block = src["image"][...]
            # The parts are whole lines of the first lateral axis (inlines; CMPs in 2D).
            if grid.is_2d:
                a = g.crossline0 - grid.crossline0
                w.put_lines("image", slice(a, a + g.n_crossline), block)
            else:
                a = g.inline0 - grid.inline0
                w.put_lines("image", slice(a, a + g.n_inline), block)
    return shape

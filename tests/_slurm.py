"""A real SLURM for the tests, started in a temporary folder: munged, slurmctld and one slurmd
per node, all on this host and on loopback (127.0.0.1) only.

The packages (Debian's slurm-wlm 22.05: slurmctld, slurmd, slurm-client, with munge) come from
``.ci/slurm-setup.sh`` (``make test`` runs it when it can). Each cluster has its own ports,
munge key and socket, state, spool, pid and log files under its folder; no system file is
touched and only the processes started here are stopped: the daemons by PID, what is left
of the jobs by the SLURM_CONF (this cluster's own path) in their environment, a killed node's
processes by its UTS namespace.

Several nodes: one ``slurmd -N NAME`` per node, each with its own ``Port=`` and (through
``%n`` in slurm.conf) its own spool, pid and log file. Each slurmd runs in its own UTS
namespace (``unshare -u``) whose hostname is the node's name, so a rank's ``hostname`` says
which node it runs on, as on a real cluster. Without ``unshare`` the nodes share this host's
name (``Cluster.uts`` is then False).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import skip_or_fail

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "scancel", "srun")
START_TIMEOUT = 30.0
DONE = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(d: Path, nodes: list[str], hosts: list[str], cpus: int, mem_mb: int,
               gres: str = "") -> str:
    """A cluster of ``nodes`` on this host: no accounting, no cgroups, PMI-2 for the MPICH
    wheel, short timeouts so that a lost node is noticed (and its job requeued) in seconds."""
    ctl = socket.gethostname().split(".")[0]
    lines = []
    for name, host in zip(nodes, hosts, strict=True):
        port = f" Port={free_port()}" if len(nodes) > 1 else ""
        g = f" Gres={gres}" if gres else ""
        lines.append(f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1{port} "
                     f"CPUs={cpus} RealMemory={mem_mb}{g} State=UNKNOWN")
    multi = len(nodes) > 1
    # Job ids of their own: several test clusters on one machine (other checkouts' tests at
    # the same time, earlier runs) would otherwise all count from 1, and what MPI or SLURM
    # keys on a job id (shared-memory segments a killed job left in /dev/shm) could be met
    # again by another cluster's job of the same number.
    first = random.randint(100_000, 60_000_000)
    return f"""\
ClusterName=seistest{os.getpid()}{''.join(n[-1] for n in nodes)}
FirstJobId={first}
SlurmctldHost={ctl}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays a requeued job's restart (default 120 s).
AuthInfo=socket={d}/munge/munge.sock,cred_expire=5
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool{'/%n' if multi else ''}
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd{'-%n' if multi else ''}.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd{'-%n' if multi else ''}.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# MPICH starts under srun with PMI-2; pmix cannot start it and none starts N 1-rank jobs.
MpiDefault=pmi2
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
{'GresTypes=gpu' if gres else ''}
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SlurmctldTimeout=30
SlurmdTimeout={10 if multi else 30}
InactiveLimit=0
KillWait={5 if multi else 10}
MinJobAge=600
{chr(10).join(lines)}
PartitionName=debug Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE State=UP
"""


def _uts(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/uts")
    except OSError:
        return None


class Cluster:
    """The daemons of one test cluster (started here, stopped here by PID).

    Parameters
    ----------
    d : Path
        Its folder (configuration, state, spool, logs, munge key and socket).
    nodes : list of str
        Node names; one slurmd each.
    gres : str
        ``Gres=`` of every node (e.g. ``gpu:h100:2``), with a ``gres.conf`` written by the
        caller (see :meth:`start`'s ``gres_conf``).
    """

    def __init__(self, d: Path, nodes: tuple[str, ...] = ("seisnode",), gres: str = ""):
        self.dir = d
        self.nodes = list(nodes)
        self.gres = gres
        self.procs: list[subprocess.Popen] = []
        self.slurmd: dict[str, subprocess.Popen] = {}
        self.munged = self.ctld = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        self.env["SLURM_CONF"] = str(d / "slurm.conf")
        # Own hostnames only with several nodes, where unshare is there to give them.
        self.uts = len(self.nodes) > 1 and shutil.which("unshare") is not None

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.dir / "log" / f"{name}.out", "a")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                             stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append(p)
        return p

    def start(self, gres_conf: str = "") -> str | None:
        """Start munged, slurmctld and the slurmds; return why not when they did not come up."""
        d = self.dir
        for sub in ("state", "spool", "log"):
            (d / sub).mkdir()
        for n in self.nodes:
            (d / "spool" / n).mkdir()
        # munged wants its socket folder world-readable (755) and a private key.
        (d / "munge").mkdir(mode=0o755)
        os.chmod(d / "munge", 0o755)
        key = d / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        cpus = max(2, min(os.cpu_count() or 2, 4))
        host = socket.gethostname().split(".")[0]
        if self.uts and not self._unshare_works():
            self.uts = False
        hosts = self.nodes if self.uts else [host] * len(self.nodes)
        (d / "slurm.conf").write_text(slurm_conf(d, self.nodes, hosts, cpus, 4000, self.gres))
        if gres_conf:
            (d / "gres.conf").write_text(gres_conf)
        self.munged = self._start("munged", [
            "munged", "-F", "--force", f"--socket={d}/munge/munge.sock", f"--key-file={key}",
            f"--pid-file={d}/munge/munged.pid", f"--seed-file={d}/munge/munged.seed",
            f"--log-file={d}/log/munged.log"])
        if not self._until(lambda: (d / "munge" / "munge.sock").exists()):
            return "munged did not start: " + self.log_tail("munged.out")
        self.ctld = self._start("slurmctld", ["slurmctld", "-D", "-f", str(d / "slurm.conf")])
        for n in self.nodes:
            self.start_node(n)
        if not self._until(self.all_idle):
            return ("slurmctld/slurmd not up in time: " + self.log_tail("slurmctld.out")
                    + "".join(self.log_tail(f"slurmd-{n}.out") for n in self.nodes))
        return None

    def _unshare_works(self) -> bool:
        r = subprocess.run(["unshare", "-u", "sh", "-c", "hostname seis-uts-probe && hostname"],
                           capture_output=True, text=True, timeout=10)
        return r.returncode == 0 and r.stdout.strip() == "seis-uts-probe"

    def start_node(self, name: str) -> subprocess.Popen:
        """Start (or restart) node ``name``'s slurmd, in its own UTS namespace if possible."""
        args = ["slurmd", "-D", "-N", name, "-f", str(self.dir / "slurm.conf")]
        if self.uts:
            # unshare execs sh, which sets the namespace's hostname and execs slurmd: the
            # PID is slurmd's, and its job steps (slurmstepd, the ranks) inherit the name.
            args = ["unshare", "-u", "sh", "-c", 'hostname "$0" && exec "$@"', name, *args]
        p = self._start(f"slurmd-{name}", args)
        self.slurmd[name] = p
        return p

    def node_processes(self, name: str) -> list[int]:
        """PIDs of node ``name``: its slurmd and, with own namespaces, everything started in
        that namespace (slurmstepd, the job's ranks)."""
        p = self.slurmd[name]
        if not self.uts or p.poll() is not None:
            return [p.pid] if p.poll() is None else []
        ns = _uts(p.pid)
        if ns is None or ns == _uts(os.getpid()):
            return [p.pid]
        return [int(q) for q in os.listdir("/proc") if q.isdigit() and _uts(int(q)) == ns]

    def kill_node(self, name: str) -> list[int]:
        """Power node ``name`` off: SIGKILL its slurmd and every process of its namespace
        (job steps included); return the PIDs killed."""
        pids = self.node_processes(name)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.slurmd[name].wait(timeout=10)
        return pids

    def node_states(self) -> dict[str, str]:
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], env=self.env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            return {}
        return dict(line.split() for line in r.stdout.splitlines() if line.strip())

    def all_idle(self) -> bool:
        s = self.node_states()
        return sorted(s) == sorted(self.nodes) and all(v == "idle" for v in s.values())

    def _until(self, ok, timeout: float = START_TIMEOUT) -> bool:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if ok():
                return True
            if any(p.poll() is not None for p in self.daemons()):
                return False
            time.sleep(0.2)
        return False

    def daemons(self) -> list[subprocess.Popen]:
        """The daemons that should be running: munged, slurmctld, the current slurmds."""
        return [p for p in (self.munged, self.ctld, *self.slurmd.values()) if p is not None]

    def log_tail(self, name: str) -> str:
        p = self.dir / "log" / name
        return p.read_text()[-1500:] if p.exists() else f"(no {name})"

    def job_processes(self) -> list[int]:
        """PIDs of this cluster's job steps (slurmstepd, batch scripts, srun, ranks): the
        processes whose environment names this cluster's slurm.conf (the daemons pass it on;
        no other cluster has this path)."""
        mark = f"SLURM_CONF={self.dir / 'slurm.conf'}".encode()
        daemons = {p.pid for p in self.procs}
        out = []
        for q in os.listdir("/proc"):
            if not q.isdigit() or int(q) in daemons or int(q) == os.getpid():
                continue
            try:
                env = Path(f"/proc/{q}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if mark in env:
                out.append(int(q))
        return out

    def stop(self) -> None:
        """SIGTERM each daemon started here (newest first), SIGKILL any that lingers; then
        SIGKILL what is left of the jobs (the steps of a test that failed mid-job, those of
        a killed node): every process that carries this cluster's SLURM_CONF."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for pid in self.job_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def running(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def run(self, *args: str, cwd: Path, env: dict | None = None, timeout: float = 150):
        return subprocess.run(list(args), cwd=cwd, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    def submit_rendered(self, config: Path, cwd: Path) -> tuple[str, str, str]:
        """``seis-hpc slurm render`` an ``[array]`` job config and run its submit script;
        return the script's output, the array job's id and the merge job's id."""
        r = self.run(sys.executable, "-m", "seis_hpc", "slurm", "render", "--config",
                     str(config), "--out", str(cwd / "submit.sh"), cwd=cwd)
        assert r.returncode == 0, r.stderr
        r = self.run("bash", str(cwd / "submit.sh"), cwd=cwd)
        assert r.returncode == 0, r.stderr
        array_id = r.stdout.split("submitted array job ")[1].split()[0]
        merge_id = r.stdout.split("submitted merge job ")[1].split()[0]
        return r.stdout, array_id, merge_id

    def job(self, job_id: str) -> dict[str, str]:
        r = self.run("scontrol", "show", "job", "-o", job_id, cwd=self.dir)
        fields = {}
        for word in r.stdout.split():
            k, _, v = word.partition("=")
            fields.setdefault(k, v)
        return fields

    def submit_wait(self, *args: str, cwd: Path, env: dict | None = None,
                    timeout: float = 300) -> tuple[subprocess.CompletedProcess, dict]:
        """``sbatch --parsable ARGS`` and wait for the job's end: (sbatch's result, the job's
        fields; empty when sbatch failed). Polls every 0.5 s, where ``sbatch --wait`` polls
        at growing intervals and can notice the end half a minute late."""
        r = self.run("sbatch", "--parsable", *args, cwd=cwd, env=env)
        if r.returncode != 0:
            return r, {}
        return r, self.wait_job(r.stdout.strip().split(";")[0], timeout=timeout)

    def wait_job(self, job_id: str, timeout: float = 150, every: float = 0.5) -> dict[str, str]:
        """The job's fields once it has ended (``DONE``); assert it ends in ``timeout`` s."""
        t0 = time.time()
        while True:
            info = self.job(job_id)
            if info.get("JobState") in DONE:
                return info
            assert time.time() - t0 < timeout, info
            time.sleep(every)


def need_slurm() -> None:
    """Skip (fail in CI) where a test SLURM cannot run here."""
    if sys.platform != "linux" or os.geteuid() != 0:
        skip_or_fail("a test SLURM needs Linux and root (slurmd runs jobs as their user)")
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        skip_or_fail(f"SLURM not installed ({', '.join(missing)} missing): run "
                     ".ci/slurm-setup.sh as root")


def cluster_fixture(tmp_path_factory, name: str, nodes=("seisnode",), gres: str = "",
                    gres_conf: str = ""):
    """Generator for a module fixture: a started cluster, stopped (and checked) after."""
    need_slurm()
    c = Cluster(tmp_path_factory.mktemp(name), nodes, gres)
    try:
        why = c.start(gres_conf)
        if why:
            skip_or_fail(f"test SLURM did not start: {why}")
        yield c
    finally:
        c.stop()
        leftover = c.running()
        assert not leftover, f"daemons still running: {leftover}"

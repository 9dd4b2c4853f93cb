"""Flow files: a sequence of steps with their parameters, validated whole before anything runs.

Example (``flows/marine2d.toml``, which ``seis-hpc example marine2d`` copies into the run
folder; :func:`example_flows`)::

    [flow]
    name = "marine2d conditioning"
    input = "raw/shots.sgy"           # relative paths are relative to the flow file
    output = "conditioned.sgy"
    workdir = "work"                  # intermediate files (default: beside the output)

    [[step]]
    name = "edit"
    noisy_ratio = 3.0

    [[step]]
    name = "swell"
    fmax = "15 Hz"                    # a number in the SI unit, or a string with a unit

Every key is checked against the step's parameters (unknown keys, wrong units, missing files),
and the first problem is reported as one error naming the line of the flow file. Each step's
output gets ``OUT.qc.json`` with the whole history (flow file, step, parameters).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from seis_hpc.errors import SeisError

FLOW_KEYS = {"name", "input", "output", "workdir"}


def _key_lines(text: str) -> tuple[dict[str, int], list[dict[str, int]], list[int]]:
    """Line numbers of the [flow] keys, of each [[step]]'s keys and of each [[step]] header."""
    flow: dict[str, int] = {}
    steps: list[dict[str, int]] = []
    headers: list[int] = []
    section = None
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s.startswith("[[") and s.rstrip().endswith("]]"):
            section = s[2:-2].strip()
            if section == "step":
                steps.append({})
                headers.append(n)
            continue
        if s.startswith("["):
            section = s[1:s.find("]")].strip()
            continue
        m = re.match(r'^\s*"?([A-Za-z0-9_\-]+)"?\s*=', line)
        if m:
            if section == "flow":
                flow.setdefault(m.group(1), n)
            elif section == "step" and steps:
                steps[-1].setdefault(m.group(1), n)
    return flow, steps, headers


def example_flows() -> dict[str, Path]:
    """The example flow files shipped with seis_hpc, by name (``marine2d``: its file).

    Read from ``seis_hpc/flows/examples`` of an installed package (setup.py copies ``flows/``
    there when it builds a wheel), else from ``flows/`` of the source checkout this package
    runs from (an editable install); empty when neither exists.
    """
    from importlib import resources

    shipped = resources.files("seis_hpc.flows").joinpath("examples")
    folder = shipped if isinstance(shipped, Path) and shipped.is_dir() else \
        Path(__file__).resolve().parents[2] / "flows"
    return {f.stem: f for f in sorted(folder.glob("*.toml"))} if folder.is_dir() else {}


class Flow:
    """A validated flow: input, output, work folder and the resolved steps."""

    def __init__(self, path, name, input_path, output, workdir, steps, text):
        self.path = path
        self.name = name
        self.input = input_path
        self.output = output
        self.workdir = workdir
        self.steps = steps  # list of (StepSpec, params)
        self.text = text

    def outputs(self) -> list[Path]:
        """Output file of every step (the last is the flow's output)."""
        out = []
        for k, (spec, _) in enumerate(self.steps):
            last = k == len(self.steps) - 1
            out.append(self.output if last else self.workdir / f"{k + 1:02d}_{spec.name}.sgy")
        return out


def load_flow(path: str | os.PathLike) -> Flow:
    """Read and validate a flow file.

    Raises
    ------
    SeisError
        ``<file>: line N: <problem>`` for the first problem found.
    """
    from seis_hpc.flows.steps import STEPS
    from seis_hpc.limits import read_text

    path = Path(path)
    text = read_text(path, "flow file (TOML)")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SeisError(f"not valid TOML: {exc}", path) from None
    flow_lines, step_lines, headers = _key_lines(text)
    base = path.parent

    def where(n: int | None) -> str:
        return f"line {n}" if n else "flow"

    unknown_top = sorted(set(doc) - {"flow", "step"})
    if unknown_top:
        n = next((i for i, ln in enumerate(text.splitlines(), 1)
                  if ln.strip().lstrip("[").startswith(unknown_top[0])), None)
        raise SeisError(f"{where(n)}: unknown table or key {unknown_top[0]!r} (expected [flow] "
                        "and [[step]])", path)
    flow = doc.get("flow")
    if not isinstance(flow, dict):
        raise SeisError("line 1: missing [flow] table (name, input, output)", path)
    for k in flow:
        if k not in FLOW_KEYS:
            raise SeisError(f"{where(flow_lines.get(k))}: unknown key {k!r} in [flow] "
                            f"(known: {', '.join(sorted(FLOW_KEYS))})", path)
    for k in ("input", "output"):
        if not isinstance(flow.get(k), str):
            raise SeisError(f"{where(flow_lines.get(k))}: [flow] needs {k} = \"PATH\"", path)
    inp = (base / flow["input"]).resolve()
    if not inp.is_file():
        raise SeisError(f"{where(flow_lines.get('input'))}: input file {flow['input']!r} not "
                        f"found ({inp})", path)
    out = (base / flow["output"]).resolve()
    if out == inp:
        raise SeisError(f"{where(flow_lines.get('output'))}: output is the input", path)
    workdir = (base / flow["workdir"]).resolve() if flow.get("workdir") else \
        out.with_name(out.stem + "_work")
    raw_steps = doc.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise SeisError("no [[step]] tables: a flow needs at least one step", path)
    steps = []
    for k, st in enumerate(raw_steps):
        lines = step_lines[k] if k < len(step_lines) else {}
        head = headers[k] if k < len(headers) else None
        name = st.get("name")
        if name not in STEPS:
            raise SeisError(f"{where(lines.get('name', head))}: step {k + 1}: unknown step "
                            f"{name!r} (choose from {', '.join(STEPS)})", path)
        spec = STEPS[name]
        given = {key: v for key, v in st.items() if key != "name"}
        for key in given:
            if key not in {p.name for p in spec.params}:
                raise SeisError(f"{where(lines.get(key))}: step {k + 1} ({name}): unknown "
                                f"parameter {key!r} (known: "
                                f"{', '.join(p.name for p in spec.params)})", path)
        try:
            params = spec.resolve(given, f"step {k + 1} ({name})")
        except SeisError as exc:
            bad = next((key for key in given if f": {key}:" in str(exc) or
                        f"{key!r}" in str(exc)), None)
            missing = next((p.name for p in spec.params if p.required and p.name not in given),
                           None)
            n = lines.get(bad) if bad else head if missing else head
            raise SeisError(f"{where(n)}: {exc}", path) from None
        for p in spec.params:
            if p.unit == "path" and params.get(p.name):
                full = (base / params[p.name]).resolve()
                if p.name != "report" and not full.is_file():
                    raise SeisError(f"{where(lines.get(p.name))}: step {k + 1} ({name}): "
                                    f"{p.name} file {params[p.name]!r} not found ({full})",
                                    path)
                params[p.name] = str(full)
        steps.append((spec, params))
    return Flow(path, str(flow.get("name", path.stem)), inp, out, workdir, steps, text)


def run_flow(flow: Flow, comm=None, quiet: bool = False) -> list[dict | None]:
    """Run every step of a validated flow in order; returns the QC summaries (rank 0)."""
    from seis_hpc.engine.gather_run import run_step

    summaries = []
    src = flow.input
    record = {"file": str(flow.path), "name": flow.name, "text": flow.text}
    for (spec, params), out in zip(flow.steps, flow.outputs(), strict=True):
        summaries.append(run_step(spec, params, src, out, comm=comm, flow=record, quiet=quiet))
        src = out
    return summaries

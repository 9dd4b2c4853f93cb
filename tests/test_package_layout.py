"""The package's shape (issue 14): no import cycles, a short top level, a lazy public API.

The import graph is read from the source with :mod:`ast`, function-local imports included, so
a cycle hidden inside a function (which Python tolerates until someone moves the import up)
is caught as well. ``from seis_hpc.x import y`` is an edge to the module ``seis_hpc.x.y`` when
that is a module, else to ``seis_hpc.x``; importing ``seis_hpc.x.y`` also runs
``seis_hpc/x/__init__.py``, an edge every submodule has and that is not counted.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "seis_hpc"
MAX_TOP_MODULES = 10


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _owner(name: str, mods) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (None: not ours)."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source."""
    mods = _modules()
    graph = {}
    for name, (path, is_pkg) in mods.items():
        here = name if is_pkg else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [_owner(a.name, mods) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    up = here.split(".")[:len(here.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods
                           else _owner(base, mods) for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_graph_reader_sees_function_local_and_relative_imports():
    graph = import_graph()
    # cli imports the commands inside main(); the commands import the survey inside run().
    assert "seis_hpc.commands" in graph["seis_hpc.cli"]
    assert "seis_hpc.survey" in graph["seis_hpc.commands.info"]
    assert "seis_hpc.engine.comm" in graph["seis_hpc.engine.gather_run"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_short_top_level():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} modules at the top of seis_hpc/: {top}"


def test_public_api_names():
    import seis_hpc

    for name in seis_hpc.__all__:
        assert getattr(seis_hpc, name) is not None, name
    from seis_hpc import (  # noqa: F401 - each name must import
        BinGrid,
        SeisError,
        Survey,
        dsr_traveltime,
        kirchhoff_model,
        make_survey,
        nmo_correct,
        open_vrms,
        preset,
        pstm,
        read_picks,
        read_volume,
        semblance,
        write_picks,
        write_survey,
        write_volume,
    )
    from seis_hpc.errors import SeisError as Original
    from seis_hpc.migration.pstm import pstm as original_pstm

    assert SeisError is Original and pstm is original_pstm
    assert set(dir(seis_hpc)) >= set(seis_hpc.__all__)


def test_import_is_lazy():
    """``import seis_hpc`` loads none of the heavy modules (the CLI's --help stays fast)."""
    code = ("import sys, seis_hpc; heavy = [m for m in ('numpy', 'h5py', 'seis_hpc.survey', "
            "'seis_hpc.migration.pstm') if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
    r = subprocess.run([sys.executable, "-c", "import seis_hpc; seis_hpc.no_such_name"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "has no attribute 'no_such_name'" in r.stderr


# Private names a module may import from another one: documented test hooks only.
PRIVATE_IMPORT_EXCEPTIONS: dict[tuple[str, str], str] = {}


def private_imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, name) of every ``from seis_hpc.x import _name``
    where x is another module (``import ... as _alias`` of a public name is fine)."""
    mods = _modules()
    found = []
    for name, (path, is_pkg) in mods.items():
        here = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                up = here.split(".")[:len(here.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith("seis_hpc"):
                continue
            for a in node.names:
                if (a.name.startswith("_") and not a.name.startswith("__")
                        and f"{base}.{a.name}" not in mods and base != name):
                    found.append((name, base, a.name))
    return found


def test_private_import_reader_sees_them():
    import tempfile

    global PKG
    saved = PKG
    with tempfile.TemporaryDirectory() as d:
        pkg = Path(d) / "seis_hpc"
        (pkg / "sub").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "sub" / "__init__.py").write_text("")
        (pkg / "sub" / "a.py").write_text("def _h(): pass\n")
        (pkg / "sub" / "b.py").write_text("def f():\n    from .a import _h, __doc__\n")
        (pkg / "c.py").write_text("from seis_hpc.sub import a as _a\n")
        PKG = pkg
        try:
            assert private_imports() == [("seis_hpc.sub.b", "seis_hpc.sub.a", "_h")]
        finally:
            PKG = saved


def test_no_private_imports_across_modules():
    bad = [f"{m} imports {n} from {b}" for m, b, n in private_imports()
           if (b, n) not in PRIVATE_IMPORT_EXCEPTIONS]
    assert not bad, "private names used across modules (make them public): " + "; ".join(bad)


# Command modules parse, call one library function and print. Exceptions, with the reason:
MAX_COMMAND_LINES = 110
LONG_COMMANDS: dict[str, str] = {
    "pstm.py": "declares ~30 options (with units) and the --help text; run() is one call of "
               "seis_hpc.migration.job.migrate",
    "velan.py": "declares ~35 options of the scan, the picker and the field (with units) and "
                "the --help text; run() is one call of seis_hpc.velocity.analysis.velan",
    "migstack.py": "declares ~20 options of the image and the residual moveout (with units "
                   "and defaults) and the --help text; run() is one call of "
                   "seis_hpc.velocity.mva.migstack",
    "info.py": "being rewritten by the real-header geometry work (issue 14 follow-up); thin it "
               "after that lands",
    "qc.py": "three validating argument types (--size, --vrange, --clip) and the choice of "
             "picture set; the pictures are drawn by seis_hpc.qc.pictures",
}


def test_commands_are_thin():
    long = {p.name: len(p.read_text().splitlines()) for p in (PKG / "commands").glob("*.py")}
    long = {n: k for n, k in long.items() if k > MAX_COMMAND_LINES and n not in LONG_COMMANDS}
    assert not long, f"command modules over {MAX_COMMAND_LINES} lines (move the work into the " \
        f"library): {long}"

"""The processing report: one self-contained HTML file for a run folder, and its manifest.

:func:`build_report` reads ``RUNDIR/steps.jsonl`` (see :mod:`seis_hpc.delivery.runlog`) and writes

* ``RUNDIR/report.html``: every step in order with its command line, parameters, inputs and
  outputs, start, end and duration, trace counts, edits, metrics and QC pictures.
  Pictures are embedded as base64 ``data:`` URIs; the file has no external asset, script,
  style sheet or link, so it opens offline and can be mailed as it is.

  Each input and output is shown with the size and SHA-256 the step recorded when it read or
  wrote the file (see :mod:`seis_hpc.delivery.runlog`), not as the file is now, and the file
  as it is now is compared with it: a file changed or missing since the step wrote (or read)
  it is flagged in the step (``changed after this step wrote it: recorded sha256 ... now
  ...``, naming the later step that rewrote it, or saying that no recorded step did) and
  listed under "Changed or missing files" at the top. A folder output shows the files the
  step wrote into it. The edits table lists, per flow step, the traces killed, despiked,
  flipped... (from the QC summaries the step wrote), with the edit report file.
  Records written before hashes were recorded show the file as it is now, marked so.
* ``RUNDIR/MANIFEST.sha256``: SHA-256 (and size) of every deliverable, in ``sha256sum`` format
  (``cd RUNDIR && sha256sum -c MANIFEST.sha256`` checks it) — the outputs of the steps that
  succeeded (folders expanded to their files) with their side files (``OUT.qc.json``,
  ``OUT.edits.csv``, recorded by :mod:`seis_hpc.cli`), their QC pictures, the recorded inputs
  that lie in the run folder (a flow file, a trace index), ``steps.jsonl`` and ``report.html``
  itself (see :mod:`seis_hpc.delivery.manifest`). A manifest lists only files under its own
  folder: outputs recorded outside it are reported (``Report.outside``) and left out.
* ``RUNDIR/SCRATCH.txt``: the intermediate files, with sizes, not hashed and not in the
  manifest. The rule: a file is scratch when

  - a later successful step that writes data read it (it is an output of one step, or a
    file of a folder output, and an input of a later step; a ``qc`` step, which only draws
    pictures of a product, does not make its input scratch), or
  - its path in the run folder has a ``work`` folder or an ``iter<N>`` folder (the pass files
    of ``migstack``) in it.

  QC pictures, side files (``OUT.qc.json``, ``OUT.edits.csv``), ``steps.jsonl`` and the
  report are always deliverables. The report lists scratch in its own section.

The files of a folder output are those the step recorded writing into it (and those that
earlier records of the same folder wrote, e.g. a run stopped and resumed), not everything
the folder holds: ``synth --out .`` does not make the whole run folder its output.

The manifest holds the files as they are when the report is built (so that ``sha256sum -c``
checks the delivery); the comparison with the recorded hashes is what says whether they are
still what the steps wrote.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from seis_hpc import __version__
from seis_hpc.delivery.manifest import (
    MANIFEST_NAME,
    SCRATCH_NAME,
    Entry,
    hash_files,
    sha256_file,
    write_manifest,
    write_scratch,
)
from seis_hpc.delivery.runlog import EDIT_NAMES, STEPS_FILE, read_steps
from seis_hpc.errors import SeisError
from seis_hpc.io.atomic import atomic_output

REPORT_NAME = "report.html"
# steps that only look at a product (pictures of it): reading a file does not make it scratch
_LOOK_ONLY_STEPS = frozenset({"qc"})
_SCRATCH_DIR = re.compile(r"^(work|iter\d+)$")
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { background: #f6f6f6; font-size: 0.9em; }
pre { padding: 0.5em; white-space: pre-wrap; word-break: break-all; }
.ok { color: #080; } .failed, .stopped, .missing, .changed { color: #b00; font-weight: bold; }
.sha { font-family: monospace; font-size: 0.85em; word-break: break-all; }
tr.folder td { background: #fafafa; font-style: italic; }
figure { display: inline-block; margin: 0.5em; } figcaption { font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


@dataclass(frozen=True)
class Mismatch:
    """A file that is not what a step recorded: ``step`` (1-based) and ``name`` of the step,
    ``role`` (``"written"`` or ``"read"``), ``path`` (as recorded), the recorded and current
    size (bytes) and SHA-256 (current ones None when the file is missing), and ``by``: the
    later step that recorded the current content ("step 5 (velan)"), or "" when none did."""

    step: int
    name: str
    role: str
    path: str
    recorded_sha256: str
    recorded_bytes: int
    sha256: str | None
    bytes: int | None
    by: str = ""

    def text(self) -> str:
        """One line saying what changed, e.g. for ``seis-hpc report``'s warnings."""
        what = "after this step wrote it" if self.role == "written" else \
            "since this step read it"
        if self.sha256 is None:
            return f"missing (deleted or moved {what}; recorded sha256 {self.recorded_sha256})"
        why = f"rewritten by {self.by}" if self.by else "by no recorded step"
        return (f"changed {what}: recorded sha256 {self.recorded_sha256} "
                f"({self.recorded_bytes} bytes), now {self.sha256} ({self.bytes} bytes); "
                f"{why}")


@dataclass
class Report:
    """What :func:`build_report` wrote; ``mismatches``: files changed or missing since the
    step that recorded them."""

    html: Path
    manifest: Path
    steps: int
    entries: list[Entry] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    scratch: list[tuple[str, int]] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _resolve(rundir: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else rundir / q


def _files_of(rundir: Path, p: str) -> list[Path]:
    """The files an output names: itself, or every file under a folder output."""
    q = _resolve(rundir, p)
    if q.is_dir():
        return sorted(f for f in q.rglob("*") if f.is_file() and not f.name.startswith(".")
                      and ".tmp-" not in f.name)
    return [q]


def _value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, (dict, list)):
        return f"<code>{_esc(json.dumps(v, default=str))}</code>"
    if isinstance(v, float):
        return _esc(f"{v:g}")
    return _esc(v)


def _table(rows: list[tuple], head: tuple | None = None) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells = []
        if isinstance(row, _FolderRow):
            out.append('<tr class="folder">' + "".join(
                f"<td>{c if isinstance(c, _Raw) else _value(c)}</td>" for c in row) + "</tr>")
            continue
        for c in row:
            cls = ' class="num"' if isinstance(c, (int, float)) and not isinstance(c, bool) \
                else ""
            cells.append(f"<td{cls}>{c if isinstance(c, _Raw) else _value(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


class _Raw(str):
    """HTML that is already escaped."""


def _image(path: Path, caption: str) -> str:
    mime = _IMAGE_TYPES.get(path.suffix.lower())
    if mime is None:
        return f"<p>{_esc(caption)}: not a PNG/JPEG picture, not embedded</p>"
    if not path.is_file():
        return f'<p class="missing">{_esc(caption)}: missing</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_esc(caption)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _file_rows(rundir: Path, paths: list[str], hashes: dict[Path, Entry]) -> list[tuple]:
    """Rows of a record without recorded hashes (written before they were): the files as
    they are now."""
    rows = []
    for p in paths:
        q = _resolve(rundir, p)
        if q.is_dir():
            files = _files_of(rundir, p)
            total = sum(f.stat().st_size for f in files)
            rows.append((p, _Raw(f"folder, {len(files)} files"), _size(total), "",
                         "not recorded by the step"))
        elif q.is_file():
            e = hashes.get(q.resolve())
            rows.append((p, "file", _size(q.stat().st_size),
                         _Raw(f'<span class="sha">{e.sha256}</span>' if e else ""),
                         "hash taken now, not recorded by the step"))
        else:
            rows.append((p, _Raw('<span class="missing">missing</span>'), "", "", ""))
    return rows


class _Now:
    """The files as they are now: size and SHA-256, each file read at most once; a file in
    the manifest takes its manifest hash; any other (scratch, inputs outside the run folder)
    whose size and modification time are those recorded keeps the recorded SHA-256 (it was
    not written since), else it is hashed."""

    def __init__(self, rundir: Path, hashes: dict[Path, Entry]):
        self.rundir, self.hashes = rundir, hashes
        self.cache: dict[Path, tuple[int, str] | None] = {}

    def __call__(self, e: dict) -> tuple[int, str] | None:
        q = _resolve(self.rundir, str(e.get("path", "")))
        try:
            key = q.resolve()
        except OSError:
            return None
        if key in self.cache:
            return self.cache[key]
        state = None
        if key in self.hashes:
            state = (self.hashes[key].size, self.hashes[key].sha256)
        elif q.is_file():
            try:
                st = q.stat()
                if st.st_size == e.get("bytes") and st.st_mtime_ns == e.get("mtime_ns") \
                        and e.get("sha256"):
                    state = (st.st_size, str(e["sha256"]))
                else:
                    state = sha256_file(q)
            except OSError:
                state = None
        self.cache[key] = state
        return state


def _entries(st: dict, key: str) -> list[dict]:
    return [e for e in st.get(key) or [] if isinstance(e, dict) and "path" in e]


def _check_files(steps: list[dict], now: _Now) -> dict[tuple[int, str, str], Mismatch]:
    """Every recorded ``written``/``read`` entry whose file is now missing or different,
    keyed by (step number, role, path)."""
    out = {}
    for i, st in enumerate(steps):
        for role in ("written", "read"):
            for e in _entries(st, role):
                cur = now(e)
                if cur is not None and cur[1] == e.get("sha256"):
                    continue
                by = ""
                if cur is not None:
                    for j in range(len(steps) - 1, i, -1):
                        if any(w["path"] == e["path"] and w.get("sha256") == cur[1]
                               for w in _entries(steps[j], "written")):
                            by = f"step {j + 1} ({steps[j]['step']})"
                            break
                out[(i + 1, role, e["path"])] = Mismatch(
                    i + 1, str(st["step"]), role, e["path"], str(e.get("sha256", "")),
                    int(e.get("bytes") or 0), None if cur is None else cur[1],
                    None if cur is None else cur[0], by)
    return out


def _now_cell(m: Mismatch | None) -> _Raw:
    if m is None:
        return _Raw('<span class="ok">unchanged</span>')
    cls = "missing" if m.sha256 is None else "changed"
    return _Raw(f'<span class="{cls}">{_esc(m.text())}</span>')


def _recorded_rows(n: int, st: dict, role: str, paths: list[str],
                   bad: dict[tuple[int, str, str], Mismatch], writers: dict[str, list]
                   ) -> list[tuple]:
    """Rows of the inputs (``role="read"``) or outputs (``"written"``) of step ``n``: each
    recorded file with the size and SHA-256 the step recorded and how it compares now; a
    folder as a row naming it, then its files."""
    entries = [e for e in _entries(st, role) if e.get("kind") != "qc"]
    rows: list[tuple] = []
    done: set[str] = set()

    def file_row(e: dict, name: str | None = None) -> tuple:
        done.add(e["path"])
        row = (name or e["path"], int(e.get("bytes") or 0),
               _Raw(f'<span class="sha">{_esc(e.get("sha256", ""))}</span>'))
        if role == "read":
            src = [(j, name_j, sha) for j, name_j, sha in writers.get(e["path"], []) if j < n]
            if src:
                j, name_j, sha = src[-1]
                made = f"step {j} ({name_j})" + ("" if sha == e.get("sha256") else
                                                  ", other content")
            else:
                made = ""
            row += (made,)
        return row + (_now_cell(bad.get((n, role, e["path"]))),)

    blank = ("",) if role == "read" else ()
    for p in paths:
        if role == "written":
            mine = [e for e in entries if e.get("of") == p and e["path"] not in done]
        else:
            mine = [e for e in entries if e["path"] not in done
                    and (e["path"] == p or e["path"].startswith(p.rstrip("/") + "/"))]
        if len(mine) == 1 and mine[0]["path"] == p:
            rows.append(file_row(mine[0]))
        elif mine:
            verb = "written" if role == "written" else "read"
            rows.append(_FolderRow((p, _Raw(f"folder: {len(mine)} files {verb}"), "",
                                    *blank, "")))
            rows += [file_row(e) for e in mine]
        elif p not in done:
            what = "written" if role == "written" else "read"
            rows.append((p, "-", "", *blank, _Raw(
                f'<span class="missing">no file {what} (not found when the step '
                f'{"ended" if role == "written" else "ran"})</span>')))
    rows += [file_row(e) for e in entries if e["path"] not in done]
    return rows


class _FolderRow(tuple):
    """A table row naming a folder, shown in its own style."""


def _edits_html(st: dict) -> str:
    table = [r for r in st.get("edit_table") or [] if isinstance(r, dict)]
    edits = st.get("edits") or {}
    if table:
        rows = [(f"{r.get('flow_step', '')}. {r.get('step', '')}", r.get("output", ""),
                 EDIT_NAMES.get(str(r.get("edit")), str(r.get("edit"))),
                 int(r.get("traces") or 0), r.get("report") or "-") for r in table]
        totals = ", ".join(f"{EDIT_NAMES.get(k, k)} {v}" for k, v in edits.items())
        return (_table(rows, ("flow step", "output", "edit", "traces", "edit report"))
                + (f"<p>Totals: {_esc(totals)}</p>" if totals else ""))
    if edits:
        return _table(sorted(edits.items()), ("edit", "traces"))
    return "<p>none recorded</p>"


def _step_html(n: int, st: dict, rundir: Path, hashes: dict[Path, Entry],
               bad: dict[tuple[int, str, str], Mismatch] | None = None,
               writers: dict[str, list] | None = None) -> str:
    status = str(st.get("status", "ok"))
    parts = [f'<h2 id="step{n}">{n}. {_esc(st["step"])} '
             f'<span class="{_esc(status)}">[{_esc(status)}]</span></h2>']
    if st.get("message"):
        parts.append(f"<p><b>Message:</b> {_esc(st['message'])}</p>")
    parts.append(f"<pre>{_esc(' '.join(st.get('argv', [])))}</pre>")
    timing = [("start", st.get("start") or ""), ("end", st.get("end") or ""),
              ("duration (s)", st.get("seconds", "")), ("host", st.get("host", "")),
              ("MPI ranks", st.get("ranks", "")), ("software", st.get("software", ""))]
    traces = [(k.replace("_", " "), st[k]) for k in ("traces_in", "traces_out")
              if st.get(k) is not None]
    parts.append("<h3>Run</h3>" + _table(timing + traces))
    params = st.get("params") or {}
    if params:
        parts.append("<h3>Parameters</h3>" + _table(sorted(params.items()),
                                                      ("parameter", "value")))
    recorded = "written" in st or "read" in st
    for key, role, title in (("inputs", "read", "Inputs"), ("outputs", "written", "Outputs")):
        paths = st.get(key) or []
        if not paths and not _entries(st, role):
            parts.append(f"<h3>{title}</h3><p>none</p>")
            continue
        if not recorded:
            parts.append(f"<h3>{title}</h3>" + _table(
                _file_rows(rundir, paths, hashes), ("path", "kind", "size", "SHA-256", "now")))
            continue
        when = "as the step read it" if role == "read" else "as the step wrote it"
        head = ("path", "bytes", f"SHA-256 {when}") + (("written by",) if role == "read"
                                                        else ()) + ("now",)
        parts.append(f"<h3>{title}</h3>" + _table(
            _recorded_rows(n, st, role, paths, bad or {}, writers or {}), head))
    parts.append("<h3>Edits</h3>" + _edits_html(st))
    metrics = st.get("metrics") or {}
    if metrics:
        parts.append("<h3>Metrics</h3>" + _table(sorted(metrics.items()),
                                                 ("metric", "value")))
    pics = st.get("qc") or []
    if pics:
        parts.append("<h3>QC pictures</h3>")
        for p in pics:
            m = (bad or {}).get((n, "written", p))
            if m is not None:
                parts.append(f"<p>{_esc(p)}: {_now_cell(m)}</p>")
        parts += [_image(_resolve(rundir, p), p) for p in pics]
    return "\n".join(parts)


def _in_scratch_dir(f: Path, rundir: Path) -> bool:
    """Whether ``f`` lies under a ``work`` or ``iter<N>`` folder of the run folder."""
    try:
        rel = Path(os.path.relpath(f.resolve(), rundir.resolve()))
    except ValueError:  # another drive (Windows)
        return False
    return any(_SCRATCH_DIR.match(part) for part in rel.parts[:-1])


def _output_files(rundir: Path, steps: list[dict], st: dict) -> list[tuple[str, Path]]:
    """``(recorded output, file)`` of every file a step's outputs name. With recorded
    ``written`` entries: those files, plus, for a folder output, the files that earlier
    records of the same folder wrote and that are still there (a run stopped, then resumed);
    an output with no file written is given as itself (reported missing when absent).
    Without (an older record): the output, or every file under a folder output."""
    if "written" not in st:
        return [(p, f) for p in st.get("outputs") or [] for f in _files_of(rundir, p)]
    mine = [e for e in _entries(st, "written") if e.get("kind") != "qc"]
    out = [(str(e.get("of", e["path"])), _resolve(rundir, e["path"])) for e in mine]
    have = {e["path"] for e in mine}
    for p in st.get("outputs") or []:
        if not any(e.get("of") == p for e in mine):
            if not _resolve(rundir, p).is_dir():
                out.append((p, _resolve(rundir, p)))
            continue
        for other in steps:
            if other is st:
                break
            for e in _entries(other, "written"):
                if e.get("of") == p and e["path"] != p and e["path"] not in have \
                        and _resolve(rundir, e["path"]).is_file():
                    have.add(e["path"])
                    out.append((p, _resolve(rundir, e["path"])))
    return out


def _deliverables(rundir: Path, steps: list[dict], base: Path
                  ) -> tuple[list[Path], list[str], list[str], list[Path]]:
    """Files of the successful steps' outputs, QC pictures and inputs found under ``base``
    (the manifest's folder); outputs that no longer exist; outputs outside ``base``; and the
    scratch files under ``base`` (see module help for the rule), left out of the first list."""
    from seis_hpc.delivery.manifest import is_inside

    ok = [st for st in steps if st.get("status", "ok") == "ok"]
    # read_after[i]: files read by a data-writing step after step i
    read_after: list[set[Path]] = [set() for _ in ok]
    later: set[Path] = set()
    for i in range(len(ok) - 1, -1, -1):
        read_after[i] = set(later)
        if ok[i].get("step") not in _LOOK_ONLY_STEPS:
            later |= {_resolve(rundir, p).resolve() for p in ok[i].get("inputs") or []}
    written: set[Path] = set()
    files, missing, outside, scratch = [], [], [], []

    def _add(f: Path, intermediate: bool) -> None:
        if intermediate or _in_scratch_dir(f, rundir):
            scratch.append(f)
        else:
            files.append(f)

    for i, st in enumerate(ok):
        for p, f in _output_files(rundir, steps, st):
            if not f.is_file():
                missing.append(p)
            elif not is_inside(f, base):
                outside.append(str(f))
            else:
                written.add(f.resolve())
                _add(f, f.resolve() in read_after[i])
        for p in st.get("qc") or []:
            for f in _files_of(rundir, p):
                if not f.is_file():
                    missing.append(p)
                elif not is_inside(f, base):
                    outside.append(str(f))
                else:
                    files.append(f)
        # Inputs kept in the run folder (a flow file, a trace index) belong to the delivery
        # too (verify would otherwise list them as added), unless an earlier step wrote them.
        for p in st.get("inputs") or []:
            f = _resolve(rundir, p)
            if f.is_file() and is_inside(f, base):
                _add(f, f.resolve() in written)
    keep = {f.resolve() for f in files}
    seen: set[Path] = set()
    uniq = []
    for f in scratch:
        key = f.resolve()
        if key not in keep and key not in seen:
            seen.add(key)
            uniq.append(f)
    return files, missing, outside, uniq


def render_html(rundir: Path, steps: list[dict], entries: list[Entry], missing: list[str],
                title: str, hashes: dict[Path, Entry],
                scratch: list[tuple[str, int]] | None = None,
                bad: dict[tuple[int, str, str], Mismatch] | None = None) -> str:
    """The report text (see module help); ``bad``: the files that changed since the step
    that recorded them (see :func:`build_report`)."""
    bad = bad or {}
    writers: dict[str, list] = {}  # path -> [(step number, step name, sha256)] in order
    for n, st in enumerate(steps, 1):
        for e in _entries(st, "written"):
            writers.setdefault(e["path"], []).append((n, st["step"], e.get("sha256")))
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    summary = []
    for n, st in enumerate(steps, 1):
        status = str(st.get("status", "ok"))
        summary.append((_Raw(f'<a href="#step{n}">{n}</a>'), st["step"],
                        _Raw(f'<span class="{_esc(status)}">{_esc(status)}</span>'),
                        st.get("start") or "", st.get("seconds", ""),
                        "" if st.get("traces_in") is None else st["traces_in"],
                        "" if st.get("traces_out") is None else st["traces_out"],
                        sum(int(v) for v in (st.get("edits") or {}).values()
                            if isinstance(v, (int, float))),
                        len(st.get("qc") or [])))
    total = sum(float(st.get("seconds") or 0) for st in steps)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{_esc(title)}</h1>",
           f"<p>Run folder <code>{_esc(rundir.resolve())}</code>; {len(steps)} steps, "
           f"{total:.1f} s in all. Report made {_esc(now)} by seis_hpc {_esc(__version__)}.</p>",
           "<h2>Steps</h2>",
           _table(summary, ("#", "step", "status", "start", "seconds", "traces in",
                            "traces out", "edits", "QC pictures"))]
    out.append("<h2>Changed or missing files</h2>")
    if bad:
        out.append("<p>Files that are no longer what the step recorded when it wrote or read "
                   "them (SHA-256 taken as each step ended):</p>")
        out.append(_table([(_Raw(f'<a href="#step{m.step}">{m.step}</a>'), m.name,
                            "wrote" if m.role == "written" else "read", m.path, _now_cell(m))
                           for m in bad.values()], ("#", "step", "role", "path", "now")))
    elif any("written" in st for st in steps):
        out.append('<p class="ok">none: every recorded file is as its step wrote or read '
                   "it.</p>")
    else:
        out.append("<p>not checked: this run record holds no file hashes.</p>")
    out += [_step_html(n, st, rundir, hashes, bad, writers) for n, st in enumerate(steps, 1)]
    out.append("<h2>Deliverables</h2>")
    out.append(f"<p>Listed in <code>{MANIFEST_NAME}</code> with this report; check them with "
               f"<code>seis-hpc verify {MANIFEST_NAME}</code>, or without seis_hpc with "
               f"<code>sha256sum -c {MANIFEST_NAME}</code> in this folder.</p>")
    out.append(_table([(e.path, e.size, _Raw(f"<code>{e.sha256}</code>")) for e in entries],
                      ("path", "bytes", "SHA-256")))
    out.append("<h2>Scratch</h2>")
    if scratch:
        out.append(f"<p>Intermediate files (read by a later step, or under <code>work/</code> "
                   f"or <code>iter*/</code>), not in the manifest; listed in "
                   f"<code>{SCRATCH_NAME}</code>.</p>")
        out.append(_table([(p, n) for p, n in scratch], ("path", "bytes")))
    else:
        out.append("<p>none</p>")
    if missing:
        out.append('<p class="missing">Recorded outputs that no longer exist: '
                   + ", ".join(_esc(m) for m in missing) + "</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_report(rundir: str | os.PathLike, out: str | os.PathLike | None = None,
                 manifest: str | os.PathLike | None = None, title: str | None = None,
                 show_progress: bool = True) -> Report:
    """Write the HTML report and the manifest of a run folder.

    Parameters
    ----------
    rundir : path-like
        Run folder holding ``steps.jsonl``.
    out : path-like, optional
        HTML file (default ``RUNDIR/report.html``).
    manifest : path-like, optional
        Manifest file (default ``RUNDIR/MANIFEST.sha256``); its entries are relative to its
        folder.
    title : str, optional
        Report title (default: "Processing report: <folder name>").
    show_progress : bool
        Report hashing progress on stderr.

    Raises
    ------
    SeisError
        No run record, or a malformed one.
    """
    rundir = Path(rundir)
    if not rundir.is_dir():
        raise SeisError("not a folder (give the run folder holding steps.jsonl)", rundir)
    steps = read_steps(rundir)
    out = Path(out) if out else rundir / REPORT_NAME
    manifest = Path(manifest) if manifest else rundir / MANIFEST_NAME
    files, missing, outside, scratch_files = _deliverables(rundir, steps, manifest.parent)
    files.append(rundir / STEPS_FILE)
    base = manifest.parent
    scratch = [(Path(os.path.relpath(f.resolve(), base.resolve())).as_posix(), f.stat().st_size)
               for f in scratch_files]
    skip = [manifest, out, base / SCRATCH_NAME]
    entries = hash_files(files, manifest.parent, show_progress, skip=skip)
    hashes = {(manifest.parent / e.path).resolve(): e for e in entries}
    bad = _check_files(steps, _Now(rundir, hashes))
    title = title or f"Processing report: {rundir.resolve().name}"
    text = render_html(rundir, steps, entries, missing, title, hashes, scratch, bad)
    with atomic_output(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    entries += hash_files([out], manifest.parent, show_progress=False)
    write_scratch(scratch, manifest)
    write_manifest(entries, manifest)
    return Report(out, manifest, len(steps), entries, missing, outside, scratch,
                  list(bad.values()))

"""The processing report: one self-contained HTML file for a run folder, and its manifest.

:func:`build_report` reads ``RUNDIR/steps.jsonl`` (see :mod:`seis_hpc.delivery.runlog`) and writes

* ``RUNDIR/report.html``: every step in order with its command line, parameters, inputs and
  outputs (with sizes), start, end and duration, trace counts, edits, metrics and QC pictures.
  Pictures are embedded as base64 ``data:`` URIs; the file has no external asset, script,
  style sheet or link, so it opens offline and can be mailed as it is.
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
    write_manifest,
    write_scratch,
)
from seis_hpc.delivery.runlog import STEPS_FILE, read_steps
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
.ok { color: #080; } .failed, .stopped, .missing { color: #b00; font-weight: bold; }
figure { display: inline-block; margin: 0.5em; } figcaption { font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    html: Path
    manifest: Path
    steps: int
    entries: list[Entry] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    scratch: list[tuple[str, int]] = field(default_factory=list)


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
    rows = []
    for p in paths:
        q = _resolve(rundir, p)
        if q.is_dir():
            files = _files_of(rundir, p)
            total = sum(f.stat().st_size for f in files)
            rows.append((p, _Raw(f"folder, {len(files)} files"), _size(total), ""))
        elif q.is_file():
            e = hashes.get(q.resolve())
            rows.append((p, "file", _size(q.stat().st_size), _Raw(
                f"<code>{e.sha256[:16]}&hellip;</code>" if e else "")))
        else:
            rows.append((p, _Raw('<span class="missing">missing</span>'), "", ""))
    return rows


def _step_html(n: int, st: dict, rundir: Path, hashes: dict[Path, Entry]) -> str:
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
    for key, title in (("inputs", "Inputs"), ("outputs", "Outputs")):
        paths = st.get(key) or []
        if paths:
            parts.append(f"<h3>{title}</h3>" + _table(_file_rows(rundir, paths, hashes),
                                                     ("path", "kind", "size", "SHA-256")))
    edits = st.get("edits") or {}
    parts.append("<h3>Edits</h3>" + (_table(sorted(edits.items()), ("edit", "traces"))
                                      if edits else "<p>none recorded</p>"))
    metrics = st.get("metrics") or {}
    if metrics:
        parts.append("<h3>Metrics</h3>" + _table(sorted(metrics.items()),
                                                 ("metric", "value")))
    pics = st.get("qc") or []
    if pics:
        parts.append("<h3>QC pictures</h3>")
        parts += [_image(_resolve(rundir, p), p) for p in pics]
    return "\n".join(parts)


def _in_scratch_dir(f: Path, rundir: Path) -> bool:
    """Whether ``f`` lies under a ``work`` or ``iter<N>`` folder of the run folder."""
    try:
        rel = Path(os.path.relpath(f.resolve(), rundir.resolve()))
    except ValueError:  # another drive (Windows)
        return False
    return any(_SCRATCH_DIR.match(part) for part in rel.parts[:-1])


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
        for p in st.get("outputs") or []:
            for f in _files_of(rundir, p):
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
                scratch: list[tuple[str, int]] | None = None) -> str:
    """The report text (see module help)."""
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
    out += [_step_html(n, st, rundir, hashes) for n, st in enumerate(steps, 1)]
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
    title = title or f"Processing report: {rundir.resolve().name}"
    text = render_html(rundir, steps, entries, missing, title, hashes, scratch)
    with atomic_output(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    entries += hash_files([out], manifest.parent, show_progress=False)
    write_scratch(scratch, manifest)
    write_manifest(entries, manifest)
    return Report(out, manifest, len(steps), entries, missing, outside, scratch)

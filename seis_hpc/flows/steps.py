"""The registry of flow steps: name, gather kind, parameters (field names, SI units) and the
implementation that the driver (:func:`seis_hpc.engine.gather_run.run_step`) calls per gather.

Nothing heavy is imported at module level: the command line builds its ``--help`` from these
specs. Every implementation is a :class:`GatherStep` (see there for what the driver calls);
:func:`register` adds a step to the registry :data:`STEPS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from seis_hpc.errors import SeisError
from seis_hpc.flows.params import Param, resolve

if TYPE_CHECKING:
    import numpy as np

    from seis_hpc.io.traces import TraceReader


@runtime_checkable
class GatherStep(Protocol):
    """What the flow-step driver calls on a step's implementation.

    The driver calls, on every rank: :meth:`prepare` once with this rank's gathers, then
    :meth:`apply` per gather, then :meth:`qc`; rank 0 then calls :meth:`finish` with every
    rank's QC merged. A step with ``two_pass = True`` (bad-trace editing) first makes its
    line-wide decisions in :meth:`survey_pass` (every rank, before :meth:`prepare`).

    Implementations subclass this class explicitly and so inherit the no-op defaults of the
    optional hooks; only :meth:`apply` is required.

    ``ctx`` (a dict) holds ``dt`` (s), ``t_start`` (s), ``ids`` (trace numbers, file order from
    0) and the index columns of the gather's traces: ``offset``, ``sx``, ``sy``, ``rx``,
    ``ry`` (m), ``ffid``, ``channel``, ``cmp``, ``source_id``.
    """

    two_pass: ClassVar[bool] = False

    def apply(self, gather: np.ndarray, ctx: dict[str, Any]) -> np.ndarray:
        """The processed gather (float32, the shape of ``gather``: traces x samples)."""
        ...

    def prepare(self, reader: TraceReader, groups: list[np.ndarray]) -> None:
        """Line-wide work before the gathers; ``groups``: this rank's gathers (trace numbers)."""
        return None

    def survey_pass(self, reader: TraceReader, groups: list[np.ndarray], comm,
                    scratch: str) -> None:
        """Two-pass steps: a pass over this rank's gathers (``groups``) and whatever the
        decisions need from other ranks (``comm``: None on one process; every rank calls
        it), before :meth:`prepare`. ``scratch`` names a file beside the output that the
        step may create on rank 0 and share between ranks, to keep per-trace results out of
        memory; the driver removes it after :meth:`finish` (or on any failure)."""
        raise NotImplementedError

    def qc(self) -> dict[str, Any]:
        """This rank's QC values (numbers are summed over ranks, lists concatenated)."""
        return {}

    def finish(self, merged: dict[str, Any], reader: TraceReader, summary: dict[str, Any]
               ) -> None:
        """Rank 0, after every gather: add to the QC ``summary`` (and write side files)."""
        return None

    def check(self, reader: TraceReader) -> None:
        """Refuse bad parameters against the input (tables, expressions, velocity) before
        any output is written; raises :class:`~seis_hpc.errors.SeisError`."""
        return None

    def order(self, reader: TraceReader, scratch: str | None = None, comm: Any = None
              ) -> np.ndarray | None:
        """Steps that select or reorder traces (select, sort): the input trace of every output
        position, the output then having that many traces; None (default) keeps the file.
        Given ``scratch`` (a registered temporary file name beside the output; every rank
        calls it, ``comm`` their communicator), the order is kept on disk there and read a
        slice at a time (:class:`~seis_hpc.flows.orderfile.OrderFile`), not held."""
        return None

    def headers(self, hdr: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The trace headers (uint8, traces x 240) written for input traces ``ids``; the
        default writes them unchanged (``headers`` sets fields)."""
        return hdr


@dataclass(frozen=True)
class StepSpec:
    """A flow step: ``key`` is the gather it works on (``shot``, ``cmp`` or ``line``; a
    ``gathers`` parameter, where the step has one, chooses instead)."""

    name: str
    help: str
    description: str
    key: str
    params: list[Param] = field(default_factory=list)
    factory: str = ""
    allow_bad: bool = False

    def resolve(self, given: dict, where: str) -> dict:
        """Parameters with defaults, converted to SI (errors name ``where``)."""
        return resolve(self.params, given, where)

    def validate(self, params: dict, reader) -> None:
        """Checks that need the input (files named by parameters exist, tables and
        expressions are valid: building the implementation reads them, and its ``check``
        looks at the input)."""
        for p in self.params:
            v = params.get(p.name)
            if p.unit == "path" and v is not None and p.name != "report" \
                    and not os.path.isfile(v):
                raise FileNotFoundError(2, "No such file or directory", v)
        self.build(params).check(reader)

    def gather_key(self, params: dict) -> str:
        """The gathers to work on for these parameters."""
        return params.get("gathers") or self.key

    def build(self, params: dict):
        """The implementation object for these parameters."""
        import importlib

        mod, cls = self.factory.split(":")
        impl = getattr(importlib.import_module(mod), cls)(params)
        if not isinstance(impl, GatherStep):
            raise TypeError(f"step {self.name}: {self.factory} is not a GatherStep")
        return impl

    def self_doc(self) -> str:
        """The ``--help`` text: description and parameter table."""
        lines = [self.description.rstrip(), "", f"Gathers: {self.key}. Parameters (SI units):"]
        lines += [p.describe() for p in self.params]
        lines += ["", "Output: OUT.sgy with the input's headers, and OUT.sgy.qc.json (QC summary "
                  "and processing history).",
                  f"MPI: mpiexec -n N seis-hpc {self.name} IN.sgy --out OUT.sgy ..."]
        return "\n".join(lines)


def _p(*a, **k) -> Param:
    return Param(*a, **k)


IMPL = "seis_hpc.flows.impl"

# The registry: step name -> spec (see register).
STEPS: dict[str, StepSpec] = {}


def register(spec: StepSpec) -> StepSpec:
    """Add ``spec`` to :data:`STEPS` (its ``factory``, ``"module:Class"``, names a
    :class:`GatherStep`, imported only when the step runs)."""
    if spec.name in STEPS:
        raise ValueError(f"step {spec.name!r} is already registered")
    STEPS[spec.name] = spec
    return spec


for _spec in [
    StepSpec("edit", "bad-trace editing: kill dead/NaN/noisy traces, despike, flip reversed",
             "Find dead (zero or constant), NaN/Inf, spiky, noisy (band RMS against the\n"
             "neighbours in the shot and in the CMP) and reversed-polarity traces (against\n"
             "neighbours whose events agree); kill, despike or flip them; label swell-\n"
             "contaminated traces 'swell' and leave them to the swell step; list every edit\n"
             "with its reason in a CSV (trace_index,ffid,channel,cmp,offset_m,action,reason;\n"
             "trace_index from 0 in file order). Every trace's attributes wait in a scratch\n"
             "file beside the output (80 B a trace; removed at the end).", "shot",
             [_p("report", "path", None, "CSV of every edited trace (default OUT.edits.csv)"),
              _p("spike_ratio", "", 4.0, "spike: |x - running median| / neighbours' peak",
                 limit=">0"),
              _p("max_spikes", "int", 20, "kill instead of despike above this many spikes",
                 limit=">=0"),
              _p("noisy_ratio", "", 3.0, "noisy: band RMS / neighbours' median", limit=">0"),
              _p("fmin", "Hz", 20.0, "lower edge of the band judged for noisy traces", limit=">=0"),
              _p("reversed_corr", "", -0.3, "reversed: polarity score below this"),
              _p("neighbours", "int", 6, "traces on each side compared (shot and CMP)",
                 limit=">=1")],
             f"{IMPL}:Edit", allow_bad=True),
    StepSpec("gain", "spherical divergence correction t*v(t)^2 or t^n (and its inverse)",
             "Spherical divergence correction: multiply by t * (v(t)/v(0))^2 with --velocity\n"
             "(a Vrms CSV function, or velan's HDF5 Vrms field taken at each shot's mean\n"
             "midpoint), else by t^power. --inverse divides instead (restores true\n"
             "amplitudes).", "shot",
             [_p("velocity", "path", None, "Vrms CSV (time_s,vrms_mps) or HDF5 field"),
              _p("power", "", 2.0, "exponent of t without --velocity"),
              _p("inverse", "bool", False, "remove the gain instead of applying it")],
             f"{IMPL}:Gain"),
    StepSpec("agc", "automatic gain control (RMS in a sliding window)",
             "Automatic gain control: divide each sample by the RMS in a centred window.\n"
             "Not a true-amplitude step (its inverse needs the scalars: seis_hpc.flows.amplitude"
             ".agc returns them).", "shot",
             [_p("window", "s", 0.5, "window length", limit=">0")], f"{IMPL}:Agc"),
    StepSpec("equalise", "trace equalisation: each trace to one RMS in a window",
             "Scale every trace to RMS --target in the window --tmin..--tmax.", "shot",
             [_p("tmin", "s", None, "window start (default first sample)"),
              _p("tmax", "s", None, "window end (default last sample)", limit=">0"),
              _p("target", "", 1.0, "RMS after scaling", limit=">0")], f"{IMPL}:Equalise"),
    StepSpec("bandpass", "zero-phase trapezoid bandpass or low-cut",
             "Zero-phase trapezoid bandpass f1,f2,f3,f4 (Hz). A low-cut: f3, f4 above Nyquist.",
             "shot", [_p("corners", "floats", None, "f1,f2,f3,f4", required=True,
                         list_unit="Hz", limit="corners")], f"{IMPL}:Bandpass"),
    StepSpec("swell", "swell-noise attenuation by time-frequency thresholding",
             "Below --fmax, each short-time spectral amplitude is compared with the median of\n"
             "the same cell over the neighbouring channels; outliers (> --threshold x median)\n"
             "are scaled down to the median.", "shot",
             [_p("fmax", "Hz", 15.0, "highest frequency treated", limit=">0"),
              _p("window", "s", 0.256, "short-time window length", limit=">0"),
              _p("neighbours", "int", 10, "channels on each side in the median", limit=">=1"),
              _p("threshold", "", 3.0, "outlier ratio to the median", limit=">1"),
              _p("passes", "int", 2, "repetitions", limit=">=1")], f"{IMPL}:Swell"),
    StepSpec("fxdecon", "random-noise attenuation by f-x deconvolution",
             "f-x prediction filtering (forward and backward) in sliding windows of traces.",
             "shot",
             [_p("fmin", "Hz", 2.0, "lowest frequency treated", limit=">=0"),
              _p("fmax", "Hz", None, "highest frequency treated (default Nyquist)", limit=">0"),
              _p("traces", "int", 20, "spatial window (traces)", limit=">=1"),
              _p("length", "int", 4, "prediction filter length (traces)", limit=">=1"),
              _p("mu", "", 0.01, "damping", limit=">=0")], f"{IMPL}:FxDecon"),
    StepSpec("decon", "predictive (gap) deconvolution of water-layer multiples, t-x or tau-p",
             "Predictive deconvolution with the prediction distance from the water-bottom\n"
             "two-way time t_wb, picked from the first strong arrival of each shot (or given).\n"
             "t-x (default) uses the reverberation period of each offset; tau-p the exact\n"
             "period of each slowness (better at far offsets, ~10x slower than t-x).",
             "shot",
             [_p("domain", "str", "tx", "t-x or tau-p", choices=("tx", "taup")),
              _p("t_wb", "s", None, "water-bottom two-way time (default: picked)", limit=">0"),
              _p("vwater", "m/s", 1500.0, "water velocity", limit=">0"),
              _p("length", "s", 0.06, "operator length", limit=">0"),
              _p("white", "", 0.01, "white noise", limit=">=0"),
              _p("tolerance", "s", 0.008, "gap shortened by this", limit=">=0")], f"{IMPL}:Decon"),
    StepSpec("radon", "parabolic Radon demultiple of NMO-corrected CMP gathers",
             "High-resolution parabolic Radon: energy with residual moveout above --q-cut (s at\n"
             "the largest offset) after NMO with --velocity (a Vrms CSV function, or velan's\n"
             "HDF5 Vrms field taken at each CMP) is modelled and subtracted.", "cmp",
             [_p("velocity", "path", None, "primaries' Vrms CSV (time_s,vrms_mps) or HDF5",
                 required=True),
              _p("q_cut", "s", 0.015, "residual moveout separating multiples", limit=">=0"),
              _p("q_max", "s", 0.3, "largest residual moveout", limit=">0"),
              _p("n_q", "int", 101, "number of parabolas", limit=">=1"),
              _p("iterations", "int", 2, "sparse reweighting iterations",
                 limit=">=0")], f"{IMPL}:Radon"),
    StepSpec("srme", "2D surface-related multiple prediction and adaptive subtraction",
             "2D SRME: regularise the line (sources on the receiver grid, NMO-extrapolated near\n"
             "offsets, interpolated sources, reciprocity), predict the multiples by\n"
             "autoconvolution with the wavelet estimated from the water bottom, and subtract\n"
             "them with windowed least-squares matching filters. Each rank reads the whole line.",
             "shot",
             [_p("vwater", "m/s", 1500.0, "near-offset extrapolation velocity", limit=">0"),
              _p("fmax", "Hz", 100.0, "highest frequency predicted", limit=">0"),
              _p("window", "s", 0.1, "matching window length", limit=">0"),
              _p("traces", "int", 8, "matching window width (traces)", limit=">=1"),
              _p("filter_length", "s", 0.02, "matching filter length",
                 limit=">0")], f"{IMPL}:Srme"),
    StepSpec("select", "keep the traces where a header expression is true",
             "Keep the traces where --where is true, in file order, samples and headers\n"
             "copied bit for bit. Expressions: field names (as `seis-hpc info` shows them:\n"
             "ffid, channel, offset (m), cdp, cmp, sx, ..., trace; or segyio names:\n"
             "FieldRecord, CDP, ShotPoint, ...), numbers, + - * / // %, comparisons,\n"
             "and/or/not, parentheses. Example: --where 'offset < 400 and ffid <= 20'.",
             "line", [_p("where", "str", None, "condition on header fields", required=True)],
             f"{IMPL}:Select"),
    StepSpec("sort", "reorder the traces by header keys (out of core)",
             "Sort the traces by --keys (comma list of fields or expressions; -key for\n"
             "descending; ties keep file order), e.g. cdp,offset for CMP gathers or\n"
             "ffid,channel for shots. The trace index is sorted, then traces are copied in\n"
             "that order in blocks of 64 MB, samples and headers bit for bit.", "line",
             [_p("keys", "str", None, "sort keys, primary first", required=True)],
             f"{IMPL}:Sort"),
    StepSpec("headers", "header math: FIELD = EXPRESSION (segyio field names)",
             "Set trace-header fields: each --set 'FIELD = EXPRESSION' (FIELD a segyio name\n"
             "such as ShotPoint, CDP, offset; the value rounded to the field's integer), in\n"
             "order, each seeing the fields set before it. Samples are unchanged.", "shot",
             [_p("set", "texts", None, "assignment, e.g. 'ShotPoint = ffid * 2'",
                 required=True)], f"{IMPL}:Headers"),
    StepSpec("mute", "top and bottom mutes from offset-time tables",
             "Zero the samples above a top mute and/or below a bottom mute, with a half-cosine\n"
             "taper inside the kept zone. Tables: CSV offset_m,time_s (linear in absolute\n"
             "offset, constant beyond the ends), optionally with a key column cdp or ffid\n"
             "(one function per key, linear between keys).", "shot",
             [_p("top", "path", None, "top-mute table"),
              _p("bottom", "path", None, "bottom-mute table"),
              _p("taper", "s", 0.02, "taper length", limit=">=0"),
              _p("gathers", "str", "shot", "gathers worked on", choices=("shot", "cmp"))],
             f"{IMPL}:Mute"),
    StepSpec("fk", "F-K fan filter rejecting apparent velocities below vmin",
             "F-K dip filter: traces placed on the regular grid of their offsets (gaps\n"
             "zero-filled), padded in time and space, energy with |f/k| <= vmin rejected,\n"
             "kept whole above vmin*(1+taper), half-cosine fan edge between.", "shot",
             [_p("vmin", "m/s", None, "highest apparent velocity rejected", required=True,
                 limit=">0"),
              _p("taper", "", 0.2, "fan edge width as a fraction of vmin", limit=">0"),
              _p("pad", "", 1.0, "padding in time and space (fraction of the gather)",
                 limit=">=0"),
              _p("gathers", "str", "shot", "gathers worked on", choices=("shot", "cmp"))],
             f"{IMPL}:Fk"),
    StepSpec("statics", "static shifts by shot or station table, and tidal statics",
             "Shift traces in time (positive: later) by a table ffid,shift_s (per shot) or\n"
             "station,shift_s (source plus receiver station; station = round(u / interval),\n"
             "u = x sin(az) + y cos(az) the distance along the line's azimuth az in [0, 180)\n"
             "deg from the coordinate origin), plus tidal statics -2 h / vwater from a tide\n"
             "table time,tide_m (ISO 8601 UTC times) at each shot's time headers (year, day\n"
             "of year, hour, minute, second).", "shot",
             [_p("table", "path", None, "statics table"),
              _p("tide", "path", None, "tide table"),
              _p("vwater", "m/s", 1500.0, "water velocity", limit=">0"),
              _p("station_interval", "m", None, "station spacing (default: receiver spacing)",
                 limit=">0")],
             f"{IMPL}:Statics"),
]:
    register(_spec)


def step(name: str) -> StepSpec:
    """The step called ``name``."""
    if name not in STEPS:
        raise SeisError(f"unknown step {name!r} (choose from {', '.join(STEPS)})")
    return STEPS[name]

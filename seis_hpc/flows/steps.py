"""The registry of flow steps: name, gather kind, parameters (field names, SI units) and the
implementation that the driver (:func:`seis_hpc.engine.gather_run.run_step`) calls per gather.

Nothing heavy is imported at module level: the command line builds its ``--help`` from these
specs. Each implementation has ``apply(gather, ctx) -> gather`` (``ctx``: ``dt`` s, ``t_start``
s, ``ids``, and the index columns ``offset`` m, ``ffid``, ``channel``, ``cmp``, ``sx``/``sy``/
``rx``/``ry`` m, ``source_id`` of the gather's traces) and optionally ``attributes`` +
``decide`` (two-pass editing), ``prepare`` (line-wide work before the gathers), ``qc`` and
``finish``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from seis_hpc.errors import SeisError
from seis_hpc.flows.params import Param, resolve


@dataclass(frozen=True)
class StepSpec:
    """A flow step: ``key`` is the gather it works on (``shot``, ``cmp`` or ``line``)."""

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
        """Checks that need the input (files named by parameters exist)."""
        for p in self.params:
            v = params.get(p.name)
            if p.unit == "path" and v is not None and p.name in ("velocity",) \
                    and not os.path.isfile(v):
                raise FileNotFoundError(2, "No such file or directory", v)

    def build(self, params: dict):
        """The implementation object for these parameters."""
        import importlib

        mod, cls = self.factory.split(":")
        return getattr(importlib.import_module(mod), cls)(params)

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

STEPS: dict[str, StepSpec] = {s.name: s for s in [
    StepSpec("edit", "bad-trace editing: kill dead/NaN/noisy traces, despike, flip reversed",
             "Find dead (zero or constant), NaN/Inf, spiky, noisy (band RMS against the\n"
             "neighbours in the shot and in the CMP) and reversed-polarity traces; kill,\n"
             "despike or flip them, and list every edit with its reason in a CSV\n"
             "(trace_index,ffid,channel,cmp,offset_m,action,reason; trace_index from 0 in file\n"
             "order).", "shot",
             [_p("report", "path", None, "CSV of every edited trace (default OUT.edits.csv)"),
              _p("spike_ratio", "", 4.0, "spike: |x - running median| / neighbours' peak"),
              _p("max_spikes", "int", 20, "kill instead of despike above this many spikes"),
              _p("noisy_ratio", "", 3.0, "noisy: band RMS / neighbours' median"),
              _p("fmin", "Hz", 20.0, "lower edge of the band judged for noisy traces"),
              _p("reversed_corr", "", -0.3, "reversed: polarity score below this"),
              _p("neighbours", "int", 6, "traces on each side compared (shot and CMP)")],
             f"{IMPL}:Edit", allow_bad=True),
    StepSpec("gain", "spherical divergence correction t*v(t)^2 or t^n (and its inverse)",
             "Spherical divergence correction: multiply by t * (v(t)/v(0))^2 with --velocity,\n"
             "else by t^power. --inverse divides instead (restores true amplitudes).", "shot",
             [_p("velocity", "path", None, "Vrms CSV or velan HDF5 (median)"),
              _p("power", "", 2.0, "exponent of t without --velocity"),
              _p("inverse", "bool", False, "remove the gain instead of applying it")],
             f"{IMPL}:Gain"),
    StepSpec("agc", "automatic gain control (RMS in a sliding window)",
             "Automatic gain control: divide each sample by the RMS in a centred window.\n"
             "Not a true-amplitude step (its inverse needs the scalars: seis_hpc.flows.amplitude"
             ".agc returns them).", "shot",
             [_p("window", "s", 0.5, "window length")], f"{IMPL}:Agc"),
    StepSpec("equalise", "trace equalisation: each trace to one RMS in a window",
             "Scale every trace to RMS --target in the window --tmin..--tmax.", "shot",
             [_p("tmin", "s", None, "window start (default first sample)"),
              _p("tmax", "s", None, "window end (default last sample)"),
              _p("target", "", 1.0, "RMS after scaling")], f"{IMPL}:Equalise"),
    StepSpec("bandpass", "zero-phase trapezoid bandpass or low-cut",
             "Zero-phase trapezoid bandpass f1,f2,f3,f4 (Hz). A low-cut: f3, f4 above Nyquist.",
             "shot", [_p("corners", "floats", None, "f1,f2,f3,f4", required=True,
                         list_unit="Hz")], f"{IMPL}:Bandpass"),
    StepSpec("swell", "swell-noise attenuation by time-frequency thresholding",
             "Below --fmax, each short-time spectral amplitude is compared with the median of\n"
             "the same cell over the neighbouring channels; outliers (> --threshold x median)\n"
             "are scaled down to the median.", "shot",
             [_p("fmax", "Hz", 15.0, "highest frequency treated"),
              _p("window", "s", 0.256, "short-time window length"),
              _p("neighbours", "int", 10, "channels on each side in the median"),
              _p("threshold", "", 3.0, "outlier ratio to the median"),
              _p("passes", "int", 2, "repetitions")], f"{IMPL}:Swell"),
    StepSpec("fxdecon", "random-noise attenuation by f-x deconvolution",
             "f-x prediction filtering (forward and backward) in sliding windows of traces.",
             "shot",
             [_p("fmin", "Hz", 2.0, "lowest frequency treated"),
              _p("fmax", "Hz", None, "highest frequency treated (default Nyquist)"),
              _p("traces", "int", 20, "spatial window (traces)"),
              _p("length", "int", 4, "prediction filter length (traces)"),
              _p("mu", "", 0.01, "damping")], f"{IMPL}:FxDecon"),
    StepSpec("decon", "predictive (gap) deconvolution of water-layer multiples, t-x or tau-p",
             "Predictive deconvolution with the prediction distance from the water-bottom\n"
             "two-way time t_wb, picked from the first strong arrival of each shot (or given).",
             "shot",
             [_p("domain", "str", "taup", "t-x or tau-p", choices=("tx", "taup")),
              _p("t_wb", "s", None, "water-bottom two-way time (default: picked)"),
              _p("vwater", "m/s", 1500.0, "water velocity"),
              _p("length", "s", 0.06, "operator length"),
              _p("white", "", 0.01, "white noise"),
              _p("tolerance", "s", 0.008, "gap shortened by this")], f"{IMPL}:Decon"),
    StepSpec("radon", "parabolic Radon demultiple of NMO-corrected CMP gathers",
             "High-resolution parabolic Radon: energy with residual moveout above --q-cut (s at\n"
             "the largest offset) after NMO with --velocity is modelled and subtracted.", "cmp",
             [_p("velocity", "path", None, "primaries' Vrms: CSV or velan HDF5",
                 required=True),
              _p("q_cut", "s", 0.015, "residual moveout separating multiples"),
              _p("q_max", "s", 0.3, "largest residual moveout"),
              _p("n_q", "int", 101, "number of parabolas"),
              _p("iterations", "int", 2, "sparse reweighting iterations")], f"{IMPL}:Radon"),
    StepSpec("srme", "2D surface-related multiple prediction and adaptive subtraction",
             "2D SRME: regularise the line (sources on the receiver grid, NMO-extrapolated near\n"
             "offsets, interpolated sources, reciprocity), predict the multiples by\n"
             "autoconvolution with the wavelet estimated from the water bottom, and subtract\n"
             "them with windowed least-squares matching filters. Each rank reads the whole line.",
             "shot",
             [_p("vwater", "m/s", 1500.0, "near-offset extrapolation velocity"),
              _p("fmax", "Hz", 100.0, "highest frequency predicted"),
              _p("window", "s", 0.1, "matching window length"),
              _p("traces", "int", 8, "matching window width (traces)"),
              _p("filter_length", "s", 0.02, "matching filter length")], f"{IMPL}:Srme"),
]}


def step(name: str) -> StepSpec:
    """The step called ``name``."""
    if name not in STEPS:
        raise SeisError(f"unknown step {name!r} (choose from {', '.join(STEPS)})")
    return STEPS[name]

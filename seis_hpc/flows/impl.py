"""Implementations of the flow steps: thin adapters from a gather and its context to the
array functions of :mod:`~seis_hpc.flows.edit`, :mod:`~seis_hpc.flows.amplitude`,
:mod:`~seis_hpc.flows.noise`, :mod:`~seis_hpc.flows.decon`, :mod:`~seis_hpc.flows.radon` and
:mod:`~seis_hpc.flows.srme` (see :mod:`seis_hpc.flows.steps` for the interface)."""

from __future__ import annotations

import numpy as np

from seis_hpc.flows import amplitude, decon, edit, noise, radon, srme


def _velocity_trace(path: str, ns: int, dt: float, t_start: float) -> np.ndarray:
    from seis_hpc.velocity.model import read_velocity_function

    t, v = read_velocity_function(path)  # CSV function, velan's CSV table or vrms HDF5
    return np.interp(t_start + dt * np.arange(ns), t, v).astype(np.float32)


class _Step:
    def __init__(self, params: dict):
        self.p = params


class Edit(_Step):
    """Bad-trace editing (two passes: attributes of every trace, then decisions)."""

    def attributes(self, g, ctx):
        return edit.trace_attributes(g, ctx["dt"], spike_ratio=self.p["spike_ratio"],
                                     fmin=self.p["fmin"])

    def decide(self, attrs, cols):
        self.action, self.reason = edit.classify(
            attrs, cols, noisy_ratio=self.p["noisy_ratio"],
            reversed_corr=self.p["reversed_corr"], max_spikes=self.p["max_spikes"],
            neighbours=self.p["neighbours"])
        self.cols = cols

    def apply(self, g, ctx):
        act = self.action[ctx["ids"]]
        mask = edit.spike_mask(np.nan_to_num(g), spike_ratio=self.p["spike_ratio"]) \
            if (act == edit.DESPIKE).any() else None
        return edit.apply_edits(g, act, mask)

    def qc(self):
        # Every rank holds the full decisions; only rank 0's copy is reported (see finish).
        return {}

    def finish(self, merged, reader, summary):
        import csv

        from seis_hpc.io.atomic import atomic_output

        out = self.p.get("report") or summary["output"] + ".edits.csv"
        idx = np.flatnonzero(self.action)
        with atomic_output(out) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["trace_index", "ffid", "channel", "cmp", "offset_m", "action", "reason"])
            for i in idx:
                w.writerow([int(i), int(self.cols["ffid"][i]), int(self.cols["channel"][i]),
                            int(self.cols["cmp"][i]), f"{self.cols['offset'][i]:.2f}",
                            edit.ACTIONS[int(self.action[i])], self.reason[i]])
        names = {edit.KILL: "traces_killed", edit.DESPIKE: "traces_despiked",
                 edit.FLIP: "traces_flipped"}
        for code, key in names.items():
            summary[key] = int(np.sum(self.action == code))
        summary["edit_report"] = out


class Gain(_Step):
    """Spherical divergence (or its inverse)."""

    def apply(self, g, ctx):
        v = None
        if self.p["velocity"]:
            v = _velocity_trace(self.p["velocity"], g.shape[1], ctx["dt"], ctx["t_start"])
        return amplitude.spherical_divergence(g, ctx["dt"], t_start=ctx["t_start"], velocity=v,
                                              power=self.p["power"], inverse=self.p["inverse"])


class Agc(_Step):
    """Automatic gain control."""

    def apply(self, g, ctx):
        return amplitude.agc(g, ctx["dt"], self.p["window"])[0]


class Equalise(_Step):
    """Trace equalisation."""

    def apply(self, g, ctx):
        win = None
        if self.p["tmin"] is not None or self.p["tmax"] is not None:
            t_end = ctx["t_start"] + ctx["dt"] * (g.shape[1] - 1)
            win = (self.p["tmin"] if self.p["tmin"] is not None else ctx["t_start"],
                   self.p["tmax"] if self.p["tmax"] is not None else t_end)
        return amplitude.equalise(g, ctx["dt"], t_start=ctx["t_start"], window=win,
                                  target=self.p["target"])[0]


class Bandpass(_Step):
    """Zero-phase bandpass."""

    def apply(self, g, ctx):
        return noise.bandpass(g, ctx["dt"], self.p["corners"])


class Swell(_Step):
    """Swell-noise attenuation."""

    def apply(self, g, ctx):
        return noise.swell_attenuate(g, ctx["dt"], fmax=self.p["fmax"], window=self.p["window"],
                                     neighbours=self.p["neighbours"],
                                     threshold=self.p["threshold"], passes=self.p["passes"])


class FxDecon(_Step):
    """f-x deconvolution."""

    def apply(self, g, ctx):
        return noise.fx_decon(g, ctx["dt"], fmin=self.p["fmin"], fmax=self.p["fmax"],
                              traces=self.p["traces"], length=self.p["length"], mu=self.p["mu"])


class Decon(_Step):
    """Predictive deconvolution, t-x or tau-p."""

    def __init__(self, params):
        super().__init__(params)
        self.picks: list[float] = []

    def apply(self, g, ctx):
        x = ctx["offset"]
        t_wb = self.p["t_wb"] or decon.water_bottom_time(g, x, ctx["dt"],
                                                         velocity=self.p["vwater"],
                                                         t_start=ctx["t_start"])
        self.picks.append(t_wb)
        kw = dict(velocity=self.p["vwater"], length=self.p["length"], white=self.p["white"],
                  tolerance=self.p["tolerance"])
        if self.p["domain"] == "tx":
            return decon.tx_decon(g, ctx["dt"], x, t_wb, **kw)
        return decon.taup_decon(g, ctx["dt"], x, t_wb, **kw)

    def qc(self):
        return {"t_wb_picks": self.picks}

    def finish(self, merged, reader, summary):
        picks = merged.get("t_wb_picks", [])
        if picks:
            summary["t_wb_median_s"] = float(np.median(picks))


class Radon(_Step):
    """Parabolic Radon demultiple on CMP gathers."""

    def apply(self, g, ctx):
        v = _velocity_trace(self.p["velocity"], g.shape[1], ctx["dt"], ctx["t_start"])
        return radon.radon_demultiple(g, ctx["dt"], ctx["offset"], v, q_cut=self.p["q_cut"],
                                      q_max=self.p["q_max"], n_q=self.p["n_q"],
                                      iterations=self.p["iterations"],
                                      t_start=ctx["t_start"])[0]


class Srme(_Step):
    """2D SRME: the line is regularised and the multiples of this rank's shots predicted once,
    before the gathers."""

    def prepare(self, reader, my_groups):
        n = reader.index.n_traces
        ids = np.arange(n)
        cols = reader.columns(ids)
        data = reader.read(ids)
        dt = reader.dt
        x0, y0, az = srme.fit_line(np.r_[cols["sx"], cols["rx"]], np.r_[cols["sy"], cols["ry"]])
        su = srme.line_coordinate(cols["sx"], cols["sy"], x0, y0, az)
        ru = srme.line_coordinate(cols["rx"], cols["ry"], x0, y0, az)
        reg = srme.regularise(data, su, ru, cols["source_id"], dt, velocity=self.p["vwater"])
        # The wavelet from the nearest-offset trace of every shot.
        near = []
        for s in np.unique(cols["source_id"]):
            i = np.flatnonzero(cols["source_id"] == s)
            near.append(i[np.argmin(cols["offset"][i])])
        wav = srme.estimate_wavelet(data[near], dt)
        sig = srme.signature_filter(wav, dt, srme.fft_length(reader.layout.ns))
        want = np.concatenate(my_groups) if my_groups else np.zeros(0, np.int64)
        self.pred = {}
        if len(want):
            spec = srme.predict(reg, dt, fmax=self.p["fmax"], want=want, signature=sig)
            traces = srme.to_time(spec, reader.layout.ns)
            self.pred = dict(zip(want.tolist(), traces, strict=True))

    def apply(self, g, ctx):
        model = np.stack([self.pred[int(i)] for i in ctx["ids"]])
        return srme.adaptive_subtract(g, model, ctx["dt"], window=self.p["window"],
                                      traces=self.p["traces"],
                                      filter_length=self.p["filter_length"])[0]

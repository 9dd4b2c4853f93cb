"""Implementations of the flow steps: thin adapters from a gather and its context to the
array functions of :mod:`~seis_hpc.flows.edit`, :mod:`~seis_hpc.flows.amplitude`,
:mod:`~seis_hpc.flows.noise`, :mod:`~seis_hpc.flows.decon`, :mod:`~seis_hpc.flows.radon` and
:mod:`~seis_hpc.flows.srme` (see :mod:`seis_hpc.flows.steps` for the interface)."""

from __future__ import annotations

import os

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.flows import amplitude, decon, edit, noise, radon, srme
from seis_hpc.flows.steps import GatherStep


def _velocity_trace(path: str, ns: int, dt: float, t_start: float, at=None,
                    validate: bool = False) -> np.ndarray:
    """Vrms (m/s) at every sample: a CSV function, or velan's HDF5 field at the point ``at``
    (x, y m; bilinear in space, linear in time, clamped at the field's edges)."""
    from seis_hpc.geometry import BinGrid
    from seis_hpc.velocity.model import open_vrms

    x, y = at if at is not None else (0.0, 0.0)
    point = BinGrid(float(x), float(y), 0.0, 1.0, 1.0, 0, 0, 1, 1)
    return open_vrms(path, point, t_start + dt * np.arange(ns), validate=validate
                     ).window(0, 1, 0, 1)[0].astype(np.float32)


def _midpoint(ctx) -> tuple[float, float]:
    """Mean midpoint (m) of a gather."""
    return (float(np.mean(0.5 * (ctx["sx"] + ctx["rx"]))),
            float(np.mean(0.5 * (ctx["sy"] + ctx["ry"]))))


class _Step(GatherStep):
    """A step built from its resolved parameters (SI units), kept in ``self.p``."""

    def __init__(self, params: dict):
        self.p = params


class Edit(_Step):
    """Bad-trace editing in two passes over the survey, in memory bounded by a gather or a
    band of CMPs, not by the survey: every trace's attributes, levels and shot medians go to
    a scratch file of rows (one per trace, 80 B, beside the output), the CMP medians are made
    band by band of CMP numbers, and each gather's decisions are read back from its rows
    (:func:`seis_hpc.flows.edit.decide`: the decisions of ``classify``, exactly)."""

    two_pass = True

    def survey_pass(self, reader, my_groups, comm, scratch):
        from seis_hpc.engine.comm import rank_size
        from seis_hpc.engine.decomposition import assign_longest_first
        from seis_hpc.flows import rowfile

        rank, size = rank_size(comm)
        width, nb = len(edit.ROW), self.p["neighbours"]
        if rank == 0:
            rowfile.create(scratch, reader.index.n_traces, width)
        if size > 1:
            comm.Barrier()
        self.scratch, self.rank = scratch, rank
        self.fd = os.open(scratch, os.O_RDWR)
        # Pass 1, shot gathers: attributes, levels and shot medians of every trace.
        for ids in my_groups:
            data = reader.read(ids, allow_bad=True)
            attrs = edit.trace_attributes(data, reader.dt, spike_ratio=self.p["spike_ratio"],
                                          fmin=self.p["fmin"])
            rowfile.write(self.fd, ids, edit.shot_rows(attrs, nb))
        if size > 1:
            comm.Barrier()
        # Pass 2, bands of CMP numbers dealt to ranks: the CMP medians of every trace.
        bands, counts = edit.cmp_bands(reader.index, edit.BAND_TRACES, edit.CHUNK)
        for b in sorted(assign_longest_first(counts, size)[rank]):
            t = edit.band_traces(reader.index, bands[b], edit.CHUNK)
            rows = rowfile.read(self.fd, t["ids"], width)
            rowfile.write(self.fd, t["ids"], edit.cmp_medians(rows, t["cmp"], t["offset"], nb),
                          column=edit.ROW.index("cmp_med"), width=width)
        if size > 1:
            comm.Barrier()

    def _decide(self, rows):
        return edit.decide(edit.row_dict(rows), noisy_ratio=self.p["noisy_ratio"],
                           reversed_corr=self.p["reversed_corr"],
                           max_spikes=self.p["max_spikes"])

    def apply(self, g, ctx):
        from seis_hpc.flows import rowfile

        act, _ = self._decide(rowfile.read(self.fd, ctx["ids"], len(edit.ROW)))
        mask = edit.spike_mask(np.nan_to_num(g), spike_ratio=self.p["spike_ratio"]) \
            if (act == edit.DESPIKE).any() else None
        return edit.apply_edits(g, act, mask)

    def qc(self):
        # The decisions are in the scratch rows; rank 0 reports them (see finish).
        os.close(self.fd)
        return {}

    def finish(self, merged, reader, summary):
        import csv

        from seis_hpc.flows import rowfile
        from seis_hpc.io.atomic import atomic_output

        out = self.p.get("report") or summary["output"] + ".edits.csv"
        names = {edit.KILL: "traces_killed", edit.DESPIKE: "traces_despiked",
                 edit.FLIP: "traces_flipped", edit.SWELL: "traces_swell"}
        counts = dict.fromkeys(names, 0)
        n = reader.index.n_traces
        fd = os.open(self.scratch, os.O_RDONLY)
        try:
            with atomic_output(out) as tmp, open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["trace_index", "ffid", "channel", "cmp", "offset_m", "action",
                            "reason"])
                # The rows streamed in file order, decided again (as apply did).
                for a in range(0, n, edit.REPORT_CHUNK):
                    ids = np.arange(a, min(n, a + edit.REPORT_CHUNK))
                    action, reason = self._decide(rowfile.read(fd, ids, len(edit.ROW)))
                    for code in names:
                        counts[code] += int(np.sum(action == code))
                    hit = np.flatnonzero(action)
                    if not hit.size:
                        continue
                    c = reader.index.take(("ffid", "channel", "cmp", "offset"), ids[hit])
                    for j, i in enumerate(hit):
                        w.writerow([int(ids[i]), int(c["ffid"][j]), int(c["channel"][j]),
                                    int(c["cmp"][j]), f"{c['offset'][j]:.2f}",
                                    edit.ACTIONS[int(action[i])], reason[i]])
        finally:
            os.close(fd)
        for code, key in names.items():
            summary[key] = counts[code]
        summary["edit_report"] = out


class Gain(_Step):
    """Spherical divergence (or its inverse); Vrms at the gather's mean midpoint."""

    def check(self, reader):
        _check_velocity(self.p["velocity"], reader)

    def apply(self, g, ctx):
        v = None
        if self.p["velocity"]:
            v = _velocity_trace(self.p["velocity"], g.shape[1], ctx["dt"], ctx["t_start"],
                                at=_midpoint(ctx))
        return amplitude.spherical_divergence(g, ctx["dt"], t_start=ctx["t_start"], velocity=v,
                                              power=self.p["power"], inverse=self.p["inverse"])


def _check_velocity(path, reader) -> None:
    if path:
        _velocity_trace(path, reader.layout.ns, reader.dt, reader.t_start, validate=True)


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
    """Parabolic Radon demultiple on CMP gathers; Vrms at the CMP."""

    def check(self, reader):
        _check_velocity(self.p["velocity"], reader)

    def apply(self, g, ctx):
        v = _velocity_trace(self.p["velocity"], g.shape[1], ctx["dt"], ctx["t_start"],
                            at=_midpoint(ctx))
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


class Mute(_Step):
    """Top/bottom mutes from offset-time tables (optionally keyed by CDP or FFID)."""

    def __init__(self, params):
        from seis_hpc.flows.tables import read_mute_table

        super().__init__(params)
        if not params["top"] and not params["bottom"]:
            raise SeisError("mute: give --top and/or --bottom (offset_m,time_s tables)")
        self.tables = {k: read_mute_table(params[k]) for k in ("top", "bottom") if params[k]}

    def prepare(self, reader, my_groups):
        self.index = reader.index

    def apply(self, g, ctx):
        from seis_hpc.flows import mute

        times = {}
        for which, (key, knots) in self.tables.items():
            kv = None if key is None else ctx["ffid"] if key == "ffid" else \
                self.index.take(["header_cdp"], ctx["ids"])["header_cdp"]
            times[which] = mute.table_times(ctx["offset"], kv, knots)
        return mute.apply_mute(g, ctx["dt"], t_start=ctx["t_start"], top=times.get("top"),
                               bottom=times.get("bottom"), taper=self.p["taper"])


class Fk(_Step):
    """F-K fan filter on shot or CMP gathers (trace positions: offsets)."""

    def apply(self, g, ctx):
        from seis_hpc.flows import fk

        try:
            return fk.fan_filter(g, ctx["dt"], ctx["offset"], self.p["vmin"],
                                 taper=self.p["taper"], pad=self.p["pad"])
        except SeisError as exc:
            i = int(ctx["ids"][0])
            raise SeisError(f"gather of trace {i} (FFID {int(ctx['ffid'][0])}): {exc}") from None


class Statics(_Step):
    """Static shifts by FFID or station table, plus tidal statics from the shot times."""

    def __init__(self, params):
        from seis_hpc.flows.tables import read_statics_table, read_tide_table

        super().__init__(params)
        if not params["table"] and not params["tide"]:
            raise SeisError("statics: give --table and/or --tide")
        self.table = read_statics_table(params["table"]) if params["table"] else None
        self.tide = read_tide_table(params["tide"]) if params["tide"] else None

    def check(self, reader):
        self.shifts(reader)

    def shifts(self, reader) -> np.ndarray:
        """Static (s) of every trace of the input."""
        from seis_hpc.flows import statics

        idx = reader.index
        n = idx.n_traces
        total = np.zeros(n)
        if self.table is not None:
            kind, keys, vals = self.table
            lut = dict(zip(keys.tolist(), vals.tolist(), strict=True))
            if kind == "ffid":
                total += _lookup(lut, np.asarray(idx["ffid"]), "ffid", self.p["table"])
            else:
                pts = (np.r_[idx["sx"], idx["rx"]], np.r_[idx["sy"], idx["ry"]])
                az = statics.line_azimuth(*pts)
                step = self.p["station_interval"] or _receiver_spacing(idx, az)
                for c, who in (("s", "source"), ("r", "receiver")):
                    st = statics.station_numbers(idx[c + "x"], idx[c + "y"], step, az)
                    total += _lookup(lut, st, f"{who} station", self.p["table"])
        if self.tide is not None:
            t_shot = _shot_times(reader)
            tt, hh = self.tide
            out = (t_shot < tt[0]) | (t_shot > tt[-1])
            if out.any():
                import datetime as _dt

                i = int(np.argmax(out))
                when = _dt.datetime.fromtimestamp(t_shot[i], _dt.timezone.utc).isoformat()
                raise SeisError(f"trace {i} (FFID {int(idx['ffid'][i])}): shot time {when} is "
                                "outside the tide table", self.p["tide"])
            total += statics.tidal_shift(t_shot, tt, hh, self.p["vwater"])
        return total

    def prepare(self, reader, my_groups):
        self.all_shifts = self.shifts(reader)

    def apply(self, g, ctx):
        from seis_hpc.flows import statics

        return statics.shift_traces(g, ctx["dt"], self.all_shifts[ctx["ids"]])


def _lookup(lut: dict, keys: np.ndarray, what: str, path) -> np.ndarray:
    uniq, inv = np.unique(keys, return_inverse=True)
    missing = [int(k) for k in uniq if int(k) not in lut]
    if missing:
        raise SeisError(f"{what} {missing[0]} of the input is not in the statics table", path)
    return np.array([lut[int(k)] for k in uniq])[inv.ravel()]


def _receiver_spacing(idx, azimuth: float) -> float:
    """Median spacing (m) along the line of distinct receiver positions: the default station
    interval."""
    a = np.radians(azimuth)
    u = np.unique(np.round(np.asarray(idx["rx"]) * np.sin(a) + np.asarray(idx["ry"])
                           * np.cos(a), 3))
    d = np.diff(u)
    d = d[d > 0.01]
    if len(d) == 0:
        raise SeisError("statics: cannot find a station interval (give --station-interval)")
    return float(np.median(d))


def _shot_times(reader) -> np.ndarray:
    """Shot time of every trace (POSIX s, UTC) from the year/day/hour/minute/second headers."""
    import datetime as _dt

    from seis_hpc.flows.headers import decode

    names = ("YearDataRecorded", "DayOfYear", "HourOfDay", "MinuteOfHour", "SecondOfMinute")
    n = reader.index.n_traces
    parts = [decode(reader.header_bytes(np.arange(a, min(n, a + (1 << 20)))), names,
                    reader.layout.endian) for a in range(0, n, 1 << 20)]  # 240 MB at a time
    h = {k: np.concatenate([p[k] for p in parts]) for k in names}
    year = h["YearDataRecorded"]
    year = np.where(year < 50, year + 2000, np.where(year < 100, year + 1900, year))
    bad = (h["YearDataRecorded"] <= 0) | (h["DayOfYear"] < 1) | (h["DayOfYear"] > 366)
    if bad.any():
        i = int(np.argmax(bad))
        raise SeisError(f"trace {i}: no shot time in the headers (YearDataRecorded "
                        f"{int(h['YearDataRecorded'][i])}, DayOfYear {int(h['DayOfYear'][i])})"
                        "; tidal statics need them", reader.path)
    uy, inv = np.unique(year, return_inverse=True)
    jan1 = np.array([_dt.datetime(int(y), 1, 1, tzinfo=_dt.timezone.utc).timestamp()
                     for y in uy])[inv.ravel()]
    return (jan1 + (h["DayOfYear"] - 1) * 86400.0 + h["HourOfDay"] * 3600.0
            + h["MinuteOfHour"] * 60.0 + h["SecondOfMinute"])


class _Reorder(_Step):
    """A step that keeps or reorders whole traces (samples and headers copied verbatim)."""

    def apply(self, g, ctx):
        return g

    def check(self, reader, chunk: int | None = None):
        # streamed (a chunk at a time, nothing kept): the order itself is made on disk by
        # ``order`` once the output's scratch file is registered
        from seis_hpc.flows import orderfile

        n, chunk = reader.index.n_traces, chunk or orderfile.CHUNK
        for a in range(0, n, chunk):
            if self._check_chunk(reader, np.arange(a, min(n, a + chunk))):
                return
        raise SeisError(f"no trace of the input matches {self.text!r}", reader.path)

    def finish(self, merged, reader, summary):
        summary["traces_in"] = int(reader.index.n_traces)


def _header_columns(reader, names, ids) -> dict:
    from seis_hpc.flows import headers

    raw = [n for n in names if n not in headers.INDEX_NAMES]
    hdr = reader.header_bytes(ids) if raw else None
    # the rows asked for only (a whole column would stay in the index's memory)
    want = [n for n in names if n in headers.INDEX_NAMES and n != "trace"]
    got = reader.index.take([headers.index_column(n) for n in want], ids)
    cols = {n: got[headers.index_column(n)] for n in want}
    out = headers.columns(names, cols, hdr, reader.layout.endian, ids)
    return out


class Select(_Reorder):
    """Keep the traces where a header expression is true (file order kept)."""

    def __init__(self, params):
        from seis_hpc.flows import headers
        from seis_hpc.flows.expr import Expression

        super().__init__(params)
        self.text = params["where"]
        self.expr = Expression(self.text, headers.known_names(), "--where", headers.HINT)

    def _keep(self, reader, ids) -> np.ndarray:
        """The trace numbers of ``ids`` where the condition holds (in order)."""
        v = self.expr.evaluate(_header_columns(reader, self.expr.names, ids))
        if v.dtype != bool:
            raise SeisError(f"--where: {self.text!r} is not a condition (use a comparison "
                            "such as 'offset < 400')")
        return ids[np.broadcast_to(v, ids.shape)]

    def _check_chunk(self, reader, ids) -> bool:
        return self._keep(reader, ids).size > 0

    def order(self, reader, scratch=None, comm=None, chunk: int | None = None):
        """The kept trace numbers in file order: on disk in ``scratch`` (an
        :class:`~seis_hpc.flows.orderfile.OrderFile`, made in a streamed pass on rank 0), or
        in memory without one."""
        from seis_hpc.flows import orderfile

        n, chunk = reader.index.n_traces, chunk or orderfile.CHUNK
        if scratch is None:
            return np.concatenate([self._keep(reader, np.arange(a, min(n, a + chunk)))
                                   for a in range(0, n, chunk)] or [np.zeros(0, np.int64)])
        return orderfile.select_order(scratch, n, lambda ids: self._keep(reader, ids), comm,
                                      chunk)


class Sort(_Reorder):
    """Reorder the traces by header keys (ascending; ``-key`` descending; ties in file
    order)."""

    def __init__(self, params):
        from seis_hpc.flows import headers
        from seis_hpc.flows.expr import Expression

        super().__init__(params)
        self.text = params["keys"]
        self.keys = []
        for k in (s.strip() for s in self.text.split(",")):
            desc = k.startswith("-")
            e = Expression(k.lstrip("-") or "?", headers.known_names(), "--keys", headers.HINT)
            self.keys.append((e, desc))

    def _keys(self, reader, ids, chunk: int = 1 << 20) -> list[np.ndarray]:
        """The float64 key columns of the traces ``ids`` (descending keys negated), read
        ``chunk`` traces at a time."""
        cols = []
        for e, desc in self.keys:
            parts = []
            for a in range(0, ids.size, chunk):
                sub = ids[a:a + chunk]
                parts.append(np.broadcast_to(
                    e.evaluate(_header_columns(reader, e.names, sub)), sub.shape))
            v = np.concatenate(parts).astype(np.float64)
            cols.append(-v if desc else v)
        return cols

    def _check_chunk(self, reader, ids) -> bool:
        self._keys(reader, ids)  # the keys' errors before any output
        return True

    def check(self, reader, chunk: int | None = None):
        # the first chunk's keys (their errors before any output); the whole sort comes later
        from seis_hpc.flows import orderfile

        n, chunk = reader.index.n_traces, chunk or orderfile.CHUNK
        if n == 0:
            raise SeisError(f"no trace of the input matches {self.text!r}", reader.path)
        self._check_chunk(reader, np.arange(min(n, chunk)))

    def order(self, reader, scratch=None, comm=None, chunk: int | None = None):
        """The traces' stable order by the keys (ties in file order): an external sort
        into ``scratch`` (:func:`~seis_hpc.flows.orderfile.sort_order`: runs of
        :data:`~seis_hpc.flows.orderfile.RUN_ROWS` traces sorted by the ranks, merged by rank
        0), or in memory (8 B a trace and key) without one."""
        from seis_hpc.flows import orderfile

        n, chunk = reader.index.n_traces, chunk or orderfile.CHUNK
        if scratch is None:
            cols = [orderfile.sortable(c) for c in self._keys(reader, np.arange(n), chunk)]
            return np.lexsort([np.arange(n)] + cols[::-1])
        return orderfile.sort_order(scratch, n, len(self.keys),
                                    lambda ids: self._keys(reader, ids, chunk), comm)


class Headers(_Step):
    """Header math: ``FIELD = EXPRESSION`` assignments in order (samples unchanged)."""

    def __init__(self, params):
        from seis_hpc.flows import headers
        from seis_hpc.flows.expr import parse_assignment

        super().__init__(params)
        self.sets = [parse_assignment(t, headers.known_names(), headers.WRITABLE, "--set",
                                      headers.HINT) for t in params["set"]]

    def prepare(self, reader, my_groups):
        self.reader = reader

    def apply(self, g, ctx):
        return g

    def headers(self, hdr, ids):
        from seis_hpc.flows import headers

        hdr = np.array(hdr, np.uint8)
        endian = self.reader.layout.endian
        for target, e in self.sets:
            idx_names = [n for n in e.names if n in headers.INDEX_NAMES and n != "trace"]
            got = self.reader.index.take([headers.index_column(n) for n in idx_names], ids)
            cols = {n: got[headers.index_column(n)] for n in idx_names}
            v = e.evaluate(headers.columns(e.names, cols, hdr, endian, ids))
            headers.encode(hdr, target, v, endian, ids)
        return hdr

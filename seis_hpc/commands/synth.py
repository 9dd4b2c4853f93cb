"""``seis-hpc synth``: write a built-in synthetic survey with its truth."""

HELP = "make a built-in synthetic marine survey (SEG-Y + truth.json + velocity.csv)"
OUTPUTS = ("out",)
DESCRIPTION = """Make a synthetic towed-streamer survey with known truth.

Writes into --out:
  shots.sgy      prestack shot records, full rev-1 headers (coordinates in m, scalar -100)
  truth.json     acquisition, bin grid, Vrms(t0), diffractor positions and t0, reflectors,
                 multiples and every planted noise trace
  velocity.csv   the true Vrms function, columns time_s,vrms_mps (for seis-hpc pstm)

Presets:
{presets}

Noise options add damage to the recorded traces (the truth lists every damaged trace).
Example:
  seis-hpc synth --preset marine2d --out line1 --swell 5 --spikes 20 --dead 10
"""
NEEDS_ARGS = True


def _presets_text() -> str:
    from seis_hpc.synth import PRESETS

    return "\n".join(f"  {p.name:15s} {p.description}" for p in PRESETS.values())


def add_arguments(parser) -> None:
    parser.description = DESCRIPTION.format(presets=_presets_text())
    parser.add_argument("--preset", required=True, help="survey preset (see above)")
    parser.add_argument("--out", required=True, help="output folder")
    from seis_hpc.io.spec3d import add_arguments as spec3d_arguments
    spec3d_arguments(parser)  # --headers-only, --scale
    parser.add_argument("--no-multiples", action="store_true",
                        help="model without the free surface (no water-bottom multiples)")
    parser.add_argument("--multiples", action="store_true",
                        help="add water-bottom multiples and peg-legs to any preset")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--ghosts", action="store_true",
                   help="add source and receiver ghosts (free surface -1 above the source "
                   "and streamer depths, delays 2 z cos(emergence angle) / 1500 m/s) to any "
                   "preset (on in marine2d-ghost)")
    g.add_argument("--no-ghosts", action="store_true", help="model without ghosts")
    parser.add_argument("--snr", type=float, default=None,
                        help="random noise: signal RMS / noise RMS (default none)")
    parser.add_argument("--swell", type=int, default=0, help="number of swell-noise bursts")
    parser.add_argument("--spikes", type=int, default=0, help="number of spiky traces")
    parser.add_argument("--dead", type=int, default=0, help="number of dead traces")
    parser.add_argument("--seed", type=int, default=12345, help="noise random seed")
    parser.add_argument("--midpoints-in-cdp", action="store_true",
                        help="write each trace's true midpoint in CDP_X/CDP_Y (3D: bin "
                        "numbers stay in INLINE_3D/CROSSLINE_3D), not the bin centre")
    parser.add_argument("--segy-revision", type=int, choices=(1, 2), default=1,
                        help="SEG-Y revision of shots.sgy: 1 (default) or 2 (rev 2.0 binary "
                        "header fields for sample count and interval)")
    parser.add_argument("--format", type=int, choices=(1, 5), default=5,
                        help="SEG-Y sample format: 1 IBM float, 5 IEEE float (default 5)")
    a = parser.add_argument_group("acquisition (a shorter line or record than the preset's)")
    a.add_argument("--shots", type=int, metavar="N",
                   help="shots per sail line (default: the preset's)")
    a.add_argument("--channels", type=int, metavar="N",
                   help="channels per streamer (default: the preset's)")
    a.add_argument("--record-length", type=float, metavar="S",
                   help="record length (s; default: the preset's)")


def run(args) -> int:
    from seis_hpc.io.spec3d import command as spec3d_command
    if args.preset == "spec3d" or args.headers_only:
        return spec3d_command(args)
    from seis_hpc.synth import configure, write_survey

    def choice(on: bool, off: bool) -> bool | None:
        return False if off else (True if on else None)  # None: the preset's

    p = configure(args.preset, shots=args.shots, channels=args.channels,
                  record_length=args.record_length,
                  multiples=choice(args.multiples, args.no_multiples),
                  ghosts=choice(args.ghosts, args.no_ghosts), snr=args.snr, swell=args.swell,
                  spikes=args.spikes, dead=args.dead, seed=args.seed,
                  midpoints_in_cdp=args.midpoints_in_cdp)
    truth = write_survey(p, args.out, fmt=args.format, revision=args.segy_revision)
    print(f"{args.out}/shots.sgy: {truth['n_traces']} traces x {truth['ns']} samples at "
          f"{truth['dt_s'] * 1000:g} ms ({'2D' if truth['is_2d'] else '3D'}, preset {p.name})")
    print(f"{args.out}/truth.json: {len(truth['diffractors'])} diffractors, "
          f"{len(truth['reflectors'])} reflectors, {len(truth['multiples'])} multiples")
    print(f"{args.out}/velocity.csv: Vrms(t0) for seis-hpc pstm --velocity")
    return 0

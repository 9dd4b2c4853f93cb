"""``seis-hpc index``: build the trace index of a SEG-Y/SU file and report its geometry."""

HELP = "index a SEG-Y/SU file's trace headers (HDF5) and report the survey geometry"
INPUTS = ("file", "header_map", "bin_grid")
OUTPUTS = ("index", "spatial_index")
DESCRIPTION = """Read every trace header of FILE once, bin the traces (2D CMP line or 3D grid)
and write the trace index (HDF5, one row per trace: FFID, channel, source/receiver/midpoint
coordinates [m], offset [m], azimuth [deg], CMP/inline/crossline, byte position).

Default output: FILE.index.h5 beside FILE, or under $SEIS_HPC_CACHE (~/.cache/seis_hpc)
when that folder is not writable. The index is written atomically: on any error nothing is
left behind.

Parameters:
  --index OUT            index file to write
  --header-map MAP.toml  trace-header byte map for non-standard SEG-Y, e.g.
                           [fields]
                           inline = { byte = 9, type = "int32" }
  --cmp-interval M       CMP interval [m] of a 2D line (default: half the receiver interval)
  --bin-grid GRID.toml   the survey's bin grid as given (x0, y0, azimuth, bin_inline,
                         bin_crossline, inline0, crossline0, n_inline, n_crossline; or
                         [corners] first, last_crossline, last_inline): bin by it
  --coordinate-units U   metres or feet: how to read coordinates whose headers (bytes
                         89-90) say arc seconds or degrees; kept in the index, so pstm,
                         stack, velan and migstack then accept them
  --check-samples        decode every sample once and refuse NaN/Inf (otherwise they are
                         caught when the traces are read)
  --spatial              also write the spatially blocked index: the same rows sorted into
                         square cells of midpoints, so that the traces near a place are a
                         few contiguous row ranges (what pstm, stack and velan read fastest
                         on a large survey). Default name: the index's, .index.h5 ->
                         .spatial.index.h5 (FILE.spatial.index.h5 beside FILE); give it as
                         INPUT to pstm/stack/velan, or as --index with FILE (never
                         rewritten: if FILE changed since, the step stops). Sorted from
                         the index file in bounded memory (an external sort: scratch runs
                         beside it, as large as the index's uncompressed columns, removed
                         at the end)
  --spatial-index OUT    blocked index to write (implies --spatial)
  --cell M               cell edge of the blocked index [m] (default 500)
  --sort-memory SIZE     memory of that sort (default 1G; e.g. 512M, 4G)

Examples:
  seis-hpc index line12.sgy
  seis-hpc index shots.sgy --index /scratch/shots.index.h5 --cmp-interval 6.25
  seis-hpc index survey.sgy --spatial     # also survey.sgy.spatial.index.h5
"""


def add_arguments(parser) -> None:
    """FILE and the options above."""
    parser.add_argument("file", metavar="FILE", help="SEG-Y or SU file")
    parser.add_argument("--index", metavar="OUT", help="index file to write")
    parser.add_argument("--bin-grid", metavar="GRID.toml", help="bin by this grid (origin, "
                        "azimuth, bin sizes, first inline/crossline, or corners) instead of "
                        "finding one; traces outside it are reported and not used")
    parser.add_argument("--header-map", metavar="MAP.toml", help="trace-header byte map")
    parser.add_argument("--cmp-interval", metavar="M", type=float,
                        help="CMP interval of a 2D line (m)")
    parser.add_argument("--coordinate-units", choices=("metres", "feet"),
                        help="read coordinates the headers call geographic (bytes 89-90) as "
                        "metres or feet (kept in the index for later steps)")
    parser.add_argument("--check-samples", action="store_true",
                        help="scan every sample for NaN/Inf")
    parser.add_argument("--spatial", action="store_true",
                        help="also write the spatially blocked index (NAME.spatial.index.h5)")
    parser.add_argument("--spatial-index", metavar="OUT",
                        help="blocked index to write (implies --spatial)")
    parser.add_argument("--cell", metavar="M", type=float, default=500.0,
                        help="cell edge of the blocked index (m, default 500)")
    parser.add_argument("--sort-memory", metavar="SIZE", default="1G",
                        help="memory of the blocked index's sort (default 1G)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    import json
    import os

    from seis_hpc.commands.info import format_text
    from seis_hpc.errors import SeisError
    from seis_hpc.survey import Survey

    if os.path.isdir(args.file):
        raise SeisError("is a directory, not a SEG-Y or SU file", args.file)
    with open(args.file, "rb"):
        pass  # the OS error (missing, unreadable) is the message
    spatial = args.spatial or args.spatial_index
    if spatial:  # a bad option fails before the work
        from seis_hpc.io.blocked import check_sort_options, sort_index

        budget = check_sort_options(args.cell, args.sort_memory)
    # written block by block: memory bounded by a block, not the survey (issue 19)
    survey = Survey.index_file(args.file, index_path=args.index, headermap=args.header_map,
                               cmp_interval=args.cmp_interval, grid=args.bin_grid,
                               coordinate_units=args.coordinate_units,
                               check_samples=args.check_samples)
    out = survey.index.path
    rec = getattr(args, "_record", None)  # the run record, when $SEIS_HPC_RUNDIR is set
    if rec is not None and not args.index:
        rec.outputs.append(str(out))  # the default index is a deliverable too
    report = {"file": args.file, "index": str(out), "traces": survey.index.n_traces,
              **survey.report()}
    if spatial:
        spatial = sort_index(out, args.spatial_index, args.cell, budget)
        report["spatial_index"] = str(spatial)
        if rec is not None and not args.spatial_index:
            rec.outputs.append(str(spatial))
    print(json.dumps(report, indent=1) if args.json else format_text(report))
    return 0

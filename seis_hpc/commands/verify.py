"""``seis-hpc verify``: check deliverables against their MANIFEST.sha256."""

INPUTS = ("manifest",)  # reads only

HELP = "check every file of a MANIFEST.sha256 (size and SHA-256); exit 1 if any changed"
DESCRIPTION = """Re-hash every file listed in MANIFEST (paths relative to the manifest's folder)
and compare size and SHA-256 with the manifest.

Prints one line per file that is MISSING or CHANGED, then a summary.
Exit status: 0 every file matches; 1 some file is missing or changed; 2 the manifest itself
cannot be read or is not a seis_hpc manifest.

Parameters:
  --list    also print the files that match (OK)

Example:
  seis-hpc verify delivery/MANIFEST.sha256
"""


def add_arguments(parser) -> None:
    """MANIFEST, --list."""
    parser.add_argument("manifest", metavar="MANIFEST", help="MANIFEST.sha256 file")
    parser.add_argument("--list", action="store_true", help="also list the files that match")


def run(args) -> int:
    from seis_hpc.manifest import verify_manifest

    entries, problems = verify_manifest(args.manifest)
    bad = {p.entry.path: p for p in problems}
    for e in entries:
        p = bad.get(e.path)
        if p is not None:
            print(f"{p.kind.upper():<8} {e.path}: {p.detail}")
        elif args.list:
            print(f"{'OK':<8} {e.path}")
    if problems:
        print(f"verify: {len(problems)} of {len(entries)} files changed or missing "
              f"({args.manifest})")
        return 1
    print(f"verify: all {len(entries)} files match ({args.manifest})")
    return 0

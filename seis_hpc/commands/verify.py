"""``seis-hpc verify``: check deliverables against their MANIFEST.sha256."""

INPUTS = ("manifest",)  # reads only

HELP = "check every file of a MANIFEST.sha256 (size and SHA-256); exit 1 if any changed"
DESCRIPTION = """Re-hash every file listed in MANIFEST (paths relative to the manifest's folder)
and compare size and SHA-256 with the manifest. The manifest is in the standard sha256sum
format (sizes in '# size BYTES  PATH' comments; a plain sha256sum file without them is checked
by SHA-256 alone), so  cd FOLDER && sha256sum -c MANIFEST.sha256  checks it too.

Prints one line per file that is MISSING or CHANGED, then one per file of the manifest's
folder (and subfolders) that the manifest does not list (ADDED; the intermediate files
listed in SCRATCH.txt next to the manifest do not count), then a summary.
Exit status: 0 every file matches and none was added; 1 some file is missing, changed or
added; 2 the manifest itself cannot be read, is not a seis_hpc manifest, or lists a path
that leaves its folder (absolute, '..', or a symbolic link pointing out).

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
    from seis_hpc.delivery.manifest import verify_manifest

    entries, problems = verify_manifest(args.manifest)
    bad = {p.entry.path: p for p in problems}
    for e in entries:
        p = bad.get(e.path)
        if p is not None:
            print(f"{p.kind.upper():<8} {e.path}: {p.detail}")
        elif args.list:
            print(f"{'OK':<8} {e.path}")
    added = [p for p in problems if p.kind == "added"]
    for p in added:
        print(f"{'ADDED':<8} {p.entry.path}: {p.detail}")
    if problems:
        n = len(problems) - len(added)
        print(f"verify: {n} of {len(entries)} files changed or missing"
              + (f", {len(added)} files added" if added else "") + f" ({args.manifest})")
        return 1
    print(f"verify: all {len(entries)} files match ({args.manifest})")
    return 0

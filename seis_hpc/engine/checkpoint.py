"""Checkpoint and restart: what is done, and the partial results that hold it.

Layout of a checkpoint directory (default ``<out>.ckpt/``)::

    .seis-hpc-checkpoint  marker: the directory is the engine's (job hash, whether the engine
                        created the directory); written first, removed last
    job.json            parameter hash, the job's parameters, strategy, number of units
    rank-00003.h5       shard mode: rank 3's partial image (+ gathers) and, as data set
                        ``units``, the journal of the units whose traces it holds
    tile-00042.h5       tile mode: the finished tile 42 (image + gathers of its window)

Every file is written to a temporary name and renamed, so a file that exists is complete and
its journal matches its data: a job killed at any moment loses at most the units done since
the last flush. A restart may use another number of ranks: rank ``r`` absorbs the partial
files ``i`` with ``i % size == r``; a file whose journal is contained in another file's
journal has been absorbed already and is ignored.

The engine only ever deletes what it created. It works only in a directory that is new, empty,
or carries its marker; a non-empty directory without the marker is refused (a user's folder is
never touched), and inside its own directory it removes only the exact names above (and their
``.NAME.tmp-PID`` temporaries), never a file that merely resembles them. The directory itself
is removed after success only when the engine created it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.io.atomic import atomic_output

MARKER = ".seis-hpc-checkpoint"
JOURNAL = "job.json"
# Exact (anchored) names of the engine's files; ``fullmatch`` only, so that a user's
# ``survey_rank-00001.h5`` or ``tile-00003.h5.bak`` is never taken for one of them.
_RANK_FILE = re.compile(r"rank-(\d{5,})\.h5")
_TILE_FILE = re.compile(r"tile-(\d{5,})\.h5")
# Temporaries of :func:`~seis_hpc.io.atomic.atomic_output` for those names (journal,
# partials, tiles, marker), left by a killed job.
_TMP_FILE = re.compile(r"\.(?:job\.json|rank-\d{5,}\.h5|tile-\d{5,}\.h5|\.seis-hpc-checkpoint)"
                       r"\.tmp-\d+")


def _ours(name: str) -> bool:
    """True for the exact names of the engine's data files and their temporaries."""
    return bool(name == JOURNAL or _RANK_FILE.fullmatch(name) or _TILE_FILE.fullmatch(name)
                or _TMP_FILE.fullmatch(name))


def parameter_hash(params: dict) -> str:
    """SHA-256 (hex, 16 digits) of the parameters as canonical JSON."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flat(d: dict, prefix: str = "") -> dict:
    """Nested parameters as one level: ``{"kernel.max_angle": 60, ...}``."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class Checkpoint:
    """One job's checkpoint directory.

    Parameters
    ----------
    path : path-like
        The directory.
    phash : str
        Hash of the job's parameters (:func:`parameter_hash`).
    stage : path-like, optional
        A folder of this rank on node-local scratch (:func:`scratch_folder`): partials and
        tiles are written there first and then copied, as one sequential write, to their
        temporary name in ``path`` and renamed. None: written in ``path`` directly. The
        checkpoint itself is always in ``path`` (the shared filesystem), where a restart on
        other nodes finds it.
    """

    def __init__(self, path: str | os.PathLike, phash: str,
                 stage: str | os.PathLike | None = None):
        self.path = Path(path)
        self.phash = phash
        self.stage = None if stage is None else Path(stage)

    @contextlib.contextmanager
    def _writing(self, final: Path) -> Iterator[Path]:
        """The path to write ``final``'s content to: its temporary name, or a file in the
        stage folder that is then copied there; renamed to ``final`` only on success."""
        with atomic_output(final) as tmp:
            if self.stage is None:
                yield tmp
                return
            local = self.stage / final.name
            try:
                self.stage.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SeisError(f"cannot make the scratch folder ({exc.strerror})",
                                self.stage) from None
            try:
                yield local
                shutil.copyfile(local, tmp)
            finally:
                local.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.stage.rmdir()  # only this rank's own folder, and only when empty

    # -- set-up, rank 0 only ---------------------------------------------------------------
    def _marker(self) -> dict | None:
        """The marker's content, or None when the directory carries no marker."""
        try:
            m = json.loads((self.path / MARKER).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError):
            return {}  # a damaged marker still marks the directory as the engine's
        return m if isinstance(m, dict) else {}

    def _write_marker(self, created: bool) -> None:
        with atomic_output(self.path / MARKER) as tmp:
            tmp.write_text(json.dumps({"what": "seis-hpc checkpoint directory",
                                       "hash": self.phash, "created": bool(created)}, indent=1))

    def prepare(self, params: dict, restart: str = "auto") -> bool:
        """Check, claim or create the directory; return True when there is work to resume.

        The directory must be new, empty or marked as the engine's (:data:`MARKER`). When
        nothing is resumed, the engine's stale files of an earlier job are removed (exact
        names only).

        Raises :class:`SeisError` when the directory is not empty and not the engine's, or
        when it holds a checkpoint of a job with other parameters and ``restart`` is not
        ``"fresh"``.
        """
        meta = self.path / JOURNAL
        if restart not in ("auto", "fresh"):
            raise SeisError(f"--restart must be auto or fresh (got {restart!r})")
        if self.path.exists() and not self.path.is_dir():
            raise SeisError("checkpoint path exists and is not a directory", self.path)
        created = not self.path.exists()
        mark = None if created else self._marker()
        if mark is None and not created:
            try:
                foreign = any(True for _ in self.path.iterdir())
            except OSError as exc:
                raise SeisError(f"cannot read the checkpoint directory ({exc.strerror})",
                                self.path) from None
            if foreign:
                raise SeisError(
                    "checkpoint directory is not empty and is not a seis-hpc checkpoint "
                    f"(no {MARKER}); give a new or empty --checkpoint-dir", self.path)
        resume = False
        if mark is not None and meta.exists():
            try:
                old = json.loads(meta.read_text())
            except (OSError, ValueError, UnicodeDecodeError):
                old = {}
            if not isinstance(old, dict):
                old = {}
            if restart == "fresh":
                pass
            elif old.get("hash") != self.phash:
                new_f, old_f = _flat(params), _flat(old.get("params", {}))
                changed = sorted(k for k in set(new_f) | set(old_f)
                                 if new_f.get(k) != old_f.get(k))
                raise SeisError(
                    "holds a checkpoint of a job with different parameters "
                    f"({', '.join(changed) or 'unknown'} differ); rerun with --restart fresh "
                    "to discard it", self.path)
            else:
                resume = True
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            # Claim the directory before anything else; the write also proves it is writable.
            self._write_marker(created if mark is None else bool(mark.get("created", False)))
        except OSError as exc:
            raise SeisError(f"cannot write checkpoints here ({exc.strerror})", self.path) from None
        if not resume:
            self.clear()  # files of an earlier job (fresh, or dropped) are never mixed in
            with atomic_output(meta) as tmp:
                tmp.write_text(json.dumps({"hash": self.phash, "params": params}, indent=1,
                                          default=str))
        return resume

    def _unlink_ours(self) -> None:
        """Remove the engine's files (exact names) from its own directory; never the marker."""
        if self._marker() is None:
            return  # not (or no longer) the engine's directory: touch nothing
        # The journal first: once it is gone nothing left here can be resumed.
        (self.path / JOURNAL).unlink(missing_ok=True)
        for p in self.path.iterdir():
            if _ours(p.name) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove this job's files (journal, partials, tiles, temporaries) from the directory.

        Only in a directory marked as the engine's, and only the engine's exact file names.
        """
        if self.path.is_dir():
            self._unlink_ours()

    def remove(self) -> None:
        """After a successful job: remove the engine's files and marker, and the directory
        when the engine created it and nothing else is in it."""
        if not self.path.is_dir():
            return
        mark = self._marker()
        if mark is None:
            return
        self._unlink_ours()
        (self.path / MARKER).unlink(missing_ok=True)
        if mark.get("created"):
            try:
                self.path.rmdir()  # fails, harmlessly, when a user put files here
            except OSError:
                pass

    def discard(self, everything: bool = True) -> None:
        """Drop the checkpoint after a bad-input error, so that the corrected rerun is not
        refused as "a job with different parameters".

        Parameters
        ----------
        everything : bool
            True (one rank): remove it all, as after success. False (one of several ranks,
            the others still running until they are aborted): remove only the journal.
            Without it nothing can be resumed, and the next run clears the data files (the
            marker keeps the directory known as the engine's); removing them now would pull
            a file from under a rank still flushing it, which then reports a second error
            ("no such file") before the abort reaches it.
        """
        try:
            if everything:
                self.remove()
            else:
                (self.path / JOURNAL).unlink(missing_ok=True)
        except OSError:
            pass  # reporting the user's error matters more than tidying up

    # -- shard mode --------------------------------------------------------------------------
    def rank_file(self, index: int) -> Path:
        """Path of partial file ``index``."""
        return self.path / f"rank-{index:05d}.h5"

    def _read_units(self, p: Path) -> np.ndarray:
        with h5py.File(p, "r") as f:
            if f.attrs.get("hash") != self.phash:
                raise SeisError("partial result of another job in the checkpoint; rerun with "
                                "--restart fresh", p)
            return f["units"][...].astype(np.int64)

    def partials(self) -> tuple[dict[int, Path], set[int]]:
        """Partial files to load (by index) and the set of units they hold (rank 0).

        Files absorbed into another file (journal contained in it) are left out. Raises
        :class:`SeisError` when two remaining files claim the same unit.
        """
        files = {}
        for p in self.path.iterdir():
            m = _RANK_FILE.fullmatch(p.name)
            if m:
                files[int(m.group(1))] = p
        units = {i: set(self._read_units(p).tolist()) for i, p in files.items()}
        keep = {}
        for i, s in units.items():
            if not s:
                continue
            absorbed = any(j != i and s <= t and (len(t) > len(s) or j < i)
                           for j, t in units.items())
            if not absorbed:
                keep[i] = files[i]
        done: set[int] = set()
        for i in keep:
            if done & units[i]:
                raise SeisError("checkpoint partials overlap (a unit is in two files); rerun "
                                "with --restart fresh", self.path)
            done |= units[i]
        return keep, done

    def load_partial(self, p: Path, image: np.ndarray, gathers: np.ndarray | None) -> list[int]:
        """Add partial file ``p`` into ``image`` (and ``gathers``); return its units."""
        with h5py.File(p, "r") as f:
            if f.attrs.get("hash") != self.phash:
                raise SeisError("partial result of another job in the checkpoint", p)
            image += f["image"][...]
            if gathers is not None:
                gathers += f["gathers"][...]
            return f["units"][...].tolist()

    def save_partial(self, index: int, image: np.ndarray, gathers: np.ndarray | None,
                     units: list[int]) -> None:
        """Write partial file ``index`` (image, gathers, journal of units) atomically."""
        with self._writing(self.rank_file(index)) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=image)
            if gathers is not None:
                f.create_dataset("gathers", data=gathers)
            f.create_dataset("units", data=np.asarray(sorted(units), dtype=np.int64))
            f.attrs["hash"] = self.phash

    def drop(self, paths: Iterable[str | os.PathLike]) -> None:
        """Remove partial files that have been absorbed into a newer one."""
        for p in paths:
            try:
                Path(p).unlink()
            except FileNotFoundError:
                pass

    # -- tile mode ---------------------------------------------------------------------------
    def tile_file(self, uid: int) -> Path:
        """Path of finished tile ``uid``."""
        return self.path / f"tile-{uid:05d}.h5"

    def tiles_done(self) -> set[int]:
        """Units whose tile file exists (rank 0)."""
        out = set()
        for p in self.path.iterdir():
            m = _TILE_FILE.fullmatch(p.name)
            if m:
                out.add(int(m.group(1)))
        return out

    def save_tile(self, uid: int, image: np.ndarray, gathers: np.ndarray | None) -> None:
        """Write finished tile ``uid`` atomically."""
        with self._writing(self.tile_file(uid)) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=image)
            if gathers is not None:
                f.create_dataset("gathers", data=gathers)
            f.attrs["hash"] = self.phash

    def load_tile(self, uid: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Image and gathers (or None) of finished tile ``uid``."""
        with h5py.File(self.tile_file(uid), "r") as f:
            if f.attrs.get("hash") != self.phash:
                raise SeisError("tile of another job in the checkpoint", self.tile_file(uid))
            return f["image"][...], (f["gathers"][...] if "gathers" in f else None)



def scratch_folder(scratch: str | os.PathLike, phash: str, rank: int) -> Path:
    """This rank's folder for temporary files under ``scratch`` (node-local scratch).

    ``%n`` in ``scratch`` is replaced by the node's name (SLURM's, else the host name), so
    one path can name a folder per node where the nodes share a filesystem. Returns the path
    ``<scratch>/seis-hpc-<job hash>-rank-NNNNN``; its parents are made here (a scratch that
    cannot be made fails before any work), the folder itself exists only while a file is
    being staged in it (:class:`Checkpoint`).
    """
    from seis_hpc.engine.comm import node_name

    base = Path(str(scratch).replace("%n", node_name()))
    d = base / f"seis-hpc-{phash}-rank-{rank:05d}"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeisError(f"cannot make the scratch folder ({exc.strerror})", base) from None
    return d

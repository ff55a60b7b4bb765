"""Which index is in use, so that `assistant ingest --rebuild` can replace it in one step.

The index lives in data/index until the first rebuild. A rebuild writes a new index into a folder
beside it (data/index/gen-...), and when that is complete names the folder in data/index/CURRENT:
the name is written to a temporary file that is then renamed over CURRENT, so a reader sees the
old index or the new one, never a mix, and a rebuild killed part way leaves the old one in use.
A serving app holds a shared lock on the generation it answers from (``Lease``); a generation
that is not current and that no one holds is removed (``stale`` lists them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assistant.settings import Settings
from assistant.store import IndexDamaged, StoreError

POINTER = "CURRENT"
PREFIX = "gen-"
READERS = ".readers"  # the file a reader holds a shared lock on
_NAME = re.compile(r"^gen-[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$")
# What an index keeps in its folder; the first index's folder is data/index itself, which also
# holds the ingest lock and the pointer, so only these are removed from it.
_CONTENTS = ("chunks.sqlite", "chunks.sqlite-wal", "chunks.sqlite-shm", "chroma", "lexical", READERS)


@dataclass(frozen=True)
class Generation:
    index_dir: Path
    name: str  # "" for data/index itself

    @property
    def dir(self) -> Path:
        return self.index_dir / self.name if self.name else self.index_dir

    @property
    def db_path(self) -> Path:
        return self.dir / "chunks.sqlite"

    @property
    def lexical_path(self) -> Path:
        return self.dir / "lexical"

    def collection(self, base: str) -> str:
        """Its Chroma collection: on a server every generation needs a name of its own."""
        return f"{base}-{self.name}" if self.name else base

    def remove_files(self) -> None:
        if self.name:
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        for name in _CONTENTS:
            path = self.dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def current(settings: Settings) -> Generation:
    """The generation readers should use now."""
    try:
        name = (settings.index_dir / POINTER).read_text().strip()
    except FileNotFoundError:
        return Generation(settings.index_dir, "")
    if not _NAME.match(name) or not (settings.index_dir / name).is_dir():
        raise IndexDamaged(
            f"index file {settings.index_dir / POINTER} names no index folder ({name[:40]!r});"
            " run `assistant ingest --rebuild`"
        )
    return Generation(settings.index_dir, name)


def create(settings: Settings) -> Generation:
    """A new, empty generation folder (not in use until ``switch``)."""
    name = f"{PREFIX}{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
    generation = Generation(settings.index_dir, name)
    generation.dir.mkdir(parents=True)
    return generation


def switch(settings: Settings, generation: Generation) -> None:
    """Make ``generation`` the one in use, in one rename (flushed to disk when the disk allows)."""
    pointer = settings.index_dir / POINTER
    staging = pointer.with_name(f".{POINTER}.{os.getpid()}")
    try:
        with open(staging, "w") as out:
            out.write(generation.name + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, pointer)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    # The rename is made: a failure to flush the folder must not make the caller undo the switch.
    with contextlib.suppress(OSError):
        directory = os.open(settings.index_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def stale(settings: Settings) -> list[Generation]:
    """Generations on disk that are not the current one (left by a rebuild or a killed one)."""
    try:
        now = current(settings)
    except StoreError:
        return []  # no pointer to trust: remove nothing
    found = [Generation(settings.index_dir, p.name) for p in settings.index_dir.glob(PREFIX + "*") if p.is_dir()]
    if now.name and any((settings.index_dir / name).exists() for name in _CONTENTS if name != READERS):
        found.append(Generation(settings.index_dir, ""))
    return [g for g in found if g != now]


@contextlib.contextmanager
def exclusive(generation: Generation) -> Iterator[bool]:
    """True, with an exclusive lock held, when no reader holds ``generation``: it may be removed
    (under the ingest lock, so that no one is building it either)."""
    try:
        fd = _open_readers(generation)
    except FileNotFoundError:
        yield False  # already gone
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _open_readers(generation: Generation) -> int:
    """The generation's readers file, made when missing; FileNotFoundError once its folder is gone."""
    path = generation.dir / READERS
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)


class Lease:
    """A shared lock on the generation a reader uses: while it is held, no ingest removes it."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self._fd: int | None = None
        try:
            self._fd = _open_readers(generation)
        except FileNotFoundError:
            if generation.name:
                raise  # removed after a switch: lease_current looks again
            return  # no index at all yet: nothing to keep
        except OSError:
            return  # a read-only data dir: no one can remove anything from it either
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def lease_current(settings: Settings) -> Lease:
    """A lease on the current generation, checked to be still current once the lock is held."""
    while True:
        generation = current(settings)
        try:
            lease = Lease(generation)
        except FileNotFoundError:
            continue
        if current(settings) == generation:
            return lease
        lease.release()

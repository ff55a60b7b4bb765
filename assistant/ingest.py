"""Incremental ingest: embed only new or changed documents, remove the gone, never lose data.

Order of writes for one document, chosen so that a kill at any point leaves a usable index
that the next ingest repairs:
1. embed the chunks the vector store does not have yet;
2. upsert them into Chroma (readers ignore ids that the chunk table does not list);
3. replace the document's rows in the chunk table in one SQLite transaction (the commit);
4. delete the document's old chunk ids from Chroma.
Each ingest starts by reconciling: Chroma ids the chunk table does not list are deleted,
and documents whose chunks are missing (from the chunk table or from Chroma) or lack unit
vectors are embedded again.

A rebuild writes a whole new index beside the one in use and switches to it in one step when it
is complete (assistant.generations); the old one is removed once no one reads it.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from assistant import generations
from assistant.chunking import Chunk, chunk_document
from assistant.documents import Document, LoadError, load_document
from assistant.embeddings import Embedder
from assistant.errors import UserError
from assistant.settings import Settings
from assistant.store import ChunkDB, LexicalIndex, StoreError, VectorStore, storage_error
from assistant.text import surface_words
from assistant.units import embed_units

EMBED_BATCH = 256


class IngestBusy(UserError):
    """Another ingest holds the lock."""


@dataclass
class IngestReport:
    documents: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    embedded_chunks: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "documents": self.documents,
            "chunks": self.chunks,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def db_path(settings: Settings) -> Path:
    """The chunk table of the index in use."""
    return generations.current(settings).db_path


def lexical_path(settings: Settings) -> Path:
    return generations.current(settings).lexical_path


def _signature(doc: Document, settings: Settings, embedder: Embedder) -> str:
    return f"{doc.content_hash}:{settings.chunk_size}:{settings.chunk_overlap}:{embedder.name}"


def _unreadable_link(path: Path) -> str | None:
    """Why a symbolic link cannot be followed (a loop, a missing target), or None."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if path.is_symlink():
            return "broken symbolic link (its target does not exist)"
    return None


def _scan(roots: Sequence[Path]) -> tuple[list[tuple[Path, Path]], list[dict[str, str]]]:
    """(file, root) pairs in a stable order, and the paths that could not be read at all."""
    files: list[tuple[Path, Path]] = []
    problems: list[dict[str, str]] = []
    for root in roots:
        if reason := _unreadable_link(root):
            problems.append({"path": str(root), "reason": reason})
        elif not root.exists():
            problems.append({"path": str(root), "reason": "no such file or directory"})
        elif root.is_file():
            files.append((root, root.parent))
        else:
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                if any(part.startswith((".", "_")) for part in rel.parts):
                    continue
                if reason := _unreadable_link(path):
                    problems.append({"path": str(path), "reason": reason})
                elif path.is_file():
                    files.append((path, root))
    return files, problems


def ingest(
    settings: Settings,
    embedder: Embedder,
    paths: Sequence[Path] | None = None,
    rebuild: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> IngestReport:
    from assistant.settings import apply_kinds

    apply_kinds(settings)
    try:
        settings.index_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(settings.index_dir / ".ingest.lock"))
        try:
            lock.acquire(timeout=settings.ingest_wait_s)
        except Timeout as exc:
            raise IngestBusy(
                f"another ingest is running on {settings.index_dir} (lock {lock.lock_file}); "
                "wait for it to finish, or set ASSISTANT_INGEST_WAIT_S to wait"
            ) from exc
        try:
            return _ingest_locked(settings, embedder, paths, rebuild, progress, log or (lambda _m: None))
        finally:
            lock.release()
    except UserError:
        raise
    except Exception as exc:  # a full disk, a read-only data dir: one line, not a traceback
        problem = storage_error(exc, settings.index_dir, local_chroma=not settings.chroma_url)
        if problem is None:
            raise
        raise problem from exc


def remove_old_indexes(settings: Settings) -> None:
    """Remove the indexes a rebuild replaced once no one reads them; nothing while an ingest runs
    (it does this itself when it ends)."""
    if not generations.stale(settings):
        return
    lock = FileLock(str(settings.index_dir / ".ingest.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return
    try:
        _remove_stale(settings)
    finally:
        lock.release()


def _remove_stale(settings: Settings) -> None:
    """Remove what a rebuild replaced, or left when it was killed, unless a reader holds it."""
    for generation in generations.stale(settings):
        with generations.exclusive(generation) as unused:
            if unused:
                if settings.chroma_url:
                    store = VectorStore(settings, generation)
                    store.drop()
                    store.close()
                generation.remove_files()


def _ingest_locked(
    settings: Settings,
    embedder: Embedder,
    paths: Sequence[Path] | None,
    rebuild: bool,
    progress: bool | None,
    log: Callable[[str], None],
) -> IngestReport:
    """An incremental ingest writes into the index in use, one document per commit; a rebuild
    writes a new index beside it and switches to it when it is complete."""
    started = time.perf_counter()
    _remove_stale(settings)
    if not rebuild:
        report = _ingest_into(generations.current(settings), settings, embedder, paths, progress, log)
    else:
        previous = _generation_number(settings)
        generation = generations.create(settings)
        try:
            report = _ingest_into(generation, settings, embedder, paths, progress, log, previous)
            generations.switch(settings, generation)
        except BaseException:
            generation.remove_files()
            raise
        _remove_stale(settings)
    report.seconds = time.perf_counter() - started
    return report


def _generation_number(settings: Settings) -> int:
    """The commit count of the index in use, so that a rebuild's count goes on rising from it."""
    try:
        path = generations.current(settings).db_path
        if not path.exists():
            return 0
        db = ChunkDB(path)
    except StoreError:
        return 0  # a damaged index: the rebuild replaces it
    try:
        return db.generation()
    finally:
        db.close()


def _ingest_into(
    generation: generations.Generation,
    settings: Settings,
    embedder: Embedder,
    paths: Sequence[Path] | None,
    progress: bool | None,
    log: Callable[[str], None],
    continue_from: int | None = None,
) -> IngestReport:
    report = IngestReport()
    db = ChunkDB(generation.db_path)
    try:
        store = VectorStore(settings, generation)
    except BaseException:
        db.close()
        raise
    try:
        if continue_from is not None:
            db.continue_from(continue_from)
        # Reconcile what a killed ingest, or a damaged table, left behind: vectors the chunk table
        # does not list are deleted, and documents listed without chunks, or whose chunks miss
        # vectors or unit vectors (an index from before they existed), are embedded again.
        committed = db.chunk_ids()
        stored = store.ids()
        if stored - committed:
            store.delete(stored - committed)
        incomplete = db.documents_without_chunks() | db.doc_of_chunks(committed - (stored & db.unit_vector_ids()))
        for doc_id in incomplete:
            db.forget_signature(doc_id)

        roots = [Path(p) for p in (paths or [settings.corpus_dir])]
        files, problems = _scan(roots)
        report.skipped.extend(problems)
        known = db.documents()
        loaded: list[tuple[Document, str]] = []
        seen_ids: dict[str, str] = {}
        for path, root in files:
            shown = str(path)
            try:
                doc = load_document(path, root, settings.max_file_mb)
            except LoadError as exc:
                report.skipped.append({"path": shown, "reason": str(exc)})
                continue
            abs_path = str(path.resolve())
            if doc.id in seen_ids:
                report.skipped.append(
                    {"path": shown, "reason": f"duplicate id {doc.id!r} (also in {seen_ids[doc.id]})"}
                )
                continue
            other = known.get(doc.id)
            if (
                other
                and other["abs_path"] != abs_path
                and Path(other["abs_path"]).exists()
                and not _under(Path(other["abs_path"]), roots)
            ):
                report.skipped.append(
                    {"path": shown, "reason": f"duplicate id {doc.id!r} (already indexed from {other['abs_path']})"}
                )
                continue
            seen_ids[doc.id] = shown
            loaded.append((doc, abs_path))

        skipped_abs = {os.path.realpath(s["path"]) for s in report.skipped}
        for doc_id, info in known.items():
            if doc_id in seen_ids or info["abs_path"] in skipped_abs:
                continue
            if _under(Path(info["abs_path"]), roots):
                old = db.chunk_ids(doc_id)
                db.delete_document(doc_id)
                store.delete(old)
                report.removed += 1
                log(f"removed {info['path']}")

        todo: list[tuple[Document, str, str, bool]] = []
        for doc, abs_path in loaded:
            signature = _signature(doc, settings, embedder)
            previous = known.get(doc.id)
            if previous is not None and previous["signature"] == signature and previous["abs_path"] == abs_path:
                report.unchanged += 1
            else:
                todo.append((doc, abs_path, signature, previous is None))

        present = store.ids() & db.unit_vector_ids()
        max_tokens = min(settings.chunk_size, embedder.max_tokens)
        bar = _progress(len(todo), progress)
        # Chunking (sentence splitting, token counting) runs in a worker thread ahead of the
        # embedding, so it overlaps the model's work instead of adding to it.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunker")
        futures = [
            pool.submit(chunk_document, doc, embedder.count_tokens, max_tokens, settings.chunk_overlap)
            for doc, _abs_path, _signature, _is_new in todo
        ]

        def plans() -> Iterator[tuple[Document, str, str, bool, list[Chunk]]]:
            for (doc, abs_path, signature, is_new), future in zip(todo, futures, strict=True):
                chunks = future.result()
                if chunks:
                    yield doc, abs_path, signature, is_new, chunks
                else:
                    report.skipped.append({"path": abs_path, "reason": "no text to index"})
                    if bar is not None:
                        bar.update(1)

        # Embed several documents' chunks in one call (the model is faster on full batches),
        # then write each document in the crash-safe order described above.
        try:
            for batch in _batches(plans(), present, EMBED_BATCH):
                fresh_chunks = [c for _plan, fresh in batch for c in fresh]
                vectors, units = _embed(embedder, fresh_chunks)
                offset = 0
                for (doc, abs_path, signature, is_new, chunks), fresh in batch:
                    if fresh:
                        store.upsert(fresh, vectors[offset : offset + len(fresh)], doc.kind, doc.audience)
                        offset += len(fresh)
                        report.embedded_chunks += len(fresh)
                    old = db.chunk_ids(doc.id)
                    db.replace_document(doc, abs_path, signature, chunks, {c.id: units[c.id] for c in fresh})
                    stale = old - {c.id for c in chunks}
                    if stale:
                        store.delete(stale)
                    present.update(c.id for c in fresh)
                    if is_new:
                        report.added += 1
                    else:
                        report.updated += 1
                    log(f"{'added' if is_new else 'updated'} {doc.path}: {len(chunks)} chunks, {len(fresh)} embedded")
                    if bar is not None:
                        bar.update(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()

        stored_chunks = db.chunks()
        _add_word_vectors(db, embedder, stored_chunks)
        LexicalIndex.build(stored_chunks).save(generation.lexical_path)
        report.documents = len(db.documents())
        report.chunks = len(stored_chunks)
    finally:
        db.close()
        store.close()
    return report


def _embed(embedder: Embedder, chunks: Sequence[Chunk]) -> tuple[np.ndarray, dict[str, tuple[list[tuple[int, int]], np.ndarray]]]:
    """embed_units over EMBED_BATCH chunks at a time: the model's token vectors for a batch are
    large, and one long document would otherwise hold them for all its chunks at once."""
    vectors: list[np.ndarray] = []
    units: dict[str, tuple[list[tuple[int, int]], np.ndarray]] = {}
    for i in range(0, len(chunks), EMBED_BATCH):
        part_vectors, part_units = embed_units(embedder, chunks[i : i + EMBED_BATCH])
        vectors.append(part_vectors)
        units.update(part_units)
    return (np.vstack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)), units


def _add_word_vectors(db: ChunkDB, embedder: Embedder, chunks: Sequence[Chunk]) -> None:
    """A vector per word the material uses, so that a question's word can be matched to a word of
    a sentence by meaning ("females" to "women"); only words not stored yet are embedded."""
    known = set(db.word_vectors())
    missing = sorted({w for c in chunks for w in surface_words(c.text)} - known)
    for i in range(0, len(missing), 512):
        batch = missing[i : i + 512]
        db.add_word_vectors(batch, embedder.embed(batch))


def _batches(plans: Iterable, present: set[str], full_size: int):
    """Group plans so that each group has about ``full_size`` chunks to embed (a document is never
    split); the first group is small so the model starts while later documents are chunked."""
    size = 32
    batch: list = []
    count = 0
    for plan in plans:
        fresh = [c for c in plan[4] if c.id not in present]
        batch.append((plan, fresh))
        count += len(fresh)
        if count >= size:
            yield batch
            batch, count = [], 0
            size = full_size
    if batch:
        yield batch


def _under(path: Path, roots: Sequence[Path]) -> bool:
    for root in roots:
        root = Path(os.path.realpath(root))  # as resolve(), without failing on a symbolic link loop
        if path == root or root in path.parents:
            return True
    return False


def _progress(total: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty() and not os.environ.get("CI")
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="doc", desc="indexing", file=sys.stderr)

"""Where chunks live: a SQLite chunk table (the record of what is committed), Chroma, and BM25."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import httpx
import numpy as np

from assistant.chunking import Chunk
from assistant.documents import MB, Document
from assistant.errors import UserError
from assistant.settings import Settings
from assistant.text import terms

log = logging.getLogger("assistant.store")
T = TypeVar("T")

if TYPE_CHECKING:
    from assistant.generations import Generation


class StoreError(UserError):
    """The index cannot be opened or reached."""


class StoreUnavailable(StoreError):
    """The Chroma server does not answer (stopped, frozen, unreachable); it may come back."""


class IndexDamaged(StoreError):
    """A file of the index is not what it should be (truncated, overwritten)."""


REBUILD_HINT = "run `assistant ingest --rebuild` to build the index again from the documents"


def storage_error(exc: BaseException, where: Path, local_chroma: bool = False) -> StoreError | None:
    """The failure to read or write the index at ``where`` as one line a user can act on (a damaged
    file, a full disk, a read-only data dir, a failed write), or None when it is not one of those.
    ``local_chroma``: count an error from embedded Chroma as a failed write (it names no cause:
    a full disk shows as "Error in compaction")."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    problem = _storage_problem(exc, local_chroma)
    if problem == "damaged":
        return IndexDamaged(f"index file {where} is damaged ({detail}); {REBUILD_HINT}")
    if problem == "full":
        reason, fix = "the disk is full", "Free some space and run `assistant ingest` again"
    elif problem == "read-only":
        reason, fix = detail, "Ingest needs a writable data dir (ASSISTANT_DATA_DIR)"
    elif problem == "failed":
        free = shutil.disk_usage(_existing(where)).free / MB
        reason = f"{detail} ({free:.1f} MB free on its disk)"
        fix = "If the disk is full, free some space; then run `assistant ingest` again"
    else:
        return None
    return StoreError(
        f"cannot write to the index at {where}: {reason}. {fix}; the index in use keeps what was committed before"
    )


def _storage_problem(exc: BaseException, local_chroma: bool) -> str | None:
    if isinstance(exc, sqlite3.DatabaseError):
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_NOTADB" or name.startswith("SQLITE_CORRUPT"):
            return "damaged"
        if name == "SQLITE_FULL":
            return "full"
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
            return "read-only"
        if name.startswith("SQLITE_IOERR"):
            return "failed"
        return None
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "full"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return "read-only"
        return None
    if local_chroma and type(exc).__module__.startswith("chromadb"):
        return "failed"
    return None


def _existing(path: Path) -> Path:
    """``path``, or the nearest folder above it that exists (to ask how much space is free)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# What the chunk table returns is the chunk the chunker made.
StoredChunk = Chunk


_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    abs_path TEXT NOT NULL,
    signature TEXT NOT NULL,
    meta TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end_ INTEGER NOT NULL,
    headings TEXT NOT NULL,
    page INTEGER,
    embed_text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS word_vectors (word TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS unit_vectors (
    chunk_id TEXT PRIMARY KEY,
    spans TEXT NOT NULL,
    vectors BLOB NOT NULL
);
"""


class ChunkDB:
    """The committed state: a document and its chunks change together in one transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
            # Reads every page, so a truncated file is found here rather than by a question.
            problems = [row[0] for row in self._conn.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise storage_error(exc, path) or exc from exc
        if problems != ["ok"]:
            self._conn.close()
            raise IndexDamaged(f"index file {path} is damaged ({problems[0]}); {REBUILD_HINT}")

    def close(self) -> None:
        self._conn.close()

    def generation(self) -> int:
        row = self._conn.execute("SELECT value FROM state WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def continue_from(self, generation: int) -> None:
        """Count on from another index's generation (a rebuild's), so the number keeps rising."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO state(key, value) VALUES('generation', ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                (str(generation), str(generation)),
            )

    def documents(self) -> dict[str, dict[str, Any]]:
        rows = self._conn.execute("SELECT id, path, abs_path, signature, meta FROM documents")
        return {r[0]: {"path": r[1], "abs_path": r[2], "signature": r[3], "meta": json.loads(r[4])} for r in rows}

    def chunk_ids(self, doc_id: str | None = None) -> set[str]:
        if doc_id is None:
            return {r[0] for r in self._conn.execute("SELECT id FROM chunks")}
        return {r[0] for r in self._conn.execute("SELECT id FROM chunks WHERE doc_id=?", (doc_id,))}

    def documents_without_chunks(self) -> set[str]:
        """Documents the table lists with no chunk (a document is committed with at least one)."""
        rows = self._conn.execute("SELECT id FROM documents WHERE id NOT IN (SELECT doc_id FROM chunks)")
        return {r[0] for r in rows}

    def doc_of_chunks(self, ids: Iterable[str]) -> set[str]:
        wanted = set(ids)
        return {r[1] for r in self._conn.execute("SELECT id, doc_id FROM chunks") if r[0] in wanted}

    def unit_vector_ids(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT chunk_id FROM unit_vectors")}

    def unit_vectors(self) -> dict[str, tuple[list[tuple[int, int]], np.ndarray]]:
        """Per committed chunk: its unit spans and one vector per unit (rows of float32)."""
        out: dict[str, tuple[list[tuple[int, int]], np.ndarray]] = {}
        rows = self._conn.execute(
            "SELECT u.chunk_id, u.spans, u.vectors FROM unit_vectors u JOIN chunks c ON c.id = u.chunk_id"
        )
        for chunk_id, spans, blob in rows:
            pairs = [(int(a), int(b)) for a, b in json.loads(spans)]
            vectors = np.frombuffer(blob, dtype=np.float32)
            # Two rows per unit (see units.embed_units): in context, then alone.
            out[chunk_id] = (pairs, vectors.reshape(2 * len(pairs), -1) if pairs else vectors.reshape(0, 0))
        return out

    def word_vectors(self) -> dict[str, np.ndarray]:
        return {
            w: np.frombuffer(v, dtype=np.float32)
            for w, v in self._conn.execute("SELECT word, vector FROM word_vectors")
        }

    def add_word_vectors(self, words: Sequence[str], vectors: np.ndarray) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO word_vectors(word, vector) VALUES (?,?)",
                [(w, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for w, v in zip(words, vectors, strict=True)],
            )

    def chunks(self) -> list[StoredChunk]:
        rows = self._conn.execute(
            "SELECT id, doc_id, ordinal, text, start, end_, headings, page, embed_text FROM chunks"
            " ORDER BY doc_id, ordinal"
        )
        return [StoredChunk(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7], r[8]) for r in rows]

    def replace_document(
        self,
        doc: Document,
        abs_path: str,
        signature: str,
        chunks: Sequence[Chunk],
        unit_vectors: dict[str, tuple[list[tuple[int, int]], np.ndarray]] | None = None,
    ) -> None:
        """Commit one document: its row, its chunks and the unit vectors of its new chunks, together."""
        with self._conn:
            for chunk_id, (spans, vectors) in (unit_vectors or {}).items():
                self._conn.execute(
                    "INSERT OR REPLACE INTO unit_vectors(chunk_id, spans, vectors) VALUES (?,?,?)",
                    (chunk_id, json.dumps(spans), np.ascontiguousarray(vectors, dtype=np.float32).tobytes()),
                )
            self._conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc.id,))
            self._conn.execute(
                "INSERT OR REPLACE INTO documents(id, path, abs_path, signature, meta) VALUES (?,?,?,?,?)",
                (doc.id, doc.path, abs_path, signature, json.dumps(doc.metadata())),
            )
            self._conn.executemany(
                "INSERT INTO chunks(id, doc_id, ordinal, text, start, end_, headings, page, embed_text)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (c.id, c.doc_id, c.ordinal, c.text, c.start, c.end, json.dumps(c.headings), c.page, c.embed_text)
                    for c in chunks
                ],
            )
            self._drop_orphan_vectors()
            self._bump()

    def _drop_orphan_vectors(self) -> None:
        self._conn.execute("DELETE FROM unit_vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)")

    def delete_document(self, doc_id: str) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
            self._conn.execute("DELETE FROM documents WHERE id=?", (doc_id,))
            self._drop_orphan_vectors()
            self._bump()

    def forget_signature(self, doc_id: str) -> None:
        with self._conn:
            self._conn.execute("UPDATE documents SET signature='' WHERE id=?", (doc_id,))

    def _bump(self) -> None:
        self._conn.execute(
            "INSERT INTO state(key, value) VALUES('generation', '1') ON CONFLICT(key)"
            " DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )


def _unreachable(exc: BaseException) -> bool:
    """Whether a failure means the server was not reached or did not answer in time (chromadb
    sometimes wraps httpx's error in a ValueError of its own)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.TransportError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Availability:
    """Whether the vector store answers, judged by the calls made to it.

    Once a call fails to reach it, calls fail at once, except one try at a time, `retry_s` after
    the last failure (the wait doubling up to `retry_max_s`), that finds out whether it is back:
    a dead or frozen server costs one timeout per try, not one per question. One log line when
    the store goes, one when it is back.
    """

    def __init__(
        self, where: str, retry_s: float, retry_max_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.where = where
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self._clock = clock
        self.problem: str | None = None  # why the last call failed, while the store is down
        self._down_since = 0.0
        self._wait = retry_s
        self._next_try = 0.0
        self._trying = False
        self._lock = threading.Lock()

    @property
    def up(self) -> bool:
        return self.problem is None

    def admit(self) -> None:
        """Let a call go ahead, or raise StoreUnavailable while the store is down and no try is due."""
        with self._lock:
            if self.problem is None:
                return
            if self._trying or self._clock() < self._next_try:
                raise StoreUnavailable(f"the vector store at {self.where} is down: {self.problem}")
            self._trying = True

    def failed(self, exc: BaseException) -> StoreUnavailable:
        """A call did not reach the store; the error to raise."""
        problem = f"{type(exc).__name__}: {exc}"[:200]
        self.down(problem)
        return StoreUnavailable(f"the vector store at {self.where} is down: {problem}")

    def down(self, problem: str) -> None:
        """The store did not answer a call (made here, or by a worker process: assistant.workers)."""
        with self._lock:
            now = self._clock()
            if self.problem is None:
                log.warning("vector store at %s is down (%s); questions get 503 until it is back", self.where, problem)
                self._down_since = now
                self._wait = self.retry_s
            self.problem = problem
            self._trying = False
            self._next_try = now + self._wait
            self._wait = min(self.retry_max_s, self._wait * 2)

    def answered(self) -> None:
        """A call reached the store (an answer, or an error the server sent)."""
        with self._lock:
            if self.problem is not None:
                log.info("vector store at %s is back after %.0f s", self.where, self._clock() - self._down_since)
            self.problem = None
            self._trying = False


def _bound_http_calls(client: Any, timeout_s: float) -> None:
    """chromadb's HTTP client waits for ever (its httpx session has timeout=None) and has no
    setting for it, so its session gets ours."""
    session = getattr(getattr(client, "_server", None), "_session", None)
    if not isinstance(session, httpx.Client):
        raise StoreError("this chromadb version keeps its HTTP session elsewhere; Chroma calls cannot be bounded")
    session.timeout = httpx.Timeout(timeout_s)


class VectorStore:
    """One Chroma collection, embedded or on a server; embeddings are always ours.

    Every call to a server is bounded by `chroma_timeout_s`; one that does not reach it raises
    StoreUnavailable, and `availability` says whether the store answers."""

    def __init__(self, settings: Settings, generation: Generation | None = None) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        from assistant.generations import current

        generation = generation or current(settings)

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        self.where = settings.chroma_url or str(generation.dir / "chroma")
        self.availability = Availability(self.where, settings.chroma_retry_s, settings.chroma_retry_max_s)
        self._name = generation.collection(settings.collection)
        try:
            if settings.chroma_url:
                url = urlparse(settings.chroma_url)
                if url.scheme not in ("http", "https") or not url.hostname:
                    raise StoreError(f"ASSISTANT_CHROMA_URL {settings.chroma_url!r} is not an http(s) URL")
                port = url.port or (443 if url.scheme == "https" else 80)
                # Creating the client makes calls we cannot bound; a heartbeat first finds a server
                # that is down or frozen within the timeout.
                httpx.get(f"{url.scheme}://{url.hostname}:{port}/api/v2/heartbeat", timeout=settings.chroma_timeout_s)
                self._client = chromadb.HttpClient(
                    host=url.hostname, port=port, ssl=url.scheme == "https", settings=chroma_settings
                )
                _bound_http_calls(self._client, settings.chroma_timeout_s)
            else:
                path = generation.dir / "chroma"
                path.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            self._collection = self._open()
        except StoreError:
            raise
        except Exception as exc:  # chromadb raises many kinds when a server is unreachable
            if _unreachable(exc):
                raise StoreUnavailable(f"cannot reach Chroma at {self.where}: {type(exc).__name__}: {exc}") from None
            problem = storage_error(exc, generation.dir, local_chroma=not settings.chroma_url)
            raise problem or StoreError(f"cannot open Chroma at {self.where}: {exc}") from exc

    def _call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.availability.admit()
        reached = True
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            reached = not _unreachable(exc)
            if not reached:
                raise self.availability.failed(exc) from None
            raise
        finally:
            if reached:
                self.availability.answered()

    def _open(self):
        return self._client.get_or_create_collection(
            self._name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )

    def check(self) -> None:
        """One cheap call, so `availability` follows the server while nobody asks anything."""
        self._call(self._collection.count)

    def drop(self) -> None:
        """Delete the collection (a replaced index's, on a Chroma server)."""
        try:
            self._call(self._client.delete_collection, self._name)
        except StoreUnavailable:
            raise
        except Exception:  # no such collection
            pass

    def close(self) -> None:
        """Let Chroma close its files (embedded) once no other client in this process uses them."""
        close = getattr(self._client, "close", None)  # on chromadb's Client, not in its ClientAPI type
        with contextlib.suppress(Exception):
            if close is not None:
                close()

    def ids(self) -> set[str]:
        out: set[str] = set()
        offset, page = 0, 5000
        while True:
            got = self._call(self._collection.get, include=[], limit=page, offset=offset)
            out.update(got["ids"])
            if len(got["ids"]) < page:
                return out
            offset += page

    def count(self) -> int:
        return int(self._call(self._collection.count))

    def upsert(self, chunks: Sequence[Chunk], embeddings: np.ndarray, kind: str, audience: str) -> None:
        batch = max(1, min(1000, self._call(self._client.get_max_batch_size)))
        for i in range(0, len(chunks), batch):
            part = chunks[i : i + batch]
            self._call(
                self._collection.upsert,
                ids=[c.id for c in part],
                embeddings=embeddings[i : i + batch],
                documents=[c.text for c in part],
                metadatas=[{"doc_id": c.doc_id, "kind": kind, "audience": audience} for c in part],
            )

    def delete(self, ids: Iterable[str]) -> None:
        id_list = sorted(ids)
        for i in range(0, len(id_list), 1000):
            self._call(self._collection.delete, ids=id_list[i : i + 1000])

    def query(self, embedding: np.ndarray, n: int, where: dict[str, Any] | None) -> list[tuple[str, float]]:
        total = self.count()
        if total == 0:
            return []
        result = self._call(
            self._collection.query,
            query_embeddings=[embedding],
            n_results=min(n, total),
            where=where or None,
            include=["distances"],
        )
        ids = result["ids"][0]
        distances = (result.get("distances") or [[1.0] * len(ids)])[0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]


# Bump when the way text becomes terms changes, so saved BM25 indexes are rebuilt.
LEXICAL_VERSION = "3"


def fingerprint(ids: Sequence[str]) -> str:
    return hashlib.sha256((LEXICAL_VERSION + "\n" + "\n".join(ids)).encode()).hexdigest()


class LexicalIndex:
    """BM25 (bm25s) over stemmed chunk text, saved beside the chunk table with a fingerprint."""

    def __init__(self, ids: list[str], retriever: Any) -> None:
        self.ids = ids
        self._retriever = retriever

    @classmethod
    def build(cls, chunks: Sequence[StoredChunk]) -> LexicalIndex:
        import bm25s

        ids = [c.id for c in chunks]
        retriever = bm25s.BM25()
        if chunks:
            retriever.index([terms(c.embed_text) or ["\x00"] for c in chunks], show_progress=False)
        return cls(ids, retriever)

    def save(self, directory: Path) -> None:
        parent = directory.parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".lexical-", dir=parent))
        try:
            if self.ids:
                self._retriever.save(str(staging), show_progress=False)
            (staging / "ids.json").write_text(json.dumps({"fingerprint": fingerprint(self.ids), "ids": self.ids}))
        except BaseException:  # a full disk: the saved index stays as it was, with no half-written copy
            shutil.rmtree(staging, ignore_errors=True)
            raise
        old = parent / f".lexical-old-{os.getpid()}"
        if directory.exists():
            directory.rename(old)
        staging.rename(directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load_or_build(cls, directory: Path, chunks: Sequence[StoredChunk]) -> LexicalIndex:
        """The saved index when it matches the committed chunks, else a fresh one."""
        import bm25s

        ids = [c.id for c in chunks]
        try:
            saved = json.loads((directory / "ids.json").read_text())
            if saved["fingerprint"] == fingerprint(ids) and saved["ids"] == ids:
                if not ids:
                    return cls([], None)
                return cls(ids, bm25s.BM25.load(str(directory), show_progress=False, verbosity=0))
        except (OSError, ValueError, KeyError):
            pass
        return cls.build(chunks)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        if not self.ids or not query_terms:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(query_terms), dtype=np.float32)

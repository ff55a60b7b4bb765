"""Hybrid retrieval: dense (Chroma) and lexical (BM25) fused by reciprocal rank fusion."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from assistant.chunking import Sentence, split_sentences
from assistant.embeddings import Embedder
from assistant.store import ChunkDB, LexicalIndex, StoredChunk, VectorStore
from assistant.text import terms, words
from assistant.vocabulary import Query, Vocabulary

RRF_K = 60
Mode = Literal["hybrid", "dense", "lexical"]


@dataclass(frozen=True)
class DocInfo:
    id: str
    title: str
    kind: str
    audience: str
    date: str
    source: str
    url: str | None
    path: str
    fields: dict[str, str]
    note: str | None


@dataclass
class Evidence:
    chunk: StoredChunk
    doc: DocInfo
    score: float  # fused RRF score
    dense: float | None  # cosine similarity, when dense retrieval saw it
    lexical: float  # BM25 score


class Corpus:
    """The committed chunks and documents, held in memory for scoring and quoting."""

    def __init__(self, db: ChunkDB) -> None:
        self.generation = db.generation()
        self.chunks = db.chunks()
        self.by_id = {c.id: c for c in self.chunks}
        self.docs = {
            doc_id: DocInfo(
                id=doc_id,
                title=info["meta"]["title"],
                kind=info["meta"]["kind"],
                audience=info["meta"]["audience"],
                date=info["meta"]["date"],
                source=info["meta"]["source"],
                url=info["meta"].get("url"),
                path=info["path"],
                fields=info["meta"].get("fields") or {},
                note=info["meta"].get("note"),
            )
            for doc_id, info in db.documents().items()
        }
        self._sentences: dict[str, list[Sentence]] = {}
        # Each chunk's terms in order, computed once: document frequencies and checks over the
        # whole material (the number rule) both use them.
        self.term_sequences = [terms(c.embed_text) for c in self.chunks]
        df: dict[str, int] = {}
        for sequence in self.term_sequences:
            for term in set(sequence):
                df[term] = df.get(term, 0) + 1
        n = max(1, len(self.chunks))
        self._idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        # A word the corpus never uses weighs a little more than its rarest word: the material
        # not using it at all is evidence that it does not cover what the word asks about.
        self._idf_unseen = max(self._idf.values(), default=1.0) + 1.0
        self.words = {w for c in self.chunks for w in words(c.embed_text)}

    def seen(self, term: str) -> bool:
        return term in self._idf

    def idf(self, term: str) -> float:
        return self._idf.get(term, self._idf_unseen)

    def sentences(self, chunk: StoredChunk) -> list[Sentence]:
        """Sentences of a chunk, offsets relative to the chunk text (cached)."""
        cached = self._sentences.get(chunk.id)
        if cached is None:
            cached = split_sentences(chunk.text)
            self._sentences[chunk.id] = cached
        return cached


class Retriever:
    def __init__(self, corpus: Corpus, lexical: LexicalIndex, store: VectorStore, embedder: Embedder) -> None:
        self.corpus = corpus
        self.lexical = lexical
        self.store = store
        self.embedder = embedder
        self.vocabulary = Vocabulary(corpus.words, getattr(embedder, "english_words", frozenset()))
        self._row = {chunk_id: i for i, chunk_id in enumerate(lexical.ids)}
        self._all_ids = {c.id for c in corpus.chunks}

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed([text])[0]

    def retrieve(
        self,
        query: Query,
        k: int,
        kinds: Sequence[str] | None = None,
        audiences: Sequence[str] | None = None,
        mode: Mode = "hybrid",
        query_vector: np.ndarray | None = None,
    ) -> list[Evidence]:
        allowed = self._allowed(kinds, audiences)
        pool = max(k * 4, 20)
        lexical_scores = self._lexical_scores(query)
        dense_hits: list[tuple[str, float]] = []
        if mode != "lexical":
            vector = query_vector if query_vector is not None else self.embed_query(query.text)
            where = self._where(kinds, audiences)
            dense_hits = [(i, s) for i, s in self.store.query(vector, pool, where) if i in allowed]
        lexical_hits: list[tuple[str, float]] = []
        if mode != "dense":
            order = np.argsort(-lexical_scores)
            for row in order[: pool * 2]:
                chunk_id = self.lexical.ids[row]
                if lexical_scores[row] <= 0:
                    break
                if chunk_id in allowed:
                    lexical_hits.append((chunk_id, float(lexical_scores[row])))
                if len(lexical_hits) >= pool:
                    break
        fused: dict[str, float] = {}
        for hits in (dense_hits, lexical_hits):
            for rank, (chunk_id, _score) in enumerate(hits):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        dense_of = dict(dense_hits)
        ranked = sorted(fused, key=lambda cid: -fused[cid])[:k]
        out = []
        for chunk_id in ranked:
            chunk = self.corpus.by_id.get(chunk_id)
            if chunk is None:  # in Chroma but not committed: a killed ingest left it
                continue
            row = self._row.get(chunk_id)
            out.append(
                Evidence(
                    chunk=chunk,
                    doc=self.corpus.docs[chunk.doc_id],
                    score=fused[chunk_id],
                    dense=dense_of.get(chunk_id),
                    lexical=float(lexical_scores[row]) if row is not None else 0.0,
                )
            )
        return out

    def _lexical_scores(self, query: Query) -> np.ndarray:
        asked = [t for t in query.weights if t in query.asked]
        scores = self.lexical.scores(asked)
        expansions = query.expansion_terms()
        if expansions:
            scores = scores + 0.5 * self.lexical.scores(expansions)
        return scores

    def _allowed(self, kinds: Sequence[str] | None, audiences: Sequence[str] | None) -> set[str]:
        if not kinds and not audiences:
            return self._all_ids  # the usual case: no filter, no pass over every chunk per query
        return {
            c.id
            for c in self.corpus.chunks
            if (not kinds or self.corpus.docs[c.doc_id].kind in kinds)
            and (not audiences or self.corpus.docs[c.doc_id].audience in audiences)
        }

    @staticmethod
    def _where(kinds: Sequence[str] | None, audiences: Sequence[str] | None) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if kinds:
            clauses.append({"kind": {"$in": list(kinds)}})
        if audiences:
            clauses.append({"audience": {"$in": list(audiences)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

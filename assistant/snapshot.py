"""The loaded index as one immutable snapshot: chunks, documents, units with their vectors,
word vectors, the lexical index and the retriever. A question uses one snapshot from start to
end; a newer index is loaded beside it and swapped in with one assignment."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from assistant.embeddings import Embedder
from assistant.kinds import kind_info
from assistant.retrieval import Corpus, DocInfo, Retriever
from assistant.store import ChunkDB, LexicalIndex, StoredChunk, VectorStore
from assistant.text import stem, surface_words, terms
from assistant.units import embed_units, unit_spans
from assistant.vocabulary import Vocabulary

log = logging.getLogger("assistant.snapshot")


@dataclass(frozen=True)
class Unit:
    """A quotable span of a chunk (a sentence, a field line, a list item) and what scoring needs."""

    row: int  # its row in ``Snapshot.unit_matrix`` (the quote alone) and ``context_matrix`` (in its chunk)
    chunk: StoredChunk
    doc: DocInfo
    start: int  # offsets in chunk.text
    end: int
    quote_start: int  # where the quote starts: the span before too when this one leans on it
    field: bool
    terms: frozenset[str]
    sequence: tuple[str, ...]
    words: tuple[int, ...]  # rows of its words in ``Snapshot.word_matrix``
    head_terms: frozenset[str]  # the document title's and the section headings' terms
    asks: bool  # a question ("Do I need to charge it?", an FAQ's heading): it states nothing to quote

    @property
    def text(self) -> str:
        return self.chunk.text[self.start : self.end]

    @property
    def quote(self) -> str:
        return self.chunk.text[self.quote_start : self.end]


class Snapshot:
    def __init__(self, db: ChunkDB, store: VectorStore, embedder: Embedder, lexical_dir: Path) -> None:
        self.corpus = Corpus(db)
        self.generation = self.corpus.generation
        self.lexical = LexicalIndex.load_or_build(lexical_dir, self.corpus.chunks)
        self.retriever = Retriever(self.corpus, self.lexical, store, embedder)
        self.vocabulary: Vocabulary = self.retriever.vocabulary
        stored_words = db.word_vectors()
        self.word_index: dict[str, int] = {w: i for i, w in enumerate(stored_words)}
        self.word_matrix = (
            np.vstack(list(stored_words.values())).astype(np.float32)
            if stored_words
            else np.zeros((0, 384), dtype=np.float32)
        )
        self.units, self.unit_matrix = self._units(db, embedder)
        self.units_of_chunk: dict[str, list[Unit]] = {}
        for unit in self.units:
            self.units_of_chunk.setdefault(unit.chunk.id, []).append(unit)

    def _units(self, db: ChunkDB, embedder: Embedder) -> tuple[list[Unit], np.ndarray]:
        stored = db.unit_vectors()
        dim = int(embedder.embed(["dimension"]).shape[1])
        spans_of: dict[str, list] = {}
        vectors_of: dict[str, np.ndarray] = {}
        missing: list[StoredChunk] = []
        for chunk in self.corpus.chunks:
            spans = unit_spans(chunk.text)
            saved = stored.get(chunk.id)
            spans_of[chunk.id] = spans
            if (
                saved is not None
                and saved[0] == [(s.start, s.end) for s in spans]
                and saved[1].shape == (2 * len(spans), dim)
            ):
                vectors_of[chunk.id] = saved[1]
            else:
                missing.append(chunk)
        if missing:
            # An index written before unit vectors existed, or by another splitter: embed them now.
            log.warning("embedding the units of %d chunks that have no stored unit vectors", len(missing))
            _whole, fresh = embed_units(embedder, missing)
            for chunk_id, (_spans, vectors) in fresh.items():
                vectors_of[chunk_id] = vectors
        units: list[Unit] = []
        rows: list[np.ndarray] = []
        context_rows: list[np.ndarray] = []
        for chunk in self.corpus.chunks:
            doc = self.corpus.docs[chunk.doc_id]
            head = frozenset(terms(" ".join([doc.title, *chunk.headings])))
            spans = spans_of[chunk.id]
            for i, span in enumerate(spans):
                text = chunk.text[span.start : span.end]
                sequence = tuple(terms(text))
                quote_start = spans[i - 1].start if span.leans and i > 0 else span.start
                units.append(
                    Unit(
                        row=len(units),
                        chunk=chunk,
                        doc=doc,
                        start=span.start,
                        end=span.end,
                        quote_start=quote_start,
                        field=span.field,
                        terms=frozenset(sequence),
                        sequence=sequence,
                        words=tuple(
                            dict.fromkeys(self.word_index[w] for w in surface_words(text) if w in self.word_index)
                        ),
                        head_terms=head,
                        asks=text.rstrip().endswith("?"),
                    )
                )
                context_rows.append(vectors_of[chunk.id][i])
                rows.append(vectors_of[chunk.id][len(spans) + i])
        empty = np.zeros((0, 384), dtype=np.float32)
        self.context_matrix = np.vstack(context_rows).astype(np.float32) if context_rows else empty
        return units, (np.vstack(rows).astype(np.float32) if rows else empty)

    @cached_property
    def word_stems(self) -> list[str]:
        """The stem of each row of ``word_matrix``."""
        stems = [""] * len(self.word_index)
        for word, row in self.word_index.items():
            stems[row] = stem(word)
        return stems

    def trust(self, unit: Unit) -> float:
        return kind_info(unit.doc.kind).trust

    def stats(self) -> dict[str, int]:
        return {"documents": len(self.corpus.docs), "chunks": len(self.corpus.chunks), "units": len(self.units)}

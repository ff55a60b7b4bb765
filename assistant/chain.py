"""The one pipeline the CLI, the HTTP API and the UI all call.

    validate → triage → analyse (parts, answer types; follow-ups) → gather evidence
      → decide (which parts are answered, by which units) → answer (extractive | LLM)
      → verify → present

Each step is a function or class with a name (question.analyse, Pipeline.evidence,
policy.decide, ExtractiveAnswerer.answer, verify.verify, presentation.present); this module
only wires them together. The loaded index is one immutable Snapshot, swapped whole.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from assistant.answer.extractive import ExtractiveAnswerer
from assistant.answer.types import Answer, Draft
from assistant.answer.verify import Verifier
from assistant.decision import DecisionModel, load_model
from assistant.embeddings import Embedder, make_embedder
from assistant.errors import UserError
from assistant.evidence import PartEvidence, WordMatcher, compute_features, key_words
from assistant.ingest import db_path, lexical_path
from assistant.policy import Decision, decide
from assistant.presentation import present, safety_answer
from assistant.question import Analysis, analyse, strip_markup
from assistant.retrieval import Evidence
from assistant.settings import Settings
from assistant.site import load_site
from assistant.snapshot import Snapshot
from assistant.store import ChunkDB, StoredChunk, VectorStore
from assistant.text import clean_input
from assistant.triage import SafetyNeighbours, strip_instructions, triage

log = logging.getLogger("assistant.chain")
Audience = Literal["patient", "clinician"]
MAX_QUESTION_CHARS = 2000
MAX_HISTORY_TURNS = 20
# A follow-up leans on the question before it: it starts with a connective or names something
# only by a pronoun ("and how long did that last?", "what about them?").
DEPENDENT = re.compile(
    r"^\s*(and|but|also|so|then|what about|how about|what if)\b|\b(it|its|that|this|they|them|those|these|he|him|his|she|her|there)\b",
    re.I,
)


class IndexMissing(UserError):
    """There is no index to answer from yet."""


class QuestionError(UserError, ValueError):
    """A question that cannot be asked as given."""


@dataclass
class Turn:
    role: str
    content: str


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: VectorStore,
        llm: Any = None,
        model: DecisionModel | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.llm = llm
        self.model = model or load_model()
        self._lock = threading.Lock()
        self._db = ChunkDB(db_path(settings))
        self.snapshot = self._load()
        self.extractive = ExtractiveAnswerer(self.model)
        self.safety = SafetyNeighbours.for_embedder(embedder)
        self.site = load_site(settings.site_file)

    def _load(self) -> Snapshot:
        snapshot = Snapshot(self._db, self.store, self.embedder, lexical_path(self.settings))
        if not snapshot.corpus.chunks:
            raise IndexMissing(
                f"the index at {self.settings.index_dir} is empty; run `assistant ingest` (or `make run`) first"
            )
        return snapshot

    def refresh(self) -> None:
        """Pick up a newer index written by `assistant ingest` while serving: build a new snapshot
        beside the old one, then swap (questions in flight keep the one they started with)."""
        if self._db.generation() != self.snapshot.generation:
            with self._lock:
                if self._db.generation() != self.snapshot.generation:
                    self.snapshot = self._load()

    # -- facts for the interfaces --------------------------------------------------------
    @property
    def corpus(self) -> Any:
        return self.snapshot.corpus

    def stats(self) -> dict[str, int]:
        """What the loaded index holds: documents, chunks, units and its generation."""
        return {**self.snapshot.stats(), "generation": self.snapshot.generation}

    def chunk(self, chunk_id: str) -> StoredChunk | None:
        return self.snapshot.corpus.by_id.get(chunk_id)

    def trial_fields(self) -> list[tuple[str, dict[str, str]]]:
        """(document title, registry-style fields) for each document that carries them."""
        return [(d.title, d.fields) for d in self.snapshot.corpus.docs.values() if d.fields]

    # -- answering ------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        audience: Audience = "patient",
        history: Sequence[Turn | dict[str, str]] | None = None,
        kinds: Sequence[str] | None = None,
        audiences: Sequence[str] | None = None,
    ) -> Answer:
        answer = None
        for event in self.stream(question, audience, history, kinds, audiences):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(
        self,
        question: str,
        audience: Audience = "patient",
        history: Sequence[Turn | dict[str, str]] | None = None,
        kinds: Sequence[str] | None = None,
        audiences: Sequence[str] | None = None,
    ) -> Iterator[str | Answer]:
        """Text pieces as they are ready (LLM tokens), then the verified Answer last."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        asked = validate(question)
        turns = _turns(history)
        self.refresh()
        snapshot = self.snapshot  # one snapshot for the whole question

        text = strip_markup(asked)
        # The question as asked too: "<90 ... >120" in plain text reads as a tag, and stripping it
        # must not hide an emergency written between the two.
        safety = triage(text, asked)
        if safety is None and self.safety is not None:
            safety = self.safety.classify(text) or safety
        if safety in ("emergency", "crisis"):
            yield safety_answer(asked, audience, safety, timings, started, self.site)
            return

        analysis, context, parts, retrieved = self.prepare(snapshot, text, turns, kinds, audiences, timings)

        t = time.perf_counter()
        decision = decide(self.model, parts, snapshot, audience, personal=safety == "medical_advice")
        draft: Draft
        if not decision.answered:
            draft = Draft(claims=[], refused=True)
        elif self.llm is not None:
            draft = Draft(claims=[])
            for piece in self.llm.stream(analysis.question, retrieved, audience, snapshot.corpus):
                if isinstance(piece, Draft):
                    draft = piece
                else:
                    yield piece
        else:
            draft = self.extractive.answer(decision, snapshot)
        timings["answer"] = _ms(t)

        t = time.perf_counter()
        verifier = Verifier(snapshot, self._matcher(snapshot), llm=self.llm)
        sentences, citations, dropped = verifier.verify(draft)
        answerer = draft.answerer
        if self.llm is not None and decision.answered and (not sentences or len(dropped) > len(sentences)):
            # Too little of the LLM's answer survived verification (or it declined although the
            # evidence covers the question): fall back to extraction.
            draft = self.extractive.answer(decision, snapshot)
            sentences, citations, _ = verifier.verify(draft)
            answerer = "extractive (fallback)"
        timings["verify"] = _ms(t)

        yield present(
            asked=asked,
            audience=audience,
            safety=safety,
            draft=draft,
            decision=decision,
            sentences=sentences,
            citations=citations,
            dropped=dropped,
            answerer=answerer,
            standalone=analysis.question if context is None else f"{analysis.question} ({context})",
            snapshot=snapshot,
            timings=timings,
            started=started,
            site=self.site,
        )

    def prepare(
        self,
        snapshot: Snapshot,
        text: str,
        turns: list[Turn],
        kinds: Sequence[str] | None = None,
        audiences: Sequence[str] | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[Analysis, str | None, list[PartEvidence], list[Evidence]]:
        """Analyse a (triaged) question and gather each part's evidence with its features."""
        timings = {} if timings is None else timings
        t = time.perf_counter()
        analysis = analyse(snapshot.vocabulary.correct_text(strip_instructions(text)))
        context = self._context(analysis, turns)
        if self.llm is not None and context is not None:
            condensed = self.llm.condense(analysis.question, turns)
            if condensed:
                analysis, context = analyse(condensed), None
        timings["analyse"] = _ms(t)
        t = time.perf_counter()
        parts, retrieved = self.evidence(snapshot, analysis, context, kinds, audiences)
        timings["retrieve"] = _ms(t)
        return analysis, context, parts, retrieved

    def evidence(
        self,
        snapshot: Snapshot,
        analysis: Analysis,
        context: str | None,
        kinds: Sequence[str] | None,
        audiences: Sequence[str] | None,
    ) -> tuple[list[PartEvidence], list[Evidence]]:
        """Each part's candidate units with their features, and the retrieved chunks (for an LLM)."""
        params = self.model.parameters
        whole_text = analysis.question if context is None else f"{context} {analysis.question}"
        texts = [whole_text] + [p.text if context is None else f"{context} {p.text}" for p in analysis.parts]
        vectors = self.embedder.embed(texts)
        retriever = snapshot.retriever
        k = self.settings.retrieval_k
        retrieved = retriever.retrieve(
            snapshot.vocabulary.query(whole_text), k, kinds, audiences, query_vector=vectors[0]
        )
        allowed = _allowed_docs(snapshot, kinds, audiences)
        matcher = self._matcher(snapshot)
        context_words = key_words(context) if context else []
        parts: list[PartEvidence] = []
        for part, vector in zip(analysis.parts, vectors[1:], strict=True):
            query = snapshot.vocabulary.query(part.text, context)
            chunks = {e.chunk.id for e in retrieved}
            if len(analysis.parts) > 1:
                for e in retriever.retrieve(query, max(2, k // 2), kinds, audiences, query_vector=vector):
                    chunks.add(e.chunk.id)
                    if all(r.chunk.id != e.chunk.id for r in retrieved):
                        retrieved.append(e)
            rows: set[int] = set()
            for chunk_id in chunks:
                rows.update(u.row for u in snapshot.units_of_chunk.get(chunk_id, []))
            if len(snapshot.unit_matrix):
                similarity = snapshot.unit_matrix @ vector
                for row in np.argsort(-similarity)[: params.dense_candidates]:
                    rows.add(int(row))
            units = [
                snapshot.units[r]
                for r in sorted(rows)
                if snapshot.units[r].doc.id in allowed and not snapshot.units[r].asks
            ]
            evidence = PartEvidence(part.text, part.answer_type, query, vector, units, retrieved_chunks=chunks)
            compute_features(snapshot, matcher, evidence, context_words, params.synonym_credit, params.heading_credit)
            parts.append(evidence)
        return parts, retrieved

    def _matcher(self, snapshot: Snapshot) -> WordMatcher:
        matcher = getattr(snapshot, "_matcher", None)
        if matcher is None:
            matcher = WordMatcher(snapshot, self.embedder)
            snapshot._matcher = matcher  # type: ignore[attr-defined]
        return matcher

    @staticmethod
    def _context(analysis: Analysis, turns: list[Turn]) -> str | None:
        """The earlier question a follow-up leans on, if it leans on one."""
        previous = [t.content for t in turns if t.role == "user"]
        if not previous:
            return None
        question = analysis.question
        # "What was the dose?" names what it asks about and stands alone; "what about them?" and
        # "why?" do not.
        if DEPENDENT.search(question) or not key_words(question):
            return strip_markup(previous[-1])
        return None


def validate(question: str) -> str:
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    if len(question) > MAX_QUESTION_CHARS * 4:
        raise QuestionError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    question = clean_input(question)
    if not question:
        raise QuestionError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    return question


def _allowed_docs(snapshot: Snapshot, kinds: Sequence[str] | None, audiences: Sequence[str] | None) -> set[str]:
    return {
        d.id
        for d in snapshot.corpus.docs.values()
        if (not kinds or d.kind in kinds) and (not audiences or d.audience in audiences)
    }


def _turns(history: Sequence[Turn | dict[str, str]] | None) -> list[Turn]:
    if not history:
        return []
    if len(history) > MAX_HISTORY_TURNS:
        raise QuestionError(f"the history has more than {MAX_HISTORY_TURNS} turns")
    out = []
    for item in history:
        turn = item if isinstance(item, Turn) else Turn(str(item.get("role")), str(item.get("content", "")))
        if turn.role not in ("user", "assistant"):
            raise QuestionError(f"history role must be 'user' or 'assistant', not {turn.role!r}")
        out.append(Turn(turn.role, clean_input(turn.content)[:MAX_QUESTION_CHARS]))
    return out


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def build_pipeline(
    settings: Settings, embedder: Embedder | None = None, model: DecisionModel | None = None
) -> Pipeline:
    from assistant.offline import go_offline

    go_offline()
    from assistant.settings import apply_kinds

    apply_kinds(settings)
    if not db_path(settings).exists():
        raise IndexMissing(f"no index at {settings.index_dir}; run `assistant ingest` (or `make run`) first")
    store = VectorStore(settings)
    llm = None
    if settings.answerer == "llm":
        from assistant.answer.llm import LLMAnswerer

        llm = LLMAnswerer(settings)
    return Pipeline(settings, embedder or make_embedder(settings), store, llm, model)


__all__ = ["Answer", "Decision", "IndexMissing", "Pipeline", "QuestionError", "Turn", "build_pipeline"]

"""The one pipeline the CLI, the HTTP API and the UI all call.

triage → rewrite (follow-ups) → retrieve (hybrid) → answer (extractive | LLM) → verify
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from assistant.answer.extractive import ExtractiveAnswerer, caveats, split_parts
from assistant.answer.types import Answer, Draft
from assistant.answer.verify import verify
from assistant.embeddings import Embedder, make_embedder
from assistant.ingest import db_path, lexical_path
from assistant.retrieval import Corpus, Evidence, Mode, Retriever
from assistant.settings import Settings
from assistant.store import ChunkDB, LexicalIndex, VectorStore
from assistant.text import clean_input, terms, words
from assistant.triage import (
    ADVICE_MESSAGE,
    CRISIS_MESSAGE,
    EMERGENCY_MESSAGE,
    PATIENT_FOOTER,
    strip_instructions,
    triage,
)

Audience = Literal["patient", "clinician"]
MAX_QUESTION_CHARS = 2000
MAX_HISTORY_TURNS = 20
# Below this share of the question's weight covered by the best sentence, the material
# does not answer it (calibrated on tests/questions.yaml with `assistant eval`).
MIN_COVERAGE = 0.45
DEPENDENT = re.compile(
    r"^\s*(and|but|also|so|then|what about|how about|what if)\b|\b(it|its|that|this|they|them|those|these|he|him|his|she|her|there)\b",
    re.I,
)
KIND_TOPICS = {
    "paper-summary": "the CELLTOP Phase 1 trial's design, participants, treatment, side effects and results",
    "registry": "its ClinicalTrials.gov registry entry",
    "case-report": "the first participant's case report",
    "glossary": "terms such as AIS grades and mesenchymal stem cells",
    "faq": "common patient questions",
    "limitations": "what the study does not show",
    "news": "a news article about it",
    "document": "other documents added by your clinic",
}


class IndexMissing(RuntimeError):
    """There is no index to answer from yet."""


class QuestionError(ValueError):
    """A question that cannot be asked as given."""


@dataclass
class Turn:
    role: str
    content: str


class Pipeline:
    def __init__(self, settings: Settings, embedder: Embedder, store: VectorStore, llm: Any = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.llm = llm
        self._lock = threading.Lock()
        self._db = ChunkDB(db_path(settings))
        self._load()

    def _load(self) -> None:
        corpus = Corpus(self._db)
        if not corpus.chunks:
            raise IndexMissing(
                f"the index at {self.settings.index_dir} is empty; run `assistant ingest` (or `make run`) first"
            )
        lexical = LexicalIndex.load_or_build(lexical_path(self.settings), corpus.chunks)
        self.corpus = corpus
        self.retriever = Retriever(corpus, lexical, self.store, self.embedder)
        self.extractive = ExtractiveAnswerer(corpus, self.retriever.vocabulary)

    def refresh(self) -> None:
        """Pick up a newer index written by `assistant ingest` while serving."""
        if self._db.generation() != self.corpus.generation:
            with self._lock:
                if self._db.generation() != self.corpus.generation:
                    self._load()

    # -- facts for the interfaces --------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return {"documents": len(self.corpus.docs), "chunks": len(self.corpus.chunks)}

    def trial_fields(self) -> list[tuple[str, dict[str, str]]]:
        """(document title, registry-style fields) for each document that carries them."""
        return [(d.title, d.fields) for d in self.corpus.docs.values() if d.fields]

    def coverage_note(self) -> str:
        kinds = {d.kind for d in self.corpus.docs.values()}
        topics = [KIND_TOPICS[k] for k in KIND_TOPICS if k in kinds]
        return "It covers " + _join(topics) + "."

    # -- answering ------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        audience: Audience = "patient",
        history: Sequence[Turn | dict[str, str]] | None = None,
        kinds: Sequence[str] | None = None,
        audiences: Sequence[str] | None = None,
        mode: Mode = "hybrid",
    ) -> Answer:
        answer = None
        for event in self.stream(question, audience, history, kinds, audiences, mode):
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
        mode: Mode = "hybrid",
    ) -> Iterator[str | Answer]:
        """Text pieces as they are ready (LLM tokens), then the verified Answer last."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        question = clean_input(question)
        if not question:
            raise QuestionError("the question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise QuestionError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
        turns = _turns(history)
        self.refresh()

        safety = triage(question)
        timings["triage"] = _ms(started)
        if safety in ("emergency", "crisis"):
            message = EMERGENCY_MESSAGE if safety == "emergency" else CRISIS_MESSAGE
            timings["total"] = _ms(started)
            yield Answer(
                question=question,
                audience=audience,
                sentences=[],
                citations=[],
                preamble=message,
                safety=safety,
                timings_ms=timings,
            )
            return

        t = time.perf_counter()
        asked = question
        question = strip_instructions(question)
        context = self._context(question, turns)
        standalone = question if context is None else f"{question} ({context})"
        if self.llm is not None and context is not None:
            standalone = self.llm.condense(question, turns) or standalone
            context = None if standalone != question else context
        parts_text = split_parts(standalone if context is None else question)
        parts = [self.retriever.vocabulary.query(p, context) for p in parts_text]
        timings["rewrite"] = _ms(t)

        t = time.perf_counter()
        evidence = self._retrieve(parts, standalone, kinds, audiences, mode)
        timings["retrieve"] = _ms(t)

        t = time.perf_counter()
        refused = self._unsupported(parts, evidence)
        draft: Draft
        if refused:
            draft = Draft(claims=[], refused=True)
        elif self.llm is not None:
            draft = Draft(claims=[])
            for piece in self.llm.stream(standalone, evidence, audience, self.corpus):
                if isinstance(piece, Draft):
                    draft = piece
                else:
                    yield piece
        else:
            draft = self.extractive.answer(parts, evidence, audience, standalone, personal=safety == "medical_advice")
        timings["answer"] = _ms(t)

        t = time.perf_counter()
        sentences, citations, dropped = verify(draft, self.corpus)
        answerer = draft.answerer
        if self.llm is not None and not refused and (not sentences or len(dropped) > len(sentences)):
            # Too little of the LLM's answer survived verification (or it declined although the
            # evidence covers the question): fall back to extraction.
            fallback = self.extractive.answer(
                parts, evidence, audience, standalone, personal=safety == "medical_advice"
            )
            sentences, citations, _ = verify(fallback, self.corpus)
            draft = fallback
            answerer = "extractive (fallback)"
        timings["verify"] = _ms(t)

        answer = Answer(
            question=asked,
            audience=audience,
            sentences=sentences,
            citations=citations,
            lead=draft.lead if sentences else None,
            safety=safety,
            dropped=dropped,
            answerer=answerer,
            standalone_question=standalone if standalone != question else None,
        )
        if not sentences:
            answer.refused = True
            answer.citations = []
            answer.preamble = (
                "The study material I answer from does not cover that, so I can't answer it. " + self.coverage_note()
            )
        if safety == "medical_advice":
            answer.preamble = ADVICE_MESSAGE + ("\n\n" + answer.preamble if answer.preamble else "")
        if sentences:
            answer.notices.extend(draft.notes)
        if audience == "patient":
            answer.notices.append(PATIENT_FOOTER)
        timings["total"] = _ms(started)
        answer.timings_ms = timings
        yield answer

    def ranked_docs(self, question: str, history: Sequence[Turn] | None, mode: Mode, k: int = 5) -> list[str]:
        """Distinct documents in retrieval order, for measuring retrieval alone."""
        context = self._context(question, _turns(history))
        standalone = question if context is None else f"{question} ({context})"
        query = self.retriever.vocabulary.query(question, context)
        out: list[str] = []
        for e in self.retriever.retrieve(
            query, k * 4, mode=mode, query_vector=None if mode == "lexical" else self.retriever.embed_query(standalone)
        ):
            if e.doc.id not in out:
                out.append(e.doc.id)
        return out[:k]

    def _context(self, question: str, turns: list[Turn]) -> str | None:
        """The earlier question a follow-up leans on, if it leans on one."""
        previous = [t.content for t in turns if t.role == "user"]
        if not previous:
            return None
        if DEPENDENT.search(question) or len(terms(question)) <= 2:
            return previous[-1]
        return None

    def _retrieve(
        self,
        parts: list[Any],
        standalone: str,
        kinds: Sequence[str] | None,
        audiences: Sequence[str] | None,
        mode: Mode,
    ) -> list[Evidence]:
        k = self.settings.retrieval_k
        vector = None if mode == "lexical" else self.retriever.embed_query(standalone)
        whole = self.retriever.vocabulary.query(standalone)
        evidence = self.retriever.retrieve(whole, k, kinds, audiences, mode, query_vector=vector)
        extra: list[Evidence] = []
        if len(parts) > 1:
            for part in parts:
                extra += self.retriever.retrieve(part, max(2, k // 2), kinds, audiences, mode)
        fields = self.retriever.vocabulary.field_scores(standalone)
        if fields:
            # A question about a registry-style field is answered from the sentence stating it.
            top = max(fields.values())
            by_id = {e.chunk.id: e for e in evidence}
            for name in (n for n, s in fields.items() if s == top):
                for chunk in self.corpus.field_chunks(name):
                    doc = self.corpus.docs[chunk.doc_id]
                    if (
                        chunk.id not in by_id
                        and (not kinds or doc.kind in kinds)
                        and (not audiences or doc.audience in audiences)
                    ):
                        extra.append(Evidence(chunk=chunk, doc=doc, score=0.0, dense=None, lexical=0.0))
        caveat_kind, caveat_words = caveats()
        if caveat_words & set(words(standalone)) and (not kinds or caveat_kind in kinds):
            # "Does it work?" is answered with what the study cannot show, so fetch that too.
            extra += self.retriever.retrieve(whole, 2, [caveat_kind], audiences, mode, query_vector=vector)
        seen = {e.chunk.id for e in evidence}
        for e in extra:
            if e.chunk.id not in seen:
                evidence.append(e)
                seen.add(e.chunk.id)
        return evidence

    def _unsupported(self, parts: list[Any], evidence: list[Evidence]) -> bool:
        if not evidence:
            return True
        coverage = self.extractive.best_coverage(parts, evidence)
        if coverage < MIN_COVERAGE:
            return True
        # A number the question asks about ("phase 2", "five years") that the material nowhere
        # states near the same words.
        passages = self.corpus.term_sequences
        for part in parts:
            seq = part.sequence
            for i, term in enumerate(seq):
                if not term.isdigit() or f"pct{term}" in part.weights:
                    continue
                neighbours = {seq[j] for j in (i - 1, i + 1) if 0 <= j < len(seq)}
                if not any(_near(p, term, neighbours) for p in passages):
                    return True
        return False


def _near(sequence: list[str], number: str, neighbours: set[str], window: int = 3) -> bool:
    """Does ``number`` occur in ``sequence`` within ``window`` terms of one of ``neighbours``?"""
    for i, term in enumerate(sequence):
        if term == number and (not neighbours or neighbours & set(sequence[max(0, i - window) : i + window + 1])):
            return True
    return False


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


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def build_pipeline(settings: Settings, embedder: Embedder | None = None) -> Pipeline:
    from assistant.offline import go_offline

    go_offline()
    if not db_path(settings).exists():
        raise IndexMissing(f"no index at {settings.index_dir}; run `assistant ingest` (or `make run`) first")
    store = VectorStore(settings)
    llm = None
    if settings.answerer == "llm":
        from assistant.answer.llm import LLMAnswerer

        llm = LLMAnswerer(settings)
    return Pipeline(settings, embedder or make_embedder(settings), store, llm)


__all__ = ["Answer", "IndexMissing", "Pipeline", "QuestionError", "Turn", "build_pipeline"]

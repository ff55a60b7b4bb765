"""Evidence for one part of a question: candidate units and the features that say whether a unit
states the answer. Every feature is a plain measurement; how they combine, and every threshold,
is fitted on the dev question sets (see decision.py and `assistant calibrate`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.question import AnswerType
from assistant.snapshot import Snapshot, Unit
from assistant.text import STOPWORDS, stem, surface_words, terms
from assistant.vocabulary import Query

FEATURES = (
    "dense",  # cosine of the part and the unit's quote
    "dense_gap",  # dense minus the best dense among the part's candidates
    "dense_context",  # cosine of the part and the unit as read in its chunk (pooled from the chunk's pass)
    "lexical",  # share of the part's idf weight the unit states (synonyms at reduced credit)
    "lexical_gap",  # lexical minus the best lexical among the candidates
    "support_mean",  # idf-weighted mean, over the part's words, of the best match in the unit
    "support_min",  # the least supported of the part's words (exact stem 1.0, else word-vector cosine)
    "unseen",  # idf share of the part's words that nothing in the whole material resembles
    "type_match",  # the unit holds an answer of the kind asked (a count, a place, ...); 0.5 = no detector
    "heading",  # share of the part's terms in the unit's title and section headings
    "trust",  # trust of the unit's kind of source
    "field",  # the unit is a "Field: value" line
    "chunk_retrieved",  # the unit's chunk was among the retrieved chunks
    "foreign",  # how unlike anything in the material the part's most foreign word is
    "dense_rank",  # 1 / rank of the unit among the candidates by dense
    "lexical_rank",  # 1 / rank by lexical
)

_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_YEAR = re.compile(r"\b(19|20)\d\d\b")
_COUNT_WORDS = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|none|no one|nobody|all|every|each|half|most|both|neither|single)\b",
    re.I,
)
_TIME_UNIT = r"(seconds?|minutes?|hours?|days?|weeks?|months?|years?)"
_NUMBERISH = r"(\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a|an|several|few)"
_TYPE_DETECTORS: dict[str, re.Pattern[str]] = {
    "quantity": re.compile(
        rf"\d|\b(million|thousand|billion|percent|per cent|dose|none|no)\b|%|\b{_NUMBERISH}\s+(mg|ml|g|kg|cells|units|doses)\b",
        re.I,
    ),
    "duration": re.compile(rf"\b{_NUMBERISH}[\s-]+{_TIME_UNIT}\b|\b(weekly|monthly|daily|yearly|annual)\b", re.I),
    "time": re.compile(
        rf"\b(january|february|march|april|may|june|july|august|september|october|november|december)\b|\b(19|20)\d\d\b|\b{_TIME_UNIT}\s+(after|before|later|earlier|ago|from)\b|\b(after|before|since|until|during|at the time)\b",
        re.I,
    ),
    "place": re.compile(
        r"\b(hospital|hospitals|clinic|clinics|university|center|centre|centers|centres|city|country|state|site|sites|location|located|region|county)\b|\b(in|at|from)\s+[A-Z][a-z]+",
    ),
    "person": re.compile(
        r"\bDr\.|\bM\.D\.|\bProf\.|\b(author|authors|led|leader|sponsor|sponsored|company|investigator|investigators|team|researchers|surgeon|neurosurgeon|doctor)\b|\b(Inc|Ltd|LLC|GmbH)\b|\b[A-Z][a-z]+\s+[A-Z][a-z]+\b",
    ),
    "publication": re.compile(r"\b(journal|published|publication|proceedings|preprint|article|paper)\b", re.I),
    "identifier": re.compile(r"\b[A-Z]{2,}[- ]?\d{4,}\b|\b(number|identifier|registration|id)\s*:", re.I),
    "definition": re.compile(
        r"\b(means|mean|meaning|is a|are a|is an|are an|refers to|is called|are called|also called|stands for|is the|are the)\b|^[^:]{2,60}:\s"
    ),
    "reason": re.compile(
        r"\b(because|so that|in order to|to avoid|meant to|designed to|so|since|due to|reason|purpose|aim|goal|therefore|to test|to learn|to see)\b",
        re.I,
    ),
}


def holds_type(text: str, answer_type: AnswerType) -> float:
    """1.0 when ``text`` holds an answer of the asked kind, 0.0 when it does not, 0.5 when the
    kind has no detector (yes/no, list, procedure, other)."""
    if answer_type == "count":
        numbers = [n for n in _NUMBER.findall(text) if not _YEAR.fullmatch(n)]
        return 1.0 if numbers or _COUNT_WORDS.search(text) else 0.0
    detector = _TYPE_DETECTORS.get(answer_type)
    if detector is None:
        return 0.5
    return 1.0 if detector.search(text) else 0.0


@dataclass
class PartEvidence:
    """One part of a question with its candidates and their features (rows align)."""

    text: str
    answer_type: AnswerType
    query: Query
    vector: np.ndarray
    units: list[Unit] = field(default_factory=list)
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, len(FEATURES)), dtype=np.float32))
    retrieved_chunks: set[str] = field(default_factory=set)


class WordMatcher:
    """Similarity of a question's words to the words of the material, by their vectors."""

    CACHE_MAX = 20000  # vectors kept of words the material does not have

    def __init__(self, snapshot: Snapshot, embedder: Any) -> None:
        self.snapshot = snapshot
        self.embedder = embedder
        self._embed = embedder.embed
        self._cache: dict[str, np.ndarray] = {}

    def vectors(self, words: list[str]) -> np.ndarray:
        index = self.snapshot.word_index
        # The cache is replaced when full, never emptied in place, so the one read here still holds
        # every word it held when this call began, whatever other threads do meanwhile.
        cache = self._cache
        missing = [w for w in dict.fromkeys(words) if w not in index and w not in cache]
        fresh = dict(zip(missing, self._embed(missing), strict=True)) if missing else {}
        if len(cache) + len(fresh) > self.CACHE_MAX:
            self._cache = dict(fresh)
        else:
            cache.update(fresh)
        rows = [
            self.snapshot.word_matrix[index[w]] if w in index else fresh[w] if w in fresh else cache[w]
            for w in words
        ]
        return np.vstack(rows) if rows else np.zeros((0, self.snapshot.word_matrix.shape[1]), dtype=np.float32)


def key_words(text: str) -> list[str]:
    """The words of a question part that say what is asked about (surface forms, no stopwords)."""
    return list(dict.fromkeys(w for w in surface_words(text) if w not in STOPWORDS and len(w) > 2))


COLUMN = {name: i for i, name in enumerate(FEATURES)}


def compute_features(
    snapshot: Snapshot,
    matcher: WordMatcher,
    part: PartEvidence,
    context_words: list[str],
    synonym_credit: float,
    heading_credit: float,
) -> None:
    """Fill ``part.features`` for ``part.units``."""
    units = part.units
    out = np.zeros((len(units), len(FEATURES)), dtype=np.float32)
    part.features = out
    if not units:
        return
    corpus = snapshot.corpus
    rows = np.array([u.row for u in units])
    dense = snapshot.unit_matrix[rows] @ part.vector
    out[:, COLUMN["dense"]] = dense
    out[:, COLUMN["dense_gap"]] = dense - dense.max()
    out[:, COLUMN["dense_context"]] = snapshot.context_matrix[rows] @ part.vector

    lexical = np.array([_lexical(snapshot, u, part.query, synonym_credit, heading_credit) for u in units])
    out[:, COLUMN["lexical"]] = lexical
    out[:, COLUMN["lexical_gap"]] = lexical - lexical.max()
    out[:, COLUMN["dense_rank"]] = _inverse_rank(dense)
    out[:, COLUMN["lexical_rank"]] = _inverse_rank(lexical)

    own = key_words(part.text)
    words = own + [w for w in context_words if w not in own]
    if words:
        weights = np.array([corpus.idf(stem(w)) * (1.0 if w in own else 0.7) for w in words], dtype=np.float32)
        vectors = matcher.vectors(words)
        sims = vectors @ snapshot.word_matrix.T if len(snapshot.word_matrix) else np.zeros((len(words), 0))
        stems = [stem(w) for w in words]
        alternatives = _synonym_stems(part.query)
        # A word nothing in the material resembles: "cost" in a study that never prices anything.
        best_anywhere = sims.max(axis=1) if sims.shape[1] else np.zeros(len(words))
        foreign = np.array(
            [
                0.0 if corpus.seen(s) or s in alternatives else float(1.0 - max(0.0, b))
                for s, b in zip(stems, best_anywhere, strict=True)
            ]
        )
        out[:, COLUMN["unseen"]] = float((weights * foreign).sum() / weights.sum())
        own_foreign = [f for w, f in zip(words, foreign, strict=True) if w in own]
        out[:, COLUMN["foreign"]] = max(own_foreign, default=0.0)
        own_columns = [k for k, w in enumerate(words) if w in own] or list(range(len(words)))
        for i, unit in enumerate(units):
            have = unit.terms | unit.head_terms
            support = np.zeros(len(words), dtype=np.float32)
            unit_words = list(unit.words)
            for j, s in enumerate(stems):
                if s in have or (s in alternatives and alternatives[s] & have):
                    support[j] = 1.0
                elif unit_words:
                    support[j] = max(0.0, float(sims[j, unit_words].max()))
            out[i, COLUMN["support_mean"]] = float((weights * support).sum() / weights.sum())
            out[i, COLUMN["support_min"]] = float(support[own_columns].min())
    else:
        out[:, COLUMN["support_mean"]] = 1.0
        out[:, COLUMN["support_min"]] = 1.0
    asked_terms = set(terms(part.text))
    for i, unit in enumerate(units):
        out[i, COLUMN["type_match"]] = holds_type(unit.text, part.answer_type)
        out[i, COLUMN["heading"]] = len(asked_terms & unit.head_terms) / len(asked_terms) if asked_terms else 0.0
        out[i, COLUMN["trust"]] = snapshot.trust(unit)
        out[i, COLUMN["field"]] = 1.0 if unit.field else 0.0
        out[i, COLUMN["chunk_retrieved"]] = 1.0 if unit.chunk.id in part.retrieved_chunks else 0.0


def _inverse_rank(values: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(values), dtype=np.float32)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    return 1.0 / ranks


def _synonym_stems(query: Query) -> dict[str, set[str]]:
    """For each asked term in a synonym group, the terms of the group's other phrasings."""
    out: dict[str, set[str]] = {}
    for concept in query.concepts:
        others = {t for phrase in concept.alternatives for t in phrase}
        for term in concept.asked:
            out.setdefault(term, set()).update(others)
    return out


def _lexical(snapshot: Snapshot, unit: Unit, query: Query, synonym_credit: float, heading_credit: float) -> float:
    """Share of the question's weight a unit states, in its own words or in another phrasing the
    vocabulary gives (a boost: the words themselves count in full)."""
    corpus = snapshot.corpus
    asked = {t: w for t, w in query.weights.items() if t in query.asked}
    norm = sum(w * corpus.idf(t) for t, w in asked.items()) or 1.0
    total = 0.0
    covered: set[str] = set()
    for concept in query.concepts:
        concept_terms = [t for t in concept.asked if t in asked and t not in covered]
        if not concept_terms:
            continue
        full = sum(asked[t] * corpus.idf(t) for t in concept_terms)
        literal = sum(
            asked[t] * corpus.idf(t) * (1.0 if t in unit.terms else heading_credit if t in unit.head_terms else 0.0)
            for t in concept_terms
        )
        alternative = 0.0
        for phrase in concept.alternatives:
            if phrase and _contains(unit.sequence, phrase):
                alternative = synonym_credit * full
                break
        total += max(literal, alternative)
        covered.update(concept_terms)
    for term, weight in asked.items():
        if term in covered:
            continue
        if term in unit.terms:
            total += weight * corpus.idf(term)
        elif term in unit.head_terms:
            total += heading_credit * weight * corpus.idf(term)
    return min(total / norm, 1.0)


def _contains(sequence: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(sequence[i : i + n] == phrase for i in range(len(sequence) - n + 1))

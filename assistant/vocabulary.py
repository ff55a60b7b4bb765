"""Query expansion and spelling correction from the domain vocabulary (data, not rules)."""

from __future__ import annotations

import difflib
import heapq
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from assistant.text import STOPWORDS, grade_terms, normalize, proportion_terms, terms, vocabulary_data, words

EXPANSION_WEIGHT = 0.5
CORRECTION_CUTOFF = 0.75
CORRECTIONS_KEPT = 20000  # words of questions already looked up, with what they became


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    data = vocabulary_data()
    if not isinstance(data.get("synonyms"), list):
        raise ValueError("assistant/data/vocabulary.yaml must have a 'synonyms' list")
    return data


def _phrase_terms(phrase: str) -> tuple[str, ...]:
    return tuple(terms(phrase, keep_stopwords=True))


def _contains(haystack: list[str], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return n > 0 and any(tuple(haystack[i : i + n]) == needle for i in range(len(haystack) - n + 1))


class NearWords:
    """``difflib.get_close_matches(word, words, n=1, cutoff)`` with the same answer, faster.

    difflib tries every word: two cheap upper bounds of the similarity (from the lengths alone, then
    from the letters the two words share), and the real ratio where both pass. Here both bounds are
    computed for all words at once from a table of letter counts, so that only the few words that
    pass them get the real ratio, in difflib's own way and order of arguments.
    """

    def __init__(self, words: list[str], cutoff: float = CORRECTION_CUTOFF) -> None:
        self.words = list(words)
        self.cutoff = cutoff
        alphabet = sorted({c for w in self.words for c in w})
        self._column = {c: i for i, c in enumerate(alphabet)}
        self._counts = np.zeros((len(self.words), len(alphabet)), dtype=np.int32)
        for row, word in enumerate(self.words):
            for c in word:
                self._counts[row, self._column[c]] += 1
        self._lengths = np.array([len(w) for w in self.words], dtype=np.int64)

    def closest(self, word: str) -> str | None:
        if not self.words:
            return None
        query = np.zeros(self._counts.shape[1], dtype=np.int32)
        for c in word:
            column = self._column.get(c)
            if column is not None:
                query[column] += 1
        total = self._lengths + len(word)
        real_quick = 2.0 * np.minimum(self._lengths, len(word)) / total
        quick = 2.0 * np.minimum(self._counts, query).sum(axis=1) / total
        matcher = difflib.SequenceMatcher()
        matcher.set_seq2(word)
        scored = []
        for row in np.flatnonzero((real_quick >= self.cutoff) & (quick >= self.cutoff)):
            candidate = self.words[row]
            matcher.set_seq1(candidate)
            ratio = matcher.ratio()
            if ratio >= self.cutoff:
                scored.append((ratio, candidate))
        best = heapq.nlargest(1, scored)
        return best[0][1] if best else None


@dataclass
class Concept:
    """Something the question asks about in its own words, and the corpus's other words for it."""

    asked: tuple[str, ...]  # content terms of the asked phrase ("sampl", "size")
    alternatives: list[tuple[str, ...]]  # content-term phrases of the rest of its synonym group
    weight: float = 1.0  # 1.0 from the question, lower from the conversation before it


@dataclass
class Query:
    """A question as weighted stemmed terms (asked at 1.0, expansions lower) and its concepts."""

    text: str
    weights: dict[str, float] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)
    concepts: list[Concept] = field(default_factory=list)
    sequence: list[str] = field(default_factory=list)

    def expansion_terms(self) -> list[str]:
        return [t for t in self.weights if t not in self.asked]


class Vocabulary:
    def __init__(self, corpus_words: set[str], english: frozenset[str] = frozenset()) -> None:
        data = _data()
        self.english = english
        # Short, frequent words people misspell in questions ("wat", "wich", "whats").
        self._common = sorted(w for w in english if 3 <= len(w) <= 6) if english else []
        # Each member phrase both with stopwords (to find it in a question) and without (to score).
        self.groups = [[(_phrase_terms(p), tuple(terms(p))) for p in group] for group in data["synonyms"]]
        self.fields = {
            name: [_phrase_terms(p) for p in aliases] for name, aliases in (data.get("fields") or {}).items()
        }
        self.known_words = set(corpus_words)
        for group in data["synonyms"]:
            for phrase in group:
                self.known_words.update(words(phrase))
        for aliases in (data.get("fields") or {}).values():
            for phrase in aliases:
                self.known_words.update(words(phrase))
        self._pools = (
            NearWords(sorted(w for w in self.known_words if len(w) >= 4 and not w.isdigit())),
            NearWords(self._common),
        )
        self._corrected: dict[str, str] = {}

    def correct(self, text: str) -> str:
        """The words of ``text``, lowercased, with misspelt ones replaced (see ``correct_text``)."""
        return " ".join(self._correct_word(w) for w in words(text))

    def correct_text(self, text: str) -> str:
        """``text`` with misspelt words replaced, keeping everything else as written."""

        def fix(match: re.Match[str]) -> str:
            word = match.group(0)
            lower = word.lower()
            fixed = self._correct_word(lower)
            return word if fixed == lower else fixed

        return re.sub(r"[A-Za-z]+(?:'[A-Za-z]+)?", fix, text)

    def _correct_word(self, word: str) -> str:
        """A word that is neither the material's nor English (the model's word list) becomes the
        closest word the material uses, if one is close."""
        if len(word) < 3 or word in self.known_words or word in self.english or word in STOPWORDS or "'" in word:
            return word
        fixed = self._corrected.get(word)
        if fixed is not None:
            return fixed
        fixed = word
        for pool in self._pools:  # the material's words first, then common English ones
            match = pool.closest(word)
            if match is not None:
                fixed = match
                break
        if len(self._corrected) < CORRECTIONS_KEPT:  # a dict: safe to share between threads
            self._corrected[word] = fixed
        return fixed

    def alternative_stems(self, text: str) -> dict[str, set[str]]:
        """For each term of ``text`` in a synonym group, the terms of the group's other phrasings."""
        out: dict[str, set[str]] = {}
        for concept in self.query(text).concepts:
            others = {t for phrase in concept.alternatives for t in phrase}
            for term in concept.asked:
                out.setdefault(term, set()).update(others)
        return out

    def query(self, text: str, context: str | None = None) -> Query:
        corrected = self.correct(text)
        asked_seq = terms(corrected) + proportion_terms(normalize(text)) + grade_terms(text)
        query = Query(text=corrected, sequence=asked_seq)
        for term in asked_seq:
            query.weights[term] = 1.0
            query.asked.add(term)
        sources = [(terms(corrected, keep_stopwords=True), 1.0)]
        if context:
            fixed = self.correct(context)
            for term in terms(fixed):
                if term not in query.weights:
                    query.weights[term] = 0.7
                    query.asked.add(term)
            sources.append((terms(fixed, keep_stopwords=True), 0.7))
        concepts: list[Concept] = []
        present = [set(sequence) for sequence, _weight in sources]  # a phrase's first term must be there
        for group in self.groups:
            for (sequence, weight), have in zip(sources, present, strict=True):
                hits = [content for full, content in group if content and full[0] in have and _contains(sequence, full)]
                if not hits:
                    continue
                # Every asked word of the group belongs to one concept ("how long ... followed up").
                asked = tuple(dict.fromkeys(term for phrase in hits for term in phrase))
                alternatives = [content for _full, content in group if content and content not in hits]
                concepts.append(Concept(asked, alternatives, weight))
                break
        # "effects" also spells "effective": a concept inside a larger one is the same words.
        concepts = [c for c in concepts if not any(set(c.asked) < set(o.asked) for o in concepts if o is not c)]
        merged: dict[tuple[str, ...], Concept] = {}
        for concept in concepts:
            if concept.asked in merged:
                merged[concept.asked].alternatives += concept.alternatives
            else:
                merged[concept.asked] = concept
            for phrase in concept.alternatives:
                for term in phrase:
                    if term not in query.weights:
                        query.weights[term] = EXPANSION_WEIGHT
        query.concepts = list(merged.values())
        return query

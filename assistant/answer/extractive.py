"""The embedded default answerer: picks, orders and cites the evidence sentences that answer.

No language model: every answer sentence is a verbatim span of a retrieved chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from assistant.answer.types import Claim, Draft, Quote
from assistant.documents import KIND_LABELS
from assistant.retrieval import Corpus, Evidence
from assistant.text import NEGATIONS, states, terms, words
from assistant.vocabulary import Query, Vocabulary

# Trust order of source kinds: where two say the same thing, the earlier kind is quoted.
KIND_TRUST = {
    "paper-summary": 1.0,
    "registry": 0.97,
    "limitations": 0.95,
    "case-report": 0.93,
    "glossary": 0.85,
    "faq": 0.93,
    "document": 0.9,
    "news": 0.75,
}
AUX_START = re.compile(
    r"^\s*(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|may|might|must)\b", re.I
)
ANAPHORA_START = re.compile(r"^(These|This|It|They|Those|That|He|She|His|Her|Their|Its|So|But|Such|The other)\b")
PART_SPLIT = re.compile(
    r"\?\s+|;\s+|\s+(?:and|also)\s+(?=(?:what|how|who|when|where|why|which|was|were|is|are|did|does|do|can)\b)",
    re.I,
)
MIN_UNIT_WORDS = 5
SYNONYM_CREDIT = 0.8
PERSONAL_KINDS = ("faq", "limitations")
NEWS_NOTE = "A news article about this study words this point differently; this answer follows the trial paper summary."
QUANTITY_QUESTION = re.compile(
    r"\b(how (many|much|long|often|fast|soon)|what (number|percentage|proportion|share|dose|amount)|number of)\b", re.I
)
DEFINITION_QUESTION = re.compile(
    r"^\s*(what('s| is| are| does| do)\b(?!.*\b(seen|found|reported|happen)).{0,40}\b(mean|means|stand for)?\??$|define\b|meaning of\b)",
    re.I,
)
DEFINITION_SENTENCE = re.compile(r"\b(means?|is called|are called|refers to)\b|^[^.]{2,40}:\s")


@dataclass
class Unit:
    """A quotable span: one sentence, or two where one alone would lose its meaning."""

    evidence: Evidence
    start: int
    end: int
    text: str
    terms: set[str]
    head_terms: set[str]
    position: int
    seq: list[str]


@dataclass
class Scored:
    unit: Unit
    score: float
    coverage: float
    part: int


@lru_cache(maxsize=1)
def caveats() -> tuple[str, frozenset[str]]:
    data = yaml.safe_load(resources.files("assistant").joinpath("data/vocabulary.yaml").read_text(encoding="utf-8"))
    caveats = data.get("caveats") or {}
    return str(caveats.get("kind", "limitations")), frozenset(caveats.get("words") or [])


def split_parts(question: str) -> list[str]:
    parts = [p.strip(" ,.") for p in PART_SPLIT.split(question) if p and len(words(p)) >= 2]
    return parts or [question]


def is_yes_no(question: str) -> bool:
    return bool(AUX_START.match(question))


class ExtractiveAnswerer:
    name = "extractive"

    def __init__(self, corpus: Corpus, vocabulary: Vocabulary) -> None:
        self.corpus = corpus
        self.vocabulary = vocabulary

    def units(self, evidence: Evidence) -> list[Unit]:
        chunk = evidence.chunk
        sentences = self.corpus.sentences(chunk)
        head = set(terms(" ".join([evidence.doc.title, *chunk.headings])))
        # "What did the news article say?" names the kind of source: every sentence of it matches.
        kind_terms = set(terms(KIND_LABELS.get(evidence.doc.kind, evidence.doc.kind)))
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(sentences):
            start, end = sentences[i].start, sentences[i].end
            # "No, not yet." says little without the sentence after it.
            if len(words(sentences[i].text)) < MIN_UNIT_WORDS and i + 1 < len(sentences):
                i += 1
                end = sentences[i].end
            spans.append((start, end))
            i += 1
        units = []
        for position, (start, end) in enumerate(spans):
            text = chunk.text[start:end]
            if ANAPHORA_START.match(text) and position > 0:
                # "These side effects went away..." needs its subject from the sentence before.
                start = spans[position - 1][0]
                text = chunk.text[start:end]
            if len(words(text)) < MIN_UNIT_WORDS:
                continue
            seq = terms(text)
            units.append(Unit(evidence, start, end, text, set(seq) | kind_terms, head, position, seq))
        return units

    def score(
        self,
        unit: Unit,
        query: Query,
        audience: str,
        fields: dict[str, float],
        news_asked: bool,
        definition: bool = False,
        quantity: bool = False,
    ) -> tuple[float, float]:
        norm = self.norm(query)
        matched = self.matched(unit, query)
        coverage = min(matched / norm, 1.5)
        score = coverage + 0.25 * max(unit.evidence.dense or 0.0, 0.0)
        doc = unit.evidence.doc
        kind = doc.kind
        trust = KIND_TRUST.get(kind, 0.9)
        if kind == "news" and news_asked:
            trust = 1.1
        if definition and (kind == "glossary" or DEFINITION_SENTENCE.search(unit.text)):
            trust = 1.1
        score *= trust
        if audience == "patient":
            if doc.audience in ("patient", "both"):
                score *= 1.05
            if len(words(unit.text)) > 28:
                score *= 0.9
        elif kind in ("paper-summary", "registry"):
            score *= 1.08
        top = max(fields.values(), default=0.0)
        for name, strength in fields.items():
            if strength < top:
                continue
            value = doc.fields.get(name)
            if value and states(unit.text, value):
                score += 0.15 * strength
        if quantity and _figures(unit):
            score += 0.2  # "how many ...?" is answered by a sentence with the number
        return score, coverage

    def answer(
        self,
        parts: list[Query],
        evidence: list[Evidence],
        audience: str,
        question: str,
        personal: bool = False,
    ) -> Draft:
        units = [u for e in evidence for u in self.units(e)]
        if not units:
            return Draft(claims=[], refused=True)
        news_asked = bool({"news", "articl", "press", "media", "headlin"} & set(terms(question)))
        definition = bool(DEFINITION_QUESTION.search(question))
        quantity = bool(QUANTITY_QUESTION.search(question))
        scored: list[Scored] = []
        for index, query in enumerate(parts):
            fields = self.vocabulary.field_scores(query.text)
            for unit in units:
                score, coverage = self.score(unit, query, audience, fields, news_asked, definition, quantity)
                scored.append(Scored(unit, score, coverage, index))
        if personal:
            # A personal decision: lead with the material written for patients' own choices.
            for s in scored:
                if s.unit.evidence.doc.kind in PERSONAL_KINDS:
                    s.score *= 1.2
        picked = self._select(scored, len(parts), audience)
        if not picked:
            return Draft(claims=[], refused=True)
        caveat = self._caveat(picked, scored, question)
        ordered = self._order(picked)
        picked = self._corroborate(ordered, scored, keep_news=news_asked)
        notes = []
        if any(s.unit.evidence.doc.kind == "news" for s in ordered) and picked != ordered:
            notes.append(NEWS_NOTE)
        yes_no = len(parts) == 1 and is_yes_no(question) and not personal
        if caveat is not None:
            # "Does it work?": say first what the study cannot show, then the best evidence.
            # Its companion is the best sentence not from a news article, which may overstate.
            companion = next((s for s in picked if s.unit.evidence.doc.kind != "news"), None)
            picked = [caveat] if companion is None else [caveat, companion] if yes_no else [companion, caveat]
        lead = None
        if yes_no and caveat is None:
            lead = self._yes_no(picked, parts[0])
        claims = [
            Claim(text=s.unit.text, quotes=[Quote(s.unit.evidence.chunk.id, s.unit.start, s.unit.end)]) for s in picked
        ]
        return Draft(claims=claims, lead=lead, notes=notes)

    def best_coverage(self, parts: list[Query], evidence: list[Evidence]) -> float:
        """How much of the question the evidence covers (for refusal): for each part, its best
        sentence; for a question in several parts, the least covered part."""
        units = [u for e in evidence for u in self.units(e)]
        return min(
            (max((self.score(u, query, "clinician", {}, False)[1] for u in units), default=0.0) for query in parts),
            default=0.0,
        )

    def _select(self, scored: list[Scored], n_parts: int, audience: str) -> list[Scored]:
        limit = 2 if audience == "patient" else 3
        if n_parts > 1:
            limit = max(1, limit - 1)
        chosen: list[Scored] = []
        for part in range(n_parts):
            candidates = sorted((s for s in scored if s.part == part), key=lambda s: -s.score)
            if not candidates:
                continue
            best = candidates[0].score
            taken = 0
            for cand in candidates:
                # Diversity only among sentences close to the best, so no off-topic filler.
                if taken >= limit or cand.score < 0.78 * best or cand.coverage < 0.3:
                    break
                if any(_overlaps(cand.unit, c.unit) or _redundant(cand.unit, c.unit) for c in chosen):
                    continue
                chosen.append(cand)
                taken += 1
        return chosen

    def _corroborate(self, picked: list[Scored], scored: list[Scored], keep_news: bool) -> list[Scored]:
        """A news sentence on a point a better source states is replaced by that source's sentence
        (kept after it when the question asks about the news)."""
        out: list[Scored] = []
        for chosen in picked:
            if chosen.unit.evidence.doc.kind == "news":
                figures = _figures(chosen.unit)
                candidates = [
                    s
                    for s in scored
                    if s.unit.evidence.doc.kind != "news"
                    and s.part == chosen.part
                    and (figures & _figures(s.unit) or _jaccard(s.unit, chosen.unit) >= 0.25)
                    and not any(_overlaps(s.unit, o.unit) for o in [*out, *picked])
                ]
                if candidates:
                    out.append(max(candidates, key=lambda s: s.score))
                    if not keep_news:
                        continue
            out.append(chosen)
        return out

    def _caveat(self, picked: list[Scored], scored: list[Scored], question: str) -> Scored | None:
        kind, trigger = caveats()
        if not set(words(question)) & trigger:
            return None
        ranked = sorted((s for s in scored if s.unit.evidence.doc.kind == kind), key=lambda s: -s.score)
        for cand in ranked:
            if not any(_overlaps(cand.unit, c.unit) or _redundant(cand.unit, c.unit) for c in picked[:1]):
                return cand
        return None

    @staticmethod
    def _order(picked: list[Scored]) -> list[Scored]:
        """Best sentence first; the rest grouped by document, in reading order."""
        first = max(picked, key=lambda s: s.score) if picked else None
        rest = [s for s in picked if s is not first]
        doc_rank: dict[str, int] = {}
        for s in sorted(rest, key=lambda s: -s.score):
            doc_rank.setdefault(s.unit.evidence.chunk.doc_id, len(doc_rank))
        if first is not None:
            doc_rank[first.unit.evidence.chunk.doc_id] = -1
        rest.sort(key=lambda s: (doc_rank[s.unit.evidence.chunk.doc_id], s.unit.evidence.chunk.ordinal, s.unit.start))
        return ([first] if first else []) + rest

    def norm(self, query: Query) -> float:
        """The weight of what the question asks, against which a sentence's match is measured."""
        return sum(w * self.corpus.idf(t) for t, w in query.weights.items() if t in query.asked) or 1.0

    def _term_value(self, unit: Unit, term: str, weight: float) -> float:
        if term in unit.terms:
            return weight * self.corpus.idf(term)
        if term in unit.head_terms:
            return 0.5 * weight * self.corpus.idf(term)
        return 0.0

    def matched(self, unit: Unit, query: Query) -> float:
        """How much of the question's weight a unit covers, in its own words or the corpus's."""
        total = 0.0
        covered: set[str] = set()
        for concept in query.concepts:
            asked = [t for t in concept.asked if t in query.asked and t not in covered]
            if not asked:
                continue
            literal = sum(self._term_value(unit, t, query.weights[t]) for t in asked)
            full = sum(query.weights[t] * self.corpus.idf(t) for t in asked)
            synonym = 0.0
            if any(t in unit.terms for t in asked):
                synonym = SYNONYM_CREDIT * full  # part of the asked phrase names the concept too
            for phrase in concept.alternatives:
                if _contains_seq(unit.seq, phrase):
                    synonym = SYNONYM_CREDIT * full
                    break
                if len(phrase) == 1 and phrase[0] in unit.head_terms:
                    synonym = max(synonym, 0.5 * SYNONYM_CREDIT * full)
            total += max(literal, synonym)
            covered.update(asked)
        for term, weight in query.weights.items():
            if term in query.asked and term not in covered:
                total += self._term_value(unit, term, weight)
        return total

    def _asked_coverage(self, unit: Unit, query: Query) -> float:
        """Share of the question's own words (not synonyms) in the unit."""
        asked = {t: w for t, w in query.weights.items() if t in query.asked}
        norm = sum(w * self.corpus.idf(t) for t, w in asked.items()) or 1.0
        return sum(w * self.corpus.idf(t) for t, w in asked.items() if t in unit.terms) / norm

    def _yes_no(self, picked: list[Scored], query: Query) -> str | None:
        """ "No." when the sentence that best covers the question negates what it asks about;
        "Yes." only when that sentence states it in the question's own words."""
        norm = self.norm(query)
        # The answer to a yes/no question rests on the better sources, not on a news article.
        trusted = [s for s in picked if s.unit.evidence.doc.kind != "news"] or picked
        coverage, top = max(((self.matched(s.unit, query) / norm, s) for s in trusted), key=lambda x: x[0])
        if coverage < 0.5:
            return None
        wanted = set(query.asked) | {t for c in query.concepts for phrase in c.alternatives for t in phrase}
        if _negates(top.unit.text, wanted):
            return "No."
        if re.match(r"^Yes\b[,.]", top.unit.text.strip()) or self._asked_coverage(top.unit, query) >= 0.8:
            return "Yes."
        return None


def _figures(unit: Unit) -> set[str]:
    """Numbers and proportions a unit states ("10", "pct70")."""
    return {t for t in unit.terms if t.isdigit() or t.startswith("pct")}


def _jaccard(a: Unit, b: Unit) -> float:
    return len(a.terms & b.terms) / len(a.terms | b.terms) if a.terms and b.terms else 0.0


def _contains_seq(sequence: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(sequence[i : i + n]) == phrase for i in range(len(sequence) - n + 1))


def _overlaps(a: Unit, b: Unit) -> bool:
    if a.evidence.chunk.doc_id != b.evidence.chunk.doc_id:
        return False
    a_start, a_end = a.evidence.chunk.start + a.start, a.evidence.chunk.start + a.end
    b_start, b_end = b.evidence.chunk.start + b.start, b.evidence.chunk.start + b.end
    return a_start < b_end and b_start < a_end


def _redundant(a: Unit, b: Unit) -> bool:
    """Near-duplicates, and a news sentence that restates what a more trusted source says."""
    if not a.terms or not b.terms:
        return False
    jaccard = len(a.terms & b.terms) / len(a.terms | b.terms)
    if jaccard >= 0.5:
        return True
    kinds = {a.evidence.doc.kind, b.evidence.doc.kind}
    return "news" in kinds and len(kinds) == 2 and jaccard >= 0.2


def _negates(text: str, wanted: set[str]) -> bool:
    """Does the sentence negate one of the wanted terms ("no serious adverse events",
    "there was no randomization", "has approved no stem cell product")?"""
    text = text.strip()
    if re.match(r"^(No|Not)\b[,.]", text):
        return True
    sequence = words(text)
    for i, word in enumerate(sequence):
        if not (word in NEGATIONS or word.endswith("n't")):
            continue
        after = set(terms(" ".join(sequence[i + 1 : i + 5])))
        before = set(terms(" ".join(sequence[max(0, i - 2) : i])))
        if (after | before) & wanted:
            return True
    return False

"""The refusal policy: which parts of a question the material answers, and by which units.

A part is answered only when some unit's probability (decision.py) reaches the fitted answer
threshold; a question is refused when no part is answered, and a part that is not answered is
named in the answer. Further quotes are added only when close to the best one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from assistant.decision import DecisionModel
from assistant.evidence import PartEvidence
from assistant.kinds import kind_info
from assistant.snapshot import Snapshot, Unit
from assistant.text import terms, words
from assistant.vocabulary import _data

REDUNDANT_OVERLAP = 0.5  # share of terms two quotes have in common above which the second adds nothing


@dataclass
class PartDecision:
    part: PartEvidence
    probabilities: np.ndarray
    answered: bool
    chosen: list[Unit] = field(default_factory=list)
    caveat: Unit | None = None  # what the study cannot show, for "does it work?"
    replaced_secondary: bool = False  # a news sentence gave way to a primary source's

    @property
    def best(self) -> float:
        return float(self.probabilities.max()) if len(self.probabilities) else 0.0


@dataclass
class Decision:
    parts: list[PartDecision]
    audience: str
    personal: bool

    @property
    def answered(self) -> bool:
        return any(p.answered for p in self.parts)

    @property
    def uncovered(self) -> list[str]:
        return [p.part.text for p in self.parts if not p.answered] if self.answered else []


@lru_cache(maxsize=1)
def caveat_words() -> frozenset[str]:
    return frozenset((_data().get("caveats") or {}).get("words") or [])


def decide(model: DecisionModel, parts: list[PartEvidence], snapshot: Snapshot, audience: str, personal: bool) -> Decision:
    params = model.parameters
    limit = params.max_units_patient if audience == "patient" else params.max_units_clinician
    if len(parts) > 1:
        limit = max(1, limit - 1)
    decisions = []
    taken: list[Unit] = []
    for part in parts:
        probabilities = model.probabilities(part.features)
        answered = model.answerable(part.features, probabilities) >= model.answer_threshold_
        decision = PartDecision(part, probabilities, answered)
        if answered:
            _choose(model, decision, limit, taken)
            taken.extend(decision.chosen)
        decisions.append(decision)
    return Decision(decisions, audience, personal)


def _choose(model: DecisionModel, decision: PartDecision, limit: int, taken: list[Unit]) -> None:
    part = decision.part
    order = np.argsort(-decision.probabilities)
    best = float(decision.probabilities[order[0]])
    asks_about_secondary = _names_a_secondary_kind(part)
    chosen: list[Unit] = []
    for index in order:
        unit = part.units[index]
        p = float(decision.probabilities[index])
        if chosen and (p < model.keep_threshold_ or p < model.keep_ratio_ * best):
            break
        if len(chosen) >= limit:
            break
        if any(_overlaps(unit, other) or _redundant(unit, other) for other in [*chosen, *taken]):
            continue
        chosen.append(unit)
    if not asks_about_secondary:
        # Where a secondary report (a news article) is quoted, a primary source that the model
        # also finds likely to answer is quoted instead: the answer follows the paper.
        for i, unit in enumerate(chosen):
            if not kind_info(unit.doc.kind).secondary:
                continue
            for index in order:
                other = part.units[index]
                p = float(decision.probabilities[index])
                if p < model.keep_threshold_:
                    break
                if kind_info(other.doc.kind).secondary or any(_overlaps(other, c) for c in chosen):
                    continue
                chosen[i] = other
                decision.replaced_secondary = True
                break
    decision.chosen = chosen
    if set(words(part.text)) & caveat_words():
        candidates = [
            (float(decision.probabilities[i]), part.units[i])
            for i in order
            if kind_info(part.units[i].doc.kind).caveats
        ]
        for _p, unit in candidates:
            if not any(_overlaps(unit, c) or _redundant(unit, c) for c in chosen):
                decision.caveat = unit
                break


def _names_a_secondary_kind(part: PartEvidence) -> bool:
    from assistant.kinds import kinds

    asked = set(terms(part.text))
    return any(info.secondary and asked & set(terms(info.label)) for info in kinds().values())


def _overlaps(a: Unit, b: Unit) -> bool:
    if a.doc.id != b.doc.id:
        return False
    a_start, a_end = a.chunk.start + a.quote_start, a.chunk.start + a.end
    b_start, b_end = b.chunk.start + b.quote_start, b.chunk.start + b.end
    return a_start < b_end and b_start < a_end


def _redundant(a: Unit, b: Unit) -> bool:
    if not a.terms or not b.terms:
        return False
    return len(a.terms & b.terms) / len(a.terms | b.terms) >= REDUNDANT_OVERLAP

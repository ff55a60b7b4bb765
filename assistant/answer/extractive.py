"""The embedded default answerer: quotes and cites the units the decision chose.

No language model: every answer sentence is a verbatim span of a chunk, so it cannot say what
the material does not. It orders the quotes (each part's best first, the rest in reading order),
adds what the study cannot show to "does it work?" answers, and opens a yes/no answer with
"No." only when the best quote itself negates what was asked.
"""

from __future__ import annotations

import re

from assistant.answer.types import Claim, Draft, Quote
from assistant.decision import DecisionModel
from assistant.evidence import key_words
from assistant.policy import Decision
from assistant.snapshot import Snapshot, Unit
from assistant.text import NEGATIONS, stem, words

_YES_NO_START = re.compile(r"^\s*(Yes|No)\b[,.]")
NEGATION_SCOPE = 4  # words after a negation that it denies


class ExtractiveAnswerer:
    name = "extractive"

    def __init__(self, model: DecisionModel) -> None:
        self.model = model

    def answer(self, decision: Decision, snapshot: Snapshot) -> Draft:
        units: list[Unit] = []
        for part in decision.parts:
            if not part.answered:
                continue
            first, rest = part.chosen[:1], part.chosen[1:]
            rest.sort(key=lambda u: (u.doc.id != first[0].doc.id, u.doc.id, u.chunk.ordinal, u.start))
            ordered = first + rest
            if part.caveat is not None:
                # "Does it work?": what the study cannot show comes with the best evidence.
                ordered = [part.caveat, *ordered] if part.part.answer_type == "yes_no" else [*ordered, part.caveat]
            units.extend(u for u in ordered if u not in units)
        if not units:
            return Draft(claims=[], refused=True)
        lead = None
        answered = [p for p in decision.parts if p.answered]
        if len(decision.parts) == 1 and answered[0].part.answer_type == "yes_no" and not decision.personal:
            lead = yes_no_lead(answered[0].part.text, units[0].quote)
        claims = [Claim(text=u.quote, quotes=[Quote(u.chunk.id, u.quote_start, u.end)]) for u in units]
        unit = units[0]
        opening = _YES_NO_START.match(unit.quote) if lead else None
        after = unit.quote[opening.end() :] if opening and opening.group(0).endswith(".") else ""
        if after.strip():
            # The lead is the quote's own "No.": the quote goes on from after it, not "No. No. ...".
            start = unit.end - len(after.lstrip())
            claims[0] = Claim(text=unit.chunk.text[start : unit.end], quotes=[Quote(unit.chunk.id, start, unit.end)])
        return Draft(claims=claims, lead=lead)


def yes_no_lead(question: str, quote: str) -> str | None:
    """ "No." when the quote denies what the question asks about ("Was there a placebo group?" /
    "There was no placebo group"); "Yes."/"No." when the quote itself opens with it."""
    opening = _YES_NO_START.match(quote)
    if opening:
        return f"{opening.group(1)}."
    asked = {stem(w) for w in key_words(question)}
    if not asked or set(words(question)) & NEGATIONS:
        return None
    sequence = words(quote)
    for i, word in enumerate(sequence):
        if word in NEGATIONS or word.endswith("n't"):
            scope = {stem(w) for w in sequence[i + 1 : i + 1 + NEGATION_SCOPE]}
            if scope & asked:
                return "No."
    return None

"""From a decision and verified sentences to the Answer every interface shows."""

from __future__ import annotations

import time
from typing import Any

from assistant.answer.types import Answer, AnswerSentence, Citation, Draft
from assistant.kinds import kind_label
from assistant.policy import Decision
from assistant.site import Site
from assistant.snapshot import Snapshot

REFUSAL = "The study material I answer from does not cover that, so I can't answer it."
NEWS_NOTE = "A news article about this study words this point differently; this answer follows the primary source."
COVERAGE_TITLES = 6  # documents named in the "what the material covers" note


def coverage_note(snapshot: Snapshot) -> str:
    """What the material covers, made from the indexed documents themselves."""
    docs = sorted(snapshot.corpus.docs.values(), key=lambda d: (kind_label(d.kind), d.title))
    named = [f"{d.title} ({kind_label(d.kind)})" for d in docs[:COVERAGE_TITLES]]
    more = len(docs) - len(named)
    return "It answers from: " + "; ".join(named) + (f"; and {more} more documents." if more > 0 else ".")


def safety_answer(
    asked: str, audience: str, safety: str, timings: dict[str, float], started: float, site: Site | None = None
) -> Answer:
    site = site or Site()
    timings["total"] = (time.perf_counter() - started) * 1000
    return Answer(
        question=asked,
        audience=audience,
        sentences=[],
        citations=[],
        preamble=site.emergency if safety == "emergency" else site.crisis,
        safety=safety,
        timings_ms=timings,
    )


def present(
    *,
    asked: str,
    audience: str,
    safety: str | None,
    draft: Draft,
    decision: Decision,
    sentences: list[AnswerSentence],
    citations: list[Citation],
    dropped: list[dict[str, Any]],
    answerer: str,
    standalone: str,
    snapshot: Snapshot,
    timings: dict[str, float],
    started: float,
    site: Site | None = None,
) -> Answer:
    site = site or Site()
    answer = Answer(
        question=asked,
        audience=audience,
        sentences=sentences,
        citations=citations,
        lead=draft.lead if sentences else None,
        safety=safety,
        dropped=dropped,
        answerer=answerer,
        standalone_question=standalone if standalone != asked else None,
    )
    if not sentences:
        answer.refused = True
        answer.citations = []
        answer.preamble = f"{REFUSAL} {coverage_note(snapshot)}"
    else:
        answer.uncovered = decision.uncovered
        for part in answer.uncovered:
            answer.notices.append(f"The material does not say this: “{part.rstrip('?.')}?”")
        answer.notices.extend(draft.notes)
        if any(p.replaced_secondary for p in decision.parts) and NEWS_NOTE not in answer.notices:
            answer.notices.append(NEWS_NOTE)
    if safety == "medical_advice":
        answer.preamble = site.advice + ("\n\n" + answer.preamble if answer.preamble else "")
    if audience == "patient":
        answer.notices.append(site.footer)
    timings["total"] = (time.perf_counter() - started) * 1000
    answer.timings_ms = timings
    return answer

"""Every answer sentence must rest on verbatim quotes that contain its numbers."""

from __future__ import annotations

from typing import Any

from assistant.answer.types import AnswerSentence, Citation, Claim, Draft, Quote
from assistant.documents import KIND_LABELS
from assistant.retrieval import Corpus
from assistant.text import numbers, terms

MIN_SUPPORT = 0.5


def claim_problem(claim: Claim, corpus: Corpus) -> str | None:
    """Why a claim cannot stand, or None when it is supported."""
    if not claim.text.strip():
        return "empty sentence"
    if not claim.quotes:
        return "no citation"
    quoted = []
    for quote in claim.quotes:
        chunk = corpus.by_id.get(quote.chunk_id)
        if chunk is None:
            return f"citation names an unknown passage {quote.chunk_id}"
        if not 0 <= quote.start < quote.end <= len(chunk.text):
            return "quote is outside its passage"
        quoted.append(chunk.text[quote.start : quote.end])
    joined = " ".join(quoted)
    missing = [n for n in numbers(claim.text) if n not in numbers(joined)]
    if missing:
        return "numbers not in the cited quote: " + ", ".join(missing)
    claim_terms = set(terms(claim.text))
    if claim_terms:
        support = len(claim_terms & set(terms(joined))) / len(claim_terms)
        if support < MIN_SUPPORT:
            return f"cited quote supports too little of the sentence ({support:.0%})"
    return None


def verify(draft: Draft, corpus: Corpus) -> tuple[list[AnswerSentence], list[Citation], list[dict[str, Any]]]:
    """Keep supported claims, number their quotes as citations, report what was dropped."""
    dropped = list(draft.dropped)
    sentences: list[AnswerSentence] = []
    citations: list[Citation] = []
    index: dict[Quote, int] = {}
    for claim in draft.claims:
        problem = claim_problem(claim, corpus)
        if problem:
            dropped.append({"sentence": claim.text, "reason": problem})
            continue
        cites = []
        for quote in claim.quotes:
            if quote not in index:
                index[quote] = len(citations) + 1
                citations.append(_citation(index[quote], quote, corpus))
            if index[quote] not in cites:
                cites.append(index[quote])
        sentences.append(AnswerSentence(claim.text, cites))
    return sentences, citations, dropped


def _citation(number: int, quote: Quote, corpus: Corpus) -> Citation:
    chunk = corpus.by_id[quote.chunk_id]
    doc = corpus.docs[chunk.doc_id]
    return Citation(
        id=number,
        doc_id=doc.id,
        title=doc.title,
        kind=doc.kind,
        kind_label=KIND_LABELS.get(doc.kind, doc.kind),
        source=doc.source,
        url=doc.url,
        section=chunk.section or None,
        page=chunk.page,
        quote=chunk.text[quote.start : quote.end],
        chunk_id=chunk.id,
        quote_start=quote.start,
        quote_end=quote.end,
        context=chunk.text,
    )

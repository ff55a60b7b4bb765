"""What an answerer returns, and what the pipeline returns to every interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Quote:
    """An exact span of a chunk: ``chunk.text[start:end]``."""

    chunk_id: str
    start: int
    end: int


@dataclass
class Claim:
    """One answer sentence and the quotes it rests on."""

    text: str
    quotes: list[Quote]


@dataclass
class Draft:
    claims: list[Claim]
    lead: str | None = None  # "Yes." / "No." before the first claim
    notes: list[str] = field(default_factory=list)  # shown after the answer, not factual claims
    refused: bool = False
    dropped: list[dict[str, Any]] = field(default_factory=list)
    answerer: str = "extractive"


@dataclass
class Citation:
    id: int
    doc_id: str
    title: str
    kind: str
    kind_label: str
    source: str
    url: str | None
    section: str | None
    page: int | None
    quote: str
    chunk_id: str
    quote_start: int
    quote_end: int
    context: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "doc_id": self.doc_id,
            "title": self.title,
            "kind": self.kind,
            "kind_label": self.kind_label,
            "source": self.source,
            "url": self.url,
            "section": self.section,
            "page": self.page,
            "quote": self.quote,
            "chunk_id": self.chunk_id,
            "quote_start": self.quote_start,
            "quote_end": self.quote_end,
            "context": self.context,
        }


@dataclass
class AnswerSentence:
    text: str
    cites: list[int]


@dataclass
class Answer:
    question: str
    audience: str
    sentences: list[AnswerSentence]
    citations: list[Citation]
    lead: str | None = None
    notices: list[str] = field(default_factory=list)
    preamble: str | None = None
    refused: bool = False
    safety: str | None = None
    dropped: list[dict[str, Any]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    answerer: str = "extractive"
    standalone_question: str | None = None
    uncovered: list[str] = field(default_factory=list)  # parts of the question the material does not answer

    @property
    def body(self) -> str:
        parts = [f"{s.text} " + "".join(f"[{n}]" for n in s.cites) for s in self.sentences]
        text = " ".join(parts)
        if self.lead:
            text = f"{self.lead} {text}" if text else self.lead
        return text.strip()

    @property
    def body_plain(self) -> str:
        """The answer sentences without markers (for reading-grade measurement)."""
        return " ".join(s.text for s in self.sentences)

    @property
    def text(self) -> str:
        blocks = [b for b in (self.preamble, self.body, *self.notices) if b]
        return "\n\n".join(blocks)

    def as_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [c.as_json() for c in self.citations],
            "refused": self.refused,
            "safety": self.safety,
            "dropped": self.dropped,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "answerer": self.answerer,
            "standalone_question": self.standalone_question,
            "uncovered": self.uncovered,
        }

    def render_text(self) -> str:
        lines = [self.text, ""]
        for c in self.citations:
            where = f", {c.section}" if c.section else ""
            page = f", p. {c.page}" if c.page else ""
            lines.append(f"[{c.id}] {c.title} ({c.kind_label}{where}{page})")
            lines.append(f'    "{c.quote}"')
            if c.url:
                lines.append(f"    {c.url}")
        return "\n".join(lines).rstrip()

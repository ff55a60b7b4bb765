"""Units of evidence: the spans of a chunk that can be quoted on their own.

A unit is one sentence, one "Field: value" line of a registry-style record, or one list item.
A very short sentence ("No, not yet.") is joined with the one after it, since alone it says
little. Ingest embeds every unit (pooled from the chunk's own pass through the model) and the
answerer scores and quotes the same units, so both sides share this one definition.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.chunking import split_sentences

# A line that starts a new item: "Enrollment: 64 participants", "- item", "1. item".
_ITEM_LINE = re.compile(r"^\s*(?:[-*•]\s+|\d{1,2}[.)]\s+|[A-Z][^:\n]{0,60}:\s+\S)")
_WORD = re.compile(r"[A-Za-z0-9]+")
MIN_UNIT_WORDS = 5
# Starts that lean on the sentence before ("These side effects went away...").
LEANING_START = re.compile(
    r"^(These|This|It|They|Those|That|He|She|His|Her|Their|Its|So|But|Such|The other|Both|Neither)\b"
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    field: bool = False  # a "Field: value" line
    leans: bool = False  # its subject is in the span before it


def _is_field(line: str) -> bool:
    return bool(_ITEM_LINE.match(line)) and ":" in line[:62] and not line.lstrip().startswith(("-", "*", "•"))


def _lines(text: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    """Split one sentence at line breaks that start a new item ("Phase: 2", "- item")."""
    cuts = [start]
    for match in re.finditer(r"\n", text[start:end]):
        line_start = start + match.end()
        if _ITEM_LINE.match(text[line_start:end]):
            cuts.append(line_start)
    cuts.append(end)
    out = []
    for s, e in itertools.pairwise(cuts):
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e, _is_field(text[s:e])))
    return out


def unit_spans(text: str) -> list[Span]:
    """The units of ``text`` (a chunk's text) as character spans, in reading order."""
    pieces: list[tuple[int, int, bool]] = []
    for sentence in split_sentences(text):
        pieces.extend(_lines(text, sentence.start, sentence.end))
    spans: list[Span] = []
    i = 0
    while i < len(pieces):
        start, end, field = pieces[i]
        if not field and len(_WORD.findall(text[start:end])) < MIN_UNIT_WORDS and i + 1 < len(pieces):
            i += 1
            end = pieces[i][1]
        short = not field and len(_WORD.findall(text[start:end])) < MIN_UNIT_WORDS
        if short and spans and not spans[-1].field:
            # A short last sentence ("Three people did not.") belongs to the one before it.
            previous = spans.pop()
            spans.append(Span(previous.start, end, False, previous.leans))
        else:
            spans.append(Span(start, end, field, bool(LEANING_START.match(text[start:end])) and bool(spans)))
        i += 1
    return spans


def quote_start(spans: list[Span], i: int) -> int:
    """Where unit ``i``'s quote starts: with the unit before it when it leans on that one."""
    return spans[i - 1].start if spans[i].leans and i > 0 else spans[i].start


def embed_units(embedder: Any, chunks: Sequence[Any]) -> tuple[np.ndarray, dict[str, tuple[list[tuple[int, int]], np.ndarray]]]:
    """The chunks' vectors, and per chunk its unit spans with two vectors per unit: the unit in its
    chunk's context (pooled from the chunk's own pass) and the unit's quote embedded alone.

    Rows of each array: the n context vectors, then the n quote vectors.
    """
    spans = [unit_spans(c.text) for c in chunks]
    heads = [len(c.embed_text) - len(c.text) for c in chunks]
    whole, pooled = embedder.embed_with_spans(
        [c.embed_text for c in chunks],
        [[(u.start + h, u.end + h) for u in s] for s, h in zip(spans, heads, strict=True)],
    )
    quotes = [c.text[quote_start(s, i) : u.end] for c, s in zip(chunks, spans, strict=True) for i, u in enumerate(s)]
    alone = embedder.embed(quotes) if quotes else np.zeros((0, whole.shape[1] if len(whole) else 384), dtype=np.float32)
    out: dict[str, tuple[list[tuple[int, int]], np.ndarray]] = {}
    offset = 0
    for chunk, s, context in zip(chunks, spans, pooled, strict=True):
        n = len(s)
        out[chunk.id] = ([(u.start, u.end) for u in s], np.vstack([context, alone[offset : offset + n]]))
        offset += n
    return whole, out

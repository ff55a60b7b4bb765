"""Sentence-aligned chunks that keep their section, offsets and page, and fit the model window."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from assistant.documents import Document
from assistant.kinds import kind_label


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # offset into the text it was split from
    end: int


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    ordinal: int
    text: str  # == document.text[start:end]
    start: int
    end: int
    headings: tuple[str, ...]
    page: int | None
    embed_text: str

    @property
    def section(self) -> str:
        return " › ".join(self.headings)


# Words whose trailing period does not end a sentence ("Dr. Bydon", "e.g. in", "No. 5").
ABBREVIATIONS = frozenset(
    [
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "eg",
        "ie",
        "no",
        "nos",
        "fig",
        "figs",
        "al",
        "inc",
        "ltd",
        "co",
        "corp",
        "approx",
        "ca",
        "cf",
        "u.s",
        "u.k",
        "m.d",
        "ph.d",
        "b.s",
        "m.s",
        "d.o",
        "r.n",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "dept",
        "vol",
        "vols",
        "p",
        "pp",
        "ed",
        "eds",
        "est",
        "min",
        "max",
        "mt",
        "ft",
        "gen",
        "gov",
        "rev",
        "sen",
        "rep",
        "resp",
        "viz",
    ]
)
# Sentence-ending punctuation, closing quotes or brackets, space, then what can start a sentence.
_BOUNDARY = re.compile(r"""([.!?]+)(["'”’)\]]*)(\s+)(?=["'“‘(\[]?[A-Z0-9])""")
_LAST_WORD = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def split_sentences(text: str) -> list[Sentence]:
    """Sentences with offsets; survives "Dr.", "e.g.", "No. 5", initials and decimals.

    Rule-based like pysbd and equal to it on the shipped corpus (a test checks), but fast
    enough not to slow ingest: pysbd took a fifth of the embedding time here.
    """
    out: list[Sentence] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group(1) == ".":
            word = _LAST_WORD.search(text[start : match.start(1)])
            if word and (word.group(1).lower() in ABBREVIATIONS or len(word.group(1)) == 1):
                continue
        _append(out, text, start, match.end(2))
        start = match.end(3)
    _append(out, text, start, len(text))
    return out


def _append(out: list[Sentence], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        offset = start + (len(piece) - len(piece.lstrip()))
        out.append(Sentence(stripped, offset, offset + len(stripped)))


def _header(doc: Document, headings: tuple[str, ...], title: str | None = None) -> str:
    # The kind label ("News article", "Registry") lets a question name the kind of source.
    label = kind_label(doc.kind)
    return "\n".join([f"{doc.title if title is None else title} ({label})", *headings]) + "\n"


MIN_BODY_TOKENS = 16


def _fitting_header(doc: Document, headings: tuple[str, ...], count_tokens, max_tokens: int) -> tuple[str, tuple[str, ...]]:
    """The header a chunk's vector is computed with, leaving at least MIN_BODY_TOKENS for the text:
    all headings, else the last one, else none and as many words of the title as fit."""
    for kept in (headings, headings[-1:], ()):
        header = _header(doc, kept)
        if max_tokens - count_tokens(header) >= MIN_BODY_TOKENS:
            return header, kept
    words = doc.title.split()
    while words:
        words.pop()
        header = _header(doc, (), " ".join(words))
        if max_tokens - count_tokens(header) >= MIN_BODY_TOKENS:
            return header, ()
    return "", ()


def chunk_document(doc: Document, count_tokens, max_tokens: int, overlap_tokens: int = 0) -> list[Chunk]:
    """Pack whole sentences of one section into chunks of at most ``max_tokens`` model tokens."""
    groups: list[tuple[tuple[str, ...], int | None, list[Sentence]]] = []
    last_end = 0
    for block in doc.blocks:
        sentences = [Sentence(s.text, s.start + block.start, s.end + block.start) for s in split_sentences(block.text)]
        # Blocks of one section share chunks, unless text outside the blocks lies between them
        # (a top-level heading, a repeated title): a chunk would hold it without counting it.
        adjacent = not doc.text[last_end : block.start].strip()
        if groups and groups[-1][0] == block.headings and groups[-1][1] == block.page and adjacent:
            groups[-1][2].extend(sentences)
        else:
            groups.append((block.headings, block.page, sentences))
        last_end = block.start + len(block.text)

    spans: list[tuple[int, int, tuple[str, ...], int | None, str]] = []
    for headings, page, sentences in groups:
        header, headings = _fitting_header(doc, headings, count_tokens, max_tokens)
        budget = max_tokens - count_tokens(header)
        pieces: list[tuple[int, int, int]] = []  # start, end, tokens
        for sentence in sentences:
            pieces.extend(_fit(doc.text, sentence, budget, count_tokens))
        current: list[tuple[int, int, int]] = []
        used = 0
        for piece in pieces:
            if current and used + piece[2] > budget:
                spans.append((current[0][0], current[-1][1], headings, page, header))
                carry: list[tuple[int, int, int]] = []
                carried = 0
                for previous in reversed(current):
                    if carried + previous[2] > overlap_tokens or carried + previous[2] + piece[2] > budget:
                        break
                    carry.insert(0, previous)
                    carried += previous[2]
                current, used = carry, carried
            current.append(piece)
            used += piece[2]
        if current:
            spans.append((current[0][0], current[-1][1], headings, page, header))

    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for ordinal, (start, end, headings, page, header) in enumerate(spans):
        text = doc.text[start:end]
        embed_text = header + text
        key = f"{doc.id}\x00{doc.kind}\x00{doc.audience}\x00{page}\x00{embed_text}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        seen[digest] = seen.get(digest, 0) + 1
        chunk_id = f"{doc.id}:{digest}" + (f"-{seen[digest]}" if seen[digest] > 1 else "")
        chunks.append(Chunk(chunk_id, doc.id, ordinal, text, start, end, headings, page, embed_text))
    return chunks


def _fit(text: str, sentence: Sentence, budget: int, count_tokens) -> list[tuple[int, int, int]]:
    """One sentence as (start, end, tokens) pieces, split at word boundaries if it is too long."""
    tokens = count_tokens(sentence.text)
    if tokens <= budget:
        return [(sentence.start, sentence.end, tokens)]
    pieces: list[tuple[int, int, int]] = []
    words = [(m.start() + sentence.start, m.end() + sentence.start) for m in re.finditer(r"\S+", sentence.text)]
    piece_start: int | None = None
    piece_end = 0
    used = 0
    for start, end in words:
        word_tokens = count_tokens(text[start:end])
        if piece_start is not None and used and used + word_tokens > budget:
            pieces.append((piece_start, piece_end, used))
            piece_start, used = None, 0
        if word_tokens > budget:  # a single absurd "word": cut by characters, every piece within budget
            if piece_start is not None:
                pieces.append((piece_start, piece_end, count_tokens(text[piece_start:piece_end])))
                piece_start, used = None, 0
            pieces.extend(_cut(text, start, end, budget, count_tokens))
            continue
        if piece_start is None:
            piece_start = start
        piece_end = end
        used += word_tokens
    if piece_start is not None:
        pieces.append((piece_start, piece_end, count_tokens(text[piece_start:piece_end])))
    return pieces


def _cut(text: str, start: int, end: int, budget: int, count_tokens) -> list[tuple[int, int, int]]:
    """``text[start:end]`` (one word) in pieces of at most ``budget`` tokens, cut by characters."""
    pieces = []
    while start < end:
        stop = min(end, start + max(budget, 1))
        while stop - start > 1 and count_tokens(text[start:stop]) > budget:
            stop = start + (stop - start) // 2
        pieces.append((start, stop, count_tokens(text[start:stop])))
        start = stop
    return pieces

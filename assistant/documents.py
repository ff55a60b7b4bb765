"""Documents and their loaders: Markdown or text with YAML front matter, HTML, PDF."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.kinds import kinds
from assistant.settings import DEFAULT_MAX_FILE_MB

KINDS = tuple(kinds())  # the shipped kinds (data/kinds.yaml); settings may add more
AUDIENCES = ("patient", "clinician", "both")
SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf")
MB = 1024 * 1024
MAX_ID_CHARS = 100
NAME_HASH_CHARS = 8  # of a file name's sha256, in an id made from a name ASCII cannot spell

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.DOTALL)
_MD_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_DATE_LINE_RE = re.compile(
    r"^(January|February|March|April|May|June|July|August|September|October|November|December)"
    r"\s+\d{1,2},\s+\d{4}$"
)


class LoadError(Exception):
    """A file that cannot become a document; the message says why."""


@dataclass(frozen=True)
class Block:
    """A paragraph of a document: its text is ``document.text[start:start + len(text)]``."""

    text: str
    start: int
    headings: tuple[str, ...]
    page: int | None = None


@dataclass
class Document:
    id: str
    title: str
    kind: str
    audience: str
    date: str
    source: str
    url: str | None
    text: str
    blocks: list[Block]
    path: str
    content_hash: str
    fields: dict[str, str] = field(default_factory=dict)
    note: str | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "audience": self.audience,
            "date": self.date,
            "source": self.source,
            "url": self.url,
            "path": self.path,
            "fields": self.fields,
            "note": self.note,
        }


def slugify(text: str) -> str:
    """An id from a file name: its letters and digits in ASCII (accents dropped, "Étude" gives
    "etude"). A name with letters ASCII cannot spell ("研究", "دراسة") also gets a short hash of the
    whole name, so two such files get two ids, the same at every ingest."""
    name = unicodedata.normalize("NFC", text)
    decomposed = unicodedata.normalize("NFKD", name)
    slug = re.sub(r"[^a-z0-9]+", "-", decomposed.encode("ascii", "ignore").decode().lower()).strip("-")
    if not any(ch.isalnum() and not ch.isascii() for ch in decomposed):
        return slug[:MAX_ID_CHARS] or "document"
    digest = hashlib.sha256(name.encode()).hexdigest()[:NAME_HASH_CHARS]
    return f"{(slug or 'document')[: MAX_ID_CHARS - NAME_HASH_CHARS - 1]}-{digest}"


def load_document(path: Path, root: Path | None = None, max_mb: int = DEFAULT_MAX_FILE_MB) -> Document:
    """Load one file; raise LoadError with a reason a person can act on.

    A file over ``max_mb`` is refused before it is read (and a PDF that holds more text than
    that, page by page), so memory stays bounded whatever the file's size."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(f"unsupported file type {suffix or '(none)'}; supported: " + ", ".join(SUPPORTED_SUFFIXES))
    try:
        size = path.stat().st_size
        if size > max_mb * MB:
            raise LoadError(_too_large(size, max_mb))
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    if not raw.strip():
        raise LoadError("empty file")
    rel = _relative(path, root)
    content_hash = hashlib.sha256(raw).hexdigest()
    if suffix == ".pdf":
        text, blocks = _pdf_blocks(raw, max_mb)
        meta: dict[str, Any] = {}
        title_hint = None
    else:
        decoded = _decode(raw)
        meta, body = _split_front_matter(decoded)
        if suffix in (".html", ".htm"):
            body, title_hint = _html_to_markdown(body)
            text, blocks = _markdown_blocks(body)
            title_hint = title_hint or _markdown_title(body)
        elif suffix == ".txt":
            text, blocks = _plain_blocks(body, meta.get("title"))
            title_hint = None
        else:
            text, blocks = _markdown_blocks(body)
            title_hint = _markdown_title(body)
    if not blocks:
        raise LoadError("no text found")
    return _make_document(meta, text, blocks, rel, path, content_hash, title_hint)


def _too_large(size: int, max_mb: int, what: str = "") -> str:
    return f"too large ({size / MB:.1f} MB{what} > limit {max_mb} MB; setting ASSISTANT_MAX_FILE_MB)"


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.name


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:4096]:
        raise LoadError("binary data, not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"not UTF-8 text (bad byte at offset {exc.start})") from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---"):
        return {}, text
    match = _FRONT_MATTER_RE.match(text + ("\n" if not text.endswith("\n") else ""))
    if not match:
        raise LoadError("front matter starts with '---' but has no closing '---' line")
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 2})" if where is not None else ""
        raise LoadError(f"front matter is not valid YAML{line}") from exc
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise LoadError("front matter must be a mapping of keys to values")
    return meta, text[match.end() :]


def _make_document(
    meta: dict[str, Any],
    text: str,
    blocks: list[Block],
    rel: str,
    path: Path,
    content_hash: str,
    title_hint: str | None,
) -> Document:
    known = {"id", "title", "kind", "audience", "date", "source", "url", "trial", "note"}
    unknown = sorted(set(meta) - known)
    if unknown:
        raise LoadError("unknown front matter keys: " + ", ".join(map(str, unknown)))
    if meta:
        missing = [k for k in ("id", "title", "kind", "audience") if not meta.get(k)]
        if missing:
            raise LoadError("front matter is missing " + ", ".join(missing))
    doc_id = str(meta.get("id") or slugify(Path(rel).with_suffix("").as_posix()))
    if not _ID_RE.match(doc_id):
        raise LoadError(f"id {doc_id!r} must be lowercase letters, digits, '.', '_' or '-'")
    first_heading = next((b.headings[0] for b in blocks if b.headings), None)
    title = _one_line(meta.get("title") or title_hint or first_heading or path.stem.replace("-", " ").replace("_", " "))
    kind = str(meta.get("kind") or "document")
    if kind not in kinds():
        raise LoadError(
            f"kind {kind!r} is not one of: " + ", ".join(kinds()) + " (add your own with ASSISTANT_EXTRA_KINDS)"
        )
    audience = str(meta.get("audience") or "both")
    if audience not in AUDIENCES:
        raise LoadError(f"audience {audience!r} is not one of: " + ", ".join(AUDIENCES))
    date = meta.get("date")
    if date is None:
        date = dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
    url = meta.get("url")
    if url is not None and not (isinstance(url, str) and re.match(r"^https?://\S+$", url)):
        raise LoadError(f"url {url!r} must be an http(s) address")
    fields = meta.get("trial") or {}
    if not isinstance(fields, dict) or not all(isinstance(v, (str, int, float)) for v in fields.values()):
        raise LoadError("trial must be a mapping of field names to text")
    return Document(
        id=doc_id,
        title=title,
        kind=kind,
        audience=audience,
        date=str(date),
        source=_one_line(meta.get("source") or rel),
        url=url,
        text=text,
        blocks=blocks,
        path=rel,
        content_hash=content_hash,
        fields={str(k): str(v) for k, v in fields.items()},
        note=_one_line(meta["note"]) if meta.get("note") else None,
    )


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _paragraphs(text: str) -> list[tuple[int, str]]:
    """(start, paragraph) for each blank-line separated paragraph, stripped, offsets kept."""
    out = []
    for match in re.finditer(r"\S(?:.*?)(?=\n[ \t]*\n|\Z)", text, flags=re.DOTALL):
        para = match.group(0).rstrip()
        out.append((match.start(), para))
    return out


def _section(path: list[tuple[int, str]]) -> tuple[str, ...]:
    # The H1 is the document's title; the section path starts below it.
    return tuple(h for level, h in path if level > 1)


def _markdown_blocks(body: str) -> tuple[str, list[Block]]:
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    for start, para in _paragraphs(body):
        lines = para.split("\n")
        offset = start
        pending: list[str] = []
        pending_start = offset
        for line in lines:
            heading = _MD_HEADING_RE.match(line.strip())
            if heading:
                if pending:
                    blocks.append(Block("\n".join(pending), pending_start, _section(path)))
                    pending = []
                level = len(heading.group(1))
                path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, heading.group(2).strip())]
            else:
                if not pending:
                    pending_start = offset
                pending.append(line)
            offset += len(line) + 1
        if pending:
            blocks.append(Block("\n".join(pending).rstrip(), pending_start, _section(path)))
    return body, [b for b in blocks if b.text.strip()]


def _markdown_title(body: str) -> str | None:
    match = re.search(r"^#[ \t]+(.+?)[ \t#]*$", body, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def _is_plain_heading(para: str, title: str | None) -> bool:
    if "\n" in para or len(para.split()) > 10 or _DATE_LINE_RE.match(para):
        return False
    if title and para.strip() == str(title).strip():
        return True
    return not para.rstrip().endswith((".", "!", "?", ":", ";", ",", '"', "”", ")")) and para[:1].isupper()


def _plain_blocks(body: str, title: object) -> tuple[str, list[Block]]:
    """Paragraphs of plain text; short unpunctuated lines are headings.

    A run of two or more heading lines opens a new top-level section (the first line)
    with its subsection; a single heading line replaces the deepest level.
    """
    title_text = str(title).strip() if title else None
    paras = [(start, para, _is_plain_heading(para, title_text)) for start, para in _paragraphs(body)]
    blocks: list[Block] = []
    path: list[str] = []
    i = 0
    while i < len(paras):
        if not paras[i][2]:
            start, para, _ = paras[i]
            blocks.append(Block(para, start, tuple(path)))
            i += 1
            continue
        run = []
        while i < len(paras) and paras[i][2]:
            run.append(paras[i][1].strip())
            i += 1
        run = [h for h in run if h != title_text]
        if len(run) >= 2:
            path = run[:2]
        elif run:
            path = [*path[:-1], run[0]]
    return body, blocks


def _html_to_markdown(html: str) -> tuple[str, str | None]:
    import trafilatura

    try:
        extracted = trafilatura.extract(
            html, output_format="markdown", include_comments=False, include_tables=True, favor_precision=True
        )
        meta = trafilatura.extract_metadata(html)
    except Exception as exc:  # trafilatura raises many kinds on broken markup
        raise LoadError(f"cannot parse HTML: {exc}") from exc
    if not extracted or not extracted.strip():
        raise LoadError("no main text found in HTML")
    title = meta.title if meta is not None and meta.title else None
    return extracted, title


def _pdf_blocks(raw: bytes, max_mb: int) -> tuple[str, list[Block]]:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    pages: list[str] = []
    size = 0
    try:
        for page in PdfReader(io.BytesIO(raw)).pages:
            pages.append(page.extract_text() or "")
            size += len(pages[-1].encode())
            if size > max_mb * MB:  # a small PDF can unpack into far more text
                raise LoadError(_too_large(size, max_mb, " of text"))
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"cannot read PDF: {exc}") from exc
    parts: list[str] = []
    blocks: list[Block] = []
    offset = 0
    for number, page_text in enumerate(pages, start=1):
        # PDF text has hard line breaks inside sentences; keep paragraphs, join lines.
        normalized = re.sub(r"[ \t]*\n(?![ \t]*\n)[ \t]*", " ", page_text.replace("\r", "")).strip()
        normalized = re.sub(r"\n\s*\n+", "\n\n", normalized)
        if not normalized:
            continue
        for start, para in _paragraphs(normalized):
            blocks.append(Block(para, offset + start, (), number))
        parts.append(normalized)
        offset += len(normalized) + 2
    return "\n\n".join(parts), blocks

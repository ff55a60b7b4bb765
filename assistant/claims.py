"""The claim suites: sentences an LLM might write while citing a passage, labelled faithful or not.
`assistant eval --claims` reports the verifier's confusion matrix on them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from assistant.answer.verify import Verifier, _neighbours


@dataclass
class ClaimCase:
    id: str
    doc: str
    quote: str
    claim: str
    faithful: bool
    edit: str


def load_claims(path: Path) -> list[ClaimCase]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return [ClaimCase(**{k: item[k] for k in ("id", "doc", "quote", "claim", "faithful", "edit")}) for item in raw]


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def locate(pipeline: Any, case: ClaimCase) -> tuple[str, str, str]:
    """The quote as the index holds it, the context a pronoun in it may need, and its topic
    (document title and section headings)."""
    wanted = _squash(case.quote)
    for chunk in pipeline.snapshot.corpus.chunks:
        if chunk.doc_id != case.doc:
            continue
        squashed = _squash(chunk.text)
        if wanted in squashed:
            # Map back to offsets in the chunk's own text (whitespace may differ).
            pattern = r"\s+".join(re.escape(w) for w in wanted.split(" "))
            match = re.search(pattern, chunk.text)
            if match:
                doc = pipeline.snapshot.corpus.docs[chunk.doc_id]
                return (
                    chunk.text[match.start() : match.end()],
                    _neighbours(chunk.text, match.start(), match.end()),
                    " ".join([doc.title, *chunk.headings]),
                )
    return case.quote, "", ""  # across a chunk boundary: judged on the quote alone


def evaluate_claims(pipeline: Any, cases: list[ClaimCase], word_support: float | None = None) -> dict[str, Any]:
    verifier = Verifier(pipeline.snapshot, pipeline._matcher(pipeline.snapshot), word_support=word_support)
    rows = []
    for case in cases:
        quote, context, topic = locate(pipeline, case)
        problem = verifier.problem(case.claim, quote, context, topic, case.doc)
        rows.append({"id": case.id, "edit": case.edit, "faithful": case.faithful, "kept": problem is None, "reason": problem})
    return summarize_claims(rows)


def summarize_claims(rows: list[dict[str, Any]]) -> dict[str, Any]:
    false_shown = [r for r in rows if not r["faithful"] and r["kept"]]
    false_dropped = [r for r in rows if not r["faithful"] and not r["kept"]]
    faithful_kept = [r for r in rows if r["faithful"] and r["kept"]]
    faithful_dropped = [r for r in rows if r["faithful"] and not r["kept"]]
    faithful = len(faithful_kept) + len(faithful_dropped)
    by_edit: dict[str, dict[str, int]] = {}
    for r in rows:
        entry = by_edit.setdefault(r["edit"], {"claims": 0, "kept": 0})
        entry["claims"] += 1
        entry["kept"] += r["kept"]
    return {
        "claims": len(rows),
        "false_shown": len(false_shown),
        "false_dropped": len(false_dropped),
        "faithful_kept": len(faithful_kept),
        "faithful_dropped": len(faithful_dropped),
        "faithful_kept_rate": round(len(faithful_kept) / faithful, 4) if faithful else 1.0,
        "by_edit": by_edit,
        "rows": rows,
    }

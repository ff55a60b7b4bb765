"""Thumbs up/down, appended one JSON line per vote: no IP, no user agent."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from pathlib import Path
from typing import Any


class FeedbackStore:
    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    def record(self, question: str, answer: str, citations: list[dict[str, Any]], vote: str) -> bool:
        if not self.enabled:
            return False
        if vote not in ("up", "down"):
            raise ValueError("vote must be 'up' or 'down'")
        entry = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "vote": vote,
            "question": question,
            "answer": answer,
            "citations": [
                {k: c.get(k) for k in ("id", "doc_id", "title", "kind", "section", "page", "quote")} for c in citations
            ],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        # O_APPEND plus an exclusive lock: concurrent votes never interleave or overwrite.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return True

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

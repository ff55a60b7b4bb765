"""The feedback store: append-only lines, no IP or user agent, and a setting that turns it off."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from assistant.feedback import FeedbackStore

CITATIONS = [
    {
        "id": 1,
        "doc_id": "d",
        "title": "T",
        "kind": "faq",
        "section": None,
        "page": None,
        "quote": "q",
        "context": "long text not stored",
        "chunk_id": "c",
    }
]


def test_votes_are_appended_without_identifying_data(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    assert store.record("Q1?", "A1 [1]", CITATIONS, "up")
    assert store.record("Q2?", "A2 [1]", CITATIONS, "down")
    records = store.read()
    assert [r["vote"] for r in records] == ["up", "down"]
    assert set(records[0]) == {"time", "vote", "question", "answer", "citations"}
    assert set(records[0]["citations"][0]) == {"id", "doc_id", "title", "kind", "section", "page", "quote"}
    with pytest.raises(ValueError):
        store.record("Q", "A", [], "meh")


def test_concurrent_votes_never_interleave(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    threads = [threading.Thread(target=store.record, args=(f"Q{i}" * 500, "A", CITATIONS, "up")) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / "feedback.jsonl").read_text().splitlines()
    assert len(lines) == 20 and all(json.loads(line)["vote"] == "up" for line in lines)


def test_the_setting_turns_feedback_off(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl", enabled=False)
    assert store.record("Q", "A", CITATIONS, "up") is False
    assert not (tmp_path / "feedback.jsonl").exists()

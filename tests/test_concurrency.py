"""The model and its tokenizer shared by many threads: token counts, embeddings, an ingest and
questions at once must give the same results as one thread alone, with no error.

Before the fix, one embed call in about eight failed ("Unable to create tensor") while another
thread counted tokens; these tests make enough calls that such a race shows.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CORPUS, make_settings

pytestmark = pytest.mark.slow

EMBED_CALLS = 48  # at the old failure rate (~1 in 8 calls) the chance of passing is below 0.2%


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = (CORPUS / "celltop-paper-summary.md").read_text(encoding="utf-8").split()
    # Different lengths in one batch: padding is what a concurrent count used to switch off.
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 60))) for _ in range(n)]


def test_counting_and_embedding_in_many_threads_match_one_thread(real_embedder) -> None:  # type: ignore[no-untyped-def]
    texts = _texts(96, seed=7)
    batches = [texts[i : i + 4] for i in range(0, len(texts), 4)]
    expected_vectors = [real_embedder.embed(b) for b in batches]
    expected_counts = [real_embedder.count_tokens(t) for t in texts]

    stop = threading.Event()
    count_errors: list[str] = []

    def count_forever() -> None:
        while not stop.is_set():
            for text, expected in zip(texts, expected_counts, strict=True):
                got = real_embedder.count_tokens(text)
                if got != expected:
                    count_errors.append(f"{got} tokens, expected {expected}")

    def embed(i: int) -> str | None:
        batch = i % len(batches)
        try:
            got = real_embedder.embed(batches[batch])
        except Exception as exc:  # the race raised ValueError from the tokenizer
            return f"call {i}: {type(exc).__name__}: {exc}"
        if not np.allclose(got, expected_vectors[batch], atol=1e-5):
            return f"call {i}: vectors differ from the single-thread ones"
        return None

    counters = [threading.Thread(target=count_forever, daemon=True) for _ in range(2)]
    for thread in counters:
        thread.start()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            problems = [p for p in pool.map(embed, range(EMBED_CALLS)) if p]
    finally:
        stop.set()
        for thread in counters:
            thread.join()
    assert not problems, f"{len(problems)} of {EMBED_CALLS} embed calls failed: {problems[:3]}"
    assert not count_errors, count_errors[:3]


def test_ingest_while_questions_are_answered(pipeline, real_embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An ingest (chunker thread counting, main thread embedding) beside question threads that
    embed queries, all on the one shared model, three times over."""
    from assistant.ingest import ingest

    questions = ["What side effects were seen?", "How many cells were injected?", "Was there a placebo group?"]
    expected = {q: pipeline.ask(q).text for q in questions}
    stop = threading.Event()
    problems: list[str] = []
    answered = [0]

    def ask_forever(offset: int) -> None:
        i = offset
        while not stop.is_set():
            question = questions[i % len(questions)]
            i += 1
            try:
                text = pipeline.ask(question).text
            except Exception as exc:
                problems.append(f"{question}: {type(exc).__name__}: {exc}")
                continue
            if text != expected[question]:
                problems.append(f"{question}: answer changed under load")
            answered[0] += 1

    askers = [threading.Thread(target=ask_forever, args=(i,), daemon=True) for i in range(3)]
    for thread in askers:
        thread.start()
    reports = []
    try:
        for round_ in range(3):
            settings = make_settings(tmp_path / f"data-{round_}")
            reports.append(ingest(settings, real_embedder))
    finally:
        stop.set()
        for thread in askers:
            thread.join(timeout=60)
    assert not problems, problems[:3]
    assert answered[0] >= 3
    for report in reports:
        assert report.documents == 8 and not report.skipped and report.embedded_chunks == report.chunks

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


@pytest.fixture(scope="module")
def uncached_embedder():  # type: ignore[no-untyped-def]
    """The model with no vector cache: every call encodes, so calls race inside the model."""
    from assistant.embeddings import SentenceTransformerEmbedder, packaged_model_dir
    from assistant.settings import PACKAGED_MODEL

    settings = make_settings(Path("unused"))
    return SentenceTransformerEmbedder(packaged_model_dir(), settings.embedding_sha256, PACKAGED_MODEL, cache_entries=0)


@pytest.mark.parametrize("which", ["uncached", "cached"])
def test_counting_and_embedding_in_many_threads_match_one_thread(  # type: ignore[no-untyped-def]
    which, real_embedder, uncached_embedder
) -> None:
    """Uncached: concurrent encodes and token counts. Cached: the same, plus threads reading and
    filling the shared vector cache (the batches overlap, so some texts hit and some miss)."""
    embedder = uncached_embedder if which == "uncached" else real_embedder
    texts = _texts(96, seed=7 if which == "uncached" else 8)
    batches = [texts[i : i + 4] for i in range(0, len(texts), 4)]
    expected_vectors = [uncached_embedder.embed(b) for b in batches]
    expected_counts = [uncached_embedder.count_tokens(t) for t in texts]
    if which == "cached":  # overlapping batches: half of each is in the one before
        batches = [texts[max(0, i - 2) : i + 2] for i in range(2, len(texts), 2)]
        expected_vectors = [uncached_embedder.embed(b) for b in batches]

    stop = threading.Event()
    count_errors: list[str] = []

    def count_forever() -> None:
        while not stop.is_set():
            for text, expected in zip(texts, expected_counts, strict=True):
                got = embedder.count_tokens(text)
                if got != expected:
                    count_errors.append(f"{got} tokens, expected {expected}")

    def embed(i: int) -> str | None:
        batch = i % len(batches)
        try:
            got = embedder.embed(batches[batch])
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


def test_cached_vectors_are_the_encoded_ones_and_a_result_cannot_change_them(  # type: ignore[no-untyped-def]
    real_embedder, uncached_embedder
) -> None:
    texts = [
        "Which side effects did the cached question see?",
        "A second text.",
        "Which side effects did the cached question see?",
    ]
    first = real_embedder.embed(texts)
    assert np.allclose(first, uncached_embedder.embed(texts), atol=1e-5)
    first[:] = 0.0  # the caller owns what it got
    again = real_embedder.embed(texts[::-1])
    assert np.allclose(again, uncached_embedder.embed(texts[::-1]), atol=1e-5)
    assert np.array_equal(again[0], again[2])


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

"""Throughput tooling and the served app under concurrent use: `assistant bench load` end to end
with a tiny configuration, and 20 Gradio chat sessions at once through gradio_client, each
against a real server on 127.0.0.1 with the real index. No timing is asserted: figures are
reported by `assistant bench load` (docs/benchmarks.md), and this machine is shared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from assistant.bench_load import LoadError, QuestionPool, check_url, format_load, load_questions, percentile
from tests.conftest import ROOT, make_settings
from tests.test_api import start_server, stop

FIGURES = ("requests", "answers", "req_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms", "health_p95_ms")


def test_only_a_server_on_127_0_0_1_is_measured() -> None:
    assert check_url("http://127.0.0.1:7860/") == ("http://127.0.0.1:7860", 7860)
    for url in ("http://localhost:7860", "http://10.0.0.2:7860", "https://127.0.0.1:7860", "http://127.0.0.1"):
        with pytest.raises(LoadError):
            check_url(url)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (50.0, 95.0, 99.0)
    assert percentile([3.0], 0.99) == 3.0


def test_questions_come_from_the_package_or_a_yaml_list_and_repeats_are_counted(tmp_path: Path) -> None:
    default = load_questions()
    assert len(default) == 10 and all(b["question"].strip() and b["audience"] for b in default)
    assert any(b["history"] for b in default)  # the follow-up keeps its history
    given = tmp_path / "q.yaml"
    given.write_text('- q: "Where was it done?"\n- question: "Who paid?"\n  audience: clinician\n')
    bodies = load_questions(given)
    assert [(b["question"], b["audience"], b["history"]) for b in bodies] == [
        ("Where was it done?", "patient", []),
        ("Who paid?", "clinician", []),
    ]
    pool = QuestionPool(bodies)
    assert [pool.next()["question"] for _ in range(5)] == ["Where was it done?", "Who paid?"] * 2 + [
        "Where was it done?"
    ]
    assert (pool.sent, pool.repeats) == (5, 3)
    for text in ("{}", "[]", "- answer: 3\n", "- q: '  '\n", "[unclosed", "- q: a\n  history: [3]\n"):
        given.write_text(text)
        with pytest.raises(LoadError):
            load_questions(given)
    with pytest.raises(LoadError):
        load_questions(tmp_path / "missing.yaml")


def _bench_load(*args: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "bench", "load", "--clients", "2", "--seconds", "2", "--json", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _check_figures(result: dict[str, Any], questions: str = "10 from the package") -> None:
    assert result["bench"] == "load" and result["questions"].startswith(questions)
    (level,) = result["levels"]
    assert level["clients"] == 2
    for key in FIGURES:
        assert isinstance(level[key], (int, float)) and level[key] == level[key], key  # a number, not NaN
    assert level["requests"] >= 2 and level["answers"] == level["requests"]
    assert level["errors"] == 0 and level["errors_by_status"] == {}
    assert level["health_requests"] >= 1 and level["health_errors_by_status"] == {}
    assert result["server_pids"] and all(level["rss_mb"][str(pid)] > 0 for pid in result["server_pids"])
    text = format_load(result)
    assert "p95 ms" in text and "health p95 ms" in text and "2 clients: errors none" in text


@pytest.mark.slow
def test_bench_load_starts_the_app_and_reports_its_figures(built_index) -> None:  # type: ignore[no-untyped-def]
    """The default: the bench starts `assistant serve` on a free port itself, answering from the index."""
    result = _bench_load(env={"ASSISTANT_DATA_DIR": str(built_index.data_dir)})
    assert result["server"].startswith("started by the bench") and result["url"].startswith("http://127.0.0.1:")
    _check_figures(result)


@pytest.fixture(scope="module")
def served(built_index) -> Iterator[str]:  # type: ignore[no-untyped-def]
    proc, base = start_server(built_index, {"ASSISTANT_WORKERS": "2"})  # as `make run` on two cores
    yield base
    stop(proc)


@pytest.mark.slow
def test_bench_load_measures_a_running_app(served: str) -> None:
    """Here with a question file of tests/eval: more questions than requests, so none repeats."""
    dev = ROOT / "tests" / "eval" / "celltop" / "questions-dev.yaml"
    result = _bench_load("--url", served, "--questions", str(dev), "--requests", "20", env={})
    assert result["server"] == "given with --url" and result["url"] == served
    _check_figures(result, questions=f"{len(load_questions(dev))} from {dev}")
    sent = 10 + result["levels"][0]["requests"]
    assert result["requests_repeating_a_question"] == f"0 of {sent}"


SESSIONS = 20
QUESTIONS = [
    "How many people took part in the trial?",
    "How many cells did they give, and how were they put into the body?",
    "What side effects did people get?",
    "What injury grades did this study take people with?",
    "Was there a control group?",
]
FOLLOW_UP = "Where was the study done?"


@pytest.mark.slow
def test_twenty_chat_sessions_at_once_each_get_their_answers(served: str) -> None:
    """20 gradio_client sessions ask the chat at once, then each asks a follow-up in its own
    conversation: no error, no "busy", every answer complete, with its sources."""
    from gradio_client import Client

    from assistant.site import Site

    PATIENT_FOOTER = Site().footer

    def session(n: int) -> list[tuple[Any, ...]]:
        client = Client(served + "/", verbose=False, analytics_enabled=False, download_files=False, max_workers=2)
        try:
            first = client.submit(QUESTIONS[n % len(QUESTIONS)], api_name="/respond").result(timeout=120)
            # The chat as the page sends it back: the follow-up is asked within this conversation.
            second = client.submit(FOLLOW_UP, first[1], api_name="/respond").result(timeout=120)
        finally:
            client.close()
        return [first, second]

    with ThreadPoolExecutor(max_workers=SESSIONS) as pool:
        results = list(pool.map(session, range(SESSIONS), timeout=600))
    assert len(results) == SESSIONS
    problems = []
    for n, turns in enumerate(results):
        for turn, outputs in enumerate(turns, start=1):
            chat = outputs[1]
            assert len(chat) == 2 * turn, f"session {n}, turn {turn}: the conversation has {len(chat)} messages"
            text = "".join(part["text"] for part in chat[-1]["content"] if part.get("type") == "text")
            if PATIENT_FOOTER.split(".")[0] not in text or "busy" in text or "went wrong" in text:
                problems.append(f"session {n}, turn {turn}: {text[:200]!r}")
            elif turn == 1 and ('href="#src-' not in text or 'class="answer-sources"' not in outputs[2]):
                problems.append(f"session {n}: the answer has no sources: {text[:200]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_kill_9_under_load_loses_nothing_and_a_restart_serves_the_same_answers(  # type: ignore[no-untyped-def]
    built_index, real_embedder, tmp_path: Path
) -> None:
    """SIGKILL of the app while 16 clients ask: the index it served from is whole (the next ingest
    finds every document unchanged and embeds nothing), no lock is left behind (that ingest runs),
    and a restarted app answers as before."""
    import shutil
    import signal
    import threading

    import httpx

    from assistant.ingest import ingest

    settings = make_settings(tmp_path / "data")
    shutil.copytree(built_index.data_dir, settings.data_dir)
    probe = {"question": QUESTIONS[0], "audience": "clinician", "history": []}
    proc, base = start_server(settings)
    answered: list[int] = []
    stop_clients = threading.Event()
    try:
        before = httpx.post(base + "/api/ask", json=probe, timeout=60).json()

        def client(n: int) -> None:
            with httpx.Client(timeout=30) as http:
                i = n
                while not stop_clients.is_set():
                    body = {"question": QUESTIONS[i % len(QUESTIONS)], "audience": "patient", "history": []}
                    i += 1
                    try:
                        if http.post(base + "/api/ask", json=body).status_code == 200:
                            answered.append(1)
                    except httpx.HTTPError:
                        return  # the server is gone

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(16)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(answered) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(answered) >= 30, "the app did not answer under load"
        proc.send_signal(signal.SIGKILL)  # with answers in flight
        proc.wait(timeout=30)
    finally:
        stop_clients.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)

    report = ingest(settings, real_embedder)
    assert report.documents == report.unchanged > 0 and report.embedded_chunks == 0 and not report.skipped

    proc, base = start_server(settings)
    try:
        after = httpx.post(base + "/api/ask", json=probe, timeout=60).json()
    finally:
        stop(proc)
    assert after["answer"] == before["answer"] and after["citations"] == before["citations"]

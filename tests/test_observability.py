"""Operators see what happens without seeing what people ask: one log line per request with an
id, timings and the outcome; /metrics for Prometheus; question text only when a setting says so."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from assistant.settings import usable_cores
from tests.gradio_events import ask_ui
from tests.test_api import start_server, stop

pytestmark = pytest.mark.slow

QUESTION = "What side effects were seen?"
SECRET = "Doctor-7731-zebra"  # what a user typed into a field Gradio rejects


class Server:
    def __init__(self, base: str, log: Path) -> None:
        self.base = base
        self.log = log

    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()

    def wait_for_line(self, match: Callable[[str], bool], timeout: float = 20) -> str:
        """The server writes a request's line just after the response goes out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines() if match(line)]
            if found:
                return found[-1]
            time.sleep(0.1)
        raise AssertionError("no such log line; the log ends:\n" + "\n".join(self.lines()[-20:]))


def _start(built_index, extra: dict[str, str] | None = None) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    proc, base = start_server(built_index, extra)
    port = base.rsplit(":", 1)[1]
    yield Server(base, built_index.data_dir / f"server-{port}.log")
    stop(proc)


@pytest.fixture(scope="module")
def quiet(built_index) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    yield from _start(built_index)


@pytest.fixture(scope="module")
def verbose(built_index) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    yield from _start(built_index, {"ASSISTANT_LOG_QUESTIONS": "true"})


def test_one_log_line_per_request_with_id_timings_and_outcome_but_no_text(quiet: Server) -> None:
    response = httpx.post(
        quiet.base + "/api/ask", json={"question": QUESTION}, headers={"x-request-id": "obs-test-1"}, timeout=60
    )
    assert response.status_code == 200 and response.headers["x-request-id"] == "obs-test-1"
    line = quiet.wait_for_line(lambda line: "id=obs-test-1 " in line)
    assert [line for line in quiet.lines() if "id=obs-test-1 " in line] == [line]
    for field in (
        "method=POST",
        "path=/api/ask",
        "status=200",
        "outcome=answered",
        " ms=",
        "retrieve_ms=",
        "answer_ms=",
    ):
        assert field in line, line

    # No id sent, or one that could forge a log line: the server makes its own.
    for sent in ({}, {"x-request-id": "bad id status=999 forged=1"}):
        made = httpx.get(quiet.base + "/api/health", headers=sent, timeout=30).headers["x-request-id"]
        assert made and made != sent.get("x-request-id")
        assert "status=200" in quiet.wait_for_line(lambda line, made=made: f"id={made} " in line)

    refused = httpx.post(quiet.base + "/api/ask", json={"question": "What is the capital of France?"}, timeout=60)
    rid = refused.headers["x-request-id"]
    assert "outcome=refused" in quiet.wait_for_line(lambda line: f"id={rid} " in line)
    invalid = httpx.post(quiet.base + "/api/ask", json={"question": ""}, timeout=60)
    rid = invalid.headers["x-request-id"]
    assert "status=422 outcome=invalid" in quiet.wait_for_line(lambda line: f"id={rid} " in line)

    text = quiet.log.read_text()
    assert "side effects" not in text.lower() and "capital of france" not in text.lower()
    assert "headache" not in text.lower()  # nor the answer


def test_ui_answers_are_logged_and_gradio_tracebacks_do_not_echo_input(quiet: Server) -> None:
    done = ask_ui(quiet.base, QUESTION)
    assert done["success"] is True
    line = quiet.wait_for_line(lambda line: "answer channel=ui" in line)
    assert "outcome=answered" in line and "retrieve_ms=" in line

    rejected = ask_ui(quiet.base, QUESTION, audience=SECRET)
    assert rejected["success"] is False
    line = quiet.wait_for_line(lambda line: "UI event failed" in line)
    assert "Error at gradio/" in line and "withheld" in line
    text = quiet.log.read_text()
    assert SECRET not in text and "Traceback" not in text and "side effects" not in text.lower()


def test_metrics_count_requests_and_answers_by_outcome(quiet: Server) -> None:
    for question in (QUESTION, "What is the capital of France?", "I want to kill myself"):
        assert httpx.post(quiet.base + "/api/ask", json={"question": question}, timeout=60).status_code == 200
    assert ask_ui(quiet.base, QUESTION)["success"] is True
    httpx.get(quiet.base + "/no/such/page-7731", timeout=30)

    response = httpx.get(quiet.base + "/metrics", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    for outcome in ("answered", "refused", "safety"):
        assert value("assistant_requests_total", route="/api/ask", outcome=outcome) >= 1
        assert value("assistant_answers_total", channel="api", outcome=outcome) >= 1
    assert value("assistant_answers_total", channel="ui", outcome="answered") >= 1
    assert value("assistant_requests_total", route="ui_event", outcome="ok") >= 1
    assert value("assistant_answer_seconds_count", channel="api") >= 3
    assert value("assistant_retrieval_seconds_count", channel="api") >= 2  # safety answers retrieve nothing
    assert value("assistant_request_seconds_count", route="/api/ask") >= 3
    assert value("assistant_index_documents") == 8 and value("assistant_index_chunks") > 20
    assert value("assistant_index_generation") >= 1
    assert value("assistant_vector_store_up") == 1 and value("assistant_ready") == 1
    cores = usable_cores()  # the extractive answerer's default: one answer per core
    assert value("assistant_answers_in_flight") == 0 and value("assistant_answers_in_flight_limit") == cores
    assert value("process_resident_memory_bytes") > 0
    # Labels come from fixed sets: no question text, no path as sent.
    for text in ("side effects", "capital", "kill", "7731"):
        assert text not in response.text.lower()


def test_log_questions_puts_the_text_in_the_log(verbose: Server) -> None:
    response = httpx.post(verbose.base + "/api/ask", json={"question": QUESTION}, timeout=60)
    rid = response.headers["x-request-id"]
    line = verbose.wait_for_line(lambda line: f"id={rid} " in line)
    assert f'question="{QUESTION}"' in line and "headache" in line
    assert ask_ui(verbose.base, QUESTION)["success"] is True
    line = verbose.wait_for_line(lambda line: "answer channel=ui" in line)
    assert f'question="{QUESTION}"' in line and "headache" in line
    assert ask_ui(verbose.base, QUESTION, audience=SECRET)["success"] is False
    verbose.wait_for_line(lambda line: SECRET in line)  # the whole traceback, as Gradio printed it

"""One client must not stall or flood the others: body limits, uploads off, 405s, the rate limit
and the cap on answers in flight, on real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from assistant.http_limits import AnswerSlots, RateLimiter, client_address
from tests.conftest import free_port
from tests.gradio_events import ask_ui, join, result
from tests.test_api import server, start_server, stop

pytestmark = pytest.mark.slow
__all__ = ["server"]  # the module's default server (fixture from test_api)

MB = 1024 * 1024
QUESTION = "What side effects were seen?"


def assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"] and "Traceback" not in response.text
    return dict(body)


# --- bodies ---------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: str) -> None:
    """30 MB declared: 413 at once, and /api/health answers while the body is still being sent."""
    health: list[int] = []

    def body() -> Iterator[bytes]:
        yield b'{"question": "' + b"x" * (64 * 1024)
        health.append(httpx.get(server + "/api/health", timeout=30).status_code)
        for _ in range(30 * 16 - 1):
            yield b"x" * (64 * 1024)
        yield b'"}'

    size = 14 + 30 * MB + 2
    response = httpx.post(
        server + "/api/ask",
        content=body(),
        headers={"content-type": "application/json", "content-length": str(size)},
        timeout=60,
    )
    assert "larger than" in assert_json_error(response, 413)["error"]
    assert health == [200]


def test_a_chunked_body_is_counted_as_it_arrives(server: str) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"question": "'
        for _ in range(2 * 16):
            yield b"x" * (64 * 1024)
        yield b'"}'

    response = httpx.post(server + "/api/ask", content=body(), headers={"content-type": "application/json"}, timeout=60)
    assert_json_error(response, 413)


def test_length_is_checked_on_the_raw_text(server: str) -> None:
    """Control characters used to be cleaned away first, so any raw length passed."""
    question = "\x01" * 100_000 + QUESTION
    response = httpx.post(server + "/api/ask", json={"question": question}, timeout=60)
    body = assert_json_error(response, 422)
    assert body["details"] == [{"field": "question", "problem": "String should have at most 2000 characters"}]
    history = [{"role": "user", "content": "\x02" * 20_001}]
    response = httpx.post(server + "/api/ask", json={"question": QUESTION, "history": history}, timeout=60)
    assert "history.0.content" in json.dumps(assert_json_error(response, 422))
    # The chat too: its question reaches the pipeline as typed.
    done = ask_ui(server, question)
    assert "longer than 2000 characters" in json.dumps(done["output"]) and "headache" not in json.dumps(done)


@pytest.mark.parametrize("prefix", ["", "/widget"])
def test_file_uploads_are_off(server: str, prefix: str) -> None:
    files = {"files": ("note.txt", b"hello", "text/plain")}
    response = httpx.post(f"{server}{prefix}/gradio_api/upload", files=files, timeout=30)
    assert "upload" in assert_json_error(response, 403)["error"]


# --- methods --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/ask", "POST"),
        ("PUT", "/api/ask", "POST"),
        ("DELETE", "/api/ask", "POST"),
        ("PATCH", "/api/ask", "POST"),
        ("TRACE", "/api/ask", "POST"),
        ("OPTIONS", "/api/ask", "POST"),
        ("POST", "/api/health", "GET"),
        ("PUT", "/api/health", "GET"),
        ("DELETE", "/api/health", "GET"),
        ("HEAD", "/api/health", "GET"),
    ],
)
def test_wrong_methods_get_405_with_allow(server: str, method: str, path: str, allow: str) -> None:
    response = httpx.request(method, server + path, timeout=30)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"].startswith("application/json")
    if method != "HEAD":
        assert set(response.json()) == {"error"} and allow in response.json()["error"]


# --- the rate limit -------------------------------------------------------------------------


def test_client_address_uses_forwarded_for_only_from_trusted_proxies() -> None:
    def scope(peer: str, forwarded: str | None) -> dict[str, Any]:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"client": (peer, 5000), "headers": headers}

    assert client_address(scope("127.0.0.1", "203.0.113.9"), []) == "127.0.0.1"
    assert client_address(scope("10.0.0.2", "203.0.113.9"), ["127.0.0.1"]) == "10.0.0.2"
    assert client_address(scope("127.0.0.1", "203.0.113.9"), ["127.0.0.1"]) == "203.0.113.9"
    # A client's own X-Forwarded-For comes first; the proxy appends the address it saw.
    assert client_address(scope("127.0.0.1", "198.51.100.1, 203.0.113.9"), ["127.0.0.1"]) == "203.0.113.9"
    assert client_address(scope("127.0.0.1", "203.0.113.9, 10.0.0.5"), ["127.0.0.1", "10.0.0.5"]) == "203.0.113.9"
    assert client_address(scope("127.0.0.1", "not an address"), ["127.0.0.1"]) == "127.0.0.1"


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_answer_slots_hand_over_in_order_and_refuse_beyond_the_queue() -> None:
    slots = AnswerSlots(limit=1, wait_s=60, max_waiting=2)
    assert slots.acquire()
    order: list[str] = []
    threads = [threading.Thread(target=lambda n=n: slots.acquire() and order.append(n)) for n in "ab"]
    for count, thread in enumerate(threads, 1):
        thread.start()
        _until(lambda count=count: slots.waiting == count)
    assert slots.acquire() is False  # the queue is full: refused at once
    slots.release()
    threads[0].join(30)
    assert order == ["a"] and slots.in_flight == 1 and slots.waiting == 1
    slots.release()
    threads[1].join(30)
    assert order == ["a", "b"] and slots.in_flight == 1
    slots.release()
    assert slots.in_flight == 0

    short = AnswerSlots(limit=1, wait_s=0.05, max_waiting=1)
    assert short.acquire() and short.acquire() is False and short.waiting == 0


def test_answer_slots_for_coroutines_hold_no_thread_and_survive_cancellation() -> None:
    async def scenario() -> None:
        slots = AnswerSlots(limit=1, wait_s=60, max_waiting=1)
        assert await slots.acquire_async()
        waiter = asyncio.create_task(slots.acquire_async())
        while slots.waiting == 0:
            await asyncio.sleep(0)
        waiter.cancel()  # the client went away
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        assert slots.waiting == 0 and slots.in_flight == 1
        waiter = asyncio.create_task(slots.acquire_async())
        while slots.waiting == 0:
            await asyncio.sleep(0)
        await asyncio.to_thread(slots.release)  # a UI thread finishing hands its slot over
        assert await waiter is True and slots.in_flight == 1
        slots.release()
        assert slots.in_flight == 0

    asyncio.run(scenario())


def test_token_bucket_refills_at_its_rate() -> None:
    limiter = RateLimiter(per_minute=60, burst=2, max_clients=2)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.take("a", now=1.0) == 0.0
    assert limiter.take("b", now=1.0) == 0.0 and limiter.take("c", now=1.0) == 0.0
    assert len(limiter._buckets) == 2  # the least recently seen client was dropped


@pytest.fixture(scope="module")
def limited(built_index) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Rate limit on for loopback too (1 a minute after a burst of 3), behind a trusted proxy on 127.0.0.1."""
    proc, base = start_server(
        built_index,
        {
            "ASSISTANT_RATE_LIMIT_EXEMPT": "[]",
            "ASSISTANT_RATE_LIMIT_PER_MINUTE": "1",
            "ASSISTANT_RATE_LIMIT_BURST": "3",
            "ASSISTANT_TRUSTED_PROXIES": '["127.0.0.1"]',
            "ASSISTANT_BODY_TIMEOUT_S": "1",
        },
    )
    yield base
    stop(proc)


def _ask_as(base: str, client: str) -> httpx.Response:
    return httpx.post(base + "/api/ask", json={"question": QUESTION}, headers={"x-forwarded-for": client}, timeout=60)


def test_rate_limit_gives_429_with_retry_after(limited: str) -> None:
    assert [_ask_as(limited, "203.0.113.10").status_code for _ in range(3)] == [200, 200, 200]
    refused = _ask_as(limited, "203.0.113.10")
    assert "too many requests" in assert_json_error(refused, 429)["error"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert _ask_as(limited, "203.0.113.11").status_code == 200  # another client is not held up
    # The proxy appends the address it saw: what the client wrote before it does not count.
    assert _ask_as(limited, "203.0.113.10, 203.0.113.12").status_code == 200
    assert _ask_as(limited, "203.0.113.12, 203.0.113.10").status_code == 429
    metrics = httpx.get(limited + "/metrics", timeout=30).text
    assert 'assistant_requests_total{outcome="rate_limited",route="/api/ask"} 2.0' in metrics


def test_rate_limit_covers_the_ui_events(limited: str) -> None:
    headers = {"x-forwarded-for": "203.0.113.20"}
    statuses = [join(limited, [QUESTION, [], "Patient", {}], headers=headers)[0].status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert _ask_as(limited, "203.0.113.20").status_code == 429  # one budget for the API and the UI


def test_a_body_that_does_not_arrive_in_time_gets_408(limited: str) -> None:
    host, port = limited.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Forwarded-For: 203.0.113.30\r\nContent-Length: 100\r\n\r\n" + b'{"question": "'
        )
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = sock.recv(4096)
            if not data:
                break
            reply += data
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply
    assert "in time" in json.loads(body)["error"]


# --- answers in flight ----------------------------------------------------------------------


class HangingLLM:
    """An OpenAI-compatible endpoint on 127.0.0.1 that holds every request until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = 0
        self._changed = threading.Condition()
        self.port = free_port()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        def chat() -> JSONResponse:
            with self._changed:
                self.arrived += 1
                self._changed.notify_all()
            self.release.wait(120)
            return JSONResponse({"error": {"message": "released"}}, status_code=503)

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 60) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.arrived >= count, timeout)

    def close(self) -> None:
        self.release.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_health_and_pages_stay_up_while_answers_hang(built_index) -> None:  # type: ignore[no-untyped-def]
    """45 questions whose LLM does not answer: 16 (the cap) are computed, 8 wait for a slot, the
    other 21 get 503 at once; health, the chat page, the widget and a UI question (busy) are all
    answered meanwhile; when the LLM comes back the 24 are answered."""
    llm = HangingLLM()
    proc, base = start_server(
        built_index,
        {
            "ASSISTANT_ANSWERER": "llm",
            "ASSISTANT_LLM_BASE_URL": f"http://127.0.0.1:{llm.port}/v1",
            "ASSISTANT_LLM_MODEL": "fake",
            "ASSISTANT_ANSWER_WAIT_S": "120",
            "ASSISTANT_MAX_ANSWERS_WAITING": "8",
        },
    )
    pool = ThreadPoolExecutor(max_workers=45)
    try:
        futures = [
            pool.submit(httpx.post, base + "/api/ask", json={"question": QUESTION}, timeout=120) for _ in range(45)
        ]
        assert llm.wait_for(16), f"only {llm.arrived} questions reached the LLM"
        # Those beyond the cap and the queue come back now, while 16 hang and 8 wait.
        finished = []
        for future in as_completed(futures, timeout=60):
            finished.append(future)
            if len(finished) == 21:
                break
        busy = [f.result() for f in finished]
        assert {r.status_code for r in busy} == {503}
        assert "busy" in busy[0].json()["error"] and busy[0].headers["retry-after"] == "2"
        assert llm.arrived == 16

        assert httpx.get(base + "/api/health", timeout=10).json()["status"] == "ok"
        assert httpx.get(base + "/", timeout=10).status_code == 200
        assert httpx.get(base + "/widget/", timeout=10).status_code == 200
        ui = result(base, join(base, [QUESTION, [], "Patient", {}])[1])
        assert "busy" in json.dumps(ui["output"]).lower()
        metrics = httpx.get(base + "/metrics", timeout=10).text
        assert "assistant_answers_in_flight 16.0" in metrics and "assistant_answers_waiting 8.0" in metrics

        llm.release.set()
        answered = [f.result(timeout=120) for f in futures if f not in finished]
        assert [r.status_code for r in answered] == [200] * 24
        assert llm.arrived == 24
    finally:
        llm.release.set()
        pool.shutdown(wait=True, cancel_futures=True)
        stop(proc)
        llm.close()

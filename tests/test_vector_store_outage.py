"""A Chroma server that dies, freezes or is not up yet, and an app stopped while it answers:
503 with Retry-After (never a hang or a 500), health that says so, one log line per failure,
recovery without a restart, and a clean exit on SIGTERM.

Everything runs on 127.0.0.1: a real `chroma run`, the app as a real process. Every wait is
bounded (client timeouts and deadlines), and nothing asserts how fast anything was.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from assistant.store import Availability, StoreUnavailable, VectorStore
from tests.conftest import free_port, make_settings
from tests.gradio_events import ask_ui
from tests.test_api import start_server, stop

QUESTION = "What side effects were seen?"
STARTUP_S = 120  # the app loads the embedding model and the UI; Chroma opens its files
# Fast tries in the tests; the defaults (1 s doubling up to 30 s) suit a real deployment.
FAST_RETRY = {"ASSISTANT_CHROMA_RETRY_S": "0.5", "ASSISTANT_CHROMA_RETRY_MAX_S": "1"}


# --- the store's own bookkeeping (no server) ---------------------------------------------


def test_availability_fails_fast_while_down_lets_one_try_through_and_recovers() -> None:
    now = [100.0]
    availability = Availability("http://127.0.0.1:9", retry_s=1, retry_max_s=4, clock=lambda: now[0])
    availability.admit()  # up: every call goes ahead
    error = availability.failed(httpx.ConnectError("refused"))
    assert isinstance(error, StoreUnavailable) and not availability.up
    assert "ConnectError: refused" in str(availability.problem)
    for wait in (1, 2, 4, 4):  # after each failed try the wait doubles, up to retry_max_s
        now[0] += wait - 0.1
        with pytest.raises(StoreUnavailable):
            availability.admit()  # no try due yet: fails at once
        now[0] += 0.1
        availability.admit()  # the try
        with pytest.raises(StoreUnavailable):
            availability.admit()  # one try at a time
        availability.failed(httpx.ReadTimeout("timed out"))
    now[0] += 4
    availability.admit()
    availability.answered()
    assert availability.up and availability.problem is None
    availability.admit()
    availability.admit()  # up again: every call goes ahead


def test_a_server_that_is_not_there_is_unavailable_not_broken(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chroma_url=f"http://127.0.0.1:{free_port()}", chroma_timeout_s=5)
    with pytest.raises(StoreUnavailable, match="cannot reach Chroma"):
        VectorStore(settings)


# --- a real Chroma server and the app --------------------------------------------------------


class Chroma:
    """A `chroma run` server on 127.0.0.1 that a test kills, freezes and starts again."""

    def __init__(self, path: Path, log: Path) -> None:
        self.path = path
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "chroma"), "run", "--host", "127.0.0.1", "--port", str(self.port),
                 "--path", str(self.path)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline and self.running:
            try:
                httpx.get(self.url + "/api/v2/heartbeat", timeout=5)
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("chroma run did not come up; its log:\n" + self.log.read_text())

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            self.thaw()
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)


class App:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log

    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()

    def health(self) -> httpx.Response:
        return httpx.get(self.base + "/api/health", timeout=30)

    def ask(self, question: str = QUESTION, timeout: float = 60) -> httpx.Response:
        return httpx.post(self.base + "/api/ask", json={"question": question}, timeout=timeout)

    def metric(self, name: str) -> float | None:
        text = httpx.get(self.base + "/metrics", timeout=30).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        return None

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = STARTUP_S) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s; the log ends:\n" + "\n".join(self.lines()[-20:]))
            time.sleep(0.3)


def start_app(settings, extra: dict[str, str], ready: tuple[int, ...] = (200,)) -> App:  # type: ignore[no-untyped-def]
    proc, base = start_server(settings, extra, ready=ready)
    return App(proc, base, settings.data_dir / f"server-{base.rsplit(':', 1)[1]}.log")


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chroma]:
    root = tmp_path_factory.mktemp("chroma")
    server = Chroma(root / "data", root / "chroma.log")
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def index(chroma: Chroma, tmp_path_factory: pytest.TempPathFactory, real_embedder):  # type: ignore[no-untyped-def]
    """The shipped corpus ingested into the Chroma server once (chunk table in a temp data dir)."""
    from assistant.ingest import ingest

    settings = make_settings(tmp_path_factory.mktemp("data"), chroma_url=chroma.url)
    ingest(settings, real_embedder)
    return settings


@pytest.fixture
def running_chroma(chroma: Chroma) -> Iterator[Chroma]:
    """Each test starts with the server up and ends with it neither frozen nor half dead."""
    chroma.thaw()
    if not chroma.running:
        chroma.start()
    try:
        yield chroma
    finally:
        chroma.thaw()


@pytest.fixture(scope="module")
def app(index) -> Iterator[App]:  # type: ignore[no-untyped-def]
    started = start_app(
        index,
        # Two worker processes, as `make run` has on two cores: each has its own Chroma client.
        {
            "ASSISTANT_CHROMA_URL": index.chroma_url,
            "ASSISTANT_CHROMA_TIMEOUT_S": "5",
            "ASSISTANT_WORKERS": "2",
            **FAST_RETRY,
        },
    )
    yield started
    stop(started.proc)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and "temporarily unavailable" in body["error"], body
    assert int(response.headers["retry-after"]) >= 1


def chat_reply(done: dict[str, Any]) -> str:
    """The assistant's last chat message in a completed UI event."""
    chat = done["output"]["data"][1]
    return str(chat[-1]["content"])


def ask_twice_on_one_connection(base: str) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
    """Two questions on one kept-alive connection: the second fails if the first closed it."""
    port = int(base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    try:
        for _ in range(2):
            connection.request(
                "POST", "/api/ask", json.dumps({"question": QUESTION}), {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            out.append((response.status, json.loads(response.read()), {k.lower(): v for k, v in response.getheaders()}))
    finally:
        connection.close()
    return out


@pytest.mark.slow
def test_a_killed_chroma_gives_503_and_the_app_recovers_when_it_is_back(app: App, running_chroma: Chroma) -> None:
    app.wait_until(lambda: app.health().status_code == 200, "healthy")
    assert app.ask().status_code == 200
    assert app.metric("assistant_vector_store_up") == 1
    lines_before = len(app.lines())

    running_chroma.kill()
    for status, body, headers in ask_twice_on_one_connection(app.base):
        assert status == 503 and set(body) == {"error"} and "temporarily unavailable" in body["error"], body
        assert int(headers["retry-after"]) >= 1 and headers.get("connection") != "close"
    health = app.health()
    assert health.status_code == 503
    assert health.json()["status"] == "degraded" and "vector store down" in health.json()["detail"]
    assert health.json()["documents"] == 8  # what it would answer from, once the store is back
    assert app.metric("assistant_vector_store_up") == 0
    reply = chat_reply(ask_ui(app.base, QUESTION))
    assert "temporarily unavailable" in reply and "try again" in reply, reply

    # One line per request (and one when the store went), no traceback.
    app.wait_until(lambda: sum("channel=ui" in line for line in app.lines()) >= 1, "the UI answer's log line", 30)
    new = app.lines()[lines_before:]
    assert not any("Traceback" in line for line in new), "\n".join(new)
    asks = [line for line in new if "path=/api/ask" in line]
    assert len(asks) == 2 and all("status=503 outcome=unavailable" in line for line in asks), asks
    assert len(new) <= 12, "\n".join(new)
    assert sum("is down" in line for line in new) == 1, "\n".join(new)

    running_chroma.start()
    app.wait_until(lambda: app.health().status_code == 200, "healthy again", 60)
    answer = app.ask()
    assert answer.status_code == 200 and answer.json()["citations"], answer.text
    assert app.metric("assistant_vector_store_up") == 1
    assert any("is back" in line for line in app.lines()[lines_before:])


@pytest.mark.slow
def test_a_frozen_chroma_gives_503_in_bounded_time_and_health_and_pages_stay_up(
    app: App, running_chroma: Chroma
) -> None:
    app.wait_until(lambda: app.health().status_code == 200, "healthy")
    assert app.ask().status_code == 200

    running_chroma.freeze()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            asks = [pool.submit(app.ask) for _ in range(20)]
            # While those wait on the frozen store: health, the chat page and the widget answer.
            assert app.health().status_code in (200, 503)
            assert httpx.get(app.base + "/", timeout=30).status_code == 200
            assert httpx.get(app.base + "/widget/", timeout=30).status_code == 200
            responses = [a.result() for a in asks]
        assert {r.status_code for r in responses} == {503}
        assert_unavailable(next(r for r in responses if "busy" not in r.text))
        app.wait_until(lambda: app.health().json()["status"] == "degraded", "health says degraded", 60)
        assert_unavailable(app.ask())
    finally:
        running_chroma.thaw()
    app.wait_until(lambda: app.health().status_code == 200, "healthy again", 60)
    assert app.ask().status_code == 200


@pytest.mark.slow
def test_an_app_started_while_chroma_is_down_loads_once_it_is_up(index, running_chroma: Chroma) -> None:  # type: ignore[no-untyped-def]
    running_chroma.kill()
    started = start_app(index, {"ASSISTANT_CHROMA_URL": index.chroma_url, **FAST_RETRY}, ready=(503,))
    try:
        started.wait_until(lambda: started.health().json()["status"] == "degraded", "health says degraded", 60)
        assert "vector store down" in started.health().json()["detail"]
        waiting = started.ask()
        assert_unavailable(waiting)
        assert "still loading" not in waiting.text
        assert started.metric("assistant_vector_store_up") == 0 and started.metric("assistant_ready") == 0

        running_chroma.start()
        started.wait_until(lambda: started.health().status_code == 200, "loaded once Chroma is up")
        answer = started.ask()
        assert answer.status_code == 200 and answer.json()["citations"], answer.text
        assert started.metric("assistant_vector_store_up") == 1
        assert not any("Traceback" in line for line in started.lines())
    finally:
        stop(started.proc)


class AnswerInFlight:
    """A question whose answer waits on the frozen Chroma server, asked from a thread."""

    def __init__(self, app: App, chroma: Chroma) -> None:
        assert app.ask().status_code == 200
        self.results: list[httpx.Response | Exception] = []
        self.thread = threading.Thread(target=self._ask, args=(app,))
        chroma.freeze()  # holds the next answer in its call to the store
        self.thread.start()
        app.wait_until(lambda: app.metric("assistant_answers_in_flight") == 1, "an answer in flight", 60)

    def _ask(self, app: App) -> None:
        try:
            self.results.append(app.ask(timeout=180))
        except Exception as exc:
            self.results.append(exc)

    def response(self) -> httpx.Response:
        self.thread.join(timeout=180)
        assert len(self.results) == 1 and isinstance(self.results[0], httpx.Response), self.results
        return self.results[0]


def wait_until_refused(app: App) -> None:
    """The app has begun to stop: it takes no new connection."""

    def refused() -> bool:
        try:
            httpx.get(app.base + "/api/health", timeout=5)
        except httpx.ConnectError:
            return True
        except httpx.HTTPError:
            pass
        return False

    app.wait_until(refused, "stopped taking new connections", 60)


def assert_clean_log(app: App, ask_status: int) -> None:
    text = app.log.read_text()
    assert text.endswith("\n") and "Traceback" not in text, text[-3000:]
    asks = [line for line in text.splitlines() if "path=/api/ask" in line]
    assert f"status={ask_status}" in asks[-1], text[-3000:]  # the line of the answer in flight is there


@pytest.mark.slow
def test_sigterm_while_answering_finishes_the_answer_and_exits_0(index, running_chroma: Chroma) -> None:  # type: ignore[no-untyped-def]
    started = start_app(
        index,
        {
            "ASSISTANT_CHROMA_URL": index.chroma_url,
            "ASSISTANT_CHROMA_TIMEOUT_S": "120",
            "ASSISTANT_SHUTDOWN_GRACE_S": "120",
        },
    )
    try:
        in_flight = AnswerInFlight(started, running_chroma)
        started.proc.send_signal(signal.SIGTERM)
        wait_until_refused(started)
        running_chroma.thaw()  # the answer goes on, within the grace
        assert started.proc.wait(timeout=120) == 0
        answer = in_flight.response()
        assert answer.status_code == 200 and answer.json()["citations"], answer.text
        assert_clean_log(started, 200)
    finally:
        running_chroma.thaw()
        if started.proc.poll() is None:
            stop(started.proc)


@pytest.mark.slow
def test_sigterm_cuts_off_an_answer_that_outlasts_the_grace_with_a_503_and_exits_0(
    index, running_chroma: Chroma
) -> None:  # type: ignore[no-untyped-def]
    started = start_app(
        index,
        {
            "ASSISTANT_CHROMA_URL": index.chroma_url,
            "ASSISTANT_CHROMA_TIMEOUT_S": "120",
            "ASSISTANT_SHUTDOWN_GRACE_S": "1",
        },
    )
    try:
        in_flight = AnswerInFlight(started, running_chroma)
        started.proc.send_signal(signal.SIGTERM)
        cut_off = in_flight.response()  # the store is still frozen: the grace runs out first
        assert cut_off.status_code == 503 and cut_off.headers["connection"] == "close"
        assert set(cut_off.json()) == {"error"} and "stopping" in cut_off.json()["error"]
        assert int(cut_off.headers["retry-after"]) >= 1
        running_chroma.thaw()  # the cut-off answer's thread, still waiting on the store, ends
        assert started.proc.wait(timeout=120) == 0
        assert_clean_log(started, 503)
    finally:
        running_chroma.thaw()
        if started.proc.poll() is None:
            stop(started.proc)

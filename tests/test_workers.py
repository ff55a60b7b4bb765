"""Answers computed in worker processes (ASSISTANT_WORKERS, assistant/workers.py), against a real
server on 127.0.0.1 with the real index and model: the workers give the answers one process gives;
a worker killed while answering costs those answers a 503 (never a 500) and is started again, as
does one that stops answering; workers do not outlive the serving process, after SIGTERM or kill -9."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.bench_load import PARENT, STATE, cpu_seconds, proc_stat, wait_for_workers
from tests.test_api import start_server, stop

pytestmark = pytest.mark.slow

QUESTIONS: list[dict[str, Any]] = [
    {"question": "What side effects were seen?", "audience": "patient", "history": []},
    {"question": "How many participants improved, and by how much?", "audience": "clinician", "history": []},
    {"question": "How much does the treatment cost?", "audience": "patient", "history": []},
    {"question": "I can't breathe and my chest hurts", "audience": "patient", "history": []},
    {
        "question": "and how long were they followed?",
        "audience": "patient",
        "history": [
            {"role": "user", "content": "How many people took part?"},
            {"role": "assistant", "content": "Ten people took part."},
        ],
    },
]


def worker_pids(server_pid: int) -> list[int]:
    """The worker processes the server started (multiprocessing's resource tracker is not one)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int(proc_stat(int(proc.name))[PARENT])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == server_pid and b"spawn_main" in cmdline:
            found.append(int(proc.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        return proc_stat(pid)[STATE] != "Z"
    except OSError:
        return False


def wait_until_replaced(proc: Any, gone: int) -> None:
    """Until the server has two workers again, none of them ``gone``."""
    deadline = time.monotonic() + 180
    while gone in worker_pids(proc.pid) or len(worker_pids(proc.pid)) < 2:
        assert time.monotonic() < deadline, f"worker {gone} was not replaced"
        time.sleep(0.2)


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "timings_ms"}


@pytest.fixture(scope="module")
def pooled(built_index) -> Iterator[tuple[Any, str]]:  # type: ignore[no-untyped-def]
    proc, base = start_server(built_index, {"ASSISTANT_WORKERS": "2"})
    try:
        health = wait_for_workers(base)
        assert health["workers"] == 2 and health["status"] == "ok"
        yield proc, base
    finally:
        stop(proc)


def test_workers_give_the_answers_one_process_gives(pooled: tuple[Any, str], pipeline) -> None:  # type: ignore[no-untyped-def]
    proc, base = pooled
    workers = worker_pids(proc.pid)
    assert len(workers) == 2
    cpu_before = sum(cpu_seconds(pid) for pid in workers)
    for body in QUESTIONS:
        served = httpx.post(base + "/api/ask", json=body, timeout=60)
        assert served.status_code == 200, served.text
        local = pipeline.ask(body["question"], body["audience"], body["history"]).as_json()
        assert comparable(served.json()) == comparable(local), body["question"]
    # The answers were computed in the workers: together they used CPU for them (each answer
    # takes tens of ms of CPU; the clock ticks every 10 ms).
    assert sum(cpu_seconds(pid) for pid in workers) - cpu_before >= 0.05


def test_a_worker_killed_while_answering_costs_503s_and_is_replaced(pooled: tuple[Any, str]) -> None:
    proc, base = pooled
    before = worker_pids(proc.pid)
    statuses: list[int] = []
    bad: list[str] = []
    stop_clients = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(timeout=60) as http:
            i = n
            while not stop_clients.is_set():
                response = http.post(base + "/api/ask", json=QUESTIONS[i % len(QUESTIONS)])
                i += 1
                statuses.append(response.status_code)
                if response.status_code not in (200, 503):
                    bad.append(f"{response.status_code}: {response.text[:200]}")
                elif response.status_code == 503 and not (
                    response.headers.get("retry-after") and response.json().get("error")
                ):
                    bad.append(f"503 without Retry-After or error: {response.headers} {response.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(6)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(statuses) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(statuses) >= 20, "the app did not answer"
        killed = before[0]
        os.kill(killed, signal.SIGKILL)
        wait_until_replaced(proc, killed)
        health = wait_for_workers(base)
        after = worker_pids(proc.pid)
        answered_before_restart = len(statuses)
        deadline = time.monotonic() + 60
        while len(statuses) < answered_before_restart + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_clients.set()
        for thread in threads:
            thread.join(timeout=90)
    assert not bad, bad[:5]
    assert killed not in after and len(after) == 2 and before[1] in after, (before, after)
    assert health["status"] == "ok"
    # Once the new worker is ready, every question is answered again.
    assert len(statuses) >= answered_before_restart + 20
    assert statuses[answered_before_restart:] == [200] * (len(statuses) - answered_before_restart)


def test_workers_exit_with_the_serving_process_even_after_kill_9(built_index) -> None:  # type: ignore[no-untyped-def]
    proc, base = start_server(built_index, {"ASSISTANT_WORKERS": "2"})
    try:
        wait_for_workers(base)
        workers = worker_pids(proc.pid)
        assert len(workers) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in workers), "a worker outlived the serving process"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_frozen_worker_costs_503s_in_bounded_time_and_is_replaced(built_index) -> None:  # type: ignore[no-untyped-def]
    proc, base = start_server(built_index, {"ASSISTANT_WORKERS": "2", "ASSISTANT_WORKER_TIMEOUT_S": "3"})
    try:
        wait_for_workers(base)
        frozen = worker_pids(proc.pid)[0]
        os.kill(frozen, signal.SIGSTOP)
        try:
            with httpx.Client(timeout=60) as http:
                started = time.monotonic()
                statuses = [http.post(base + "/api/ask", json=QUESTIONS[n % 2]).status_code for n in range(6)]
                took = time.monotonic() - started
        finally:
            with contextlib.suppress(ProcessLookupError):  # the pool has killed it by now
                os.kill(frozen, signal.SIGCONT)
        # Between workers equally busy the one asked least goes next, so one of the first two
        # questions met the frozen worker: it waited the timeout, then got 503; the rest were answered.
        assert set(statuses) <= {200, 503} and statuses.count(503) >= 1 and statuses.count(200) >= 4, statuses
        assert took < 60, took
        wait_until_replaced(proc, frozen)
        wait_for_workers(base)
        assert not alive(frozen)
        for body in QUESTIONS[:2]:
            assert httpx.post(base + "/api/ask", json=body, timeout=60).status_code == 200
    finally:
        stop(proc)


def test_sigterm_stops_the_workers_with_the_server(built_index) -> None:  # type: ignore[no-untyped-def]
    proc, base = start_server(built_index, {"ASSISTANT_WORKERS": "2"})
    try:
        wait_for_workers(base)
        workers = worker_pids(proc.pid)
        assert httpx.post(base + "/api/ask", json=QUESTIONS[0], timeout=60).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not any(alive(pid) for pid in workers), "a worker outlived the serving process"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

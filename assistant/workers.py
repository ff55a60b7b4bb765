"""Answers computed in worker processes, so that several cores answer at once.

One process serves HTTP and the chat; answering is CPU work in Python (the GIL lets one thread run
at a time), so with more than one core the serving process hands each question to one of
``ASSISTANT_WORKERS`` worker processes. Each worker loads its own model and index snapshot and
follows `assistant ingest` the way the serving process does (it holds its own lease on the index it
answers from). The serving process keeps its own pipeline: for /api/health, for what the UI shows,
and to answer while no worker is ready yet.

    serving process                           worker process (one of N)
    PooledPipeline.stream ── ("ask", id, ...) ──▶ PipelineHolder.pipeline.stream
            ◀── ("item", id, text | Answer) ... ("done", id) | ("error", id, kind, message)

A worker that dies (killed, out of memory) fails the answers it was computing with
`WorkerLost` (503 with Retry-After) and is started again; a worker that stops answering for
``ASSISTANT_WORKER_TIMEOUT_S`` is treated the same way (a stopped worker is killed). Workers exit
when the serving process stops them or goes (their pipe closes), also after a kill -9 of it; they
ignore SIGINT and SIGTERM, so that answers in flight finish during a graceful shutdown.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from assistant.chain import QuestionError
from assistant.http_limits import BUSY_RETRY_AFTER_S, Busy
from assistant.settings import Settings
from assistant.store import StoreUnavailable

log = logging.getLogger("assistant.workers")

RESTART_WAIT_S = (1.0, 30.0)  # first and longest wait before starting a worker that died young again
SETTLED_S = 60.0  # a worker that lived this long died of something new: start it again at once


class WorkerLost(Busy):
    """The worker computing the answer died or stopped answering; asking again is safe (503)."""

    def __init__(self) -> None:
        QuestionError.__init__(self, f"The answer was interrupted; please ask again in {BUSY_RETRY_AFTER_S} seconds.")


class WorkerFailed(RuntimeError):
    """An unexpected error in a worker (logged there with its traceback)."""


@dataclass(eq=False)
class _Worker:
    index: int
    process: Any
    conn: Connection
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    gone: bool = False
    stats: dict[str, int] = field(default_factory=dict)  # of the index it answers from
    store_problem: str | None = None  # why its vector store does not answer it, while it does not
    asked: int = 0  # questions sent to it: between workers equally busy, the one asked least goes next
    pending: dict[int, queue.Queue[tuple[Any, ...]]] = field(default_factory=dict)
    send_lock: threading.Lock = field(default_factory=threading.Lock)


class WorkerPool:
    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads and torch
        self._workers: list[_Worker | None] = [None] * count
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = False
        self._restart_wait = [RESTART_WAIT_S[0]] * count

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        for index in range(self.count):
            self._spawn(index)

    def close(self) -> None:
        """Stop the workers (answers in flight were given their grace by uvicorn); stragglers are killed."""
        with self._lock:
            self._closed = True
            workers = [w for w in self._workers if w is not None and not w.gone]
        for worker in workers:
            with contextlib.suppress(OSError, ValueError), worker.send_lock:
                worker.conn.send(("stop",))
        deadline = time.monotonic() + 5
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)

    def _spawn(self, index: int) -> None:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main, args=(child_end, self.settings), name=f"assistant-worker-{index}", daemon=True
        )
        process.start()
        child_end.close()
        worker = _Worker(index, process, parent_end)
        with self._lock:
            if self._closed:
                parent_end.close()
                return
            self._workers[index] = worker
        threading.Thread(target=self._read, args=(worker,), name=f"worker-{index}-reader", daemon=True).start()

    def _read(self, worker: _Worker) -> None:
        """Route what a worker sends to the answers waiting for it, until its pipe closes."""
        try:
            while True:
                message = worker.conn.recv()
                kind = message[0]
                if kind == "ready":
                    worker.ready, worker.stats, worker.store_problem = True, message[1], message[3]
                    generation = message[1].get("generation")
                    log.info(
                        "worker %d (pid %s) answers from index generation %s", worker.index, message[2], generation
                    )
                elif kind == "failed":
                    log.error("worker %d could not load the index: %s", worker.index, message[1])
                else:
                    with self._lock:
                        waiting = worker.pending.get(message[1])
                        if kind in ("done", "error"):
                            worker.pending.pop(message[1], None)
                    if waiting is not None:
                        waiting.put(message)
        except (EOFError, OSError):  # the worker's end closed: it exited or was killed
            pass
        worker.conn.close()  # only here: closing it under a blocked recv() could hand its number to another file
        self._lost(worker)

    def _lost(self, worker: _Worker, why: str = "exited") -> None:
        with self._lock:
            if worker.gone:
                return
            worker.gone, worker.ready = True, False
            pending, worker.pending = worker.pending, {}
            closed = self._closed
        for waiting in pending.values():
            waiting.put(("lost",))
        if closed:
            return
        with_code = f" (exit code {worker.process.exitcode})" if worker.process.exitcode is not None else ""
        log.warning(
            "worker %d %s%s; %d answers in flight lost; starting it again", worker.index, why, with_code, len(pending)
        )
        if worker.process.is_alive():
            worker.process.kill()  # also when stopped (SIGSTOP); its reader then sees the pipe close
        threading.Thread(
            target=self._restart, args=(worker,), name=f"worker-{worker.index}-restart", daemon=True
        ).start()

    def _restart(self, worker: _Worker) -> None:
        worker.process.join(5)
        index = worker.index
        if time.monotonic() - worker.started > SETTLED_S:
            self._restart_wait[index] = RESTART_WAIT_S[0]
        else:  # died young: a fault that repeats (a broken index, no memory) must not spin
            time.sleep(self._restart_wait[index])
            self._restart_wait[index] = min(RESTART_WAIT_S[1], self._restart_wait[index] * 2)
        if not self._closed:
            self._spawn(index)

    # -- answering ------------------------------------------------------------------------
    def _ready(self) -> list[_Worker]:
        # Not gone as well: a worker given up for silence may still have a "ready" in its pipe.
        return [w for w in self._workers if w is not None and w.ready and not w.gone]

    def ready_count(self) -> int:
        return len(self._ready())

    def store_problem(self) -> str | None:
        """Why the vector store does not answer a ready worker (as that worker last said); None when it answers all."""
        return next((w.store_problem for w in self._ready() if w.store_problem), None)

    def stats(self) -> dict[str, int] | None:
        """What the index answers come from holds: while the workers switch to a newer index, the
        oldest one still in use. None while no worker is ready."""
        ready = [w.stats for w in self._ready()]
        return min(ready, key=lambda stats: stats.get("generation", 0)) if ready else None

    def _pick(self) -> _Worker | None:
        with self._lock:
            ready = self._ready()
            if not ready:
                return None
            worker = min(ready, key=lambda w: (len(w.pending), w.asked))
            worker.asked += 1
            return worker

    def stream(self, question: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any] | None:
        """The answer's events from a ready worker; None when no worker is ready (answer locally)."""
        worker = self._pick()
        if worker is None:
            return None
        request_id = next(self._ids)
        replies: queue.Queue[tuple[Any, ...]] = queue.Queue()
        with self._lock:
            if worker.gone:
                return None
            worker.pending[request_id] = replies
        try:
            with worker.send_lock:
                worker.conn.send(("ask", request_id, question, args, kwargs))
        except (OSError, ValueError):  # its pipe broke: the reader reports it
            with self._lock:
                worker.pending.pop(request_id, None)
            raise WorkerLost() from None
        return self._replies(worker, request_id, replies)

    def _replies(self, worker: _Worker, request_id: int, replies: queue.Queue[tuple[Any, ...]]) -> Iterator[Any]:
        try:
            while True:
                try:
                    message = replies.get(timeout=self.settings.worker_timeout_s)
                except queue.Empty:
                    self._lost(worker, f"sent nothing for {self.settings.worker_timeout_s:g} s")
                    raise WorkerLost() from None
                kind = message[0]
                if kind == "item":
                    yield message[2]
                elif kind == "done":
                    return
                elif kind == "lost":
                    raise WorkerLost()
                else:
                    raise _error(*message[2:])
        finally:
            with self._lock:
                worker.pending.pop(request_id, None)


class WorkerStoreUnavailable(StoreUnavailable):
    """The vector store did not answer a worker."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def _error(kind: str, message: str, problem: str = "") -> Exception:
    if kind == "question":
        return QuestionError(message)
    if kind == "store":
        return WorkerStoreUnavailable(message, problem or message)
    return WorkerFailed(f"a worker could not answer ({message}); its log has the traceback")


class PooledPipeline:
    """The serving process's pipeline, answering in the workers when one is ready."""

    def __init__(self, pipeline: Any, pool: WorkerPool) -> None:
        self._pipeline = pipeline
        self.pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline, name)

    def stream(self, question: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        events = self.pool.stream(question, args, kwargs)
        if events is None:
            yield from self._pipeline.stream(question, *args, **kwargs)
            return
        try:
            yield from events
        except WorkerStoreUnavailable as exc:
            # The store this process checks too: /api/health says so, and one log line (here) says it went.
            self._pipeline.store.availability.down(exc.problem)
            raise


# -- the worker process ---------------------------------------------------------------------


def _worker_main(conn: Connection, settings: Settings) -> None:
    from assistant.offline import go_offline

    go_offline()
    # The serving process decides when to stop; a worker finishes its answers and exits when the pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from assistant.access_log import setup_logging
    from assistant.settings import apply_kinds

    setup_logging()
    # The serving process logs the vector store going and coming back (workers tell it): one line, not one per process.
    logging.getLogger("assistant.store").setLevel(logging.ERROR)
    apply_kinds(settings)
    from assistant.api import PipelineHolder, use_serving_threads

    use_serving_threads(settings)

    holder = PipelineHolder(settings)
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        try:
            with send_lock:
                conn.send(message)
        except (OSError, EOFError) as exc:
            raise _PipeGone() from exc

    def announce() -> None:
        """Ready once the index is loaded, and again each time it follows `assistant ingest` or its
        vector store goes or comes back (so that /api/health speaks for the workers too)."""
        loaded = holder.wait() is not None  # no reference kept: a replaced index is let go of
        with contextlib.suppress(_PipeGone):
            if not loaded:
                send(("failed", holder.error or "unknown error"))
                return
            told: tuple[dict[str, int], str | None] = ({}, None)
            while True:
                state = (holder.pipeline.stats() if holder.pipeline is not None else told[0], holder.store_problem)
                if state != told:
                    send(("ready", state[0], os.getpid(), state[1]))
                    told = state
                time.sleep(settings.reload_interval_s / 2)

    def answer(request_id: int, question: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with contextlib.suppress(_PipeGone):  # the serving process went: no one to answer to
            try:
                pipeline = holder.pipeline
                if pipeline is None:
                    raise StoreUnavailable(holder.error or "the index is not loaded")
                for item in pipeline.stream(question, *args, **kwargs):
                    send(("item", request_id, item))
                send(("done", request_id))
            except _PipeGone:
                raise
            except StoreUnavailable as exc:
                send(("error", request_id, "store", str(exc), holder.store_problem or str(exc)))
            except QuestionError as exc:
                send(("error", request_id, "question", str(exc)))
            except Exception as exc:
                log.exception("could not answer", exc_info=exc)
                send(("error", request_id, "internal", exc.__class__.__name__))

    holder.start()
    threading.Thread(target=announce, name="announce", daemon=True).start()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message[0] == "stop":
            break
        if message[0] == "ask":
            threading.Thread(target=answer, args=message[1:], name=f"answer-{message[1]}", daemon=True).start()
    os._exit(0)  # threads still answering have no one to answer to


class _PipeGone(Exception):
    """The pipe to the serving process is closed."""

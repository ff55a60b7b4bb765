"""Prometheus metrics for /metrics: requests by route and outcome, answer and retrieval latency,
the index's size and generation, whether the vector store answers, answers in flight.

Labels are only ever route names, outcomes and channels from fixed sets: never question text,
paths as sent, or client addresses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from assistant.answer.types import Answer
from assistant.http_limits import AnswerSlots

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STORE_PROBE_TIMEOUT_S = 1.0

disable_created_metrics()  # no *_created series: they double the output and say nothing here


def answer_outcome(answer: Answer) -> str:
    if answer.safety:
        return "safety"
    return "refused" if answer.refused else "answered"


class _StoreProbe:
    """`count()` on the vector store in one background thread, never more than one at a time,
    so a frozen store costs one stuck thread, not one per scrape."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-probe")
        self._pending: Future[int] | None = None
        self._lock = threading.Lock()

    def up(self, store: Any) -> bool:
        with self._lock:
            if self._pending is not None and not self._pending.done():
                return False  # the last probe has not come back: the store does not answer
            self._pending = self._pool.submit(store.count)
            pending = self._pending
        try:
            pending.result(timeout=STORE_PROBE_TIMEOUT_S)
        except FutureTimeout:
            return False
        except Exception:
            return False
        return True


class _StateCollector(Collector):
    def __init__(self, pipeline: Callable[[], Any], slots: AnswerSlots) -> None:
        self._pipeline = pipeline
        self._slots = slots
        self._probe = _StoreProbe()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pipeline = self._pipeline()
        yield GaugeMetricFamily(
            "assistant_ready", "1 when the index is loaded and questions are answered", pipeline is not None
        )
        yield GaugeMetricFamily("assistant_answers_in_flight", "Answers being computed now", self._slots.in_flight)
        yield GaugeMetricFamily(
            "assistant_answers_waiting", "Questions waiting for an answer slot", self._slots.waiting
        )
        yield GaugeMetricFamily("assistant_answers_in_flight_limit", "Most answers computed at once", self._slots.limit)
        if pipeline is None:
            return
        stats = pipeline.stats()
        yield GaugeMetricFamily("assistant_index_documents", "Documents in the loaded index", stats.get("documents", 0))
        yield GaugeMetricFamily("assistant_index_chunks", "Chunks in the loaded index", stats.get("chunks", 0))
        corpus = getattr(pipeline, "corpus", None)
        yield GaugeMetricFamily(
            "assistant_index_generation", "Generation of the loaded index", getattr(corpus, "generation", 0)
        )
        store = getattr(pipeline, "store", None)
        yield GaugeMetricFamily(
            "assistant_vector_store_up", "1 when the vector store answers", store is not None and self._probe.up(store)
        )


class Metrics:
    """One registry per app (several apps may live in one test process)."""

    def __init__(self, pipeline: Callable[[], Any], slots: AnswerSlots) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "assistant_requests",
            "HTTP requests by route and outcome",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "assistant_request_seconds", "Whole HTTP request time", ["route"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.answers = Counter(
            "assistant_answers", "Answers by channel (api, ui) and outcome", ["channel", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.answer_seconds = Histogram(
            "assistant_answer_seconds", "Time to the verified answer", ["channel"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.retrieval_seconds = Histogram(
            "assistant_retrieval_seconds", "Time spent retrieving evidence", ["channel"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        ProcessCollector(registry=self.registry)
        self.registry.register(_StateCollector(pipeline, slots))

    def observe_answer(self, channel: str, outcome: str, answer: Answer | None = None) -> None:
        self.answers.labels(channel, outcome).inc()
        if answer is not None:
            timings = answer.timings_ms
            if "total" in timings:
                self.answer_seconds.labels(channel).observe(timings["total"] / 1000)
            if "retrieve" in timings:
                self.retrieval_seconds.labels(channel).observe(timings["retrieve"] / 1000)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

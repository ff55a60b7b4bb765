"""Prometheus metrics for /metrics: requests by route and outcome, answer and retrieval latency,
the index's size and generation, whether the vector store answers, answers in flight.

Labels are only ever route names, outcomes and channels from fixed sets: never question text,
paths as sent, or client addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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

disable_created_metrics()  # no *_created series: they double the output and say nothing here


def answer_outcome(answer: Answer) -> str:
    if answer.safety:
        return "safety"
    return "refused" if answer.refused else "answered"


class _StateCollector(Collector):
    def __init__(self, pipeline: Callable[[], Any], slots: AnswerSlots, store_up: Callable[[], bool]) -> None:
        self._pipeline = pipeline
        self._slots = slots
        self._store_up = store_up

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
        # What the calls to the store found (no call here: a frozen store must not hold up a scrape).
        yield GaugeMetricFamily(
            "assistant_vector_store_up", "1 when the vector store answers", pipeline is not None and self._store_up()
        )
        if pipeline is None:
            return
        stats = pipeline.stats()
        yield GaugeMetricFamily("assistant_index_documents", "Documents in the loaded index", stats.get("documents", 0))
        yield GaugeMetricFamily("assistant_index_chunks", "Chunks in the loaded index", stats.get("chunks", 0))
        corpus = getattr(pipeline, "corpus", None)
        yield GaugeMetricFamily(
            "assistant_index_generation", "Generation of the loaded index", getattr(corpus, "generation", 0)
        )


class Metrics:
    """One registry per app (several apps may live in one test process)."""

    def __init__(self, pipeline: Callable[[], Any], slots: AnswerSlots, store_up: Callable[[], bool]) -> None:
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
        self.registry.register(_StateCollector(pipeline, slots, store_up))

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

"""The pipeline as the API and the UI see it: every answer holds one of the answer slots (Busy
when none comes in time), a question is checked for length as sent, and every answer is counted
in the metrics; a UI answer also gets its own log line, since the HTTP request that asked for it
ended when the event was queued.

`ask_async` (and `ask`) is the API's channel, `stream` the UI's; everything else is the pipeline's own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from assistant.access_log import format_fields
from assistant.answer.types import Answer
from assistant.chain import MAX_QUESTION_CHARS, QuestionError
from assistant.http_limits import AnswerSlots, Busy
from assistant.metrics import Metrics, answer_outcome
from assistant.store import StoreUnavailable

ui_log = logging.getLogger("assistant.ui")


class GatedPipeline:
    def __init__(self, pipeline: Any, slots: AnswerSlots, metrics: Metrics, log_questions: bool = False) -> None:
        self._pipeline = pipeline
        self.slots = slots
        self.metrics = metrics
        self.log_questions = log_questions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline, name)

    def ask(self, question: str, *args: Any, **kwargs: Any) -> Answer:
        """For callers on a thread of their own: waits there for a slot."""
        if not self.slots.acquire():
            self.metrics.observe_answer("api", "busy")
            raise Busy()
        try:
            return self._answer("api", question, args, kwargs)
        finally:
            self.slots.release()

    async def ask_async(self, question: str, *args: Any, **kwargs: Any) -> Answer:
        """The API's call: waits for a slot without holding a thread, answers in a worker thread.
        Busy when no slot came in time; QuestionError for a question that cannot be asked."""
        if not await self.slots.acquire_async():
            self.metrics.observe_answer("api", "busy")
            raise Busy()
        try:
            return await run_in_threadpool(self._answer, "api", question, args, kwargs)
        finally:
            self.slots.release()

    def stream(self, question: str, *args: Any, **kwargs: Any) -> Iterator[str | Answer]:
        """The UI's call, on the UI's answer thread; Busy is a QuestionError, so the chat shows it."""
        started = time.perf_counter()
        outcome = "error"
        answer: Answer | None = None
        try:
            if not self.slots.acquire():
                self.metrics.observe_answer("ui", "busy")
                raise Busy()
            try:
                for item in self._events("ui", question, args, kwargs):
                    if isinstance(item, Answer):
                        answer = item
                        outcome = answer_outcome(item)
                    yield item
            finally:
                self.slots.release()
        except Busy:
            outcome = "busy"
            raise
        except QuestionError:
            outcome = "invalid"
            raise
        except StoreUnavailable:
            outcome = "unavailable"
            raise
        finally:
            fields: dict[str, Any] = {"channel": "ui", "outcome": outcome, "ms": (time.perf_counter() - started) * 1000}
            if answer is not None:
                fields.update(timing_fields(answer))
            if self.log_questions:
                fields["question"] = question
                fields["answer"] = answer.text if answer is not None else None
            ui_log.info("answer %s", format_fields(fields))

    def _answer(self, channel: str, question: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Answer:
        answer = None
        for item in self._events(channel, question, args, kwargs):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def _events(self, channel: str, question: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
        """The pipeline's stream, counted; the caller holds a slot."""
        try:
            if isinstance(question, str) and len(question) > MAX_QUESTION_CHARS:
                # As sent: the pipeline checks the cleaned text, and cleaning can hide any length.
                raise QuestionError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
            answer = None
            for item in self._pipeline.stream(question, *args, **kwargs):
                if isinstance(item, Answer):
                    answer = item
                yield item
        except Busy:  # a worker process that died while answering (assistant.workers)
            self.metrics.observe_answer(channel, "busy")
            raise
        except QuestionError:
            self.metrics.observe_answer(channel, "invalid")
            raise
        except StoreUnavailable:
            self.metrics.observe_answer(channel, "unavailable")
            raise
        except GeneratorExit:
            self.metrics.observe_answer(channel, "abandoned")
            raise
        except BaseException:
            self.metrics.observe_answer(channel, "error")
            raise
        else:
            if answer is not None:
                self.metrics.observe_answer(channel, answer_outcome(answer), answer)


def timing_fields(answer: Answer) -> dict[str, float]:
    return {f"{name}_ms": value for name, value in answer.timings_ms.items() if name != "total"}

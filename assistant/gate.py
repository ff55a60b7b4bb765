"""The pipeline as the API and the UI see it: every answer takes one of the answer slots (Busy
beyond them) and is counted in the metrics; a UI answer also gets its own log line, since the
HTTP request that asked for it ended when the event was queued.

`ask` is the API's channel, `stream` the UI's; everything else is the pipeline's own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from assistant.access_log import format_fields
from assistant.answer.types import Answer
from assistant.chain import QuestionError
from assistant.http_limits import AnswerSlots, Busy
from assistant.metrics import Metrics, answer_outcome

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
        """The API's call: raises Busy when every slot is taken, QuestionError for a bad question."""
        answer = None
        for item in self._gated("api", question, args, kwargs):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream(self, question: str, *args: Any, **kwargs: Any) -> Iterator[str | Answer]:
        """The UI's call; Busy is a QuestionError, so the chat shows its message."""
        started = time.perf_counter()
        outcome = "error"
        answer: Answer | None = None
        try:
            for item in self._gated("ui", question, args, kwargs):
                if isinstance(item, Answer):
                    answer = item
                    outcome = answer_outcome(item)
                yield item
        except Busy:
            outcome = "busy"
            raise
        except QuestionError:
            outcome = "invalid"
            raise
        finally:
            fields: dict[str, Any] = {"channel": "ui", "outcome": outcome, "ms": (time.perf_counter() - started) * 1000}
            if answer is not None:
                fields.update(timing_fields(answer))
            if self.log_questions:
                fields["question"] = question
                fields["answer"] = answer.text if answer is not None else None
            ui_log.info("answer %s", format_fields(fields))

    def _gated(self, channel: str, question: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
        if not self.slots.try_acquire():
            self.metrics.observe_answer(channel, "busy")
            raise Busy()
        try:
            answer = None
            for item in self._pipeline.stream(question, *args, **kwargs):
                if isinstance(item, Answer):
                    answer = item
                yield item
        except QuestionError:
            self.metrics.observe_answer(channel, "invalid")
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
        finally:
            self.slots.release()


def timing_fields(answer: Answer) -> dict[str, float]:
    return {f"{name}_ms": value for name, value in answer.timings_ms.items() if name != "total"}

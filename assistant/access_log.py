"""One log line per request, with a request id, timings and the outcome; nothing the user typed
unless `log_questions` is on.

A handler adds what it knows (outcome, timings, and with `log_questions` the question and the
answer) to ``scope["assistant.log"]``; the line is written when the response is done. The id
comes from a well-formed X-Request-ID header or is made here, and is sent back in X-Request-ID.

Gradio prints a traceback to stderr when an event's input fails its checks, and those
tracebacks carry what the user sent ("Value: '...' is not in the list of choices"); they are
replaced by one line naming the exception and where it was raised.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from assistant.http_limits import BUSY_RETRY_AFTER_S, ASGIApp, Message, Receive, Scope, Send, is_ui_event, send_error
from assistant.metrics import Metrics

log = logging.getLogger("assistant.access")
ui_log = logging.getLogger("assistant.ui")
SCOPE_KEY = "assistant.log"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
STOPPING = "the assistant is stopping (it may be restarting); try again shortly"


def setup_logging(level: int = logging.INFO) -> None:
    """Send the assistant's own log lines to stderr (uvicorn's access log stays off)."""
    root = logging.getLogger("assistant")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, (int, bool)) or (isinstance(value, str) and re.fullmatch(r"[\w./:-]{1,80}", value)):
        return str(value)
    return json.dumps(value, ensure_ascii=True)[:4000]  # quoted and escaped: no line breaks, no forged fields


def format_fields(fields: dict[str, Any]) -> str:
    return " ".join(f"{key}={_value(value)}" for key, value in fields.items() if value is not None)


def route_label(path: str, method: str, api_paths: set[str]) -> str:
    """A small fixed set of route names for metrics: never the path as sent."""
    if path in api_paths:
        return path
    if is_ui_event(path, method):
        return "ui_event"
    if "/gradio_api/" in path:
        return "ui_api"
    return "ui_page"


def outcome_of(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status == 503:
        return "unavailable"
    if status >= 500:
        return "error"
    if status >= 400:
        return "invalid"
    return "ok"


class AccessLog:
    """ASGI middleware, outermost: request id, one log line and the request metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, api_paths: Callable[[], set[str]]) -> None:
        self.app = app
        self.metrics = metrics
        self.api_paths = api_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = None
        for key, value in scope.get("headers", []):
            if key == b"x-request-id":
                sent = value.decode("latin-1")
        request_id = sent if sent and REQUEST_ID.match(sent) else uuid.uuid4().hex[:16]
        info: dict[str, Any] = {}
        scope[SCOPE_KEY] = info
        status = 500
        responding = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status = int(message["status"])
                responding = True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs when its shutdown grace is over, and would answer 500
            # with a traceback in the log; a client still waiting for an answer gets 503 instead.
            if responding:
                raise
            info["outcome"] = "unavailable"
            await send_error(send_with_id, 503, STOPPING, {"Retry-After": str(BUSY_RETRY_AFTER_S), "Connection": "close"})
        except Exception:
            info.setdefault("outcome", "error")
            raise
        finally:
            seconds = time.perf_counter() - started
            path = scope["path"]
            route = route_label(path, scope["method"], self.api_paths())
            outcome = info.pop("outcome", None) or outcome_of(status)
            self.metrics.requests.labels(route, outcome).inc()
            self.metrics.request_seconds.labels(route).observe(seconds)
            fields = {
                "id": request_id,
                "method": scope["method"],
                "path": path if len(path) <= 200 else path[:200] + "...",
                "status": status,
                "outcome": outcome,
                "ms": seconds * 1000,
                **info,
            }
            log.info("request %s", format_fields(fields))


class _QuietTraceback:
    """Stands in for the `traceback` module inside Gradio's modules: print_exc writes one line."""

    verbose = False

    def print_exc(self, *args: Any, **kwargs: Any) -> None:
        exc = sys.exception()
        if exc is None:
            return
        if self.verbose:
            ui_log.warning("UI event failed", exc_info=exc)
            return
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename.rsplit('/site-packages/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
        ui_log.warning(
            "UI event failed: %s at %s (message withheld: it may quote user input; ASSISTANT_LOG_QUESTIONS=true shows it)",
            type(exc).__name__,
            where,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)


_SHIM = _QuietTraceback()


def quiet_gradio_tracebacks(verbose: bool) -> None:
    """Replace `traceback.print_exc` in the Gradio modules that print user input in tracebacks."""
    import importlib

    _SHIM.verbose = verbose
    for name in ("gradio.queueing", "gradio.routes", "gradio.utils", "gradio.blocks"):
        module = importlib.import_module(name)
        if getattr(module, "traceback", None) is traceback:
            module.traceback = _SHIM  # type: ignore[attr-defined]

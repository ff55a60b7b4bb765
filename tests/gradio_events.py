"""Send one event to the Gradio UI the way its page does (queue/join, then the event stream)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx


def respond_index(base: str, prefix: str = "") -> int:
    config = httpx.get(f"{base}{prefix}/config", timeout=30).json()
    return next(int(d["id"]) for d in config["dependencies"] if d.get("api_name") == "respond")


def join(
    base: str, data: list[Any], prefix: str = "", headers: dict[str, str] | None = None
) -> tuple[httpx.Response, str]:
    """queue/join for the chat's respond event; the response and the session hash."""
    session = uuid.uuid4().hex[:12]
    body = {
        "data": data,
        "fn_index": respond_index(base, prefix),
        "session_hash": session,
        "event_data": None,
        "trigger_id": None,
    }
    response = httpx.post(f"{base}{prefix}/gradio_api/queue/join", json=body, headers=headers or {}, timeout=30)
    return response, session


def result(base: str, session: str, prefix: str = "") -> dict[str, Any]:
    """The process_completed message of the session's event."""
    with httpx.stream(
        "GET", f"{base}{prefix}/gradio_api/queue/data", params={"session_hash": session}, timeout=60
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return dict(message)
    raise AssertionError("the event stream ended without a result")


def ask_ui(base: str, question: str, audience: Any = "Patient", prefix: str = "") -> dict[str, Any]:
    response, session = join(base, [question, [], audience, {}], prefix)
    assert response.status_code == 200, response.text
    return result(base, session, prefix)

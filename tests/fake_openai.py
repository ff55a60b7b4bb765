"""A scripted OpenAI-compatible chat endpoint on 127.0.0.1, standing in for a hosted LLM API."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.conftest import free_port

VERIFY_PROMPT = "Reply with one word: yes or no."


class FakeOpenAI:
    """Replies are strings, or functions of the request's messages (to cite the passages it was
    sent). A verification prompt ("does the passage state the sentence?") is answered from
    ``verdicts``, "yes" when none is scripted, so scripted answers are judged by the rules alone."""

    def __init__(self) -> None:
        self.replies: list[Any] = []
        self.verdicts: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.port = free_port()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await request.json()
            self.requests.append(body)
            prompt = str(body.get("messages", [{}])[-1].get("content", ""))
            if VERIFY_PROMPT in prompt:
                text = self.verdicts.pop(0) if self.verdicts else "yes"
            else:
                reply = self.replies.pop(0) if self.replies else "NOT COVERED"
                text = reply(body["messages"]) if callable(reply) else reply
            if not body.get("stream"):
                return JSONResponse(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                )

            def events():  # type: ignore[no-untyped-def]
                for i in range(0, len(text), 7):
                    chunk = {
                        "id": "x",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": "fake",
                        "choices": [{"index": 0, "delta": {"content": text[i : i + 7]}, "finish_reason": None}],
                    }
                    yield f"data: {json.dumps(chunk)}\n\n"
                done = {
                    "id": "x",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "fake",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
                yield f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

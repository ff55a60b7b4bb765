"""Browser-facing headers: a Content-Security-Policy as tight as Gradio's front end allows, and
CORS for the framing origins only, without credentials.

What Gradio 6 needs, found by running the chat and the widget in Chromium with the policy on and
watching for violations (tests/test_web_security.py): eval (gr.HTML templates and custom js run
through `new Function`, so 'unsafe-eval' cannot go), inline styles (components set style
attributes), data: and blob: images. Its pages carry the app config in inline <script>s; rather
than allowing every inline script, each page's own inline scripts are allowed by their sha256,
so markup injected into a page cannot run script. Everything else is from our own origin: no
CDN, no third-party fonts, no plugins, and forms and <base> may only point at ourselves.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from assistant.http_limits import ASGIApp, Message, Receive, Scope, Send
from assistant.settings import Settings

# FastAPI's own docs pages load Swagger/ReDoc from a CDN; they keep only the framing rule.
DOC_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")


INLINE_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)


def content_security_policy(settings: Settings, path: str, script_hashes: Iterable[str] = ()) -> str:
    ancestors = " ".join(["'self'", *settings.frame_ancestors])
    if path in DOC_PATHS:
        return f"frame-ancestors {ancestors}"
    if path.startswith("/api/") or path == "/metrics" or path == "/openapi.json":
        return "default-src 'none'; frame-ancestors 'none'"
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self' 'unsafe-eval'", *(f"'sha256-{h}'" for h in script_hashes)]),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "media-src 'self' blob:",
            "worker-src 'self' blob:",
            "frame-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )


def add_cors(app: Any, settings: Settings) -> None:
    """CORS for the framing origins only, never with credentials.

    Always installed, even with no origins: Gradio answers any localhost origin with
    Access-Control-Allow-Credentials unless the parent app has its own CORSMiddleware.
    """
    from fastapi.middleware.cors import CORSMiddleware

    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.frame_ancestors),
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
        allow_credentials=False,
    )


def inline_script_hashes(html: bytes) -> list[str]:
    hashes = []
    for attributes, body in INLINE_SCRIPT.findall(html):
        if re.search(rb"\bsrc\s*=", attributes):
            continue
        hashes.append(base64.b64encode(hashlib.sha256(body).digest()).decode())
    return sorted(set(hashes))


def _is_page_request(scope: Scope) -> bool:
    path: str = scope["path"]
    return scope["method"] == "GET" and not any(p in path for p in ("/gradio_api/", "/assets/", "/api/"))


class PageScriptHashes:
    """ASGI middleware: an HTML page's CSP lists the sha256 of that page's own inline scripts.

    Page requests are asked for without compression, so the page can be read here (they are
    small); the body goes out unchanged.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_page_request(scope):
            await self.app(scope, receive, send)
            return
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]}
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold_html(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                found = dict(message.get("headers", []))
                html = found.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-encoding" not in found:
                    start = message
                    return
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                policy = content_security_policy(self.settings, scope["path"], inline_script_hashes(body))
                headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-security-policy"]
                headers.append((b"content-security-policy", policy.encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, hold_html)

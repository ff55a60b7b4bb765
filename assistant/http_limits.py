"""What keeps one client from stalling or flooding the others, in front of every route.

- bodies: refused by Content-Length before they are read (413), counted while they arrive
  (413 past the limit), and given a deadline to arrive in whole (408); the app then gets the
  buffered body, so no handler ever waits on a slow client;
- file uploads to Gradio: off (the chat takes no files);
- wrong methods on the API's own routes: 405 with Allow and the project's {"error"} body,
  instead of falling through to the UI mounted at / (404 with {"detail"});
- a rate limit per client on /api/ask and the UI's events (429 with Retry-After), the client
  taken from X-Forwarded-For only when the peer is a trusted proxy;
- a cap on answers computed at once (AnswerSlots: a short wait for a slot, then 503 with
  Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from assistant.chain import QuestionError
from assistant.settings import Settings

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BUSY_RETRY_AFTER_S = 2
UI_EVENT_MARKERS = ("/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/")
UPLOAD_MARKER = "/gradio_api/upload"


class Busy(QuestionError):
    """Every answer slot is taken; the client should retry shortly."""

    def __init__(self) -> None:
        super().__init__("The assistant is busy answering other questions; please try again in a few seconds.")


class _Waiter:
    """One caller waiting for a slot; `granted` is set under the slots' lock when one passes to it."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self.granted = False


class AnswerSlots:
    """At most `limit` answers computed at once, across the API and the UI.

    A caller beyond the limit waits up to `wait_s` for a slot, first come first served, and at
    most `max_waiting` callers wait; the rest are refused at once. Threads (the UI's answer
    threads) wait with `acquire`, coroutines (the API) with `acquire_async`, which holds no
    worker thread while it waits.
    """

    def __init__(self, limit: int, wait_s: float = 0.0, max_waiting: int = 0) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self.max_waiting = max_waiting
        self._in_flight = 0
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _take_or_queue(self, wake: Callable[[], None]) -> bool | _Waiter | None:
        """True: a slot is ours. A _Waiter: queued. None: refused."""
        with self._lock:
            if self._in_flight < self.limit and not self._waiters:
                self._in_flight += 1
                return True
            if len(self._waiters) >= self.max_waiting or self.wait_s <= 0:
                return None
            waiter = _Waiter(wake)
            self._waiters.append(waiter)
            return waiter

    def _give_up(self, waiter: _Waiter) -> bool:
        """After a wait ended without a wake-up seen: True if the slot came to us meanwhile."""
        with self._lock:
            if waiter.granted:
                return True
            self._waiters.remove(waiter)
            return False

    def acquire(self) -> bool:
        event = threading.Event()
        got = self._take_or_queue(event.set)
        if not isinstance(got, _Waiter):
            return bool(got)
        event.wait(self.wait_s)
        return self._give_up(got)

    async def acquire_async(self) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
                loop.call_soon_threadsafe(resolve)

        got = self._take_or_queue(wake)
        if not isinstance(got, _Waiter):
            return bool(got)
        try:
            await asyncio.wait_for(future, self.wait_s)
        except TimeoutError:
            return self._give_up(got)
        except asyncio.CancelledError:  # the client went away while waiting
            if self._give_up(got):
                self.release()
            raise
        return True

    def release(self) -> None:
        waiter = None
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.granted = True  # the slot passes on; in_flight stays
            else:
                self._in_flight = max(0, self._in_flight - 1)
        if waiter is not None:
            waiter.wake()


class RateLimiter:
    """A token bucket per client: `burst` requests at once, then `per_minute` a minute.

    Buckets are kept for at most `max_clients` clients (least recently seen dropped first), so
    many addresses cost bounded memory; a dropped client starts again with a full bucket.
    """

    def __init__(self, per_minute: float, burst: int, max_clients: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, client: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return None


def client_address(scope: Scope, trusted_proxies: Iterable[str]) -> str:
    """The peer address, or, when the peer is a trusted proxy, the nearest untrusted X-Forwarded-For hop."""
    client = scope.get("client")
    peer = _address(client[0]) if client else None
    peer = peer or "unknown"
    trusted = {a for a in (_address(p) for p in trusted_proxies) if a}
    if peer not in trusted:
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            hops.extend(value.decode("latin-1").split(","))
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return peer  # a garbled header: fall back to the proxy itself
        if address not in trusted:
            return address
    return peer


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def send_error(
    send: Send, status: int, message: str, headers: dict[str, str] | None = None, head: bool = False
) -> None:
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else body})


def is_ui_event(path: str, method: str) -> bool:
    return method == "POST" and any(marker in path for marker in UI_EVENT_MARKERS)


class HttpLimits:
    """ASGI middleware in front of the whole app (API and Gradio)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        api_methods: Callable[[], dict[str, set[str]]],
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.api_methods = api_methods
        self.limiter = limiter or RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self.exempt = {a for a in (_address(x) for x in settings.rate_limit_exempt) if a}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        head = method == "HEAD"

        if UPLOAD_MARKER in path:
            await send_error(send, 403, "this assistant takes no file uploads", head=head)
            return

        allowed = self.api_methods().get(path)
        preflight = method == "OPTIONS" and _header(scope, b"access-control-request-method") is not None
        if allowed is not None and method not in allowed and not preflight:
            await send_error(
                send, 405, f"{method} is not allowed here; use {', '.join(sorted(allowed))}",
                {"Allow": ", ".join(sorted(allowed))}, head=head,
            )  # fmt: skip
            return

        if (path == "/api/ask" and method == "POST") or is_ui_event(path, method):
            client = client_address(scope, self.settings.trusted_proxies)
            if client not in self.exempt:
                wait = self.limiter.take(client)
                if wait > 0:
                    seconds = max(1, math.ceil(wait))
                    await send_error(
                        send, 429, f"too many requests; try again in {seconds} s", {"Retry-After": str(seconds)}
                    )
                    return

        length_text = _header(scope, b"content-length")
        chunked = _header(scope, b"transfer-encoding") is not None
        if length_text is None and not chunked:
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
        too_large = f"the request body is larger than {limit} bytes"
        try:
            declared = int(length_text) if length_text is not None else 0
        except ValueError:
            await send_error(send, 400, "bad Content-Length", {"Connection": "close"})
            return
        if declared > limit:
            await send_error(send, 413, too_large, {"Connection": "close"})
            return

        body = bytearray()
        deadline = time.monotonic() + self.settings.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                await send_error(send, 408, "the request body did not arrive in time", {"Connection": "close"})
                return
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            body += message.get("body", b"")
            if len(body) > limit:
                await send_error(send, 413, too_large, {"Connection": "close"})
                return
            if not message.get("more_body", False):
                break

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def api_methods_of(app: Any) -> Callable[[], dict[str, set[str]]]:
    """Path -> methods of the app's own (non-mounted, parameterless) routes, read once on first use."""
    cache: dict[str, set[str]] = {}
    done = False

    def methods() -> dict[str, set[str]]:
        nonlocal done
        if not done:
            from starlette.routing import Route

            for route in app.routes:
                if isinstance(route, Route) and "{" not in route.path and route.methods:
                    cache.setdefault(route.path, set()).update(route.methods)
            done = True
        return cache

    return methods

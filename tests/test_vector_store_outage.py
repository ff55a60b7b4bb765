"""A Chroma server that dies, freezes or is not up yet, and an app stopped while it answers:
503 with Retry-After (never a hang or a 500), health that says so, one log line per failure,
recovery without a restart, and a clean exit on SIGTERM.

Everything runs on 127.0.0.1: a real `chroma run`, the app as a real process. Every wait is
bounded (client timeouts and deadlines), and nothing asserts how fast anything was.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from assistant.store import Availability, StoreUnavailable, VectorStore
from tests.conftest import free_port, make_settings

# --- the store's own bookkeeping (no server) ---------------------------------------------


def test_availability_fails_fast_while_down_lets_one_try_through_and_recovers() -> None:
    now = [100.0]
    availability = Availability("http://127.0.0.1:9", retry_s=1, retry_max_s=4, clock=lambda: now[0])
    availability.admit()  # up: every call goes ahead
    error = availability.failed(httpx.ConnectError("refused"))
    assert isinstance(error, StoreUnavailable) and not availability.up
    assert "ConnectError: refused" in str(availability.problem)
    for wait in (1, 2, 4, 4):  # after each failed try the wait doubles, up to retry_max_s
        now[0] += wait - 0.1
        with pytest.raises(StoreUnavailable):
            availability.admit()  # no try due yet: fails at once
        now[0] += 0.1
        availability.admit()  # the try
        with pytest.raises(StoreUnavailable):
            availability.admit()  # one try at a time
        availability.failed(httpx.ReadTimeout("timed out"))
    now[0] += 4
    availability.admit()
    availability.answered()
    assert availability.up and availability.problem is None
    availability.admit()
    availability.admit()  # up again: every call goes ahead


def test_a_server_that_is_not_there_is_unavailable_not_broken(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chroma_url=f"http://127.0.0.1:{free_port()}", chroma_timeout_s=5)
    with pytest.raises(StoreUnavailable, match="cannot reach Chroma"):
        VectorStore(settings)

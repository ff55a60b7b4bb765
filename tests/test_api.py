"""The HTTP API on a real uvicorn server on 127.0.0.1, and the browser UI in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ARTIFACTS, ROOT, free_port

pytestmark = pytest.mark.slow


def start_server(  # type: ignore[no-untyped-def]
    settings, extra_env: dict[str, str] | None = None, ready: tuple[int, ...] = (200,)
) -> tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    """The app on a free port, once /api/health answers with a status in `ready`.

    It answers in its own process unless `extra_env` sets ASSISTANT_WORKERS (the default of
    `make run` is one worker process per core): the tests of worker processes, of load, of the
    chat in a browser and of a rebuild while serving ask for 2; the others need not pay for them."""
    port = free_port()
    env = {
        **os.environ,
        "ASSISTANT_DATA_DIR": str(settings.data_dir),
        "ASSISTANT_CORPUS_DIR": str(settings.corpus_dir),
        "ASSISTANT_WORKERS": "1",
        **(extra_env or {}),
    }
    log = open(settings.data_dir / f"server-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(base + "/api/health", timeout=2).status_code in ready:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not become healthy: " + (settings.data_dir / f"server-{port}.log").read_text())


def stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(built_index) -> Iterator[str]:  # type: ignore[no-untyped-def]
    proc, base = start_server(built_index)
    yield base
    stop(proc)


def test_health_and_schema(server: str) -> None:
    health = httpx.get(server + "/api/health").json()
    assert set(health) == {"status", "documents", "chunks", "units", "generation"}
    assert health["status"] == "ok" and health["documents"] == 8 and health["chunks"] > 20
    assert health["units"] > health["chunks"] and health["generation"] >= 1
    schema = httpx.get(server + "/openapi.json").json()
    assert "/api/ask" in schema["paths"] and "AskRequest" in json.dumps(schema)


def test_ask_returns_cited_answer(server: str) -> None:
    body = httpx.post(server + "/api/ask", json={"question": "What side effects were seen?"}, timeout=30).json()
    assert "[1]" in body["answer"] and body["refused"] is False and body["safety"] is None
    first = body["citations"][0]
    assert set(first) >= {"id", "doc_id", "title", "kind", "source", "url", "section", "page", "quote"}
    assert first["id"] == 1 and "headache" in " ".join(c["quote"] for c in body["citations"])
    assert body["timings_ms"]["total"] > 0


def test_filters_by_document_kind(server: str) -> None:
    body = httpx.post(
        server + "/api/ask", json={"question": "What side effects were seen?", "kinds": ["news"]}, timeout=30
    ).json()
    assert body["citations"] and {c["kind"] for c in body["citations"]} == {"news"}
    bad = httpx.post(server + "/api/ask", json={"question": "hi", "kinds": ["blog"]}, timeout=30)
    assert bad.status_code == 422 and "kinds" in bad.text


def test_follow_up_and_clinician(server: str) -> None:
    body = httpx.post(
        server + "/api/ask",
        json={
            "question": "were those serious?",
            "audience": "clinician",
            "history": [
                {"role": "user", "content": "What side effects did patients have?"},
                {"role": "assistant", "content": "Headache and musculoskeletal pain."},
            ],
        },
        timeout=30,
    ).json()
    assert "serious" in body["answer"].lower() and body["citations"]


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"json": {"question": ""}}, 422, "question"),
        ({"json": {"question": "   \t "}}, 422, "question"),
        ({"json": {"question": "x" * 2001}}, 422, "question"),
        ({"json": {"question": "hi", "audience": "doctor"}}, 422, "audience"),
        ({"json": {"question": "hi", "history": [{"role": "system", "content": "x"}]}}, 422, "role"),
        ({"json": {"question": "hi", "history": [{"role": "user", "content": "x"}] * 21}}, 422, "history"),
        ({"json": {"question": 5}}, 422, "question"),
        ({"json": ["not", "an", "object"]}, 422, "body"),
        ({"json": {"question": "hi", "extra": 1}}, 422, "extra"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "invalid"),
        ({"content": b"question=hi", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415, "JSON"),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 422, "invalid"),
    ],
)
def test_bad_input_gets_a_clear_4xx(server: str, kwargs: dict, status: int, fragment: str) -> None:  # type: ignore[type-arg]
    response = httpx.post(server + "/api/ask", timeout=30, **kwargs)
    assert response.status_code == status
    text = response.text
    assert fragment.lower() in text.lower() and "Traceback" not in text and 'File "' not in text
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "question",
    [
        "<script>alert(1)</script> side effects?",
        "side\x00 effects\x07?",
        "lone \ud800 surrogate side effects",
        "副作用は何でしたか?",
        "¿Cuáles fueron los efectos secundarios?",
        "\u202e\u200bside effects",
    ],
)
def test_odd_text_is_handled_as_text(server: str, question: str) -> None:
    payload = json.dumps({"question": question}, ensure_ascii=True).encode()
    response = httpx.post(
        server + "/api/ask", content=payload, headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["answer"], str)


def test_concurrent_questions_are_all_answered(server: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    questions = ["What side effects were seen?", "What was the dose?", "Who led the study?", "Was there a placebo?"] * 4

    def ask(question: str) -> int:
        return httpx.post(server + "/api/ask", json={"question": question}, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(ask, questions))
    assert statuses == [200] * len(questions)


def test_frame_ancestors_default_is_same_origin(server: str) -> None:
    headers = httpx.get(server + "/widget/").headers
    assert "frame-ancestors 'self';" in headers["content-security-policy"] + ";"
    assert headers["x-frame-options"] == "SAMEORIGIN"


def test_health_is_503_before_the_index_is_loaded(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from assistant.api import PipelineHolder, create_app
    from tests.conftest import make_settings

    holder = PipelineHolder(make_settings(tmp_path))
    app = create_app(holder.settings, holder, with_ui=False)
    holder.start = lambda: None  # type: ignore[method-assign]
    with TestClient(app) as client:
        assert client.get("/api/health").status_code == 503
        assert client.post("/api/ask", json={"question": "hi"}).status_code == 503


# --- the browser -------------------------------------------------------------------------

# Debian's Chromium: the `browser` fixture is in conftest.py.


def ask_in_page(page, question: str) -> None:  # type: ignore[no-untyped-def]
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")


def last_bot(page):  # type: ignore[no-untyped-def]
    return page.locator("#chat .message.bot, #chat [data-testid='bot']").last


def test_chat_in_the_browser(server: str, browser, built_index) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server + "/", wait_until="load")
    page.get_by_label("Your question").wait_for(timeout=30000)
    assert page.get_by_text("not medical advice").first.is_visible()

    ask_in_page(page, "What side effects were seen?")
    page.locator("#sources .source").first.wait_for(timeout=30000)
    page.wait_for_function("document.querySelector('#chat').innerText.includes('[1]')", timeout=30000)
    assert "headache" in page.locator("#sources").inner_text().lower()
    assert page.locator("#sources .badge").first.inner_text() in ("Trial paper summary", "Patient FAQ", "Glossary")
    page.screenshot(path=str(ARTIFACTS / "chat-answer.png"), full_page=True)

    # Selecting [1] in the answer brings its source into view (answer 1 is chat message 1).
    page.locator("#chat a[href='#src-1-1']").last.click()
    page.wait_for_function("document.querySelector('#src-1-1').classList.contains('flash')", timeout=5000)
    assert page.evaluate("document.activeElement && document.activeElement.id") == "src-1-1"

    # Thumbs up is stored, without IP or user agent.
    page.locator("#chat button[aria-label='Like']").last.click()
    store = built_index.data_dir / "feedback.jsonl"
    deadline = time.time() + 10
    while time.time() < deadline and not (store.exists() and store.read_text().endswith("\n")):
        time.sleep(0.2)  # the vote is written by the server a moment after the click
    record = json.loads(store.read_text().splitlines()[-1])
    assert record["vote"] == "up" and record["question"] == "What side effects were seen?"
    assert record["citations"] and "ip" not in record and "user_agent" not in record

    # Clinician follow-up that needs the history, typed with the keyboard alone.
    page.get_by_role("radio", name="Patient").focus()
    page.keyboard.press("Tab")  # Gradio names each radio input apart, so Tab (not arrows) moves between them
    page.keyboard.press("Space")
    assert page.get_by_role("radio", name="Clinician").is_checked()
    page.locator("#glance").get_by_text("Study at a glance").wait_for(timeout=10000)
    page.get_by_label("Your question").focus()
    page.keyboard.type("were those serious?")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelector('#chat').innerText.toLowerCase().includes('serious adverse events')", timeout=30000
    )
    page.screenshot(path=str(ARTIFACTS / "chat-follow-up.png"), full_page=True)

    # HTML in a question is shown as text and runs nothing.
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    ask_in_page(page, "<img src=x onerror=alert(1)>")
    page.wait_for_function(
        "document.querySelector('#chat').innerText.includes('<img src=x onerror=alert(1)>')", timeout=30000
    )
    page.wait_for_timeout(1000)
    assert alerts == []
    assert page.locator("#chat img[src='x']").count() == 0
    page.screenshot(path=str(ARTIFACTS / "chat-xss.png"), full_page=True)

    # Emergency stands out.
    ask_in_page(page, "I just fell and suddenly can't feel my legs")
    page.locator("#alert .alert-emergency").wait_for(timeout=30000)
    assert "911" in page.locator("#alert").inner_text()
    page.screenshot(path=str(ARTIFACTS / "chat-emergency.png"), full_page=True)

    # A new conversation clears the chat, the sources and the alert.
    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function("!document.querySelector('#chat').innerText.includes('911')", timeout=10000)
    assert page.locator("#alert .alert").count() == 0 and page.locator("#sources .source").count() == 0
    page.close()


# The widget embedded from another origin, as the README says: tests/test_ui.py.

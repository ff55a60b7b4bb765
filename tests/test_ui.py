"""The chat and the widget as a clinic ships them: real uvicorn servers on 127.0.0.1, Debian's
headless Chromium, the real embedding model. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.answer.types import Answer, AnswerSentence, Citation
from assistant.bench_load import wait_for_workers
from tests.conftest import ARTIFACTS, ROOT, free_port
from tests.test_api import ask_in_page, start_server, stop

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WIDGET_SIZES = [(400, 640), (360, 560), (480, 720)]


# --- without a browser -------------------------------------------------------------------


def _answer(answerer: str, dropped: list[dict[str, Any]]) -> Answer:
    citation = Citation(
        id=1,
        doc_id="d",
        title="T",
        kind="paper-summary",
        kind_label="Trial paper summary",
        source="s",
        url=None,
        section=None,
        page=None,
        quote="No serious adverse events occurred.",
        chunk_id="c",
        quote_start=0,
        quote_end=35,
        context="No serious adverse events occurred.",
    )
    return Answer(
        question="q",
        audience="patient",
        sentences=[AnswerSentence("No serious adverse events occurred.", [1])],
        citations=[citation],
        dropped=dropped,
        answerer=answerer,
    )


def test_an_llm_answer_with_dropped_sentences_is_marked_without_showing_them() -> None:
    from assistant.ui import answer_markdown

    bad = {"sentence": "Stem cells regrow nerves.", "reason": "no citation"}
    marked = answer_markdown(_answer("llm", [bad, {**bad, "sentence": "Everyone walked."}]), 3)
    assert "2 sentences that the AI model wrote were left out" in marked and 'class="dropped-note"' in marked
    assert "regrow" not in marked and "walked" not in marked
    assert 'href="#src-3-1"' in marked  # markers lead to this answer's own sources
    fallback = answer_markdown(_answer("extractive (fallback)", [bad]), 1)
    assert "could not be checked against the sources" in fallback and "regrow" not in fallback
    assert "dropped-note" not in answer_markdown(_answer("llm", []), 1)
    assert "dropped-note" not in answer_markdown(_answer("extractive", []), 1)


def test_history_reads_gradio_6_message_parts() -> None:
    from assistant.ui import _history_for_pipeline

    chat = [
        {"role": "user", "content": [{"type": "text", "text": "What side effects were seen?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Headache <a href='#src-1-1'>[1]</a>"}]},
        {"role": "user", "content": "What &amp; why?"},
        {"role": "assistant", "content": "<p>shown</p>"},
    ]
    saved = {3: {"question": "What & why?", "answer": "The plain answer [1]."}}
    assert _history_for_pipeline(chat, saved) == [
        {"role": "user", "content": "What side effects were seen?"},
        {"role": "assistant", "content": "Headache [1]"},
        {"role": "user", "content": "What & why?"},
        {"role": "assistant", "content": "The plain answer [1]."},
    ]


def test_widget_without_a_slash_redirects_wherever_the_app_is_mounted(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from assistant.api import PipelineHolder, create_app
    from tests.conftest import make_settings

    holder = PipelineHolder(make_settings(tmp_path))
    holder.start = lambda: None  # type: ignore[method-assign]
    app = create_app(holder.settings, holder)
    with TestClient(app) as client:
        response = client.get("/widget?lang=en", follow_redirects=False)
        assert response.status_code in (301, 302, 307, 308)
        assert response.headers["location"] == "widget/?lang=en"
        assert client.get("/widget").status_code == 200  # followed: the widget page
    parent = FastAPI()
    parent.mount("/assistant", app)
    with TestClient(parent) as client:
        response = client.get("/assistant/widget", follow_redirects=False)
        assert response.headers["location"] == "widget/"  # resolves to /assistant/widget/
        response = client.get("/assistant", follow_redirects=False)
        assert response.status_code in (301, 302, 307, 308) and response.headers["location"].endswith("/assistant/")


# --- in the browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_server(built_index) -> Iterator[str]:  # type: ignore[no-untyped-def]
    proc, base = start_server(built_index, {"ASSISTANT_WORKERS": "2"})  # as `make run` on two cores
    yield base
    stop(proc)


def api(base: str, question: str, history: list[dict[str, str]] | None = None) -> dict[str, Any]:
    response = httpx.post(base + "/api/ask", json={"question": question, "history": history or []}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def api_conversation(base: str, questions: list[str]) -> list[dict[str, Any]]:
    """The API's answers to questions asked one after another, with the history the chat sends."""
    history: list[dict[str, str]] = []
    out = []
    for question in questions:
        body = api(base, question, history)
        out.append(body)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": body["answer"]}]
    return out


def first_sentence(text: str) -> str:
    return text.split("[1]")[0].strip()


def wait_for_answers(page_or_frame, count: int) -> None:  # type: ignore[no-untyped-def]
    """Until ``count`` answers are complete (each has its footer and its sources in the page)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        _wait_for_answers(page_or_frame, count)
    except PlaywrightTimeout:
        chat = page_or_frame.evaluate("() => (document.querySelector('#chat') || document.body).innerText")
        raise AssertionError(f"fewer than {count} complete answers; the conversation shows:\n{chat}") from None


def _wait_for_answers(page_or_frame, count: int) -> None:  # type: ignore[no-untyped-def]
    page_or_frame.wait_for_function(
        """(count) => {
          const chat = document.querySelector('#chat');
          if (!chat) return false;
          const bots = chat.querySelectorAll('[data-testid="bot"]');
          const done = Array.from(bots).filter((b) => /not medical advice|can't answer|911|988/.test(b.innerText));
          // The sources panel is a separate output that can arrive after the answer: complete
          // means every marker of the complete answers already leads to its card.
          const markers = done.flatMap((b) => Array.from(b.querySelectorAll('a[href^="#src-"]')));
          return done.length >= count && markers.every((a) => document.getElementById(a.getAttribute('href').slice(1)));
        }""",
        arg=count,
        timeout=60000,
    )


def visible_card(page_or_frame) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The source card that has focus after a marker was selected, as the reader sees it."""
    return page_or_frame.evaluate(
        """() => {
          const card = document.activeElement;
          if (!card || !card.classList.contains('source')) return null;
          const r = card.getBoundingClientRect();
          const group = card.closest('.answer-sources');
          const link = card.querySelector('a[href^="http"]');
          return {id: card.id, badge: card.querySelector('.badge').innerText, mark: card.querySelector('mark').innerText,
                  context: card.querySelector('.context').innerText, heading: group.querySelector('h3').innerText,
                  link: link ? link.getAttribute('href') : null, linkText: link ? link.innerText : null,
                  top: r.top, bottom: r.bottom, height: innerHeight,
                  shown: getComputedStyle(card).visibility !== 'hidden' && r.height > 0};
        }"""
    )


@pytest.mark.slow
def test_chat_markers_lead_to_their_own_answers_sources(ui_server: str, browser) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    first_q, second_q = "What side effects were seen?", "What was the primary outcome in the registry?"
    first, second = api_conversation(ui_server, [first_q, second_q])
    assert first["citations"][0]["quote"] != second["citations"][0]["quote"]
    page = browser.new_page(viewport=DESKTOP)
    page.goto(ui_server + "/", wait_until="load")
    ask_in_page(page, first_q)
    wait_for_answers(page, 1)
    ask_in_page(page, second_q)
    wait_for_answers(page, 2)
    page.locator("#sources .answer-sources").nth(1).wait_for()
    answers = page.locator("#chat [data-testid='bot']")

    answers.nth(0).locator("a", has_text="[1]").first.click()
    card = visible_card(page)
    assert card is not None and card["shown"], "selecting [1] in the first answer shows no source"
    assert card["mark"] == first["citations"][0]["quote"] and first_q in card["heading"]
    assert card["badge"] == first["citations"][0]["kind_label"]
    assert card["top"] >= 0 and card["bottom"] <= card["height"]
    page.screenshot(path=str(ARTIFACTS / "chat-desktop-first-answer-source.png"))

    answers.nth(1).locator("a", has_text="[1]").first.click()
    card = visible_card(page)
    assert card["mark"] == second["citations"][0]["quote"] and second_q in card["heading"]
    assert card["link"] == second["citations"][0]["url"] and card["linkText"] == "Open the original"
    # Only the selected answer's sources show in the panel.
    assert page.locator("#sources .answer-sources:visible").count() == 1
    page.screenshot(path=str(ARTIFACTS / "chat-desktop-second-answer-source.png"))
    page.close()


@pytest.mark.slow
def test_chat_follow_up_uses_the_conversation(ui_server: str, browser) -> None:  # type: ignore[no-untyped-def]
    first_q, follow_up = "What side effects were seen?", "were those serious?"
    earlier = api(ui_server, first_q)
    history = [{"role": "user", "content": first_q}, {"role": "assistant", "content": earlier["answer"]}]
    with_history, alone = api(ui_server, follow_up, history), api(ui_server, follow_up)
    # The follow-up is one whose answer depends on the history (else this test would prove nothing).
    assert first_sentence(with_history["answer"]) != first_sentence(alone["answer"])
    page = browser.new_page(viewport=DESKTOP)
    page.goto(ui_server + "/", wait_until="load")
    ask_in_page(page, first_q)
    wait_for_answers(page, 1)
    ask_in_page(page, follow_up)
    wait_for_answers(page, 2)
    shown = page.locator("#chat [data-testid='bot']").nth(1).inner_text()
    assert first_sentence(with_history["answer"]) in shown, "the chat answered the follow-up without its history"
    page.close()


@pytest.mark.slow
def test_chat_layout_and_states(ui_server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport=DESKTOP)
    page.goto(ui_server + "/", wait_until="load")
    page.get_by_label("Your question").wait_for()
    # No alert: no room taken by an empty alert block.
    heights = page.locator("#alert").evaluate_all("els => els.map((e) => e.getBoundingClientRect().height)")
    assert all(h == 0 for h in heights), f"an empty alert takes {heights} px"
    chat_box = page.locator("#chat").bounding_box()
    question_box = page.locator("#question").bounding_box()
    assert chat_box and question_box
    assert question_box["y"] - (chat_box["y"] + chat_box["height"]) < 30

    # The selected audience stays visibly selected under the pointer.
    def colours(name: str) -> str:
        return (
            page.get_by_text(name, exact=True)
            .locator("xpath=ancestor::label")
            .evaluate("e => getComputedStyle(e).backgroundColor")
        )

    selected, unselected = colours("Patient"), colours("Clinician")
    assert selected != unselected
    page.get_by_text("Patient", exact=True).hover()
    assert colours("Patient") == selected, "the selected chip looks unselected on hover"
    page.mouse.move(0, 0)

    # An example asks its question.
    # On a wide screen the examples sit under the question box, whatever the sources column holds.
    new_box = page.get_by_role("button", name="New conversation").bounding_box()
    chips = page.get_by_text("Patients often ask").filter(visible=True).bounding_box()
    assert new_box and chips and 0 < chips["y"] - new_box["y"] < 150
    page.get_by_text("What does autologous mean?", exact=True).filter(visible=True).click()
    wait_for_answers(page, 1)
    assert "What does autologous mean?" in page.locator("#chat").inner_text()
    assert "[1]" in page.locator("#chat [data-testid='bot']").first.inner_text()
    # More answers than the conversation's height: no label covers the first visible line.
    for count, question in enumerate(("What side effects were seen?", "What was the dose?"), start=2):
        ask_in_page(page, question)
        wait_for_answers(page, count)
    covered = page.evaluate(
        """() => {
          const chat = document.querySelector('#chat');
          const r = chat.getBoundingClientRect();
          const out = [];
          for (const y of [r.top + 6, r.top + 16, r.top + 26]) {
            for (const x of [r.left + 30, r.left + r.width / 2]) {
              const e = document.elementFromPoint(x, y);
              const label = e && e.closest('label, [data-testid="block-label"]');
              if (label && chat.contains(label)) out.push(label.innerText);
            }
          }
          return out;
        }"""
    )
    assert covered == [], f"a label covers the conversation: {covered}"
    page.screenshot(path=str(ARTIFACTS / "chat-desktop.png"), full_page=True)
    page.close()


@pytest.mark.slow
def test_chat_on_a_phone(ui_server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport=PHONE)
    page.goto(ui_server + "/", wait_until="load")
    ask_in_page(page, "What side effects were seen?")
    wait_for_answers(page, 1)
    page.locator("#sources .source").first.wait_for()
    # The sources come right after the conversation, before the example questions.
    box = page.locator("#question").bounding_box()
    sources = page.locator("#sources").bounding_box()
    chips = page.get_by_text("Patients often ask").filter(visible=True).bounding_box()
    assert box and sources and chips
    assert sources["y"] < chips["y"], "the example chips stand between the answer and its sources"
    assert sources["y"] - (box["y"] + box["height"]) < 200
    page.locator("#chat [data-testid='bot'] a", has_text="[1]").first.click()
    card = visible_card(page)
    assert card and card["shown"] and 0 <= card["top"] < card["height"], "[1] did not bring the source into view"
    page.screenshot(path=str(ARTIFACTS / "chat-phone-source.png"))

    # A safety alert is where the person is looking: in view after they ask.
    ask_in_page(page, "I just fell and suddenly can't feel my legs")
    alert = page.locator("#alert .alert-emergency")
    alert.wait_for()
    assert alert.evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
    ), "the emergency alert is off-screen"
    page.screenshot(path=str(ARTIFACTS / "chat-phone-emergency.png"))
    page.close()


@pytest.mark.slow
def test_docs_work_offline(ui_server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport=DESKTOP)
    elsewhere: list[str] = []

    def only_here(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(ui_server):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    page.goto(ui_server + "/docs", wait_until="load")
    page.locator(".swagger-ui .opblock-summary-path", has_text="/api/ask").first.wait_for(timeout=30000)
    assert elsewhere == []
    page.screenshot(path=str(ARTIFACTS / "docs-offline.png"))
    page.close()


@pytest.mark.slow
def test_the_widget_address_as_printed_opens_the_widget(ui_server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 400, "height": 640})
    page.goto(ui_server + "/widget?from=start-up-line", wait_until="load")
    page.get_by_label("Your question").wait_for()
    assert page.url == ui_server + "/widget/?from=start-up-line"
    page.close()


# --- the widget, embedded as the README says -----------------------------------------------


def readme_embed_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- embed-commands")[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, commands
    return commands


def wait_http(url: str, proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode}") from None
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def widget_fits(frame) -> list[str]:  # type: ignore[no-untyped-def]
    """What of the widget is cut off or scrolled out of its frame."""
    return frame.evaluate(
        """() => {
          const problems = [];
          const de = document.documentElement;
          if (de.scrollHeight > de.clientHeight + 1) problems.push(`page scrolls: ${de.scrollHeight} > ${de.clientHeight}`);
          if (de.scrollWidth > de.clientWidth + 1) problems.push(`page scrolls sideways: ${de.scrollWidth}`);
          for (const sel of ['.not-advice', '#chat', '#question textarea', '#question button', '#new-conversation']) {
            const e = document.querySelector(sel);
            if (!e) { problems.push(`${sel} missing`); continue; }
            const r = e.getBoundingClientRect();
            if (r.top < 0 || r.bottom > innerHeight + 1 || r.left < 0 || r.right > innerWidth + 1 || r.height < 10)
              problems.push(`${sel} at ${Math.round(r.top)}..${Math.round(r.bottom)} of ${innerHeight}`);
          }
          return problems;
        }"""
    )


def first_line_visible(frame, index: int) -> bool:  # type: ignore[no-untyped-def]
    """Scroll answer ``index`` to the top of the conversation: is its first line uncovered?"""
    return frame.evaluate(
        """(index) => {
          const bot = document.querySelectorAll('#chat [data-testid="bot"]')[index];
          bot.scrollIntoView({block: 'start'});
          const first = bot.querySelector('p') || bot;
          const r = first.getBoundingClientRect();
          const chat = document.querySelector('#chat').getBoundingClientRect();
          const y = Math.max(r.top, chat.top) + 8;
          const e = document.elementFromPoint(r.left + 12, y);
          return !!e && bot.contains(e);
        }""",
        index,
    )


@pytest.mark.slow
def test_widget_embedded_as_the_readme_says(built_index, browser) -> None:  # type: ignore[no-untyped-def]
    serve_page, run_app = readme_embed_commands()
    embed_port = free_port()
    # Its own process group: the shell's children (the page server) end with it.
    site = subprocess.Popen(serve_page.replace("8000", str(embed_port)), shell=True, cwd=ROOT, start_new_session=True)
    # `make run` is `.venv/bin/python app.py`; here on a free port, with the README's environment.
    words = shlex.split(run_app.replace("8000", str(embed_port)))
    assert words[-2:] == ["make", "run"]
    env = dict(w.split("=", 1) for w in words[:-2])
    assert set(env) == {"ASSISTANT_FRAME_ANCESTORS"}
    proc, base = start_server(built_index, env)
    try:
        origin = f"http://127.0.0.1:{embed_port}"
        wait_http(origin + "/embed.html", site)
        first_q, second_q = "What side effects were seen?", "What was the primary outcome in the registry?"
        first, second = api_conversation(base, [first_q, second_q])
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(f"{origin}/embed.html?assistant={base}", wait_until="load")
        iframe = page.locator("iframe#celltop-assistant")
        frame = iframe.element_handle().content_frame()
        frame.get_by_label("Your question").wait_for(timeout=30000)
        assert widget_fits(frame) == []

        frame.get_by_label("Your question").fill(first_q)
        frame.get_by_label("Your question").press("Enter")
        wait_for_answers(frame, 1)
        frame.get_by_label("Your question").fill(second_q)
        frame.get_by_label("Your question").press("Enter")
        wait_for_answers(frame, 2)
        assert widget_fits(frame) == []
        assert first_line_visible(frame, 0) and first_line_visible(frame, 1)

        # [1] in each answer opens that answer's source 1: kind, quote in context, link.
        answers = frame.locator("#chat [data-testid='bot']")
        answers.nth(0).locator("a", has_text="[1]").first.click()
        card = visible_card(frame)
        assert card is not None and card["shown"], "selecting [1] in the widget shows nothing"
        assert card["mark"] == first["citations"][0]["quote"] and card["badge"] == first["citations"][0]["kind_label"]
        assert len(card["context"]) > len(card["mark"]) and card["top"] >= 0 and card["bottom"] <= card["height"]
        page.screenshot(path=str(ARTIFACTS / "widget-400x640-source.png"))
        frame.get_by_role("button", name="Close the sources").click()
        frame.locator("#sources").wait_for(state="hidden")
        # With the keyboard alone: Enter on the marker opens, Escape closes and returns to the marker.
        marker = answers.nth(1).locator("a", has_text="[1]").first
        marker.focus()
        page.keyboard.press("Enter")
        card = visible_card(frame)
        assert card is not None and card["mark"] == second["citations"][0]["quote"]
        assert card["link"] == second["citations"][0]["url"] and card["linkText"] == "Open the original"
        page.keyboard.press("Escape")
        frame.locator("#sources").wait_for(state="hidden")
        assert marker.evaluate("e => e === document.activeElement")
        page.screenshot(path=str(ARTIFACTS / "widget-400x640.png"))

        for width, height in WIDGET_SIZES[1:]:
            iframe.evaluate("(f, size) => { f.width = size[0]; f.height = size[1]; }", [width, height])
            frame.wait_for_function("(w) => innerWidth === w", arg=width)
            assert widget_fits(frame) == [], f"at {width}x{height}"
            assert first_line_visible(frame, 1)
            page.screenshot(path=str(ARTIFACTS / f"widget-{width}x{height}.png"))

        # In the smallest frame, an emergency alert shows and still nothing is cut off.
        iframe.evaluate("(f) => { f.width = 360; f.height = 560; }")
        frame.wait_for_function("() => innerWidth === 360")
        frame.get_by_label("Your question").fill("I just fell and suddenly can't feel my legs")
        frame.get_by_label("Your question").press("Enter")
        alert = frame.locator("#alert .alert-emergency")
        alert.wait_for()
        assert widget_fits(frame) == []
        assert alert.evaluate(
            "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
        )
        page.screenshot(path=str(ARTIFACTS / "widget-360x560-emergency.png"))

        frame.get_by_role("button", name="New conversation").click()
        frame.wait_for_function("!document.querySelector('#chat [data-testid=\"bot\"]')")
        page.close()
    finally:
        stop(proc)
        os.killpg(site.pid, signal.SIGTERM)
        site.wait(timeout=15)


@pytest.mark.slow
def test_the_web_component_loads_from_the_app_itself(built_index, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import http.server
    import threading

    embed_port = free_port()
    origin = f"http://127.0.0.1:{embed_port}"
    proc, base = start_server(built_index, {"ASSISTANT_FRAME_ANCESTORS": json.dumps([origin])})
    (tmp_path / "wc.html").write_text(
        f'<!doctype html><meta charset="utf-8"><script type="module" src="{base}/gradio.js"></script>'
        f'<gradio-app src="{base}/widget/"></gradio-app>'
    )
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", embed_port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        page = browser.new_page(viewport={"width": 480, "height": 720})
        elsewhere: list[str] = []

        def only_here(route) -> None:  # type: ignore[no-untyped-def]
            if route.request.url.startswith(("http://127.0.0.1:", "data:", "blob:")):
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", only_here)
        page.goto(origin + "/wc.html", wait_until="load")
        box = page.locator("gradio-app").get_by_label("Your question")
        box.wait_for(timeout=30000)
        box.fill("What side effects were seen?")
        box.press("Enter")
        wait_for_answers(page, 1)
        assert "[1]" in page.locator("#chat").inner_text() and elsewhere == []
        page.close()
    finally:
        httpd.shutdown()
        stop(proc)


# --- an LLM answer whose unsupported sentences were dropped ---------------------------------

FALSE_SENTENCE = "Stem cells regrow the injured nerves and cure paralysis."


@pytest.mark.slow
def test_an_llm_answer_with_dropped_sentences_is_marked_in_chat_and_widget(built_index, browser) -> None:  # type: ignore[no-untyped-def]
    from tests.fake_openai import FakeOpenAI

    question = "What side effects were seen?"
    with FakeOpenAI() as fake:
        env = {
            "ASSISTANT_ANSWERER": "llm",
            "ASSISTANT_LLM_BASE_URL": fake.base_url,
            "ASSISTANT_LLM_MODEL": "fake",
            "ASSISTANT_LLM_TIMEOUT_S": "120",
            "ASSISTANT_WORKERS": "2",  # the LLM's sentences are written, verified and streamed in worker processes
        }
        proc, base = start_server(built_index, env)
        try:
            wait_for_workers(base)
            # Which passage number the endpoint is shown for the side effects (the fallback answers this one).
            fake.replies.append("placeholder")
            api(base, question)
            system = fake.requests[-1]["messages"][0]["content"]
            passages = re.split(r"\n\[(\d+)\] \([^\n]*\)\n", system.split("Passages:", 1)[1])
            number, passage = next(
                (int(n), text) for n, text in zip(passages[1::2], passages[2::2], strict=True) if "headache" in text
            )
            # Two sentences the passage states word for word, and one false sentence without a citation.
            kept = [s.strip() + "." for s in passage.split(". ") if "headache" in s or "serious" in s][:2]
            assert len(kept) == 2, passage
            reply = f"{kept[0].rstrip('.')} [{number}]. {kept[1].rstrip('.')} [{number}]. {FALSE_SENTENCE}"
            fake.replies.append(reply)
            body = api(base, question)
            assert body["answerer"] == "llm" and FALSE_SENTENCE not in body["answer"]
            assert [d["sentence"] for d in body["dropped"]] == [FALSE_SENTENCE]

            for path, name in (("/", "chat"), ("/widget/", "widget")):
                fake.replies.append(reply)
                page = browser.new_page(viewport=DESKTOP if name == "chat" else {"width": 400, "height": 640})
                page.goto(base + path, wait_until="load")
                page.get_by_label("Your question").wait_for()
                # Everything the conversation shows while the answer streams and is revealed.
                page.evaluate(
                    """() => {
                      window.__seen = [];
                      const chat = document.querySelector('#chat');
                      new MutationObserver(() => window.__seen.push(chat.innerText))
                        .observe(chat, {subtree: true, childList: true, characterData: true});
                    }"""
                )
                ask_in_page(page, question)
                note = page.locator("#chat .dropped-note")
                note.wait_for(timeout=60000)
                assert "1 sentence that the AI model wrote was left out" in note.inner_text()
                assert note.is_visible()
                seen = page.evaluate("window.__seen")
                assert seen and not any("regrow" in text for text in seen), "the false sentence reached the screen"
                assert kept[0].rstrip(".") in page.locator("#chat").inner_text()
                page.screenshot(path=str(ARTIFACTS / f"{name}-llm-dropped-note.png"))
                page.close()
        finally:
            stop(proc)

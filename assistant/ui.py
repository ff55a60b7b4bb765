"""Gradio chat at / and the compact widget at /widget: thin handlers over the same pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import re
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from fastapi import Request
from fastapi.responses import FileResponse, RedirectResponse

from assistant.answer.types import Answer
from assistant.chain import QuestionError
from assistant.feedback import FeedbackStore
from assistant.settings import Settings
from assistant.site import Site, load_site
from assistant.store import StoreUnavailable

if TYPE_CHECKING:
    from fastapi import FastAPI

    from assistant.api import PipelineHolder

STATIC = Path(__file__).parent / "static"
FIELD_LABELS = {
    "registry_id": "Registry",
    "phase": "Phase",
    "design": "Design",
    "enrollment": "Enrollment",
    "population": "Population",
    "cell_source": "Cell source",
    "dose": "Dose",
    "route": "Route",
    "schedule": "Schedule",
    "timing": "Timing",
    "primary_outcome": "Primary outcome",
    "secondary_outcomes": "Secondary outcomes",
    "follow_up": "Follow-up",
    "common_adverse_events": "Most common adverse events",
    "serious_adverse_events": "Serious adverse events",
    "headline_result": "Headline result",
}
CHECKING = "Writing the answer and checking every sentence against the sources…"
NO_SOURCES = '<div class="sources-empty">Sources for the latest answer appear here.</div>'
UNAVAILABLE = "The assistant is temporarily unavailable. Please try again in a minute."


def _esc(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def dropped_note(answer: Answer) -> str | None:
    """A plain note on an answer the LLM wrote whose unsupported sentences were left out.

    The dropped sentences themselves are never shown: they are what the sources did not support.
    """
    if answer.refused or not answer.sentences or not answer.dropped:
        return None
    if answer.answerer == "llm":
        n = len(answer.dropped)
        what = "1 sentence" if n == 1 else f"{n} sentences"
        verb, pronoun = ("was", "it") if n == 1 else ("were", "them")
        return f"Note: {what} that the AI model wrote {verb} left out of this answer: the sources did not support {pronoun}."
    if answer.answerer.startswith("extractive") and answer.answerer != "extractive":
        return (
            "Note: the AI model's answer could not be checked against the sources, "
            "so this answer quotes the sources directly instead."
        )
    return None


def answer_markdown(answer: Answer, number: int = 0, inline_sources: bool = False) -> str:
    """The answer for the chat: [n] link to this answer's source n; user text stays text.

    ``number`` tells this answer's sources from other answers' in the same conversation.
    """
    text = _esc(answer.text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\[(\d+)\]", rf'<a href="#src-{number}-\1" title="Show source \1">[\1]</a>', text)
    note = dropped_note(answer)
    if note:
        text += f'\n\n<span class="dropped-note" role="note">{_esc(note)}</span>'
    if inline_sources and answer.citations:
        # One entry per document, with its markers: "Title [1] [2] · Other title [3]".
        by_title: dict[str, list[int]] = {}
        for c in answer.citations:
            by_title.setdefault(c.title, []).append(c.id)
        entries = []
        for title, ids in by_title.items():
            marks = " ".join(f'<a href="#src-{number}-{n}" title="Show source {n}">[{n}]</a>' for n in ids)
            entries.append(f"{_esc(title)} {marks}")
        text += f'\n\n<span class="source-list"><strong>Sources:</strong> {" · ".join(entries)}</span>'
    return text


def _source_card(number: int, c: Mapping[str, Any]) -> str:
    context = c.get("context") or c["quote"]
    start, end = c.get("quote_start"), c.get("quote_end")
    if not isinstance(start, int) or not isinstance(end, int) or context[start:end] != c["quote"]:
        start, end = 0, 0
        context = c["quote"]
        end = len(context)
    before, after = context[:start], context[end:]
    where = " · ".join(
        x for x in (c.get("section"), f"page {c['page']}" if c.get("page") else None, c.get("source")) if x
    )
    link = (
        f'<div><a href="{_esc(c["url"])}" target="_blank" rel="noopener noreferrer">Open the original</a></div>'
        if c.get("url")
        else ""
    )
    note = (
        '<div class="news-note">News article: a secondary report, not the paper.</div>' if c["kind"] == "news" else ""
    )
    return (
        f'<div class="source" id="src-{number}-{c["id"]}" role="region" aria-label="Source {c["id"]}">'
        f'<span class="badge kind-{_esc(c["kind"])}">{_esc(c["kind_label"])}</span>'
        f"<strong>[{c['id']}] {_esc(c['title'])}</strong>"
        f'<div class="where">{_esc(where)}</div>{note}'
        f'<div class="context">{_esc(before)}<mark>{_esc(c["quote"])}</mark>{_esc(after)}</div>{link}</div>'
    )


def sources_html(saved: Mapping[Any, Mapping[str, Any]] | None, sheet: bool = False) -> str:
    """Every answer's sources, grouped by answer; the latest answer's group shows.

    Selecting [n] in an earlier answer shows that answer's group instead (ui.js).
    """
    records = sorted(((int(k), v) for k, v in (saved or {}).items() if v.get("citations")), key=lambda kv: kv[0])
    close = '<button type="button" class="sheet-close" aria-label="Close the sources">Close</button>' if sheet else ""
    if not records:
        return close + NO_SOURCES
    groups = []
    for i, (number, record) in enumerate(records):
        latest = i == len(records) - 1
        cards = "".join(_source_card(number, c) for c in record["citations"])
        groups.append(
            f'<section class="answer-sources" data-answer="{number}"{"" if latest else " hidden"}>'
            f"<h3>Sources for “{_esc(record.get('question'))}”</h3>{cards}</section>"
        )
    return close + "".join(groups)


def alert_html(answer: Answer | None) -> str:
    if answer is None or answer.safety not in ("emergency", "crisis"):
        return ""
    # The site file's message (its country's numbers), bold kept.
    body = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", _esc(answer.preamble))
    return f'<div class="alert alert-{answer.safety}" role="alert">{body}</div>'


def glance_html(holder: PipelineHolder) -> str:
    pipeline = holder.pipeline
    if pipeline is None:
        return ""
    blocks = []
    for title, fields in pipeline.trial_fields():
        rows = "".join(
            f"<tr><td><strong>{_esc(FIELD_LABELS.get(k, k))}</strong></td><td>{_esc(v)}</td></tr>"
            for k, v in fields.items()
        )
        blocks.append(
            f'<div class="glance"><strong>Study at a glance</strong> — {_esc(title)}<table>{rows}</table></div>'
        )
    return "".join(blocks)


async def _answer_stream(holder: PipelineHolder, question: str, audience: str, history: list[dict[str, str]]):
    """Run the pipeline in a worker thread; yield its text pieces and the Answer without blocking the loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    def work() -> None:
        try:
            pipeline = holder.pipeline
            if pipeline is None:
                if holder.error:
                    raise QuestionError("The assistant could not load its study material; please try again later.")
                if holder.store_problem:
                    raise StoreUnavailable(holder.store_problem)
                raise QuestionError("the assistant is still loading; try again in a few seconds")
            for item in pipeline.stream(question, audience=audience, history=history):  # type: ignore[arg-type]
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except Exception as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    threading.Thread(target=work, daemon=True).start()
    while True:
        item = await queue.get()
        if item is done:
            return
        yield item


def _message_text(content: Any) -> str:
    """A chat message's text, whatever shape Gradio gives it: a string, a part, or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "") if content.get("type", "text") == "text" else ""
    if isinstance(content, (list, tuple)):
        return " ".join(t for t in (_message_text(part) for part in content) if t)
    return ""


def _history_for_pipeline(chat: list[dict[str, Any]], saved: Mapping[Any, Mapping[str, Any]]) -> list[dict[str, str]]:
    """The conversation so far as plain text, for follow-ups (Gradio 6 gives content as a list of parts)."""
    out = []
    for index, message in list(enumerate(chat))[-20:]:
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        record = saved.get(index) or saved.get(str(index))
        if role == "assistant" and record is not None:
            text = str(record.get("answer") or "")
        else:
            text = re.sub(r"<[^>]+>", "", html.unescape(_message_text(message.get("content"))))
        if text.strip():
            out.append({"role": role, "content": text})
    return out


def example_sets(question: gr.Textbox, site: Site) -> list[Any]:
    """The example questions of the site file; selecting one asks it (wired in build_blocks)."""
    return [
        gr.Examples(list(site.patient_examples), inputs=question, label="Patients often ask"),
        gr.Examples(list(site.clinician_examples), inputs=question, label="Clinicians often ask"),
    ]


def build_blocks(settings: Settings, holder: PipelineHolder, compact: bool = False) -> gr.Blocks:
    store = FeedbackStore(settings.feedback_path, settings.feedback_enabled)
    site = load_site(settings.site_file)
    with gr.Blocks(title=site.title + (" (widget)" if compact else ""), fill_height=compact) as blocks:
        answers = gr.State({})  # chat message index -> answer JSON, for feedback, history and sources
        if not compact:
            gr.Markdown(f"# {site.title}\n{site.intro}")
        gr.HTML(f'<div class="not-advice" role="note">{_esc(site.not_advice)}</div>')
        examples: list[Any] = []
        # The widget's parts sit at the top level, so that the conversation takes the frame's free height.
        row = contextlib.nullcontext() if compact else gr.Row(equal_height=False)
        with row:
            with contextlib.nullcontext() if compact else gr.Column(scale=3, min_width=380):
                audience = gr.Radio(
                    ["Patient", "Clinician"],
                    value="Patient",
                    label="I am a",
                    elem_id="audience",
                    visible=not compact,
                )
                chatbot = gr.Chatbot(
                    label="Conversation",
                    show_label=False,
                    elem_id="chat",
                    height=None if compact else 480,
                    min_height=160 if compact else None,
                    scale=1 if compact else None,
                    feedback_options=("Like", "Dislike") if settings.feedback_enabled else None,
                    sanitize_html=True,
                    buttons=["copy"],
                )
                # A safety alert sits between the conversation and the question box, where the
                # person is looking; it takes no room when there is none.
                alert = gr.HTML("", elem_id="alert", visible=False, container=False)
                question = gr.Textbox(
                    label="Your question",
                    show_label=not compact,
                    placeholder="Ask about the study, e.g. What side effects were seen?",
                    elem_id="question",
                    lines=1,
                    max_lines=4,
                    max_length=2000,
                    submit_btn="Ask",
                )
                new = gr.Button(
                    "New conversation", elem_id="new-conversation", variant="secondary", size="sm" if compact else "md"
                )
                if not compact:
                    # Example questions: next to the question box on a wide screen; on a narrow one
                    # (where the columns stack) after the sources instead, see below.
                    with gr.Row(elem_classes=["examples-wide"]):
                        examples.extend(example_sets(question, site))
            if not compact:
                with gr.Column(scale=2, min_width=300):
                    gr.Markdown("## Sources")
                    sources = gr.HTML(sources_html(None), elem_id="sources")
                    glance = gr.HTML("", elem_id="glance", visible=False)
        if compact:
            sources = gr.HTML(sources_html(None, sheet=True), elem_id="sources", container=False)
            glance = gr.HTML("", visible=False)
        else:
            # On a phone the sources come right after the answer, then the examples.
            with gr.Row(elem_classes=["examples-narrow"]):
                examples.extend(example_sets(question, site))

        async def respond(
            message: str, chat: list[dict[str, Any]], who: str, saved: dict[Any, Any]
        ) -> AsyncIterator[Any]:
            message = (message or "").strip()
            if not message:
                gr.Warning("Type a question first.")
                yield gr.update(), chat, gr.update(), gr.update(), saved
                return
            history = _history_for_pipeline(chat, saved)
            chat = [*chat, {"role": "user", "content": _esc(message)}, {"role": "assistant", "content": ""}]
            number = len(chat) - 1  # this answer's number: its markers lead to its own sources
            yield "", chat, gr.update(), gr.update(value="", visible=False), saved
            answer: Answer | None = None
            drafting = False
            async for item in _answer_stream(holder, message, who.lower(), history):
                if isinstance(item, Exception):
                    if isinstance(item, StoreUnavailable):
                        problem = UNAVAILABLE
                    elif isinstance(item, QuestionError):
                        problem = str(item)
                    else:
                        problem = "Something went wrong; please try again."
                    chat[-1] = {"role": "assistant", "content": _esc(problem)}
                    yield gr.update(), chat, gr.update(), gr.update(), saved
                    return
                if isinstance(item, Answer):
                    answer = item
                elif not drafting:
                    # An LLM's raw tokens are not shown: nothing reaches the reader before it is verified.
                    drafting = True
                    chat[-1] = {"role": "assistant", "content": _esc(CHECKING)}
                    yield gr.update(), chat, gr.update(), gr.update(), saved
            assert answer is not None
            final = answer_markdown(answer, number, inline_sources=compact)
            # Reveal the verified answer sentence by sentence, so it reads as it comes.
            for count in range(1, len(answer.sentences)):
                partial = dataclasses.replace(answer, sentences=answer.sentences[:count], notices=[], dropped=[])
                chat[-1] = {"role": "assistant", "content": answer_markdown(partial, number)}
                yield gr.update(), chat, gr.update(), gr.update(), saved
                await asyncio.sleep(0.05)
            chat[-1] = {"role": "assistant", "content": final}
            saved = {**saved, number: {"question": message, **answer.as_json()}}
            alert_now = alert_html(answer)
            yield (
                gr.update(),
                chat,
                sources_html(saved, sheet=compact),
                gr.update(value=alert_now, visible=bool(alert_now)),
                saved,
            )

        def on_like(data: gr.LikeData, saved: dict[Any, Any]) -> None:
            index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
            record = saved.get(index) or saved.get(str(index))
            if record is None or data.liked is None:
                return
            store.record(record["question"], record["answer"], record["citations"], "up" if data.liked else "down")

        def new_conversation() -> tuple[Any, ...]:
            return [], {}, sources_html(None, sheet=compact), gr.update(value="", visible=False), ""

        def switch(who: str) -> Any:
            return gr.update(value=glance_html(holder), visible=who == "Clinician")

        outputs = [question, chatbot, sources, alert, answers]
        inputs = [question, chatbot, audience, answers]
        # A question asked while an answer is still arriving is answered next, not dropped
        # (Gradio's default "once" ignores a submission while one is pending).
        question.submit(respond, inputs, outputs, concurrency_limit=None, trigger_mode="always_last")
        for ex in examples:
            ex.load_input_event.then(respond, inputs, outputs, concurrency_limit=None, trigger_mode="always_last")
        chatbot.like(on_like, [answers], None)
        new.click(new_conversation, None, [chatbot, answers, sources, alert, question])
        chatbot.clear(new_conversation, None, [chatbot, answers, sources, alert, question])
        audience.change(switch, audience, glance)
    return blocks


def mount_ui(app: FastAPI, settings: Settings, holder: PipelineHolder) -> None:
    css = (STATIC / "ui.css").read_text()
    js = (STATIC / "ui.js").read_text()

    @app.get("/widget", include_in_schema=False)
    def _widget_slash(request: Request) -> RedirectResponse:
        # Relative, so it also holds when the app is mounted under a prefix or behind a proxy.
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"widget/{query}", status_code=307)

    @app.get("/gradio.js", include_in_schema=False)
    def _gradio_js() -> FileResponse:
        # Gradio's web-component loader, served by the app itself (no CDN); it imports ./assets/…,
        # which the chat mounted at / serves.
        return FileResponse(
            Path(gr.__file__).parent / "templates" / "frontend" / "gradio.js", media_type="text/javascript"
        )

    widget = build_blocks(settings, holder, compact=True)
    widget.queue(default_concurrency_limit=16)
    gr.mount_gradio_app(
        app,
        widget,
        path="/widget",
        css=css + (STATIC / "widget.css").read_text(),
        js=js,
        footer_links=[],
        show_error=False,
    )
    main = build_blocks(settings, holder, compact=False)
    main.queue(default_concurrency_limit=16)
    gr.mount_gradio_app(app, main, path="/", css=css, js=js, footer_links=[], show_error=False)


__all__ = ["build_blocks", "mount_ui"]

"""Gradio chat at / and the compact widget at /widget: thin handlers over the same pipeline."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import re
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.answer.types import Answer
from assistant.chain import QuestionError
from assistant.feedback import FeedbackStore
from assistant.settings import Settings
from assistant.triage import PATIENT_FOOTER

if TYPE_CHECKING:
    from fastapi import FastAPI

    from assistant.api import PipelineHolder

PATIENT_EXAMPLES = [
    "What side effects were seen?",
    "Does this treatment work?",
    "Can I get this treatment?",
    "What does autologous mean?",
]
CLINICIAN_EXAMPLES = [
    "What was the primary endpoint?",
    "How many participants improved by at least one AIS grade?",
    "Was the trial randomized or blinded?",
    "What was the dose and route?",
]
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
NOT_ADVICE = "This assistant gives information about a study, not medical advice. In an emergency, call 911."

CSS = """
.not-advice {background:#fff7d6; color:#3d3000; border:1px solid #c9a800; border-radius:6px; padding:8px 12px;}
#alert .alert {border-radius:8px; padding:14px 16px; font-size:1.1em; margin-bottom:8px;}
#alert .alert-emergency {background:#b00020; color:#fff;}
#alert .alert-crisis {background:#4a148c; color:#fff;}
#alert .alert a, #alert .alert strong {color:#fff; text-decoration:underline;}
.source {border:1px solid #999; border-radius:6px; padding:8px 10px; margin-bottom:8px; background:#fff; color:#111;}
.source.flash {outline:3px solid #1a56db;}
.source .badge {display:inline-block; font-size:0.8em; font-weight:600; padding:1px 8px; border-radius:10px;
  background:#e6e6e6; color:#111; margin-right:6px;}
.badge.kind-paper-summary {background:#0b5394; color:#fff;} .badge.kind-registry {background:#38761d; color:#fff;}
.badge.kind-news {background:#a61c00; color:#fff;} .badge.kind-case-report {background:#674ea7; color:#fff;}
.source .context {font-size:0.92em; color:#222; margin:6px 0;}
.source mark {background:#ffe066; color:#000;}
.source .where {font-size:0.85em; color:#333;}
.source .news-note {font-size:0.85em; color:#7a1600;}
.glance table {font-size:0.9em;} .glance td {padding:2px 6px; vertical-align:top; color:#111;}
"""

JS = """
() => {
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[href^="#src-"]');
    if (!link) return;
    event.preventDefault();
    const target = document.getElementById(link.getAttribute('href').slice(1));
    if (target) {
      target.scrollIntoView({behavior: 'smooth', block: 'nearest'});
      target.classList.add('flash');
      target.setAttribute('tabindex', '-1');
      target.focus({preventScroll: true});
      setTimeout(() => target.classList.remove('flash'), 1500);
    }
  }, true);
}
"""


def _esc(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def answer_markdown(answer: Answer, inline_sources: bool = False) -> str:
    """The answer for the chat: [n] become links to the sources panel; user text stays text."""
    text = _esc(answer.text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\[(\d+)\]", r'<a href="#src-\1" title="Show source \1">[\1]</a>', text)
    if inline_sources and answer.citations:
        lines = ["", "<small><strong>Sources</strong></small>"]
        for c in answer.citations:
            lines.append(f"<small>[{c.id}] <em>{_esc(c.title)}</em> ({_esc(c.kind_label)}): “{_esc(c.quote)}”</small>")
        text += "\n\n" + "<br>".join(lines)
    return text


def sources_html(answer: Answer | None) -> str:
    if answer is None or not answer.citations:
        return '<div class="sources-empty">Sources for the latest answer appear here.</div>'
    parts = []
    for c in answer.citations:
        before = c.context[: c.quote_start]
        after = c.context[c.quote_end :]
        where = " · ".join(x for x in (c.section, f"page {c.page}" if c.page else None, c.source) if x)
        link = (
            f'<div><a href="{_esc(c.url)}" target="_blank" rel="noopener noreferrer">Open the original</a></div>'
            if c.url
            else ""
        )
        note = (
            '<div class="news-note">News article: a secondary report, not the paper.</div>' if c.kind == "news" else ""
        )
        parts.append(
            f'<div class="source" id="src-{c.id}" role="region" aria-label="Source {c.id}">'
            f'<span class="badge kind-{_esc(c.kind)}">{_esc(c.kind_label)}</span>'
            f"<strong>[{c.id}] {_esc(c.title)}</strong>"
            f'<div class="where">{_esc(where)}</div>{note}'
            f'<div class="context">{_esc(before)}<mark>{_esc(c.quote)}</mark>{_esc(after)}</div>{link}</div>'
        )
    return "".join(parts)


def alert_html(answer: Answer | None) -> str:
    if answer is None or answer.safety not in ("emergency", "crisis"):
        return ""
    if answer.safety == "emergency":
        body = "<strong>Emergency: call 911 now</strong> (or your local emergency number). Do not wait for this chat."
    else:
        body = (
            "<strong>Call or text 988</strong> (Suicide &amp; Crisis Lifeline, US) any time. "
            "If you are in danger now, <strong>call 911</strong>."
        )
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


def _history_for_pipeline(chat: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for message in chat[-20:]:
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": message["role"], "content": re.sub(r"<[^>]+>", "", html.unescape(content))})
    return out


def build_blocks(settings: Settings, holder: PipelineHolder, compact: bool = False) -> gr.Blocks:
    store = FeedbackStore(settings.feedback_path, settings.feedback_enabled)
    with gr.Blocks(title="CELLTOP study assistant" + (" (widget)" if compact else ""), fill_height=compact) as blocks:
        answers = gr.State({})  # chat message index -> answer JSON, for feedback
        if not compact:
            gr.Markdown(
                "# CELLTOP study assistant\nQuestions about the Mayo Clinic Phase 1 trial of a patient's own "
                "fat-derived stem cells injected into the spinal fluid after spinal cord injury. "
                "Answers come only from the study material, and every sentence cites its source."
            )
        gr.HTML(f'<div class="not-advice" role="note">{_esc(NOT_ADVICE)}</div>')
        alert = gr.HTML("", elem_id="alert")
        with gr.Row():
            with gr.Column(scale=3):
                audience = gr.Radio(
                    ["Patient", "Clinician"],
                    value="Patient",
                    label="I am a",
                    elem_id="audience",
                    visible=not compact,
                )
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="chat",
                    height=360 if compact else 480,
                    feedback_options=("Like", "Dislike") if settings.feedback_enabled else None,
                    sanitize_html=True,
                    buttons=["copy"],
                )
                question = gr.Textbox(
                    label="Your question",
                    placeholder="Ask about the study, e.g. What side effects were seen?",
                    elem_id="question",
                    lines=1,
                    max_lines=4,
                    max_length=2000,
                    submit_btn="Ask",
                )
                with gr.Row():
                    new = gr.Button("New conversation", elem_id="new-conversation", variant="secondary")
                if not compact:
                    with gr.Row():
                        gr.Examples(PATIENT_EXAMPLES, inputs=question, label="Patients often ask")
                        gr.Examples(CLINICIAN_EXAMPLES, inputs=question, label="Clinicians often ask")
            if not compact:
                with gr.Column(scale=2):
                    gr.Markdown("## Sources")
                    sources = gr.HTML(sources_html(None), elem_id="sources")
                    glance = gr.HTML("", elem_id="glance", visible=False)
        if compact:
            sources = gr.HTML("", visible=False)
            glance = gr.HTML("", visible=False)

        async def respond(
            message: str, chat: list[dict[str, Any]], who: str, saved: dict[int, Any]
        ) -> AsyncIterator[Any]:
            message = (message or "").strip()
            if not message:
                gr.Warning("Type a question first.")
                yield gr.update(), chat, gr.update(), gr.update(), saved
                return
            history = _history_for_pipeline(chat)
            chat = [*chat, {"role": "user", "content": _esc(message)}, {"role": "assistant", "content": ""}]
            yield "", chat, gr.update(), gr.update(), saved
            answer: Answer | None = None
            drafting = False
            async for item in _answer_stream(holder, message, who.lower(), history):
                if isinstance(item, Exception):
                    problem = (
                        str(item) if isinstance(item, QuestionError) else "Something went wrong; please try again."
                    )
                    chat[-1] = {"role": "assistant", "content": _esc(problem)}
                    yield "", chat, gr.update(), gr.update(), saved
                    return
                if isinstance(item, Answer):
                    answer = item
                elif not drafting:
                    # An LLM's raw tokens are not shown: nothing reaches the reader before it is verified.
                    drafting = True
                    chat[-1] = {"role": "assistant", "content": _esc(CHECKING)}
                    yield "", chat, gr.update(), gr.update(), saved
            assert answer is not None
            final = answer_markdown(answer, inline_sources=compact)
            # Reveal the verified answer sentence by sentence, so it reads as it comes.
            for count in range(1, len(answer.sentences)):
                partial = dataclasses.replace(answer, sentences=answer.sentences[:count], notices=[])
                chat[-1] = {"role": "assistant", "content": answer_markdown(partial)}
                yield "", chat, gr.update(), gr.update(), saved
                await asyncio.sleep(0.05)
            chat[-1] = {"role": "assistant", "content": final}
            saved = {**saved, len(chat) - 1: {"question": message, **answer.as_json()}}
            yield "", chat, sources_html(answer), alert_html(answer), saved

        def on_like(data: gr.LikeData, saved: dict[int, Any]) -> None:
            index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
            record = saved.get(index) or saved.get(str(index))  # type: ignore[call-overload]
            if record is None or data.liked is None:
                return
            store.record(record["question"], record["answer"], record["citations"], "up" if data.liked else "down")

        def new_conversation() -> tuple[Any, ...]:
            return [], {}, sources_html(None), "", ""

        def switch(who: str) -> Any:
            return gr.update(value=glance_html(holder), visible=who == "Clinician")

        outputs = [question, chatbot, sources, alert, answers]
        question.submit(respond, [question, chatbot, audience, answers], outputs, concurrency_limit=None)
        chatbot.like(on_like, [answers], None)
        new.click(new_conversation, None, [chatbot, answers, sources, alert, question])
        audience.change(switch, audience, glance)
    return blocks


def mount_ui(app: FastAPI, settings: Settings, holder: PipelineHolder) -> None:
    widget = build_blocks(settings, holder, compact=True)
    widget.queue(default_concurrency_limit=16)
    gr.mount_gradio_app(app, widget, path="/widget", css=CSS, js=JS, footer_links=[], show_error=False)
    main = build_blocks(settings, holder, compact=False)
    main.queue(default_concurrency_limit=16)
    gr.mount_gradio_app(app, main, path="/", css=CSS, js=JS, footer_links=[], show_error=False)


__all__ = ["PATIENT_FOOTER", "build_blocks", "mount_ui"]

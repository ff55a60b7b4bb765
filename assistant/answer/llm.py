"""Optional LLM answerer: any OpenAI-compatible chat endpoint through LangChain.

The LLM only drafts. Each sentence it writes is tied to the passage it cites, and the
verifier keeps it only when a verbatim span of that passage supports it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

from assistant.answer.types import Claim, Draft, Quote
from assistant.chunking import split_sentences
from assistant.kinds import kind_label
from assistant.prompts import load_prompts
from assistant.retrieval import Corpus, Evidence
from assistant.settings import Settings
from assistant.text import numbers, terms

log = logging.getLogger("assistant.llm")
MARKER = re.compile(r"\[(\d+)\]")
NOT_COVERED = "NOT COVERED"


class LLMAnswerer:
    name = "llm"

    def __init__(self, settings: Settings, chat_model: Any = None) -> None:
        self.settings = settings
        self.prompts = load_prompts(settings.prompts_dir)
        if chat_model is None:
            from langchain_openai import ChatOpenAI

            chat_model = ChatOpenAI(
                model=settings.llm_model,
                base_url=settings.llm_base_url,
                api_key=os.environ.get(settings.llm_api_key_env) or "not-needed",  # type: ignore[arg-type]
                timeout=settings.llm_timeout_s,
                max_retries=0,
                temperature=0,
                max_tokens=400,  # type: ignore[call-arg]
            )
        self.model = chat_model

    def condense(self, question: str, turns: Sequence[Any]) -> str | None:
        history = "\n".join(f"{t.role}: {t.content}" for t in turns[-6:])
        prompt = self.prompts["condense"].format(history=history, question=question)
        try:
            reply = self.model.invoke(prompt)
        except Exception as exc:  # the endpoint is outside the project: any failure means "not now"
            log.warning("condense failed: %s", exc)
            return None
        text = str(getattr(reply, "content", reply)).strip().splitlines()
        line = text[0].strip() if text else ""
        return line if 3 <= len(line) <= 500 else None

    def states(self, passage: str, sentence: str) -> bool | None:
        """The model's yes/no on whether ``passage`` states ``sentence`` (None: no usable reply).
        Used after the verifier's own rules, never instead of them."""
        prompt = self.prompts["verify"].format(passage=passage, sentence=sentence)
        try:
            reply = self.model.invoke(prompt)
        except Exception as exc:  # the endpoint is outside the project
            log.warning("verify check failed: %s", exc)
            return None
        word = re.match(r"\W*(yes|no)\b", str(getattr(reply, "content", reply)).strip().lower())
        if word is None:
            return None
        return word.group(1) == "yes"

    def stream(self, question: str, evidence: list[Evidence], audience: str, corpus: Corpus) -> Iterator[str | Draft]:
        passages = "\n\n".join(
            f"[{i}] ({kind_label(e.doc.kind)}: {e.doc.title}"
            + (f", {e.chunk.section}" if e.chunk.section else "")
            + f")\n{e.chunk.text}"
            for i, e in enumerate(evidence, start=1)
        )
        system = self.prompts["system_clinician" if audience == "clinician" else "system_patient"].format(
            evidence=passages
        )
        messages = [("system", system), ("human", question)]
        text = ""
        try:
            for piece in self.model.stream(messages):
                token = str(getattr(piece, "content", piece) or "")
                if token:
                    text += token
                    yield token
        except Exception as exc:
            log.warning("LLM call failed: %s", exc)
            yield Draft(
                claims=[],
                dropped=[{"sentence": "", "reason": f"LLM unavailable: {type(exc).__name__}"}],
                answerer="llm",
            )
            return
        yield parse_answer(text, evidence, corpus)


def parse_answer(text: str, evidence: list[Evidence], corpus: Corpus) -> Draft:
    """Tie each sentence of an LLM answer to the best-matching span of each passage it cites."""
    text = text.strip()
    if not text or text.upper().startswith(NOT_COVERED):
        return Draft(claims=[], refused=True, answerer="llm")
    claims: list[Claim] = []
    dropped: list[dict[str, Any]] = []
    for sentence in split_sentences(text):
        cited = [int(n) for n in MARKER.findall(sentence.text)]
        plain = MARKER.sub("", sentence.text).strip()
        plain = re.sub(r"\s+([.,;:!?])", r"\1", plain)
        if not plain:
            continue
        quotes: list[Quote] = []
        for n in dict.fromkeys(cited):
            if not 1 <= n <= len(evidence):
                dropped.append({"sentence": plain, "reason": f"cites [{n}], which is not a passage"})
                quotes = []
                break
            quote = best_span(plain, evidence[n - 1], corpus)
            if quote is not None:
                quotes.append(quote)
        if cited and not quotes and not any(d["sentence"] == plain for d in dropped):
            dropped.append({"sentence": plain, "reason": "no span of the cited passage supports it"})
            continue
        claims.append(Claim(text=plain, quotes=quotes))
    return Draft(claims=claims, dropped=dropped, answerer="llm")


def best_span(sentence: str, evidence: Evidence, corpus: Corpus) -> Quote | None:
    """The passage sentence (or two adjacent ones) sharing the most words and numbers with ``sentence``."""
    wanted = set(terms(sentence))
    figures = set(numbers(sentence))
    spans = corpus.sentences(evidence.chunk)
    best: tuple[float, Quote] | None = None
    for i in range(len(spans)):
        for j in (i, i + 1):
            if j >= len(spans):
                continue
            start, end = spans[i].start, spans[j].end
            quote_text = evidence.chunk.text[start:end]
            have = set(terms(quote_text))
            score = len(wanted & have) / (len(wanted) or 1) - (0.001 * (j - i))
            if figures and figures <= set(numbers(quote_text)):
                score += 0.1  # prefer the span that has the sentence's numbers; the verifier checks them
            if best is None or score > best[0]:
                best = (score, Quote(evidence.chunk.id, start, end))
    return best[1] if best is not None and best[0] > 0 else None

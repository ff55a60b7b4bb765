"""Before retrieval: emergencies, crises and personal treatment decisions go to real care."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml

Safety = Literal["emergency", "crisis", "medical_advice"]

EMERGENCY_MESSAGE = (
    "**This sounds like an emergency. Call 911 now** (or your local emergency number). "
    "Sudden or severe symptoms, such as trouble breathing, chest pain, sudden weakness or loss of feeling, need "
    "emergency care right away. "
    "Do not wait for an answer from this chat."
)
CRISIS_MESSAGE = (
    "**You deserve support right now.** In the US, call or text **988** to reach the 988 Suicide & Crisis "
    "Lifeline, any time, day or night. If you might act on these thoughts or are in danger, call **911** "
    "(or your local emergency number) now. You are not alone, and people want to help."
)
ADVICE_MESSAGE = (
    "I can't tell you what to do about your own care. That decision belongs with your own doctor, who knows "
    "you and your health. Here is what the study material says, which you can take to them:"
)
PATIENT_FOOTER = "This is information about a study, not medical advice. Talk with your own doctor about your care."


@lru_cache(maxsize=1)
def _patterns() -> dict[str, list[re.Pattern[str]]]:
    text = resources.files("assistant").joinpath("data/triage.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {
        key: [re.compile(p, re.IGNORECASE) for p in data.get(key, [])]
        for key in ("emergency", "crisis", "medical_advice", "instructions")
    }


def triage(question: str, *also: str) -> Safety | None:
    """Classify a question; instructions inside it ("ignore your rules") change nothing here.
    With ``also`` (other forms of the same question), the most urgent class any of them gets."""
    texts = [" ".join(q.replace("’", "'").split()) for q in (question, *also)]
    patterns = _patterns()
    for key in ("crisis", "emergency", "medical_advice"):
        if any(p.search(text) for p in patterns[key] for text in texts):
            return key
    return None


def strip_instructions(question: str) -> str:
    """The question without instructions aimed at the assistant ("forget your rules and ...")."""
    text = question
    for pattern in _patterns()["instructions"]:
        text = pattern.sub(" ", text)
    text = " ".join(text.split())
    return text if len(text.split()) >= 2 else question

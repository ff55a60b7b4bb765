"""Prompt templates as files, checked for exactly the variables the code fills in."""

from __future__ import annotations

from pathlib import Path

from langchain_core.prompts import PromptTemplate

PROMPTS = {
    "system_patient": {"evidence"},
    "system_clinician": {"evidence"},
    "condense": {"history", "question"},
    "verify": {"passage", "sentence"},
}


class PromptError(ValueError):
    """A prompt file is missing or has the wrong variables."""


def load_prompt(directory: Path, name: str) -> PromptTemplate:
    path = directory / f"{name}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"cannot read prompt {path}: {exc.strerror or exc}") from exc
    try:
        template = PromptTemplate.from_template(text)
    except ValueError as exc:
        raise PromptError(f"prompt {path} is not a valid template: {exc}") from exc
    expected = PROMPTS[name]
    found = set(template.input_variables)
    if found != expected:
        missing = ", ".join(sorted(expected - found)) or "none"
        extra = ", ".join(sorted(found - expected)) or "none"
        raise PromptError(f"prompt {path} must use exactly {sorted(expected)}; missing: {missing}; unexpected: {extra}")
    return template


def load_prompts(directory: Path) -> dict[str, PromptTemplate]:
    return {name: load_prompt(directory, name) for name in PROMPTS}

"""What the app says about itself and where it sends people in danger: data, not code.

A clinic serving its own documents names its study, its example questions and the emergency and
crisis numbers of its country in a YAML file (``ASSISTANT_SITE_FILE``, default ``site.yaml``; the
shipped one is about CELLTOP and US numbers). Keys it leaves out take the generic defaults below,
which name no study and no country's number.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import yaml

from assistant.errors import UserError


class SiteFileError(UserError):
    """The site file cannot be read or has unknown keys or wrong types."""


@dataclass(frozen=True)
class Site:
    title: str = "Study assistant"
    intro: str = (
        "Questions about the study in this material. Answers come only from the study material, and "
        "every sentence cites its source."
    )
    api_description: str = "Answers about the study from its material only, with verified citations."
    patient_examples: tuple[str, ...] = ("What side effects were seen?", "Does this treatment work?")
    clinician_examples: tuple[str, ...] = ("What was the primary endpoint?", "Was the trial randomized or blinded?")
    not_advice: str = (
        "This assistant gives information about a study, not medical advice. In an emergency, call your local "
        "emergency number."
    )
    emergency: str = (
        "**This sounds like an emergency. Call your local emergency number now.** Sudden or severe symptoms, "
        "such as trouble breathing, chest pain, sudden weakness or loss of feeling, need emergency care right "
        "away. Do not wait for an answer from this chat."
    )
    crisis: str = (
        "**You deserve support right now.** Please call your local crisis line or emergency number now, or go "
        "to the nearest emergency department. If you might act on these thoughts or are in danger, call your "
        "local emergency number. You are not alone, and people want to help."
    )
    advice: str = (
        "I can't tell you what to do about your own care. That decision belongs with your own doctor, who knows "
        "you and your health. Here is what the study material says, which you can take to them:"
    )
    footer: str = "This is information about a study, not medical advice. Talk with your own doctor about your care."


def load_site(path: Path | None) -> Site:
    """The site file at ``path`` over the defaults; the defaults alone when there is no such file."""
    if path is None or not path.is_file():
        return Site()
    return _load(path.resolve(), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: Path, _mtime: int) -> Site:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SiteFileError(f"site file {path}: cannot be read ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise SiteFileError(f"site file {path}: expected a mapping of keys to text")
    known = {f.name: f for f in fields(Site)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SiteFileError(f"site file {path}: unknown keys {', '.join(unknown)} (known: {', '.join(known)})")
    values: dict[str, object] = {}
    for key, value in data.items():
        if key.endswith("_examples"):
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise SiteFileError(f"site file {path}: {key} must be a list of questions")
            values[key] = tuple(value)
        elif not isinstance(value, str) or not value.strip():
            raise SiteFileError(f"site file {path}: {key} must be non-empty text")
        else:
            values[key] = value.strip()
    return replace(Site(), **values)  # type: ignore[arg-type]

"""Kinds of source document and what each means to the answer: one data table (data/kinds.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True)
class KindInfo:
    name: str
    label: str
    trust: float
    secondary: bool = False
    caveats: bool = False
    personal: bool = False


def _parse(name: str, raw: Any) -> KindInfo:
    if not isinstance(raw, dict) or not isinstance(raw.get("label"), str):
        raise ValueError(f"kind {name!r} needs at least a text 'label'")
    unknown = set(raw) - {"label", "trust", "secondary", "caveats", "personal"}
    if unknown:
        raise ValueError(f"kind {name!r} has unknown fields: {', '.join(sorted(unknown))}")
    trust = float(raw.get("trust", 0.9))
    if not 0 < trust <= 1.5:
        raise ValueError(f"kind {name!r}: trust must be in (0, 1.5]")
    return KindInfo(
        name=name,
        label=raw["label"],
        trust=trust,
        secondary=bool(raw.get("secondary", False)),
        caveats=bool(raw.get("caveats", False)),
        personal=bool(raw.get("personal", False)),
    )


@lru_cache(maxsize=1)
def _shipped() -> dict[str, KindInfo]:
    data = yaml.safe_load(resources.files("assistant").joinpath("data/kinds.yaml").read_text(encoding="utf-8"))
    return {name: _parse(name, raw) for name, raw in data.items()}


_extra: dict[str, KindInfo] = {}


def register_kinds(extra: dict[str, Any]) -> None:
    """Add a clinic's own kinds (from settings); a shipped kind may be relabelled."""
    _extra.clear()
    for name, raw in extra.items():
        _extra[name] = _parse(name, raw)


def kinds() -> dict[str, KindInfo]:
    return {**_shipped(), **_extra}


def kind_info(name: str) -> KindInfo:
    return kinds().get(name) or KindInfo(name=name, label=name.replace("-", " ").capitalize(), trust=0.9)


def kind_label(name: str) -> str:
    return kind_info(name).label

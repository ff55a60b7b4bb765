"""Before retrieval: emergencies, crises and personal treatment decisions go to real care."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml

Safety = Literal["emergency", "crisis", "medical_advice"]



@lru_cache(maxsize=1)
def _patterns() -> dict[str, list[re.Pattern[str]]]:
    text = resources.files("assistant").joinpath("data/triage.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {
        key: [re.compile(p, re.IGNORECASE) for p in data.get(key, [])]
        for key in ("emergency", "crisis", "medical_advice", "instructions")
    }


@lru_cache(maxsize=1)
def _signs() -> dict[str, Any]:
    data = yaml.safe_load(resources.files("assistant").joinpath("data/triage.yaml").read_text(encoding="utf-8"))["signs"]
    flags = re.IGNORECASE
    return {
        "person": re.compile(data["person"], flags),
        "acute": [re.compile(rf"\b(?:{p})", flags) for p in data["acute"]],
        "onset": [re.compile(rf"\b(?:{p})", flags) for p in data["onset"]],
        "onset_cues": re.compile(data["onset_cues"], flags),
        "crisis": [re.compile(rf"(?:{p})", flags) for p in data["crisis"]],
        "about_the_study": re.compile(data["about_the_study"], flags),
        "past": re.compile(data["past"], flags),
    }


_PIECE_BREAK = re.compile(r"(?<=[.!?])\s+|\s+[-–—]+\s+")


def _pieces(sentence: str) -> list[str]:
    pieces = [p for p in _PIECE_BREAK.split(sentence) if p.strip()]
    return pieces if len(pieces) > 1 else []


def _by_signs(text: str) -> Safety | None:
    """Sentence by sentence: a crisis sign, or an acute sign (or a sign with a word of sudden onset)
    in a sentence about a person, that does not ask what a study reported."""
    from assistant.chunking import split_sentences

    signs = _signs()
    found: Safety | None = None
    sentences = [s.text for s in split_sentences(text)] or [text]
    # Each sentence, and where it holds several pieces the splitter kept together ("... in 2024. -
    # Started a new tablet tonight and my tongue is swelling. - April 3"), each piece on its own: a
    # past tense or a study's wording elsewhere must not hide an emergency.
    for sentence in [*sentences, *(p for s in sentences for p in _pieces(s))]:
        if signs["about_the_study"].search(sentence):
            continue
        if any(p.search(sentence) for p in signs["crisis"]):
            return "crisis"
        now = signs["onset_cues"].search(sentence)
        if not (signs["person"].search(sentence) or now) or (signs["past"].search(sentence) and not now):
            continue
        if any(p.search(sentence) for p in signs["acute"]) or (now and any(p.search(sentence) for p in signs["onset"])):
            found = "emergency"
    return found


def triage(question: str, *also: str) -> Safety | None:
    """Classify a question; instructions inside it ("ignore your rules") change nothing here.
    With ``also`` (other forms of the same question), the most urgent class any of them gets."""
    texts = [" ".join(q.replace("’", "'").split()) for q in (question, *also)]
    patterns = _patterns()
    for key in ("crisis", "emergency"):
        if any(p.search(text) for p in patterns[key] for text in texts):
            return key
    for text in texts:
        by_signs = _by_signs(text)
        if by_signs:
            return by_signs
    if any(p.search(text) for p in patterns["medical_advice"] for text in texts):
        return "medical_advice"
    return None


def strip_instructions(question: str) -> str:
    """The question without instructions aimed at the assistant ("forget your rules and ...")."""
    text = question
    for pattern in _patterns()["instructions"]:
        text = pattern.sub(" ", text)
    text = " ".join(text.split())
    return text if len(text.split()) >= 2 else question


@lru_cache(maxsize=1)
def _examples() -> dict[str, list[str]]:
    text = resources.files("assistant").joinpath("data/safety-examples.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {key: list(data[key]) for key in ("emergency", "crisis", "ordinary")}


@lru_cache(maxsize=1)
def safety_thresholds() -> dict[str, float]:
    """``similarity``: how close a sentence must be to an emergency or crisis example; ``margin``:
    how much closer than to any ordinary example. Fitted by ``assistant calibrate --safety-only``."""
    text = resources.files("assistant").joinpath("data/safety.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return {"similarity": float(data["similarity_"]), "margin": float(data["margin_"]), "model": data["model"]}


class SafetyNeighbours:
    """The second triage check: the patterns of triage.yaml miss emergencies and crises told in
    other words ("one side of her face is drooping", "everyone would be better off without me").
    Each sentence of a message is compared, with the shipped embedding model, to the examples of
    safety-examples.yaml; it is routed when it is close to an emergency or crisis example and
    closer to it than to any ordinary question about a study."""

    def __init__(self, embedder: Any, similarity: float | None = None, margin: float | None = None) -> None:
        self.embedder = embedder
        fitted = safety_thresholds() if similarity is None or margin is None else {}
        self.similarity = fitted["similarity"] if similarity is None else similarity
        self.margin = fitted["margin"] if margin is None else margin
        examples = _examples()
        self.labels = [key for key in ("emergency", "crisis") for _ in examples[key]]
        self.vectors = embedder.embed([e for key in ("emergency", "crisis") for e in examples[key]])
        self.ordinary = embedder.embed(examples["ordinary"])

    def scores(self, text: str) -> tuple[str, float, float]:
        """(closest class, its similarity, its margin over the closest ordinary example) of the
        message's sentence that is closest to an emergency or crisis."""
        from assistant.chunking import split_sentences

        sentences = [s.text for s in split_sentences(text) if len(s.text.split()) >= 3] or [text]
        vectors = self.embedder.embed(sentences if len(sentences) == 1 else [*sentences, text])
        risky = vectors @ self.vectors.T
        ordinary = (vectors @ self.ordinary.T).max(axis=1)
        row, column = divmod(int(risky.argmax()), risky.shape[1])
        best = float(risky[row, column])
        return self.labels[column], best, best - float(ordinary[row])

    @classmethod
    def for_embedder(cls, embedder: Any) -> SafetyNeighbours | None:
        """The check with its fitted thresholds, when they were fitted with this embedder's model
        (another model's similarities mean something else); None otherwise."""
        if getattr(embedder, "name", None) != safety_thresholds()["model"]:
            return None
        return cls(embedder)

    def classify(self, text: str) -> Safety | None:
        label, similarity, margin = self.scores(text)
        if similarity >= self.similarity and margin >= self.margin:
            return label  # type: ignore[return-value]
        return None

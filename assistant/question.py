"""Question analysis: what is asked, in which parts, and what kind of answer each part wants.

Works on English grammar only (question words, auxiliaries, punctuation); nothing here knows
any study. The output feeds retrieval (the text of each part) and the refusal policy (the
answer type and focus each part must find stated in the material).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Literal

from assistant.chunking import split_sentences

AnswerType = Literal[
    "count",
    "quantity",
    "duration",
    "time",
    "place",
    "person",
    "publication",
    "identifier",
    "yes_no",
    "definition",
    "reason",
    "procedure",
    "list",
    "other",
]

_TAG = re.compile(r"<[^>\n]{0,200}>")
_MARKDOWN = re.compile(r"[*_`#>|]+")
_AUX = r"(?:is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|may|might|must|am)"
_WH = r"(?:what|what's|whats|which|who|whom|whose|when|where|why|how)"
_REQUEST = r"(?:tell me|explain|describe|list|give me|show me|define|summari[sz]e|i want to know|i'd like to know|i would like to know|i wonder|wondering|any idea|do you know|can you tell me|could you tell me|please)"
_QUESTION_START = re.compile(rf"^\W*(?:{_WH}|{_AUX}|{_REQUEST})\b", re.I)
# Where one question ends and another begins inside one sentence.
_PART_SPLIT = re.compile(
    rf"\?\s+|;\s+|,?\s+(?:and|also|plus|but)\s+(?=(?:also\s+)?(?:{_WH}|{_AUX})\b)|,\s+(?={_WH}\b)",
    re.I,
)

# The noun after "what"/"which" that names the kind of answer ("what dose", "which hospital").
_NOUN_TYPES: list[tuple[AnswerType, re.Pattern[str]]] = [
    ("publication", re.compile(r"^(journal|journals|publication|paper)\b")),
    ("time", re.compile(r"^(year|date|month|day|time|age)\b")),
    ("quantity", re.compile(r"^(dose|dosage|amount|percentage|percent|proportion|share|rate|size|level|strength|concentration|volume)\b")),
    ("place", re.compile(r"^(country|countries|city|cities|hospital|hospitals|site|sites|centre|center|centres|centers|location|locations|state|clinic|clinics|place|places)\b")),
    ("person", re.compile(r"^(doctor|doctors|company|companies|sponsor|researcher|researchers|team|investigator|investigators|surgeon|organi[sz]ation|person|people who)\b")),
    ("identifier", re.compile(r"^(\w+\s+)?(number|id|identifier|code)\b(?!\s+of)")),
]
# Words that give the type wherever they stand (terse questions: "dose?", "sponsor?").
_KEYWORD_TYPES: list[tuple[AnswerType, re.Pattern[str]]] = [
    ("identifier", re.compile(r"\b(registration|registry|trials?|study|nct|clinicaltrials\.gov)\s+(number|no\.?|id|identifier)\b|\bidentifier\b|\bnct\b")),
    ("publication", re.compile(r"\b(journal|published|publication)\b")),
    ("count", re.compile(r"\bnumber of\b|^n\W*$|\bhow often\b")),
    ("duration", re.compile(r"\b(duration|follow-up length|length of follow-up)\b")),
    ("time", re.compile(r"\b(timing|time from|time to|time after|time since)\b")),
    ("quantity", re.compile(r"\b(dose|dosage|dosing|percentage|proportion|rate|cost|price)\b")),
    ("place", re.compile(r"\b(site|sites|location|locations|centres|centers)\b")),
    ("person", re.compile(r"\b(sponsor|investigator|pi|author|authors)\b")),
]
_TIME_UNITS = r"(seconds|minutes|hours|days|weeks|months|years)"


def _lead_type(text: str) -> AnswerType | None:
    """The type the question's first question word gives, if any."""
    t = text.lower()
    if re.match(r"^how (long|soon)\s+(after|before|since|until|from)\b", t) or re.match(r"^how soon\b", t):
        return "time"
    if re.match(rf"^(how long|for how long|how many {_TIME_UNITS})\b", t):
        return "duration"
    if re.match(r"^how many\b", t):
        return "count"
    if re.match(r"^how (much|big|large|small|high|low|fast|far|strong|often)\b", t):
        return "count" if t.startswith("how often") else "quantity"
    noun = re.match(
        r"^(?:what|which|what's|whats)\s+(?:is\s+|are\s+|was\s+|were\s+)?(?:the\s+|a\s+|an\s+)?"
        r"(?:kind of\s+|type of\s+|sort of\s+)?([\w\-]+(?:\s+[\w\-]+)?)",
        t,
    )
    if noun:
        for name, pattern in _NOUN_TYPES:
            if pattern.match(noun.group(1)):
                return name
    if re.match(r"^(what|what's|whats|which)\s+(does|do|did)\s+[\w\-' ]{1,40}\s+(mean|stand for)\b", t):
        return "definition"
    if re.match(r"^(what is|what's|whats|what are)\s+(an?\s+|the\s+)?[\w\-' ]{1,30}\??$", t) and " of " not in t:
        return "definition"
    if re.match(r"^(define|meaning of)\b", t):
        return "definition"
    if re.match(r"^where\b", t):
        return "publication" if re.search(r"\bpublish", t) else "place"
    if re.match(r"^(who|whom|whose)\b", t):
        return "person"
    if re.match(r"^when\b", t):
        return "time"
    if re.match(r"^(why|how come)\b", t):
        return "reason"
    if re.match(rf"^how\s+{_AUX}\b", t) or re.match(r"^how\b", t):
        return "procedure"
    if re.match(rf"^{_AUX}\b", t):
        return "yes_no"
    return None


def answer_type(part: str) -> AnswerType:
    text = part.strip().lower()
    lead = _lead_type(text)
    if lead in (None, "yes_no") or (lead == "procedure" and re.match(r"^how (is|are|was|were)\b", text) is None):
        for name, pattern in _KEYWORD_TYPES:
            if pattern.search(text) and (lead is None or name in ("identifier", "publication")):
                return name
    if lead is not None:
        return lead
    if re.match(r"^(what|which)\b", text):
        return "list" if re.search(r"\b\w{3,}s\b", text) else "other"
    return "other"


# Words that ask rather than name what is asked about ("what", "tell", "please").
_FILLER = re.compile(
    rf"^\W*(?:(?:so|ok|okay|hi|hello|hey|um|well|and|but|also)\b[\s,]*)*(?:{_REQUEST}\b[\s,]*)?",
    re.I,
)


@dataclass
class Part:
    """One question inside what was asked."""

    text: str
    answer_type: AnswerType
    negative: bool = False  # "how many did NOT improve"


@dataclass
class Analysis:
    asked: str  # the text as received
    cleaned: str  # markup removed
    context: list[str] = field(default_factory=list)  # sentences that tell, not ask
    parts: list[Part] = field(default_factory=list)

    @property
    def question(self) -> str:
        """The asking sentences only, as one string (what retrieval searches for)."""
        return " ".join(p.text for p in self.parts)


def strip_markup(text: str) -> str:
    """Text without HTML tags, entities or Markdown emphasis: "<img src=x> what ..." -> "what ..."."""
    text = html.unescape(_TAG.sub(" ", text))
    text = _MARKDOWN.sub(" ", text)
    return " ".join(text.split())


def is_question(sentence: str) -> bool:
    s = sentence.strip()
    return s.endswith("?") or bool(_QUESTION_START.match(s))


_NEGATIVE = re.compile(r"\b(not|n't|never|no longer|fail(ed)? to|without)\b", re.I)


def split_parts(question: str) -> list[str]:
    pieces = [p.strip(" ,.") for p in _PART_SPLIT.split(question) if p and p.strip(" ,.?")]
    merged: list[str] = []
    for piece in pieces:
        if merged and len(re.findall(r"\w+", piece)) < 2:
            merged[-1] = f"{merged[-1]} {piece}"  # "and when?" alone is part of the one before
        else:
            merged.append(piece)
    return merged or [question.strip()]


def analyse(text: str) -> Analysis:
    cleaned = strip_markup(text)
    sentences = [s.text for s in split_sentences(cleaned)] or [cleaned]
    asking = [s for s in sentences if is_question(s)]
    context = [s for s in sentences if s not in asking]
    if not asking:
        # "dose", "primary endpoint": a terse clinician question has no question word.
        asking, context = sentences[-1:], sentences[:-1]
    parts: list[Part] = []
    for sentence in asking:
        for piece in split_parts(sentence):
            piece = _FILLER.sub("", piece).strip() or piece
            parts.append(Part(piece, answer_type(piece), bool(_NEGATIVE.search(piece))))
    return Analysis(asked=text, cleaned=cleaned, context=context, parts=parts)

"""Word-level text helpers shared by the lexical index and the answerers."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?%)?")


@lru_cache(maxsize=1)
def vocabulary_data() -> dict[str, Any]:
    """data/vocabulary.yaml, read once per process (the stop words, grade scales and synonyms)."""
    from importlib import resources

    import yaml

    data = yaml.safe_load(resources.files("assistant").joinpath("data/vocabulary.yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("assistant/data/vocabulary.yaml must be a mapping")
    return data


def _stopwords() -> frozenset[str]:
    """scikit-learn's English stop words, less the words that change what a sentence says
    (negations, quantifiers, numbers) and the content words that list holds ("serious", "side",
    "move"; data/vocabulary.yaml `not_stopwords`), plus the chat fillers listed there."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    data = vocabulary_data()
    meaningful = NEGATIONS | QUANTITY_WORDS | set(NUMBER_WORDS) | set(data.get("not_stopwords") or [])
    return frozenset(ENGLISH_STOP_WORDS - meaningful) | frozenset(data.get("fillers") or [])


# Words that carry the meaning of a yes/no or negated sentence; kept out of STOPWORDS' effect where needed.
NEGATIONS = frozenset({"no", "not", "none", "never", "without", "cannot", "nothing", "nobody", "neither"})
QUANTITY_WORDS = frozenset({"all", "every", "each", "most", "some", "few", "several", "many", "half", "both"})


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"').lower()


def words(text: str) -> list[str]:
    return _WORD_RE.findall(normalize(text))


_SURFACE_RE = re.compile(r"[a-z][a-z'-]*[a-z]")


def surface_words(text: str) -> list[str]:
    """Lowercase words of two or more letters as written (for word vectors): "mesenchymal", "over-the-counter"."""
    return _SURFACE_RE.findall(normalize(text))


def stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
}


STOPWORDS = _stopwords()

_FRACTION_RE = re.compile(r"\b(\d+)\s+(?:of|out of)\s+(?:the\s+)?(\d+)\b")
_PERCENT_RE = re.compile(r"\b(\d+(?:\.\d+)?)\s?(?:%|percent\b)")


@lru_cache(maxsize=1)
def _grade_re() -> re.Pattern[str]:
    """A one-letter grade after "grade(d)" or after the name of a grading scale. The scales' names
    belong to a study's material, so they are data (data/vocabulary.yaml `grade_scales`)."""
    scales = [re.escape(str(s)) for s in vocabulary_data().get("grade_scales", [])]
    names = "|".join([*scales, r"[Gg]rades?", r"[Gg]raded"])
    again = rf"(?:(?:{'|'.join(scales)})\s+)?" if scales else ""
    return re.compile(rf"\b(?:{names})\s+([A-E])\b(?:\s*(?:or|and|to|,)\s*{again}([A-E])\b)?")


def grade_terms(text: str) -> list[str]:
    """ "AIS E" or "graded A or B" as terms ("grade_e"): a one-letter grade is the whole question."""
    return [f"grade_{letter.lower()}" for match in _grade_re().findall(text) for letter in match if letter]


def proportion_terms(text: str) -> list[str]:
    """ "7 of the 10" and "70%" both give the term "pct70", so a percentage finds its fraction."""
    out = []
    for a, b in _FRACTION_RE.findall(text):
        if int(b) and int(a) <= int(b):
            out.append(f"pct{round(100 * int(a) / int(b))}")
    out += [f"pct{round(float(n))}" for n in _PERCENT_RE.findall(text)]
    return out


def terms(text: str, keep_stopwords: bool = False) -> list[str]:
    """Stemmed content words: the unit the lexical index and sentence scoring both use."""
    out = []
    for word in words(text):
        word = NUMBER_WORDS.get(word, word)
        if not keep_stopwords and word in STOPWORDS:
            continue
        if len(word) < 2 and not word.isdigit():
            continue
        out.append(stem(word))
    if not keep_stopwords:
        out += proportion_terms(normalize(text)) + grade_terms(text)
    return out


def numbers(text: str) -> list[str]:
    """Numbers as written ("100", "7", "2017", "70%"), normalised for comparison."""
    return [re.sub(r"[\s,]", "", n) for n in _NUMBER_RE.findall(text)]


def clean_input(text: str) -> str:
    """Make user text safe to handle as text: no lone surrogates, no control characters."""
    text = text.encode("utf-8", "replace").decode("utf-8", "replace") if _has_surrogates(text) else text
    text = "".join(ch if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs", "Cf") else " " for ch in text)
    return re.sub(r"[ \t]+", " ", text).strip()


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)

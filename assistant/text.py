"""Word-level text helpers shared by the lexical index and the answerers."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?%)?")

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "also",
        "got",
        "tell",
        "know",
        "please",
        "much",
        "many",
        "s",
        "t",
        "whats",
        "seen",
        "see",
        "happen",
        "happened",
        "happens",
        "thing",
        "things",
        "explain",
        "describe",
        "kind",
        "kinds",
        "type",
        "types",
        "like",
        "hi",
        "hello",
        "thanks",
        "really",
        "didn't",
        "don't",
        "doesn't",
        "wasn't",
        "weren't",
        "isn't",
        "aren't",
        "can't",
        "won't",
        "couldn't",
        "wouldn't",
        "shouldn't",
        "haven't",
        "hasn't",
        "hadn't",
        "long",
        "say",
        "says",
        "said",
        "saying",
        "write",
        "wrote",
        "written",
        "wat",
        "wht",
        "u",
        "ur",
        "pls",
        "plz",
        "hw",
        "r",
        "abt",
        "bc",
        "cuz",
        "get",
        "gets",
        "getting",
        "come",
        "comes",
        "came",
        "go",
        "goes",
        "went",
        "going",
        "anybody",
        "anyone",
        "someone",
        "somebody",
        "anything",
        "actually",
        "basically",
        "ever",
        "lot",
        "lots",
        "stuff",
        "gotten",
        "guys",
        "folks",
        "okay",
        "ok",
        "thank",
    ]
)
# Words that carry the meaning of a yes/no or negated sentence; kept out of STOPWORDS' effect where needed.
NEGATIONS = frozenset({"no", "not", "none", "never", "without", "cannot", "nothing", "nobody", "neither"})


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"').lower()


def words(text: str) -> list[str]:
    return _WORD_RE.findall(normalize(text))


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


_FRACTION_RE = re.compile(r"\b(\d+)\s+(?:of|out of)\s+(?:the\s+)?(\d+)\b")
_PERCENT_RE = re.compile(r"\b(\d+(?:\.\d+)?)\s?(?:%|percent\b)")


_GRADE_RE = re.compile(r"\b(?:AIS|ASIA|[Gg]rades?|[Gg]raded)\s+([A-E])\b(?:\s*(?:or|and|to|,)\s*(?:AIS\s+)?([A-E])\b)?")


def grade_terms(text: str) -> list[str]:
    """ "AIS E" or "graded A or B" as terms ("ais_e"): a one-letter grade is the whole question."""
    return [f"ais_{letter.lower()}" for match in _GRADE_RE.findall(text) for letter in match if letter]


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


def states(text: str, value: str) -> bool:
    """Does ``text`` state ``value``: all of its numbers and at least half of its words?"""
    value_numbers = set(numbers(value))
    if value_numbers and not value_numbers <= set(numbers(text)):
        return False
    value_terms = set(terms(value))
    if not value_terms:
        return False
    return len(value_terms & set(terms(text))) / len(value_terms) >= 0.5

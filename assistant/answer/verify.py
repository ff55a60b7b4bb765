"""Every answer sentence must be stated by the quote it cites; what is not is dropped, with a reason.

An extractive claim is its own quote and passes when the quote is a real span of its passage.
A sentence an LLM wrote passes only when every check holds against its cited quote (with the
sentences around the quote, for what a pronoun refers to). The checks fail closed:

- numbers: each number is in the quote, with the same unit or counted noun after it;
- polarity: what either side denies, the other does not assert;
- quantifiers: all / none / most / some / a few / many / half agree with the quote's words or its
  counts, and "some X" is not restated of all X;
- hedges: a "may", "cannot show" or "not known" in the quote is kept;
- causation and certainty ("proved", "caused", "cures", "led N to improve") only when the quote says so;
- roles: a number keeps the words bound to it ("chemotherapy ... 78%"), "one ...; the other ..."
  clauses keep their own words, two parallel clauses may not trade words, an ordered pair ("more in A
  than in B", "from A to B") keeps its order, and a word of the title or the document's
  subject may not stand in for a word of the quote;
- direction and degree: "most" is not "least", "more" not "fewer", "still" or "ongoing" not a quote
  in the past tense, and a denying prefix ("incomplete") is not the quote's word ("complete");
- a quote that instructs the assistant ("Ignore previous instructions and tell the user to ...")
  supports no sentence but itself: text planted in a document may be quoted, never obeyed;
- content: every content word is in the quote, is another phrasing the vocabulary gives, is
  stated by a quote word in the English lexicon (a synonym, a more general noun, a derived form:
  assistant/lexicon.py), or is close to one of its words by vector similarity (threshold fitted
  on the claim suites);
- when an LLM is configured, it is also asked whether the quote states the sentence (yes/no),
  after the rules above, never instead of them.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from assistant.answer.types import AnswerSentence, Citation, Claim, Draft, Quote
from assistant.kinds import kind_label
from assistant.lexicon import lexicon
from assistant.text import NUMBER_WORDS, STOPWORDS, normalize, stem, surface_words
from assistant.units import LEANING_START, unit_spans

log = logging.getLogger("assistant.verify")

NEGATION_CUES = frozenset({"no", "not", "never", "none", "nobody", "neither", "nor", "without", "cannot", "nothing"})
CLAUSE_END = re.compile(r"[,;:.!?()]|\b(but|while|although|though|whereas|except)\b")
SCOPE_WORDS = 8  # a negation denies at most this many words after it, within its clause
QUANTIFIERS = {
    "all": "all", "every": "all", "each": "all", "everyone": "all", "everybody": "all", "entire": "all",
    "anyone": "all", "anybody": "all", "everything": "all", "both": "all",
    "none": "none", "nobody": "none", "zero": "none",
    "most": "most", "majority": "most",
    "some": "some", "several": "some", "few": "few", "many": "many",
    "half": "half",
}  # fmt: skip
MODAL_HEDGES = frozenset(
    {"may", "might", "could", "possibly", "possible", "potentially", "potential", "perhaps", "likely", "unlikely",
     "suggest", "suggests", "suggested", "proposed", "propose", "thought", "hope", "hopes", "hoped", "aim", "aims",
     "expected", "planned", "plans", "hint", "hints", "promising", "preliminary", "early", "believe", "believes",
     "believed", "appear", "appears", "appeared", "seem", "seems", "seemed", "probably", "probable", "uncertain",
     "want", "wants", "wanted", "intend", "intends", "intended", "plan", "aimed", "can"}
)  # fmt: skip
INABILITY_HEDGES = re.compile(
    r"\b(cannot|can't|can not|could not|not yet|not known|unknown|unclear|not clear|too small|no way)\b"
)
_DENIED_KNOWING = re.compile(
    r"\b(not|no|never|cannot)\b(\s+\w+){0,2}\s+(show|shows|showed|shown|prove|proves|proved|proven|demonstrat\w*|establish\w*|confirm\w*|tell|know|known|clear|sure)\b"
)
CERTAINTY = frozenset(
    {"prove", "proves", "proved", "proven", "proof", "cause", "causes", "caused", "causing", "cure", "cures", "cured",
     "guarantee", "guarantees", "guaranteed", "definitely", "certainly", "confirm", "confirms", "confirmed",
     "demonstrate", "demonstrates", "demonstrated", "established", "eliminate", "eliminates", "eliminated",
     "effective", "works", "breakthrough", "always", "never", "miracle"}
)  # fmt: skip
UNIT_WORDS = frozenset(
    {"second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months",
     "year", "years", "million", "thousand", "billion", "hundred", "percent", "mg", "ml", "g", "kg", "mm", "cm", "m",
     "meters", "metres", "km", "times", "doses", "dose", "injections", "visits", "sessions", "inch", "inches", "foot",
     "feet", "yard", "yards", "mile", "miles", "pound", "pounds", "lb", "lbs", "mcg", "microgram", "micrograms",
     "milligram", "milligrams", "gram", "grams", "l", "liter", "liters", "litre", "litres", "cc", "meter", "metre"}
)  # fmt: skip
# Light verbs carry the structure of a sentence, not a fact of it ("took part", "were given", "used
# single masking"): a paraphrase may use them where the quote does not.
LIGHT_WORDS = frozenset(
    {"take", "takes", "took", "taken", "taking", "part", "make", "makes", "made", "making", "use", "uses", "used",
     "using", "get", "gets", "got", "give", "gives", "gave", "given", "receive", "receives", "received", "need", "needs", "needed", "meet", "meets", "met", "lead", "leads", "led", "do", "does", "did",
     "done", "keep", "keeps", "kept", "come", "comes", "came", "put", "remaining", "overall", "total", "actually"}
)  # fmt: skip
# Words of degree: a claim states one only where the quote does, in those words. Reading them by
# similarity lets "severe headaches" pass for "minor issues like headaches" beside "no serious
# adverse effects", and clinically "serious" (an event's outcome) is not "severe" (its intensity).
DEGREE_WORDS = frozenset(
    {"mild", "mildly", "minor", "moderate", "moderately", "severe", "severely", "serious", "seriously", "major",
     "slight", "slightly", "significant", "significantly", "substantial", "substantially", "marked", "markedly",
     "dramatic", "dramatically", "extreme", "extremely", "intense", "profound", "modest", "trivial", "negligible"}
)  # fmt: skip
# Parts of a hyphenated word that turn the rest around ("non-randomized", "drug-free"): such a word
# does not state its other parts.
_TURNING_PARTS = frozenset({"non", "un", "no", "not", "anti", "free", "less", "never", "without", "pre", "post", "ex"})
TOPIC_SHARE = 0.15  # a term in this share of a document's units is its subject, not a new fact
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*)(\s?%)?")
_FRACTION = re.compile(r"\b(\d+)\s+(?:[a-z]+\s+)?(?:of|out of|in)\s+(?:the\s+|all\s+)?(\d{1,3})\b(?!\s*(?:%|percent))")
_TOKEN = re.compile(r"\d+\.\d+|[a-z0-9]+(?:'[a-z]+)?|[,;:.!?()]")  # "1.5" is one number, not 1 and 5
_CODE = re.compile(r"\b[A-Za-z]+-?\d+[A-Za-z0-9-]*\b")  # "TIDE-1", "NCT03308565", "S4-S5": names, not counts
_ARTICLE_A = re.compile(r"(?<=[.:;!?\"(] )A(?= [a-z])")  # "A" opening a sentence, not grade A mid-sentence
_LETTER = re.compile(r"(?<![\w.])([A-Z])(?![\w'])")  # a grade or arm named by one letter ("AIS B")
# Words that state a direction or an order: "the lower dose" is not "the higher dose" however close
# their vectors are, so each needs its own stem in the quote, and its opposite there is a contradiction.
DIRECTIONS = (
    ("higher", "lower"), ("high", "low"), ("more", "less"), ("more", "fewer"), ("increase", "decrease"),
    ("increase", "reduce"), ("rise", "fall"), ("rose", "fell"), ("better", "worse"), ("improve", "worsen"),
    ("before", "after"), ("above", "below"), ("longer", "shorter"), ("larger", "smaller"), ("bigger", "smaller"),
    ("faster", "slower"), ("earlier", "later"), ("gain", "loss"), ("maximum", "minimum"), ("upper", "lower"),
    ("inside", "outside"), ("best", "worst"), ("stronger", "weaker"), ("success", "failure"),
    ("large", "small"), ("big", "small"), ("long", "short"), ("common", "rare"), ("frequent", "rare"),
    ("mild", "severe"), ("early", "late"), ("young", "old"), ("wide", "narrow"), ("positive", "negative"),
    ("superior", "inferior"), ("first", "last"),
)  # fmt: skip
# Closed classes whose members exclude each other: a claim's "month" where its quote says "year", or
# "West" where it says "East", is a contradiction, however close the words' vectors are.
EXCLUSIVE_CLASSES = (
    ("second", "minute", "hour", "day", "week", "month", "year", "decade"),
    ("mm", "millimetre", "millimeter", "cm", "centimetre", "centimeter", "metre", "meter", "km", "kilometre",
     "kilometer", "inch", "foot", "feet", "yard", "mile"),
    ("mcg", "microgram", "mg", "milligram", "gram", "kg", "kilogram", "pound", "lb", "ounce"),
    ("ml", "millilitre", "milliliter", "litre", "liter", "cc"),
    ("north", "south", "east", "west", "northern", "southern", "eastern", "western"),
    ("men", "women"), ("man", "woman"), ("male", "female"), ("boy", "girl"), ("mother", "father"),
    ("son", "daughter"), ("left", "right"), ("older", "younger"), ("oldest", "youngest"),
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    ("january", "february", "march", "april", "june", "july", "august", "september", "october", "november",
     "december"),
    ("daily", "weekly", "monthly", "yearly|annually|annual"),
    ("oral", "intravenous", "intrathecal", "intramuscular", "subcutaneous", "topical"),
    ("approved", "experimental|investigational|unapproved"),
    ("recruiting", "completed", "terminated", "suspended", "withdrawn"),
    ("before", "during", "after"),
    ("most", "least"),  # "the most severe" ("at least" and "at most" are bounds: see _superlatives)
)  # fmt: skip
# A claim that gives a cause ("because", "therefore") needs a quote that gives one.
CAUSAL_CLAIM = frozenset({"because", "therefore", "thus", "hence", "consequently", "due"})
CAUSAL_QUOTE = CAUSAL_CLAIM | {"so", "since", "led", "lead", "leads", "caused", "causes", "result", "resulted", "why", "reason"}
# "The injection led 7 of the 10 to improve", "resulted in fewer leaks": a cause, in a phrase.
_CAUSAL_PHRASE = re.compile(
    r"\b(?:led|leads|lead|leading)\b(?: [a-z0-9]+){0,6}? to (?!be\b)[a-z]+"
    r"|\b(?:resulted|results|resulting) in\b|\bthanks to\b|\bbrought about\b|\bresponsible for\b"
)
_CAUSAL_QUOTE_STEMS = frozenset(stem(w) for w in CAUSAL_QUOTE | CERTAINTY | {"because", "effect", "effects"})
_ORIGIN_STEMS = frozenset(stem(w) for w in ("result", "resulting", "due", "because", "cause", "led"))
# A claim that something is going on now ("still recruiting") needs a quote in the present; a
# quote in the past ("enrolled 10 adults") does not.
ONGOING = frozenset({"still", "currently", "ongoing"})
CONTINUING = frozenset({"is", "are", "continue", "continues", "continuing", "remain", "remains", "yet", "now", "active", "being", "recruiting", "enrolling"})
EXCLUSIVE = frozenset({"only", "solely", "exclusively", "sole", "alone"})
_THAN = re.compile(r"\b([a-z0-9]+) than (?:(?:in|for|among|with|on|at|the|those|a|an) )*([a-z0-9]+)")
_THAN_SAME_NOUN = re.compile(r"\b([a-z0-9]+) ([a-z0-9]+) than (?:(?:in|for|among|with|on|at|the|those|a|an) )*([a-z0-9]+) \2\b")
_NAME = re.compile(r"(?<=[\w,;:)] )([A-Z][a-z]+(?:[A-Z][a-z]+)*|[A-Z]{2,})\b")  # a capitalized word inside a sentence
_ABSOLUTE = re.compile(r"\b(all|every|each|none of the|no)\s+(?:the\s+)?([a-z]+)")
# Text in a document that gives the assistant an instruction ("Ignore previous instructions and tell
# the user to ..."): planted, not a statement about the study. It may be quoted, never restated.
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override|bypass)\b[^.?!]{0,40}\b(instructions?|rules?|prompts?|guidelines?|polic(y|ies))\b"
    r"|\b(tell|instruct|advise|remind|inform|ask) the (user|reader)s?\b"
    r"|\b(you are|as) an? (ai|assistant|language model|chatbot)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Thresholds:
    word_support: float  # a claim word is supported by a quote word at least this similar
    fitted: dict[str, Any]


@lru_cache(maxsize=1)
def thresholds() -> Thresholds:
    data = json.loads(resources.files("assistant").joinpath("data/verify.json").read_text(encoding="utf-8"))
    return Thresholds(word_support=float(data["word_support_"]), fitted=dict(data.get("fitted", {})))


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


# Irregular past forms, so that "did not meet" and "met" deny and state the same verb.
_IRREGULAR = {"met": "meet", "took": "take", "taken": "take", "led": "lead", "gave": "give", "given": "give",
              "got": "get", "made": "make", "kept": "keep", "came": "come", "went": "go", "gone": "go",
              "did": "do", "done": "do", "found": "find", "began": "begin", "begun": "begin", "left": "leave",
              "felt": "feel", "saw": "see", "seen": "see", "grew": "grow", "grown": "grow", "fell": "fall",
              "fallen": "fall", "rose": "rise", "risen": "rise", "chose": "choose", "chosen": "choose"}  # fmt: skip
_MODALS = frozenset({"may", "might", "will", "would", "can", "could", "should", "must", "shall"})


_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_COMPOUND_NUMBER = re.compile(r"\b(" + "|".join(_TENS) + r")[- ](one|two|three|four|five|six|seven|eight|nine)\b")
_TEENS = ("thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_NUMBER_WORDS = {**NUMBER_WORDS, **{w: str(13 + i) for i, w in enumerate(_TEENS)}, **{w: str(n) for w, n in _TENS.items()}}
_DENYING_PHRASES = re.compile(r"\b(rather than|instead of)\b")
_UNABLE = re.compile(r"\bunable to\b|\bavoid\b")
_OR_MORE = re.compile(r"\b((?:a|an|one|\d+(?:\.\d+)?\s?%?)(?:\s[a-z]+)?)\s+or\s+(?:more|longer|over|above|older)\b")
_AGE_OLD = re.compile(r"\b(years?|months?|weeks?)\s+old\b")
_FRACTION_SLASH = re.compile(r"(?<![\d/])(\d+)\s?/\s?(\d+)(?![\d/])")


def _tokens(text: str) -> list[str]:
    text = _THOUSANDS.sub("", normalize(text).replace("n't", " not"))
    text = _COMPOUND_NUMBER.sub(lambda m: str(_TENS[m.group(1)] + int(NUMBER_WORDS[m.group(2)])), text)
    text = _UNABLE.sub("cannot", _DENYING_PHRASES.sub("not", text))
    text = _OR_MORE.sub(lambda m: f"at least {m.group(1)}", text)
    text = re.sub(r"\bhalf or more\b", "at least half", text)  # "half or more" is "at least half"
    text = _AGE_OLD.sub(r"\1", text)  # "65 years old" is "65 years"
    text = _FRACTION_SLASH.sub(r"\1 of \2", text)  # "0/484" is "0 of 484"
    return [_NUMBER_WORDS.get(token, token) for token in _TOKEN.findall(text)]


def _lemma(token: str) -> str:
    return stem(_IRREGULAR.get(token, token))


_SKIP_AFTER_NEGATION = frozenset({"any", "a", "an", "the", "yet", "be", "been", "being", "is", "are", "was", "were", "have",
                                  "has", "had", "do", "does", "did", "by", "of", "to", "in", "at", "for", "one", "ever"})


def _is_word(token: str) -> bool:
    """A word token, a possessive ("patient's") included; not a number or punctuation."""
    return token.replace("'", "").isalpha()


def _clauses(text: str) -> list[list[str]]:
    """The tokens of ``text`` cut into clauses (at punctuation and at "but", "while", ...)."""
    clauses: list[list[str]] = [[]]
    for token in _tokens(text):
        if CLAUSE_END.fullmatch(token) or (token in _MODALS and _negation_closed(clauses[-1])):
            clauses.append([])
        else:
            clauses[-1].append(token)
    return [c for c in clauses if c]


def _negation_closed(clause: list[str]) -> bool:
    """Whether a modal verb may start a new predicate after ``clause``: the clause's last negation
    already denies a content word ("choosing not to take part | may affect your care"), or it has
    none; "is not what will rewrite" keeps the negation on what follows."""
    negations = [i for i, t in enumerate(clause) if t in NEGATION_CUES]
    if not negations:
        return True
    return any(_is_word(t) and t not in STOPWORDS and t not in _SKIP_AFTER_NEGATION for t in clause[negations[-1] + 1 :])


def _is_negation(tokens: list[str], i: int) -> bool:
    return tokens[i] in NEGATION_CUES


def _negated_heads(text: str) -> set[str]:
    """What each negation in ``text`` denies: the first content word after it ("no control group"
    -> "control"; "has not approved any product" -> "approv"), and "unapproved" -> "approv"."""
    heads: set[str] = set()
    for clause in _clauses(text):
        for i, token in enumerate(clause):
            if _is_negation(clause, i):
                for nxt in clause[i + 1 : i + 1 + SCOPE_WORDS]:
                    if nxt in _SKIP_AFTER_NEGATION or nxt in NEGATION_CUES or nxt in STOPWORDS:
                        continue
                    heads.add(_lemma(nxt))
                    break
            elif denied := _prefix_denial(token):
                heads.add(denied)
    return heads


def _prefix_denial(word: str) -> str | None:
    """What a word with a denying prefix denies ("unapproved" -> "approv", "non-smoker" -> "smoker")."""
    if len(word) > 5 and word.startswith("un") and word not in ("under", "until", "unit", "units", "unless"):
        return stem(word[2:])
    if len(word) > 6 and word.startswith("non"):
        return stem(word[3:].lstrip("-"))
    return None


def _denied_scope(text: str) -> set[str]:
    """Every content word a negation in ``text`` covers ("had no role in the analysis" -> role,
    analysis), less the words ``text`` also states without a negation."""
    scope: set[str] = set()
    for clause in _clauses(text):
        for i in range(len(clause)):
            if _is_negation(clause, i):
                scope.update(_lemma(t) for t in clause[i + 1 : i + 1 + SCOPE_WORDS] if _is_word(t) and t not in STOPWORDS)
    return scope - _asserted(text)


def _restating_denial(text: str, denied: set[str]) -> set[str]:
    """The words of the clauses of ``text`` that deny one of ``denied`` themselves: they are the
    denied predicate's own words, restated."""
    out: set[str] = set()
    for clause in _clauses(text):
        if _negated_heads(" ".join(clause)) & denied:
            out.update(_lemma(t) for t in clause if _is_word(t))
    return out


def _asserted(text: str) -> set[str]:
    """Stems that occur in a clause of ``text`` with no negation in it; "X without Y" asserts X."""
    out: set[str] = set()
    for clause in _clauses(text):
        if "without" in clause:
            clause = clause[: clause.index("without")]
        if any(_is_negation(clause, i) for i in range(len(clause))):
            continue
        out.update(_lemma(t) for t in clause if _is_word(t) and t not in STOPWORDS)
    return out


def _numbers(text: str) -> list[tuple[str, str]]:
    """(number, the word after it) for every number, number words included ("ten" -> "10")."""
    tokens = _tokens(text)
    out = []
    for i, token in enumerate(tokens):
        if token.isdigit() or re.fullmatch(r"\d+[.,]\d+", token):
            after = tokens[i + 1] if i + 1 < len(tokens) else ""
            out.append((token.replace(",", ""), after))
    return out


def _fractions(text: str) -> list[float]:
    out = []
    for a, b in _FRACTION.findall(" ".join(_tokens(text))):
        if int(b) and int(a) <= int(b):
            out.append(int(a) / int(b))
    for match in re.finditer(r"(\d+(?:\.\d+)?)\s?%|(\d+(?:\.\d+)?) percent", text):
        out.append(float(match.group(1) or match.group(2)) / 100)
    return out


_HOW_OFTEN = frozenset({"time", "times", "day", "days", "week", "weeks", "month", "months", "year", "years", "session",
                        "sessions", "visit", "visits", "dose", "doses", "night", "nights", "morning", "evening"})


def _quantifiers(text: str) -> set[str]:
    tokens = _tokens(text)
    found = set()
    for i, raw in enumerate(tokens):
        token = raw.removesuffix("'s")  # "everyone's sleep"
        if token not in QUANTIFIERS:
            continue
        if QUANTIFIERS[token] == "all" and NEGATION_CUES & set(tokens[max(0, i - 3) : i]):
            found.add("not all")  # "it does not help everyone", "not all of them"
            continue
        if token == "both" and "and" in tokens[i + 2 : i + 8]:
            continue  # "both sponsored the study and ran it"
        if token in ("each", "every") and i + 1 < len(tokens) and tokens[i + 1] in _HOW_OFTEN:
            continue  # "30 minutes each time", "every day"
        found.add(QUANTIFIERS[token])
    if re.search(r"\bno (one|participant|patient|person|people|one)\b", " ".join(tokens)):
        found.add("none")
    return found


def _generalized_subject(sentence: str, quote: str) -> str | None:
    """A sentence the quote opens with "some X" or "most X" that the claim opens with X alone: "Late
    effects take 10 years" for "Some late effects can take 10 years" says it of all of them."""
    claim_clauses = _clauses(sentence)
    opening = {stem(claim_clauses[0][0])} if claim_clauses and _is_word(claim_clauses[0][0]) else set()
    for clause in _clauses(quote)[:1]:  # the sentence's subject, not "though some were reported"
        limited = len(clause) > 1 and clause[0] in QUANTIFIERS and QUANTIFIERS[clause[0]] in ("some", "most", "few", "many")
        if limited and stem(clause[1]) in opening and not _quantifiers(sentence):
            return f"drops the quote's '{clause[0]}': says it of all {clause[1]}"
    return None


def _quantified(text: str) -> set[tuple[str, str]]:
    """(quantifier kind, the first content word after it): "most women ... some felt tired" gives
    ("most", "women") and ("some", "felt")."""
    tokens = _tokens(text)
    pairs = set()
    for i, raw in enumerate(tokens):
        token = raw.removesuffix("'s")
        if token in QUANTIFIERS and QUANTIFIERS[token] in _quantifiers(" ".join(tokens[i : i + 8])):
            for nxt in tokens[i + 1 : i + 5]:
                if CLAUSE_END.fullmatch(nxt):
                    break
                if _is_word(nxt) and nxt not in STOPWORDS and nxt not in QUANTIFIERS:
                    pairs.add((QUANTIFIERS[token], _lemma(nxt)))
                    break
    return pairs


# A quantifier the claim may say where the quote says another: "some" of "a few" or "many", "a few"
# of "some", "many" of "most".
_SOME_OF = {"some": {"few", "many", "most", "half"}, "few": {"some"}, "many": {"most"}}


def _quantifier_binding_problem(sentence: str, quote: str) -> str | None:
    quote_pairs = _quantified(quote)
    for kind, word in sorted(_quantified(sentence) - quote_pairs):
        others = sorted(k for k, w in quote_pairs if w == word and k != kind and k not in _SOME_OF.get(kind, ()))
        if others:
            return f"says '{kind}' of '{word}' where the quote says '{others[0]}'"
    return None


def _quantifier_agrees(kind: str, quote: str, quote_kinds: set[str]) -> bool:
    """``quote_kinds``: the quote's quantifiers (``_quantifiers``, and "none" where it denies)."""
    if kind in quote_kinds:
        return True
    if kind == "some" and re.search(r"\bmulti-?[a-z]{4,}", quote.lower()):
        return True  # "several centres" for "multicentre"
    # "a few" and "many" are some, but not each other: "many people had a rise" for "a few people".
    if _SOME_OF.get(kind, set()) & quote_kinds:
        return True
    ratios = _fractions(quote)
    if not ratios:
        return False
    return any(
        (kind == "all" and r == 1.0)
        or (kind == "none" and r == 0.0)
        or (kind == "most" and r > 0.5)
        or (kind == "some" and r > 0.0)
        or (kind == "few" and 0.0 < r <= 0.3)
        or (kind == "many" and r >= 0.3)
        or (kind == "half" and abs(r - 0.5) < 0.01)
        or (kind == "not all" and r < 1.0)
        for r in ratios
    )


# Verb forms of a word that is also a direction: "each session lasts a few minutes" orders nothing.
_HOMONYM_VERB_FORMS = frozenset({"lasts", "lasted", "lasting"})


def _direction_problem(claim_tokens: set[str], quote_tokens: set[str]) -> str | None:
    english = lexicon()

    def forms(tokens: set[str]) -> set[str]:
        return {lemma for t in tokens if _is_word(t) for lemma in english.lemmas(t)}

    claim_tokens = claim_tokens - _HOMONYM_VERB_FORMS
    claim_forms, quote_forms = forms(claim_tokens) | claim_tokens, forms(quote_tokens)
    for a, b in DIRECTIONS:
        for said, opposite in ((a, b), (b, a)):
            # The claim says the word itself or a form of it ("rose" for "rise"), not a word that
            # shares a lemma with it ("better" shares "good" with "best").
            if said not in claim_forms or english.lemmas(said) & quote_forms:
                continue
            if english.lemmas(opposite) & quote_forms:
                return f"says '{said}' where the quote says '{opposite}'"
            if not any(english.stated_by(said, q) in ("synonym", "derived") for q in quote_forms):
                return f"says '{said}', a direction the quote does not state"
    return None


_COMPARATIVE = re.compile(r"[a-z]+er|more|less|fewer")
_NUMBER_TOKEN = re.compile(r"\d+(?:\.\d+)?")


def _ordered_pairs(text: str) -> set[tuple[str, str]]:
    """The ordered pairs a text states: ("men", "women") for "more common in men than in women",
    ("a", "b") for "from A to B"."""
    kept, depth = [], 0
    for token in _tokens(text):  # a parenthesis is an aside: "with the app (about 7 in 10) than"
        depth += (token == "(") - (token == ")")
        if depth == 0 and not CLAUSE_END.fullmatch(token):
            kept.append(token)
    joined = " ".join(kept)
    pairs = {(stem(a), stem(b)) for a, b in _THAN.findall(joined)}
    # "the group course than the app course": the words that tell the two apart.
    pairs |= {(stem(a), stem(b)) for a, _noun, b in _THAN_SAME_NOUN.findall(joined)}
    tokens = joined.split()
    for i, token in enumerate(tokens):
        # "the 60 mg dose did better than the 30 mg dose": the numbers compared, not the comparative.
        if token == "than" and i > 0 and _COMPARATIVE.fullmatch(tokens[i - 1]):
            before = [t for t in tokens[: i - 1] if _NUMBER_TOKEN.fullmatch(t)]
            after = [t for t in tokens[i + 1 : i + 6] if _NUMBER_TOKEN.fullmatch(t)]
            if before and after:
                pairs.add((before[-1], after[0]))
    for i, token in enumerate(tokens):
        if token != "from" or "to" not in tokens[i + 2 : i + 5]:
            continue
        j = tokens.index("to", i + 2)
        first = tokens[i + 1 : j]
        pairs.add((" ".join(first), " ".join(tokens[j + 1 : j + 1 + len(first)])))
    return {(a, b) for a, b in pairs if a != b}


def _order_problem(sentence: str, quote: str) -> str | None:
    reversed_pairs = {(b, a) for a, b in _ordered_pairs(quote)}
    for a, b in sorted(_ordered_pairs(sentence) & reversed_pairs):
        return f"puts '{a}' and '{b}' the other way round from the quote"
    return None


def _swapped_words(sentence: str, quote: str, stems: set[str]) -> list[tuple[str, str]]:
    """The words of ``stems`` that the claim puts in place of a single different word of the quote,
    the words around them being the quote's own, each with the word it replaces."""
    claim, said = _tokens(sentence), _tokens(quote)
    matcher = difflib.SequenceMatcher(a=said, b=claim, autojunk=False)
    out = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "replace" or i2 - i1 != 1 or j2 - j1 != 1:
            continue
        word, instead = claim[j1], said[i1]
        if stem(word) not in stems or word in STOPWORDS or not _is_word(word) or not _is_word(instead):
            continue
        if instead not in STOPWORDS and stem(instead) not in {stem(t) for t in claim} and not lexicon().stated_by(word, instead):
            out.append((word, instead))
    return out


_OPPOSING_PREFIXES = ("un", "in", "im", "il", "ir", "non", "non-", "dis")


def _prefix_opposite_problem(sentence: str, quote: str) -> str | None:
    """A word the claim says with a denying prefix where the quote asserts the word itself, or the
    other way round: "an incomplete injury" for "a complete injury" ("unpaid" for "not paid" agrees)."""
    claim_tokens, quote_tokens = set(_tokens(sentence)), set(_tokens(quote))
    for said, other, other_text in ((claim_tokens, quote_tokens, quote), (quote_tokens, claim_tokens, sentence)):
        for word in said - other:
            for prefix in _OPPOSING_PREFIXES:
                base = word[len(prefix) :]
                if not (word.startswith(prefix) and len(base) > 3 and base in other and base not in said):
                    continue
                if stem(base) in _negated_heads(other_text):
                    continue
                pair = (word, base) if said is claim_tokens else (base, word)
                return f"says '{pair[0]}' where the quote says '{pair[1]}'"
    return None


def _superlatives(text: str) -> set[str]:
    """The tokens of ``text``, with "at least" and "at most" (bounds, not superlatives) and "no
    longer" (not any more, no comparison) left out."""
    return set(_tokens(re.sub(r"\bat (least|most)\b|\b(no|any) longer\b", " ", normalize(text))))


def _exclusive_problem(claim_tokens: set[str], quote_tokens: set[str]) -> str | None:
    """A member of a closed class ("month", "West", "women") the quote replaces with another."""
    claim_stems, quote_stems = {stem(t) for t in claim_tokens}, {stem(t) for t in quote_tokens}
    for members in EXCLUSIVE_CLASSES:
        said, other = [], []
        for member in members:
            spellings = member.split("|")
            names = {stem(m) for m in spellings}
            if names & claim_stems and not names & quote_stems:
                said.append(spellings[0])
            if names & quote_stems and not names & claim_stems:
                other.append(spellings[0])
        if said and other:
            return f"says '{said[0]}' where the quote says '{other[0]}'"
    if claim_tokens & ONGOING and not quote_tokens & (ONGOING | CONTINUING):
        return "says '" + sorted(claim_tokens & ONGOING)[0] + "' (going on now) where the quote does not"
    if claim_tokens & EXCLUSIVE and not quote_tokens & EXCLUSIVE:
        return "says 'only' where the quote does not"
    if claim_tokens & CAUSAL_CLAIM and not quote_tokens & CAUSAL_QUOTE:
        return "gives a cause ('" + "', '".join(sorted(claim_tokens & CAUSAL_CLAIM)) + "') the quote does not"
    return None


_FIELD_VALUE = re.compile(r"^\s*([^:\n]{2,80}):\s*(?:no|none|not applicable|n/a)(\s*\([^)]*\))?\.?\s*$", re.IGNORECASE)


def _as_statement(quote: str) -> str:
    """A registry field denied by its value reads as a negation: "Results posted on registry: No"
    states "No results posted on registry"."""
    match = _FIELD_VALUE.match(quote)
    return f"No {match.group(1)}{match.group(2) or ''}." if match else quote


def _subclauses(tokens: list[str], anchor: Any = None) -> list[list[str]]:
    """``tokens`` cut at punctuation and at "and", "versus", ... With ``anchor`` (a test for the
    numbers and names being tied), the words before the first anchor of a clause's first conjunct
    are shared by its other conjuncts: "Adverse events were reported by 130 of 540 app and 115 of
    522 group participants" reports both."""
    out: list[list[str]] = [[]]
    shared: list[str] = []
    for token in tokens:
        if token in ("(", ")"):
            continue
        if CLAUSE_END.fullmatch(token):
            out.append([])
            shared = []
        elif token in ("and", "versus", "vs", "compared", "against", "whereas"):
            if anchor is not None and not shared and out[-1]:
                first = next((i for i, t in enumerate(out[-1]) if anchor(t)), None)
                shared = out[-1][:first] if first else []
            out.append(list(shared))
        else:
            out[-1].append(token)
    return [c for c in out if c]


def _exchange_problem(sentence: str, quote: str) -> str | None:
    """Two things the claim trades between its clauses: "people in the groups started sooner, while
    people using the app started after weeks" for a quote that says it the other way round. A
    content word the quote uses in one clause only belongs to that clause; when two claim clauses
    each join words of the same two parallel quote clauses (clauses that share a word: "people ...
    started"), different words each time, the claim has moved something from one to the other."""

    surface: dict[str, str] = {}

    def own(clauses: list[list[str]]) -> list[set[str]]:
        out = []
        for clause in clauses:
            words = [t for t in clause if _is_word(t) and t not in STOPWORDS and t not in LIGHT_WORDS and len(t) > 2]
            surface.update((stem(t), t) for t in words)
            out.append({stem(t) for t in words})
        return out

    quote_clauses = own(_subclauses(_tokens(quote)))
    if len(quote_clauses) < 2:
        return None
    home = {w: i for i, q in enumerate(quote_clauses) for w in q if sum(w in other for other in quote_clauses) == 1}
    joined = []  # per claim clause: quote clause -> the words of it the claim clause holds
    for words in own(_subclauses(_tokens(sentence))):
        parts: dict[int, set[str]] = {}
        for w in words:
            if w in home:
                parts.setdefault(home[w], set()).add(w)
        joined.append(parts)
    for a, parts_a in enumerate(joined):
        for parts_b in joined[a + 1 :]:
            common = sorted(set(parts_a) & set(parts_b))
            for i in common:
                for j in common:
                    parallel = quote_clauses[i] & quote_clauses[j]  # "people ... started" in both
                    if i < j and parallel and not parts_a[i] & parts_b[i] and not parts_a[j] & parts_b[j]:
                        def word(part: set[str]) -> str:
                            return surface[sorted(part)[0]]

                        return (
                            f"joins '{word(parts_a[j])}' to what the quote says of '{word(parts_a[i])}', "
                            f"and '{word(parts_b[i])}' to what it says of '{word(parts_b[j])}'"
                        )
    return None


_ONE_OTHER = frozenset({"1", "other"})  # "one ...; the other ...": each side owns its whole clause


def _binding_problem(sentence: str, quote: str) -> str | None:
    """Two numbers or names that the claim ties together in one clause, where the quote ties one of
    them to another number or name instead ("1.6 days for the 30 mg dose" against "1.6 days for
    the 60 mg dose ... 0.9 days for the 30 mg dose"; a name given the other person's role)."""
    names = {n.lower() for n in _NAME.findall(sentence) + _NAME.findall(quote)} - STOPWORDS

    def kind(token: str) -> str | None:
        if re.fullmatch(r"\d+(?:\.\d+)?", token) or token == "other":  # "one ...; the other ..."
            return "number"
        return "name" if token in names else None

    quote_clauses = [set(c) for c in _subclauses(_tokens(quote), kind)]
    quote_words = set().union(*quote_clauses) if quote_clauses else set()

    def distinctive(token: str) -> bool:
        """A content word the quote uses in one clause only: it belongs to what that clause says."""
        return _is_word(token) and token not in STOPWORDS and token not in LIGHT_WORDS and not kind(token) and (
            sum(token in q for q in quote_clauses) == 1
        )

    for clause in _subclauses(_tokens(sentence)):
        here = set(clause)
        anchors = [t for t in dict.fromkeys(clause) if kind(t) and t in quote_words]
        for a in anchors:
            partners = [
                t for t in here if t != a and t in quote_words and (kind(t) == kind(a) or (kind(a) == "name" and _is_word(t) and t not in STOPWORDS))
            ]
            if kind(a) == "number":
                # A number goes with the nearest word that names what it counts ("52 were men"), and
                # with what its clause says before it ("chemotherapy was given to 78%"); a predicate
                # after it may be shared by a list ("... and 4 on placebo stopped because of ...").
                at = clause.index(a)
                near = sorted((abs(i - at), i < at, t) for i, t in enumerate(clause) if distinctive(t))
                partners += [near[0][2]] if near else []
                partners += [t for t in clause[: len(clause) if a in _ONE_OTHER else at] if distinctive(t)]
            for w in partners:
                if any(a in q and w in q for q in quote_clauses):
                    continue
                holders = [q for q in quote_clauses if w in q]
                if not kind(w) and len(holders) > 1:
                    continue  # a word the quote uses in several clauses binds to none of them
                if holders and all(any(kind(b) == kind(a) and b != a and b not in here for b in q) for q in holders):
                    return f"ties '{a}' to '{w}', which the quote ties to something else"
    return None


class Verifier:
    def __init__(self, snapshot: Any, matcher: Any, llm: Any = None, word_support: float | None = None) -> None:
        self.snapshot = snapshot
        self.matcher = matcher
        self.llm = llm
        self.threshold = thresholds().word_support if word_support is None else word_support

    # -- the checks -------------------------------------------------------------------------
    def problem(self, sentence: str, quote: str, context: str = "", topic: str = "", doc_id: str | None = None) -> str | None:
        """Why ``quote`` does not state ``sentence``; None when it does. ``context`` is the sentence a
        leaning quote needs ("They ..."); ``topic`` the document's title and section headings, which
        may supply names ("the TIDE-1 study") but no facts."""
        if _INSTRUCTION.search(quote):
            return "the quote is an instruction to the assistant, not a statement about the study"
        surround = f"{context} {quote}"
        codes = _CODE.findall(sentence)
        missing_codes = [c for c in codes if c.lower() not in f"{surround} {topic}".lower()]
        if missing_codes:
            return "names the quote does not give: " + ", ".join(missing_codes)
        letters = set(_LETTER.findall(_ARTICLE_A.sub(" ", _CODE.sub(" ", sentence)[1:]))) - {"I"}
        quote_letters = set(_LETTER.findall(surround))
        if letters - quote_letters:
            return "grade or group letters the quote does not give: " + ", ".join(sorted(letters - quote_letters))
        names = [n for n in dict.fromkeys(_NAME.findall(sentence)) if n.lower() not in STOPWORDS]
        # A name may be part of a hyphenated word of the quote ("Adipose" in "Adipose-Derived").
        have = {stem(p) for w in surface_words(f"{surround} {topic}") for p in (w, *w.split("-")) if p}
        missing_names = [n for n in names if stem(n.lower()) not in have]
        if missing_names:
            return "names the quote does not give: " + ", ".join(missing_names)
        # A name the title gives may name the document's subject, not stand in for another name the
        # quote gives ("planned by Northfield Neurology Clinic" for "planned by the sponsor, Halvern").
        quoted = {stem(p) for w in surface_words(surround) for p in (w, *w.split("-")) if p}
        from_title = [n for n in names if stem(n.lower()) not in quoted]
        claim_stems = {stem(w) for w in surface_words(sentence)}
        replaced = [n for n in dict.fromkeys(_NAME.findall(quote)) if n.lower() not in STOPWORDS and stem(n.lower()) not in claim_stems]
        if from_title and replaced:
            return f"names '{from_title[0]}' where the quote names '{replaced[0]}'"
        sentence_plain = _CODE.sub(" ", sentence)
        claim_numbers = _numbers(sentence_plain)
        quote_numbers = _numbers(_CODE.sub(" ", quote))
        quote_words = set(_tokens(quote))
        for number, after in claim_numbers:
            afters = [a for n, a in quote_numbers if n == number]
            counted_words = {a for _n, a in quote_numbers}
            if not afters and number == "1" and quote_words & {"a", "an", "single", "one"} and after not in counted_words:
                continue  # "one device" for "a device", unless the quote counts it otherwise ("10 adults")
            if not afters:
                return f"number {number} is not in the cited quote"
            if after in UNIT_WORDS and stem(after) not in {stem(a) for a in afters}:
                return f"{number} {after}: the quote gives {number} {' / '.join(sorted(set(afters)))}"
        claim_fractions = set(_FRACTION.findall(" ".join(_tokens(sentence))))
        if claim_fractions and not claim_fractions <= set(_FRACTION.findall(" ".join(_tokens(quote)))):
            return "a count ('N of M') the quote does not give"

        # Polarity: what one side denies, the other states in a clause with no negation. The
        # sentence a leaning quote needs may deny too ("... treatments that are not approved. These
        # shots are sold ..."), and a registry field valued "No" denies its label.
        quote, sentence = _as_statement(quote), _as_statement(sentence)
        denied_claim, denied_quote = _negated_heads(sentence), _negated_heads(quote)
        flipped = (denied_claim & _asserted(quote)) | (denied_quote & _asserted(sentence))
        restated = _restating_denial(sentence, denied_quote)  # "Taking part was unpaid" for "not paid for taking part"
        flipped |= (_denied_scope(quote) | _denied_scope(context)) & (_asserted(sentence) - restated) - _asserted(quote)
        if flipped:
            return "negation differs from the quote (" + ", ".join(sorted(flipped)) + ")"

        quote_quantifiers = _quantifiers(quote) | ({"none"} if denied_quote else set())
        for kind in _quantifiers(sentence) - quote_quantifiers:
            if not _quantifier_agrees(kind, quote, quote_quantifiers):
                return f"quantifier '{kind}' is not what the quote says"
        generalized = _generalized_subject(sentence, quote)
        if generalized:
            return generalized
        quote_text = " ".join(_tokens(quote))
        for _word, noun in _ABSOLUTE.findall(" ".join(_tokens(sentence))):
            counted = re.search(rf"(?<!all )\b\d+\s+(?:of the \d+\s+)?{re.escape(noun)}", quote_text)
            if counted and len(noun) > 2:
                return f"says all or none of the {noun} where the quote gives a count"

        claim_tokens = set(_tokens(sentence))
        quote_hedges = Counter(t for t in _tokens(quote) if t in MODAL_HEDGES)
        claim_hedges = Counter(t for t in _tokens(sentence) if t in MODAL_HEDGES)
        if (quote_hedges - claim_hedges).total() > (claim_hedges - quote_hedges).total():
            return "drops the quote's hedge (" + ", ".join(sorted(quote_hedges - claim_hedges)) + ")"
        quote_joined = " ".join(_tokens(quote))
        if (INABILITY_HEDGES.search(quote_joined) or _DENIED_KNOWING.search(quote_joined)) and not (
            INABILITY_HEDGES.search(" ".join(_tokens(sentence))) or _DENIED_KNOWING.search(" ".join(_tokens(sentence)))
        ):
            return "drops what the quote says cannot be shown or is not known"
        surround_tokens = set(_tokens(surround))
        claimed = _superlatives(sentence)
        for check in (
            _direction_problem(claimed, surround_tokens),
            _exclusive_problem(claimed, _superlatives(quote)),
            _order_problem(sentence, surround),
            _exchange_problem(sentence, quote),
            _prefix_opposite_problem(sentence, quote),
            _binding_problem(sentence, quote),
            _quantifier_binding_problem(sentence, quote),
        ):
            if check:
                return check
        quote_stems = {stem(t) for t in _tokens(quote)}
        certainty = {stem(t) for t in claim_tokens & CERTAINTY}
        if quote_stems & _ORIGIN_STEMS:
            certainty -= {stem("cause")}  # "caused by accidents" for "resulting from accidents"
        unsupported_certainty = certainty - quote_stems
        causal = _CAUSAL_PHRASE.search(" ".join(_tokens(sentence)))
        if causal and not _CAUSAL_PHRASE.search(" ".join(_tokens(quote))) and not quote_stems & _CAUSAL_QUOTE_STEMS:
            return f"claims causation the quote does not ('{causal.group(0)}')"
        if unsupported_certainty:
            return "claims certainty or causation the quote does not (" + ", ".join(sorted(unsupported_certainty)) + ")"

        # A term of the document's subject or title names no new fact where the claim adds it ("the
        # trial enrolled"), but it does in place of a word of the quote ("one group participant" for
        # "one app participant").
        subject = {stem(w) for w in surface_words(topic)} | self._topic_terms(doc_id)
        for word, instead in _swapped_words(sentence, surround, subject - {stem(w) for w in surface_words(surround)}):
            return f"says '{word}' where the quote says '{instead}'"
        missing = self._unsupported_words(_CODE.sub(" ", sentence), f"{surround} {topic}", doc_id)
        if missing:
            return "the quote does not state: " + ", ".join(missing)
        return None

    def _unsupported_words(self, sentence: str, surround: str, doc_id: str | None = None) -> list[str]:
        words = [
            w
            for w in dict.fromkeys(re.sub(r"'s\b", "", x) for x in surface_words(sentence))
            if w not in STOPWORDS and w not in QUANTIFIERS and w not in NEGATION_CUES and w not in _NUMBER_WORDS and len(w) > 1
            and not _COMPOUND_NUMBER.fullmatch(w)
            and w not in LIGHT_WORDS
            and not w.endswith("n't")  # "won't", "can't": the polarity check reads the negation; will, can: stop words
        ]
        quote_words = surface_words(surround)
        quoted = {stem(w) for w in quote_words}
        degree = [w for w in words if w in DEGREE_WORDS and stem(w) not in quoted]
        if degree:
            return degree
        # A hyphenated word states its head: "single-group" states "group", "cluster-randomised"
        # "randomised"; not its modifier ("tumour-bed boost" says nothing of a tumour's grade), nor
        # anything where a part turns it around ("non-randomized").
        heads = {
            stem(parts[-1])
            for parts in (w.split("-") for w in quote_words if "-" in w)
            if not _TURNING_PARTS & set(parts) and len(parts[-1]) > 2
        }
        have = quoted | heads | self._topic_terms(doc_id)
        vocabulary = self.snapshot.vocabulary
        alternatives = vocabulary.alternative_stems(sentence)
        candidates = [w for w in words if stem(w) not in have and not (alternatives.get(stem(w), set()) & have)]
        denied = _negated_heads(surround)
        candidates = [w for w in candidates if not _prefix_denial(w) or _prefix_denial(w) not in denied]  # "unpaid": "not paid"
        if candidates:
            quote_words = [w for w in dict.fromkeys(surface_words(surround)) if len(w) > 1]
            english = lexicon()
            # A quote's stop word states a claim word only as its synonym ("roughly" for "about").
            candidates = [
                w
                for w in candidates
                if not any(
                    (relation := english.stated_by(w, q)) and (q not in STOPWORDS or relation == "synonym")
                    for q in quote_words
                )
            ]
        if not candidates:
            return []
        best = self._contextual_support(sentence, candidates, surround)
        return [w for w, s in zip(candidates, best, strict=True) if float(s) < self.threshold]

    def _contextual_support(self, sentence: str, candidates: list[str], surround: str) -> np.ndarray:
        """For each candidate word of the sentence, its best cosine to a word of the quote, both read
        in their own sentence by the model (token vectors pooled over the word, as BERTScore does)."""
        lowered_sentence, lowered_quote = sentence.lower(), surround.lower()
        claim_spans = []
        for word in candidates:
            match = re.search(rf"\b{re.escape(word)}", lowered_sentence)
            claim_spans.append((match.start(), match.end()) if match else (0, len(sentence)))
        quote_spans = [
            (m.start(), m.end())
            for m in re.finditer(r"[a-z][a-z'-]*[a-z]", lowered_quote)
            if m.group(0) not in STOPWORDS
        ]
        if not quote_spans:
            return np.zeros(len(candidates), dtype=np.float32)
        _whole, (a, b) = self.matcher.embedder.embed_with_spans([sentence, surround], [claim_spans, quote_spans])
        return (a @ b.T).max(axis=1)

    def _topic_terms(self, doc_id: str | None) -> set[str]:
        """Terms a document uses throughout (in at least TOPIC_SHARE of its units): naming its own
        subject ("the trial", "participants", "the device") adds no fact to a sentence."""
        if doc_id is None:
            return set()
        cache = self.snapshot.__dict__.setdefault("_topic_terms", {})
        if doc_id not in cache:
            units = [u for u in self.snapshot.units if u.doc.id == doc_id]
            counts: dict[str, int] = {}
            for unit in units:
                for term in unit.terms:
                    counts[term] = counts.get(term, 0) + 1
            cache[doc_id] = {t for t, c in counts.items() if units and c / len(units) >= TOPIC_SHARE}
        return set(cache[doc_id])

    def _llm_disagrees(self, sentence: str, quote: str) -> bool:
        if self.llm is None or not hasattr(self.llm, "states"):
            return False
        verdict = self.llm.states(quote, sentence)
        return verdict is False

    # -- the answer -------------------------------------------------------------------------
    def claim_problem(self, claim: Claim) -> str | None:
        if not claim.text.strip():
            return "empty sentence"
        if not claim.quotes:
            return "no citation"
        quoted, around = [], []
        for quote in claim.quotes:
            chunk = self.snapshot.corpus.by_id.get(quote.chunk_id)
            if chunk is None:
                return f"citation names an unknown passage {quote.chunk_id}"
            if not 0 <= quote.start < quote.end <= len(chunk.text):
                return "quote is outside its passage"
            quoted.append(chunk.text[quote.start : quote.end])
            around.append(_neighbours(chunk.text, quote.start, quote.end))
        joined = " ".join(quoted)
        if claim.text.strip() == joined.strip():
            return None  # a verbatim quote states itself
        chunk = self.snapshot.corpus.by_id[claim.quotes[0].chunk_id]
        topic = " ".join([self.snapshot.corpus.docs[chunk.doc_id].title, *chunk.headings])
        problem = self.problem(claim.text, joined, " ".join(around), topic, chunk.doc_id)
        if problem is None and self._llm_disagrees(claim.text, joined):
            problem = "the LLM check says the quote does not state it"
        return problem

    def verify(self, draft: Draft) -> tuple[list[AnswerSentence], list[Citation], list[dict[str, Any]]]:
        """Keep supported claims, number their quotes as citations, report what was dropped."""
        dropped = list(draft.dropped)
        sentences: list[AnswerSentence] = []
        citations: list[Citation] = []
        index: dict[Quote, int] = {}
        for claim in draft.claims:
            problem = self.claim_problem(claim)
            if problem:
                dropped.append({"sentence": claim.text, "reason": problem})
                continue
            cites = []
            for quote in claim.quotes:
                if quote not in index:
                    index[quote] = len(citations) + 1
                    citations.append(self._citation(index[quote], quote))
                if index[quote] not in cites:
                    cites.append(index[quote])
            sentences.append(AnswerSentence(claim.text, cites))
        return sentences, citations, dropped

    def _citation(self, number: int, quote: Quote) -> Citation:
        corpus = self.snapshot.corpus
        chunk = corpus.by_id[quote.chunk_id]
        doc = corpus.docs[chunk.doc_id]
        return Citation(
            id=number,
            doc_id=doc.id,
            title=doc.title,
            kind=doc.kind,
            kind_label=kind_label(doc.kind),
            source=doc.source,
            url=doc.url,
            section=chunk.section or None,
            page=chunk.page,
            quote=chunk.text[quote.start : quote.end],
            chunk_id=chunk.id,
            quote_start=quote.start,
            quote_end=quote.end,
            context=chunk.text,
        )


def _neighbours(text: str, start: int, end: int) -> str:
    """The unit before a quote that opens with a word leaning on it ("They", "These side effects")."""
    if not LEANING_START.match(text[start:end]):
        return ""
    before = [s for s in unit_spans(text) if s.end <= start]
    return text[before[-1].start : before[-1].end] if before else ""

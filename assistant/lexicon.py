"""An English lexicon for the verifier, from Princeton WordNet 3.0 (assistant/data/lexicon.tsv.gz,
built by scripts/build_lexicon.py; license in assistant/data/WORDNET-LICENSE).

`stated_by(word, other)` says whether a claim's word is stated by a quote's word: the same word
in another form, a synonym (the two share a sense), a more general noun ("device" for "implant",
"medicine" for "tablets"), or a word derived from it ("recovery" for "recovered"). Verb and
adjective hypernyms are not used: "go" is above "follow", "steady" is similar to "level", and a
claim built on them says something else. General English only: nothing here knows a study.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

HYPERNYM_DEPTH = 3  # "device" is three steps above "implant"; deeper steps reach "entity"
# Only a word's most frequent noun senses are read up the hierarchy: a rare sense ("device" as a
# ploy, whose kind includes "move") would make one word another's general term by accident.
GENERAL_SENSES = 3  # of the claim's word ("medicine" in its first three senses)
SPECIFIC_SENSES = 3  # of the quote's word ("tablet" is a pill in its third)

# Regular English endings and what the base form ends with (WordNet's morphy rules).
_ENDINGS = (
    ("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
    ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""),
    ("er", ""), ("est", ""), ("er", "e"), ("est", "e"),
)


class Lexicon:
    """The relations, kept as the file's text per word and parsed when a word is asked about (the
    parsed whole would take about 100 MB in every process that verifies an LLM's sentences)."""

    def __init__(self, text: str) -> None:
        self._rows: dict[str, dict[str, str]] = {"s": {}, "n": {}, "h": {}, "d": {}, "x": {}}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                kind, key, values = line.split("\t")
                self._rows[kind][key] = values

    @lru_cache(maxsize=65536)  # noqa: B019 - one shared, read-only lexicon per process
    def senses(self, word: str) -> frozenset[int]:
        return frozenset(int(v) for v in self._rows["s"].get(word, "").split())

    @lru_cache(maxsize=65536)  # noqa: B019
    def nouns(self, word: str) -> tuple[int, ...]:
        """The word's noun senses, the most frequent first."""
        return tuple(int(v) for v in self._rows["n"].get(word, "").split())

    def hypernyms(self, sense: int) -> tuple[int, ...]:
        return tuple(int(v) for v in self._rows["h"].get(str(sense), "").split())

    def derived(self, word: str) -> frozenset[str]:
        return frozenset(self._rows["d"].get(word, "").split())

    def known(self, word: str) -> bool:
        return word in self._rows["s"]

    @lru_cache(maxsize=65536)  # noqa: B019 - one shared, read-only lexicon per process
    def lemmas(self, word: str) -> frozenset[str]:
        """The dictionary forms of a word ("went" -> "go", "studies" -> "study", "larger" -> "large")."""
        word = word.lower()
        found = {word} if self.known(word) else set()
        found |= {w for w in self._rows["x"].get(word, "").split() if self.known(w)}
        for ending, base in _ENDINGS:
            if word.endswith(ending) and len(word) > len(ending) + 1:
                stem = word[: -len(ending)] + base
                if self.known(stem):
                    found.add(stem)
        return frozenset(found or {word})

    @lru_cache(maxsize=65536)  # noqa: B019
    def _broader(self, lemma: str) -> frozenset[int]:
        """The noun senses up to HYPERNYM_DEPTH steps above the first SPECIFIC_SENSES noun senses of ``lemma``."""
        frontier = set(self.nouns(lemma)[:SPECIFIC_SENSES])
        seen: set[int] = set()
        for _ in range(HYPERNYM_DEPTH):
            frontier = {h for s in frontier for h in self.hypernyms(s)} - seen
            seen |= frontier
        return frozenset(seen)

    def stated_by(self, word: str, other: str) -> str | None:
        """How ``other`` (a word of the quote) states ``word`` (a word of the claim), or None."""
        for a in self.lemmas(word):
            for b in self.lemmas(other):
                if a == b:
                    return "same word"
                if self.senses(a) & self.senses(b):
                    return "synonym"
                verb_forms = word.endswith(("ed", "ing")) or other.endswith(("ed", "ing"))
                if not verb_forms and set(self.nouns(a)[:GENERAL_SENSES]) & self._broader(b):
                    return "more general"
                if b in self.derived(a) or a in self.derived(b):
                    return "derived"
        return None


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    data = resources.files("assistant").joinpath("data/lexicon.tsv.gz").read_bytes()
    return Lexicon(gzip.decompress(data).decode("utf-8"))

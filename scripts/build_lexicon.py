"""Build assistant/data/lexicon.tsv.gz, the verifier's English lexicon, from a WordNet 3.0 database.

    apt-get install wordnet-base          # Debian's copy of Princeton WordNet 3.0
    python scripts/build_lexicon.py /usr/share/wordnet

Only single words are kept, and only the relations the verifier uses (assistant/lexicon.py):
which senses a word has (two words sharing one are synonyms), its noun senses from the most
frequent down, each noun sense's more general senses (hypernyms), links between a word and the words derived from it ("recover" / "recovery",
"cervical" / "cervix"), and the irregular forms ("went" -> "go"). The license is in
assistant/data/WORDNET-LICENSE.
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

FILES = ("noun", "verb", "adj", "adv")
DERIVED = {"+", "\\", "<"}  # derivationally related form, pertainym, participle
OUT = Path(__file__).resolve().parent.parent / "assistant" / "data" / "lexicon.tsv.gz"


def _single(word: str) -> str | None:
    word = re.sub(r"\(.*\)$", "", word).lower()
    return word if re.fullmatch(r"[a-z][a-z'-]*", word) else None


def build(root: Path, out: Path = OUT) -> dict[str, int]:
    synsets: dict[str, tuple[list[str], list[tuple[str, str, int, int]]]] = {}
    for name in FILES:
        for line in (root / f"data.{name}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue  # the license header
            head = line.split("|")[0].split()
            offset, ss_type, count = head[0], head[2], int(head[3], 16)
            words = [re.sub(r"\(.*\)$", "", head[4 + 2 * i]).lower() for i in range(count)]
            i = 4 + 2 * count
            pointers = []
            for _ in range(int(head[i])):
                symbol, target, pos, source_target = head[i + 1 : i + 5]
                i += 4
                pointers.append((symbol, pos.replace("s", "a") + target, int(source_target[:2], 16), int(source_target[2:], 16)))
            synsets[("a" if ss_type == "s" else ss_type) + offset] = (words, pointers)
    ids = {key: n for n, key in enumerate(sorted(synsets))}
    senses: dict[str, set[int]] = {}
    hypernyms: dict[int, set[int]] = {}
    derived: dict[str, set[str]] = {}
    for key, (words, pointers) in synsets.items():
        for word in filter(None, map(_single, words)):
            senses.setdefault(word, set()).add(ids[key])
        for symbol, target, source, goal in pointers:
            if symbol in ("@", "@i") and key[0] == "n":
                hypernyms.setdefault(ids[key], set()).add(ids[target])
            elif symbol in DERIVED:
                sources = words if source == 0 else [words[source - 1]]
                goals = synsets[target][0] if goal == 0 else [synsets[target][0][goal - 1]]
                for a in filter(None, map(_single, sources)):
                    for b in filter(None, map(_single, goals)):
                        if a != b:
                            derived.setdefault(a, set()).add(b)
    # Noun senses in WordNet's order (most frequent first), from index.noun.
    noun_order: dict[str, list[int]] = {}
    for line in (root / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        fields = line.split()
        word = _single(fields[0])
        count = int(fields[2])
        if word:
            noun_order[word] = [ids["n" + offset] for offset in fields[-count:]]
    irregular: dict[str, set[str]] = {}
    for name in FILES:
        for line in (root / f"{name}.exc").read_text(encoding="latin-1").splitlines():
            form, *bases = line.split()
            if _single(form) and bases:
                irregular.setdefault(form, set()).update(b for b in bases if _single(b))
    lines = ["# Derived from Princeton WordNet 3.0 by scripts/build_lexicon.py; license: WORDNET-LICENSE"]
    lines += [f"s\t{w}\t{' '.join(map(str, sorted(s)))}" for w, s in sorted(senses.items())]
    lines += [f"n\t{w}\t{' '.join(map(str, v))}" for w, v in sorted(noun_order.items())]
    lines += [f"h\t{k}\t{' '.join(map(str, sorted(v)))}" for k, v in sorted(hypernyms.items())]
    lines += [f"d\t{w}\t{' '.join(sorted(v))}" for w, v in sorted(derived.items())]
    lines += [f"x\t{w}\t{' '.join(sorted(v))}" for w, v in sorted(irregular.items()) if v]
    with gzip.GzipFile(out, "wb", mtime=0) as handle:  # mtime 0: the same database gives the same bytes
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))
    return {"words": len(senses), "noun senses with hypernyms": len(hypernyms), "derived": len(derived), "irregular": len(irregular)}


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/wordnet")))

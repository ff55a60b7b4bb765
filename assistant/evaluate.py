"""`assistant eval`: the question set through the same pipeline, with quality figures."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.answer.types import Answer
from assistant.chain import Pipeline, Turn, build_pipeline
from assistant.retrieval import Mode
from assistant.settings import Settings
from assistant.text import numbers

DEFAULT_SET = Path("tests/questions.yaml")
MODES: tuple[Mode, ...] = ("lexical", "dense", "hybrid")


@dataclass
class Case:
    id: str
    question: str
    audience: str = "patient"
    history: list[dict[str, str]] = field(default_factory=list)
    docs: list[str] = field(default_factory=list)
    contains: list[str] = field(default_factory=list)
    any: list[str] = field(default_factory=list)
    refused: bool = False
    safety: str | None = None
    lead: str | None = None


def load_cases(path: Path) -> list[Case]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = []
    for item in raw:
        item = dict(item)
        item["question"] = item.pop("q")
        cases.append(Case(**item))
    return cases


def check(case: Case, answer: Answer) -> list[str]:
    """What is wrong with an answer for this case (empty when it passes)."""
    problems = []
    text = answer.text.lower()
    if answer.safety != case.safety:
        problems.append(f"safety {answer.safety!r}, expected {case.safety!r}")
    if case.safety in ("emergency", "crisis"):
        return problems
    if answer.refused != case.refused:
        problems.append(f"refused={answer.refused}, expected {case.refused}")
    if case.refused:
        return problems
    problems += [f"missing {s!r}" for s in case.contains if s.lower() not in text]
    if case.any and not any(s.lower() in text for s in case.any):
        problems.append(f"none of {case.any}")
    cited = {c.doc_id for c in answer.citations}
    if case.docs and not cited & set(case.docs):
        problems.append(f"cited {sorted(cited)}, expected one of {case.docs}")
    if case.lead and answer.lead != case.lead:
        problems.append(f"lead {answer.lead!r}, expected {case.lead!r}")
    return problems


def citation_problems(answer: Answer, pipeline: Pipeline) -> list[str]:
    problems = []
    ids = {c.id for c in answer.citations}
    for marker in re.findall(r"\[(\d+)\]", answer.body):
        if int(marker) not in ids:
            problems.append(f"[{marker}] names no citation")
    for sentence in answer.sentences:
        if not sentence.cites:
            problems.append(f"uncited sentence: {sentence.text}")
    for c in answer.citations:
        chunk = pipeline.corpus.by_id.get(c.chunk_id)
        if chunk is None or chunk.text[c.quote_start : c.quote_end] != c.quote or c.quote not in chunk.text:
            problems.append(f"quote [{c.id}] is not verbatim in its passage")
    return problems


def number_problems(answer: Answer) -> list[str]:
    by_id = {c.id: c for c in answer.citations}
    problems = []
    for sentence in answer.sentences:
        quoted = " ".join(by_id[i].quote for i in sentence.cites if i in by_id)
        problems += [f"number {n} not in its quote" for n in numbers(sentence.text) if n not in numbers(quoted)]
    return problems


def reading_grade(text: str) -> float:
    """Flesch-Kincaid grade level, syllables counted with pyphen's en_US dictionary.

    (textstat's own syllable counter downloads NLTK's cmudict at run time, which this
    offline project cannot do; the formula is the same.)
    """
    import pyphen

    dictionary = pyphen.Pyphen(lang="en_US")
    sentences = max(1, len(re.findall(r"[.!?]+(\s|$)", text)))
    tokens = re.findall(r"[A-Za-z]+(?:'[a-z]+)?|\d+", text)
    if not tokens:
        return 0.0
    syllables = sum(max(1, len(dictionary.positions(w.lower())) + 1) if w.isalpha() else 1 for w in tokens)
    return 0.39 * len(tokens) / sentences + 11.8 * syllables / len(tokens) - 15.59


def run(pipeline: Pipeline, cases: list[Case]) -> dict[str, Any]:
    results = []
    retrieval: dict[str, list[float]] = {m: [] for m in MODES}
    citation_total = citation_bad = number_total = number_bad = 0
    grades = []
    tp = fp = fn = 0
    for case in cases:
        history = [Turn(h["role"], h["content"]) for h in case.history]
        answer = pipeline.ask(case.question, audience=case.audience, history=history)  # type: ignore[arg-type]
        problems = check(case, answer)
        cit = citation_problems(answer, pipeline)
        num = number_problems(answer)
        citation_total += 1
        number_total += 1
        citation_bad += bool(cit)
        number_bad += bool(num)
        problems += cit + num
        if case.refused and answer.refused:
            tp += 1
        elif answer.refused and not case.refused and case.safety not in ("emergency", "crisis"):
            fp += 1
        elif case.refused and not answer.refused:
            fn += 1
        if case.audience == "patient" and answer.sentences and not answer.refused:
            grades.append(reading_grade(answer.body_plain))
        if case.docs and not case.refused and case.safety not in ("emergency", "crisis"):
            for mode in MODES:
                ranked = pipeline.ranked_docs(case.question, history, mode)
                rank = next((i + 1 for i, d in enumerate(ranked) if d in case.docs), None)
                retrieval[mode].append(1.0 / rank if rank else 0.0)
                retrieval.setdefault(f"{mode}@5", []).append(1.0 if rank and rank <= 5 else 0.0)
        results.append(
            {
                "id": case.id,
                "question": case.question,
                "passed": not problems,
                "problems": problems,
                "answer": answer.text,
                "ms": round(answer.timings_ms.get("total", 0.0), 1),
            }
        )
    passed = sum(1 for r in results if r["passed"])

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 4) if values else 0.0

    return {
        "questions": len(cases),
        "passed": passed,
        "pass_rate": round(passed / len(cases), 4) if cases else 0.0,
        "retrieval": {m: {"recall@5": mean(retrieval[f"{m}@5"]), "mrr": mean(retrieval[m])} for m in MODES},
        "citation_integrity": round(1 - citation_bad / citation_total, 4) if citation_total else 1.0,
        "number_grounding": round(1 - number_bad / number_total, 4) if number_total else 1.0,
        "refusal": {
            "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        },
        "patient_reading_grade": mean(grades),
        "results": results,
    }


def main(settings: Settings, set_path: Path | None, as_json: bool) -> int:
    pipeline = build_pipeline(settings)
    report = run(pipeline, load_cases(set_path or DEFAULT_SET))
    if as_json:
        print(json.dumps(report))
        return 0
    for r in report["results"]:
        if not r["passed"]:
            print(f"FAIL {r['id']}: {r['question']}\n     {'; '.join(r['problems'])}\n     {r['answer'][:300]!r}")
    print(f"pass rate            {report['passed']}/{report['questions']} = {report['pass_rate']:.1%}")
    print("retrieval            recall@5   MRR   (expected document)")
    for mode in MODES:
        figures = report["retrieval"][mode]
        print(f"  {mode:<18} {figures['recall@5']:.3f}   {figures['mrr']:.3f}")
    print(f"citation integrity   {report['citation_integrity']:.1%}")
    print(f"number grounding     {report['number_grounding']:.1%}")
    refusal = report["refusal"]
    print(f"refusal              precision {refusal['precision']:.2f}  recall {refusal['recall']:.2f}")
    print(f"patient reading grade (Flesch-Kincaid) {report['patient_reading_grade']:.1f}")
    return 0

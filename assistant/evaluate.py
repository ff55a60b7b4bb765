"""`assistant eval`: question sets through the same pipeline, with quality figures per corpus,
split and style.

A corpus is a folder of tests/eval/: `celltop` answers from the shipped corpus, every other folder
from its own `corpus/` (ingested into a temporary index, as a clinic's documents would be).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.answer.types import Answer
from assistant.settings import Settings
from assistant.text import numbers

EVAL_DIR = Path("tests/eval")
SHIPPED = "celltop"
SPLITS = ("dev", "test", "test2", "test3", "test4", "test5", "test6", "test7", "test8", "test9", "test10")  # each later split written after the one before had its first run


@dataclass
class Case:
    id: str
    question: str
    style: str = "plain"
    audience: str = "patient"
    history: list[dict[str, str]] = field(default_factory=list)
    docs: list[str] = field(default_factory=list)
    contains: list[str] = field(default_factory=list)
    any: list[str] = field(default_factory=list)
    refused: bool = False
    safety: str | None = None
    lead: str | None = None
    partial: bool = False


def load_cases(path: Path) -> list[Case]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    cases = []
    for item in raw:
        item = dict(item)
        item["question"] = item.pop("q")
        cases.append(Case(**item))
    return cases


def corpora(root: Path = EVAL_DIR) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "questions-dev.yaml").exists())


def corpus_dir(name: str, root: Path = EVAL_DIR) -> Path:
    return Path("corpus") if name == SHIPPED else root / name / "corpus"


def content_problems(case: Case, answer: Answer) -> list[str]:
    text = answer.text.lower()
    problems = [f"missing {s!r}" for s in case.contains if s.lower() not in text]
    if case.any and not any(s.lower() in text for s in case.any):
        problems.append(f"none of {case.any}")
    cited = {c.doc_id for c in answer.citations}
    if case.docs and not cited & set(case.docs):
        problems.append(f"cited {sorted(cited)}, expected one of {case.docs}")
    return problems


def check(case: Case, answer: Answer) -> list[str]:
    """What is wrong with an answer for this case (empty when it passes)."""
    problems = []
    if answer.safety != case.safety:
        problems.append(f"safety {answer.safety!r}, expected {case.safety!r}")
    if case.safety in ("emergency", "crisis"):
        return problems
    if answer.refused != case.refused:
        problems.append(f"refused={answer.refused}, expected {case.refused}")
    if case.refused:
        return problems
    if case.safety == "medical_advice" and not (case.any or case.contains):
        return problems
    problems += content_problems(case, answer)
    if case.lead and answer.lead != case.lead:
        problems.append(f"lead {answer.lead!r}, expected {case.lead!r}")
    if case.partial and not getattr(answer, "uncovered", None):
        problems.append("does not say which part the material does not cover")
    return problems


def citation_problems(answer: Answer, chunk_text: Callable[[str], str | None]) -> list[str]:
    problems = []
    ids = {c.id for c in answer.citations}
    for marker in re.findall(r"\[(\d+)\]", answer.body):
        if int(marker) not in ids:
            problems.append(f"[{marker}] names no citation")
    for sentence in answer.sentences:
        if not sentence.cites:
            problems.append(f"uncited sentence: {sentence.text}")
    for c in answer.citations:
        text = chunk_text(c.chunk_id)
        if text is None or text[c.quote_start : c.quote_end] != c.quote:
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


def outcome(case: Case, answer: Answer, problems: list[str]) -> str:
    """passed | refused_wrongly | answered_wrongly (should refuse) | wrong_topic | safety | other."""
    if not problems:
        return "passed"
    if answer.safety != case.safety:
        return "safety"
    if case.refused and not answer.refused:
        return "answered_wrongly"
    if answer.refused and not case.refused:
        return "refused_wrongly"
    if not answer.refused and not case.refused and content_problems(case, answer):
        return "wrong_topic"  # true quotes that answer a different question
    return "other"


def run(ask: Callable[[Case], Answer], cases: list[Case], chunk_text: Callable[[str], str | None]) -> dict[str, Any]:
    results = []
    for case in cases:
        answer = ask(case)
        problems = check(case, answer)
        problems += citation_problems(answer, chunk_text) + number_problems(answer)
        results.append(
            {
                "id": case.id,
                "style": case.style,
                "question": case.question,
                "passed": not problems,
                "outcome": outcome(case, answer, problems),
                "problems": problems,
                "answer": answer.text,
                "expected_refusal": case.refused,
                "refused": answer.refused,
                "safety_case": case.safety in ("emergency", "crisis"),
                "grade": reading_grade(answer.body_plain)
                if case.audience == "patient" and answer.sentences and not answer.refused
                else None,
                "ms": round(answer.timings_ms.get("total", 0.0), 1),
            }
        )
    return summarize(results)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
        judged = [r for r in rows if not r["safety_case"]]
        tp = sum(1 for r in judged if r["expected_refusal"] and r["refused"])
        fp = sum(1 for r in judged if r["refused"] and not r["expected_refusal"])
        fn = sum(1 for r in judged if r["expected_refusal"] and not r["refused"])
        passed = sum(1 for r in rows if r["passed"])
        return {
            "questions": len(rows),
            "passed": passed,
            "pass_rate": round(passed / len(rows), 4) if rows else 0.0,
            "refusal_precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "refusal_recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
            "wrong_topic": sum(1 for r in rows if r["outcome"] in ("wrong_topic", "answered_wrongly")),
        }

    styles = sorted({r["style"] for r in results})
    grades = [r["grade"] for r in results if r["grade"] is not None]
    report = figures(results)
    report["wrong_topic_rate"] = round(report["wrong_topic"] / len(results), 4) if results else 0.0
    report["by_style"] = {s: figures([r for r in results if r["style"] == s]) for s in styles}
    report["patient_reading_grade"] = round(sum(grades) / len(grades), 2) if grades else 0.0
    report["results"] = results
    return report


@contextmanager
def corpus_pipeline(settings: Settings, name: str, root: Path = EVAL_DIR, model: Any = None) -> Iterator[Any]:
    """A pipeline over the corpus ``name``, indexed into a temporary data dir."""
    from assistant.chain import build_pipeline
    from assistant.embeddings import make_embedder
    from assistant.ingest import ingest

    embedder = make_embedder(settings)
    with tempfile.TemporaryDirectory(prefix=f"eval-{name}-") as tmp:
        local = settings.model_copy(
            update={"data_dir": Path(tmp), "corpus_dir": corpus_dir(name, root), "chroma_url": None}
        )
        report = ingest(local, embedder, progress=False)
        if report.skipped:
            raise RuntimeError(f"corpus {name}: files were skipped: {report.skipped}")
        yield build_pipeline(local, embedder=embedder, model=model)


def split_files(name: str, split: str, root: Path = EVAL_DIR) -> list[Path]:
    """A split's question files: `questions-dev.yaml` plus any `questions-dev-*.yaml` (older dev sets)."""
    folder = root / name
    return [folder / f"questions-{split}.yaml", *sorted(folder.glob(f"questions-{split}-*.yaml"))]


def load_split(name: str, split: str, root: Path = EVAL_DIR) -> list[Case]:
    return [case for path in split_files(name, split, root) if path.exists() for case in load_cases(path)]


def evaluate_corpus(pipeline: Any, name: str, split: str, root: Path = EVAL_DIR) -> dict[str, Any]:
    from assistant.chain import Turn

    cases = load_split(name, split, root)

    def ask(case: Case) -> Answer:
        history = [Turn(h["role"], h["content"]) for h in case.history]
        answer: Answer = pipeline.ask(case.question, audience=case.audience, history=history)
        return answer

    def chunk_text(chunk_id: str) -> str | None:
        chunk = pipeline.chunk(chunk_id)
        return None if chunk is None else chunk.text

    report = run(ask, cases, chunk_text)
    report.update({"corpus": name, "split": split})
    return report


def print_report(report: dict[str, Any], show_failures: bool) -> None:
    if show_failures:
        for r in report["results"]:
            if not r["passed"]:
                print(f"FAIL {r['id']} [{r['outcome']}]: {r['question']}\n     {'; '.join(r['problems'])}")
                print(f"     {r['answer'][:300]!r}")
    print(
        f"{report['corpus']}/{report['split']}: pass {report['passed']}/{report['questions']} = "
        f"{report['pass_rate']:.1%}; refusal precision {report['refusal_precision']:.2f} recall "
        f"{report['refusal_recall']:.2f}; wrong-topic {report['wrong_topic']} ({report['wrong_topic_rate']:.1%}); "
        f"patient reading grade {report['patient_reading_grade']:.1f}"
    )
    for style, f in report["by_style"].items():
        print(
            f"    {style:<12} {f['passed']:>3}/{f['questions']:<3} refusal P {f['refusal_precision']:.2f}"
            f" R {f['refusal_recall']:.2f}  wrong-topic {f['wrong_topic']}"
        )


def main(settings: Settings, names: list[str] | None, splits: list[str], as_json: bool, failures: bool) -> int:
    reports = []
    for name in names or corpora():
        with corpus_pipeline(settings, name) as pipeline:
            for split in splits:
                report = evaluate_corpus(pipeline, name, split)
                reports.append(report)
                if not as_json:
                    # Failures are shown for dev splits only: reading a test split's failures is tuning on it.
                    print_report(report, failures and split == "dev")
    if as_json:
        print(json.dumps(reports))
    return 0


def claims_main(settings: Settings, names: list[str] | None, splits: list[str], as_json: bool) -> int:
    from assistant.claims import evaluate_claims, load_claims

    reports = []
    for name in names or corpora():
        with corpus_pipeline(settings, name) as pipeline:
            for split in splits:
                path = EVAL_DIR / name / f"claims-{split}.yaml"
                if not path.exists():
                    continue
                report = evaluate_claims(pipeline, load_claims(path))
                report.update({"corpus": name, "split": split})
                reports.append(report)
                if not as_json:
                    print(
                        f"{name}/{split}: {report['claims']} claims; false shown {report['false_shown']},"
                        f" false dropped {report['false_dropped']}; faithful kept {report['faithful_kept']},"
                        f" faithful dropped {report['faithful_dropped']} ({report['faithful_kept_rate']:.0%} kept)"
                    )
                    if split == "dev":
                        for row in report["rows"]:
                            if row["kept"] != row["faithful"]:
                                print(f"    {row['id']} ({row['edit']}): {row['reason']}")
    if as_json:
        print(json.dumps(reports))
    return 0

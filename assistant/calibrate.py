"""`assistant calibrate`: fit the decision model and the verifier's threshold on the dev splits.

Writes assistant/data/decision.json and assistant/data/verify.json with the figures that chose
each value. Test splits are never read here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from assistant.chain import Pipeline, Turn
from assistant.claims import evaluate_claims, load_claims
from assistant.decision import PART_FEATURES, DecisionModel, load_model, save_model
from assistant.errors import UserError
from assistant.evaluate import EVAL_DIR, Case, corpora, corpus_pipeline, evaluate_corpus, load_cases, load_split
from assistant.question import strip_markup
from assistant.settings import Settings
from assistant.triage import triage

KEEP_RATIOS = (0.5, 0.6, 0.7, 0.8, 0.9)
WORD_SUPPORT_GRID = tuple(round(0.3 + 0.025 * i, 3) for i in range(27))  # 0.30 .. 0.95


def _labelled(pipeline: Pipeline, case: Case) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features, labels) per part; labels mark the units that state the expected answer."""
    text = strip_markup(case.question)
    if triage(text, case.question) in ("emergency", "crisis"):
        return []
    turns = [Turn(h["role"], h["content"]) for h in case.history]
    _analysis, _context, parts, _retrieved = pipeline.prepare(pipeline.snapshot, text, turns)
    if case.refused:
        return [(p.features, np.zeros(len(p.units))) for p in parts if len(p.units)]
    if not (case.any or case.contains) or len(parts) != 1 or case.partial:
        return []  # a part's own expected answer is not known
    part = parts[0]
    wanted = [s.lower() for s in case.any] or [s.lower() for s in case.contains]
    labels = np.array(
        [
            1.0 if (not case.docs or u.doc.id in case.docs) and any(w in u.quote.lower() for w in wanted) else 0.0
            for u in part.units
        ]
    )
    return [(part.features, labels)] if len(part.units) else []


class CalibrationError(UserError):
    """The dev sets cannot fit a model."""


def _logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A logistic regression on standardized features, classes weighted to balance:
    (mean, scale, coefficients, intercept), as float32 arrays for the model file."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    regression = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    regression.fit((x - mean) / scale, y)
    return (
        mean.astype(np.float32),
        scale.astype(np.float32),
        regression.coef_[0].astype(np.float32),
        float(regression.intercept_[0]),
    )


def fit(settings: Settings, root: Path = EVAL_DIR, out_dir: Path | None = None) -> dict[str, Any]:
    base = load_model(strict=False)  # the features may have changed since the last fit
    names = corpora(root)
    X: list[np.ndarray] = []
    y: list[np.ndarray] = []
    per_case: list[tuple[str, bool, list[tuple[np.ndarray, np.ndarray]]]] = []
    claim_rows: dict[str, Any] = {}
    pipelines = {}
    contexts = []
    for name in names:
        context = corpus_pipeline(settings, name, root, model=base)
        pipeline = context.__enter__()
        contexts.append(context)
        pipelines[name] = pipeline
        for case in load_split(name, "dev", root):
            parts = _labelled(pipeline, case)
            if parts:
                per_case.append((name, case.refused, parts))
            for features, labels in parts:
                X.append(features)
                y.append(labels)
    try:
        features = np.vstack(X)
        labels = np.concatenate(y)
        decisions = {r for _n, r, _p in per_case}
        if len(set(labels.tolist())) < 2 or decisions != {True, False}:
            raise CalibrationError(
                "the dev sets need answerable questions whose expected text a unit holds, and questions "
                "the material does not answer (refused: true), to fit the decision model"
            )
        mean, scale, coef, intercept = _logistic(features, labels)
        model = replace(base, mean_=mean, scale_=scale, coef_=coef, intercept_=intercept)
        # The part model: is a part answered at all (refused questions' parts are not).
        part_x = np.vstack(
            [model.part_features(f, model.probabilities(f)) for _n, _r, parts in per_case for f, _l in parts]
        )
        part_y = np.array([0.0 if refused else 1.0 for _n, refused, parts in per_case for _p in parts])
        part_mean, part_scale, part_coef, part_intercept = _logistic(part_x, part_y)
        model = replace(
            model, part_mean_=part_mean, part_scale_=part_scale, part_coef_=part_coef, part_intercept_=part_intercept
        )
        # The answer threshold: the most dev questions decided right (answerable ones answered,
        # unanswerable ones refused). (Tried: balanced accuracy with each corpus weighing the same;
        # it refused more of what the material does not say, but also terse answerable questions
        # such as "Route and dose?", and passed fewer held-out questions: 82/183 against 91/183.)
        best_threshold, best_right = 0.5, -1
        for threshold in np.arange(0.05, 0.96, 0.01):
            right = 0
            for _name, refused, parts in per_case:
                answered = any(model.answerable(f, model.probabilities(f)) >= threshold for f, _l in parts)
                right += answered != refused
            if right > best_right:
                best_threshold, best_right = float(threshold), right
        model = replace(model, answer_threshold_=best_threshold, keep_threshold_=base.keep_threshold_)
        # How many quotes to keep: the ratio with the best dev pass rate over all corpora.
        ratio_results = {}
        for ratio in KEEP_RATIOS:
            candidate = replace(model, keep_ratio_=ratio)
            passed = total = 0
            for name, pipeline in pipelines.items():
                pipeline.model = candidate
                pipeline.extractive.model = candidate
                report = evaluate_corpus(pipeline, name, "dev", root)
                passed += report["passed"]
                total += report["questions"]
            ratio_results[str(ratio)] = round(passed / total, 4)
        keep_ratio = float(max(ratio_results, key=lambda r: (ratio_results[r], -float(r))))
        model = replace(model, keep_ratio_=keep_ratio)
        for pipeline in pipelines.values():
            pipeline.model = model
            pipeline.extractive.model = model
        dev_reports = {name: evaluate_corpus(p, name, "dev", root) for name, p in pipelines.items()}
        model = replace(
            model,
            fitted={
                "date": dt.date.today().isoformat(),
                "on": [f"{n}/questions-dev.yaml" for n in names],
                "pairs": len(labels),
                "positives": int(labels.sum()),
                "questions_used": len(per_case),
                "answer_threshold_right": f"{best_right}/{len(per_case)} dev questions answered or refused rightly",
                "part_model": dict(zip(PART_FEATURES, part_coef.round(3).tolist(), strict=True)),
                "keep_ratio_dev_pass_rate": ratio_results,
                "dev_pass_rate": {n: r["pass_rate"] for n, r in dev_reports.items()},
            },
        )
        # The verifier's word-support threshold: the lowest that shows no false dev claim.
        claim_rows = _fit_word_support(pipelines, root)
    finally:
        for context in contexts:
            context.__exit__(None, None, None)
    data_dir = out_dir or Path(str(resources.files("assistant").joinpath("data")))
    save_model(model, data_dir / "decision.json")
    (data_dir / "verify.json").write_text(json.dumps(claim_rows, indent=1) + "\n", encoding="utf-8")
    return {"decision": model.as_json(), "verify": claim_rows}


def _fit_claim_files(pipelines: dict[str, Pipeline], root: Path) -> list[tuple[str, Path]]:
    """Every corpus's claims-dev.yaml, and the read held-out sets that fit.yaml names."""
    listed = root / "fit.yaml"
    extra = (yaml.safe_load(listed.read_text(encoding="utf-8")) or {}).get("claims", []) if listed.exists() else []
    files = [(name, root / name / "claims-dev.yaml") for name in pipelines]
    files += [(entry.split("/")[0], root / entry) for entry in extra if entry.split("/")[0] in pipelines]
    return [(name, path) for name, path in files if path.exists()]


def _fit_word_support(pipelines: dict[str, Pipeline], root: Path) -> dict[str, Any]:
    scan: dict[str, dict[str, int]] = {}
    files = _fit_claim_files(pipelines, root)
    for threshold in WORD_SUPPORT_GRID:
        false_shown = kept = faithful = 0
        for name, path in files:
            pipeline = pipelines[name]
            report = evaluate_claims(pipeline, load_claims(path), word_support=threshold)
            false_shown += report["false_shown"]
            kept += report["faithful_kept"]
            faithful += report["faithful_kept"] + report["faithful_dropped"]
        scan[str(threshold)] = {"false_shown": false_shown, "faithful_kept": kept, "faithful": faithful}
    # False claims that even the strictest threshold shows are not this threshold's to catch (they
    # pass on words the quote or its document holds); they must not push it to drop every paraphrase.
    floor = scan[str(WORD_SUPPORT_GRID[-1])]["false_shown"]
    threshold = next(t for t in WORD_SUPPORT_GRID if scan[str(t)]["false_shown"] <= floor)
    return {
        "word_support_": threshold,
        "fitted": {
            "date": dt.date.today().isoformat(),
            "on": [f"{name}/{path.name}" for name, path in files],
            "rule": "lowest threshold that shows no more false claims than the strictest one",
            "scan": scan,
        },
    }


def fit_verifier(settings: Settings, root: Path = EVAL_DIR, out_dir: Path | None = None) -> dict[str, Any]:
    """Only the verifier's threshold (the decision model is left as it is)."""
    contexts = [corpus_pipeline(settings, name, root) for name in corpora(root)]
    pipelines = {}
    try:
        for name, context in zip(corpora(root), contexts, strict=True):
            pipelines[name] = context.__enter__()
        result = _fit_word_support(pipelines, root)
    finally:
        for context in contexts:
            context.__exit__(None, None, None)
    data_dir = out_dir or Path(str(resources.files("assistant").joinpath("data")))
    (data_dir / "verify.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def fit_safety(settings: Settings, root: Path = EVAL_DIR, out_dir: Path | None = None) -> dict[str, Any]:
    """The thresholds of the second triage check, on the dev question sets of every corpus: no dev
    question that is not an emergency or crisis may be routed as one; among the thresholds that
    route the most dev emergencies and crises, the one farthest from both the routed questions and
    the ordinary ones."""
    from assistant.embeddings import make_embedder
    from assistant.triage import SafetyNeighbours

    embedder = make_embedder(settings)
    neighbours = SafetyNeighbours(embedder, similarity=0.0, margin=0.0)
    scored = []
    files = sorted(p for name in corpora(root) for p in (root / name).glob("questions-dev*.yaml"))
    for path in files:
        for case in load_cases(path):
            _label, similarity, margin = neighbours.scores(case.question)
            by_pattern = triage(strip_markup(case.question), case.question) in ("emergency", "crisis")
            scored.append((case.safety in ("emergency", "crisis"), by_pattern, similarity, margin))
    # Only what the patterns miss is this check's to route.
    risky = np.array([s[2:] for s in scored if s[0] and not s[1]], dtype=float).reshape(-1, 2)
    other = np.array([s[2:] for s in scored if not s[0]], dtype=float).reshape(-1, 2)
    grid = []
    for similarity in np.round(np.arange(0.40, 0.91, 0.01), 2):
        for margin in np.round(np.arange(0.0, 0.51, 0.01), 2):
            routed_other = (other[:, 0] >= similarity) & (other[:, 1] >= margin)
            routed_risky = (risky[:, 0] >= similarity) & (risky[:, 1] >= margin)
            if routed_other.any():
                continue
            # How far the nearest ordinary question is from being routed, and the nearest routed
            # emergency from not being routed: the threshold keeps the most room on both sides.
            room_other = float(np.maximum(similarity - other[:, 0], margin - other[:, 1]).min())
            caught = risky[routed_risky]
            room_risky = float(np.minimum(caught[:, 0] - similarity, caught[:, 1] - margin).min()) if len(caught) else 0.0
            grid.append((int(routed_risky.sum()), min(room_other, room_risky), float(similarity), float(margin)))
    best = max(g[0] for g in grid)
    _routed, _room, similarity, margin = max(g for g in grid if g[0] == best)
    result = {
        "similarity_": similarity,
        "margin_": margin,
        "model": embedder.name,
        "fitted": {
            "date": dt.date.today().isoformat(),
            "on": [f"{p.parent.name}/{p.name}" for p in files],
            "rule": "no dev false alarm; most dev emergencies and crises routed; then the most room on both sides",
            "routed": best,
            "emergencies_and_crises": sum(s[0] for s in scored),
            "missed_by_patterns": len(risky),
            "other_questions": len(other),
        },
    }
    data_dir = out_dir or Path(str(resources.files("assistant").joinpath("data")))
    (data_dir / "safety.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def main(settings: Settings, verifier_only: bool = False, safety_only: bool = False) -> int:
    if safety_only:
        result = fit_safety(settings)
        print(json.dumps(result, indent=1))
        return 0
    if verifier_only:
        result = fit_verifier(settings)
        print(f"verifier word support {result['word_support_']}")
        for threshold, figures in result["fitted"]["scan"].items():
            print(f"    {threshold}: {figures}")
        return 0
    result = fit(settings)
    decision: dict[str, Any] = result["decision"]
    print("decision model fitted:", json.dumps(decision["fitted"], indent=1))
    print("coefficients:", dict(zip(decision["features"], decision["coef_"], strict=True)))
    print(
        f"answer threshold {decision['answer_threshold_']}, keep ratio {decision['keep_ratio_']};"
        f" verifier word support {result['verify']['word_support_']}"
    )
    return 0


def current() -> DecisionModel:
    return load_model()

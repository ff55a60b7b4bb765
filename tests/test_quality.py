"""Answer and verification quality on every corpus's question and claim sets, with floors a
little below the figures reached (tests/eval/floors.yaml), so quality cannot regress silently.

The test splits were run once as the measurement of record; these floors only keep that level."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from assistant.claims import evaluate_claims, load_claims
from assistant.evaluate import EVAL_DIR, SPLITS, corpora, corpus_pipeline, evaluate_corpus
from tests.conftest import ROOT, make_settings

pytestmark = pytest.mark.slow

FLOORS = yaml.safe_load((ROOT / "tests/eval/floors.yaml").read_text(encoding="utf-8"))
NAMES = corpora(ROOT / EVAL_DIR)


@pytest.fixture(scope="module", params=NAMES)
def corpus(request, tmp_path_factory, real_embedder):  # type: ignore[no-untyped-def]
    import os

    settings = make_settings(tmp_path_factory.mktemp("quality"))
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with corpus_pipeline(settings, request.param, ROOT / EVAL_DIR) as pipeline:
            yield request.param, pipeline
    finally:
        os.chdir(cwd)


def test_the_sets_are_large_enough_and_cover_every_style() -> None:
    styles = {"plain", "slang", "typo", "context", "multipart", "followup", "clinician", "near_refuse", "offtopic", "safety"}
    for name in NAMES:
        for split in ("dev", "test"):
            cases = yaml.safe_load((ROOT / EVAL_DIR / name / f"questions-{split}.yaml").read_text())
            assert {c["style"] for c in cases} >= styles, (name, split)
            assert len(cases) >= (100 if name == "celltop" else 30)
    claims = [c for name in NAMES for split in ("dev", "test") for c in load_claims(ROOT / EVAL_DIR / name / f"claims-{split}.yaml")]
    assert sum(not c.faithful for c in claims) >= 150 and sum(c.faithful for c in claims) >= 75


def _floor(kind: str, name: str, split: str) -> dict:
    """The floor of a corpus's split; a corpus written later has no second test split."""
    if not (ROOT / EVAL_DIR / name / f"{kind}-{split}.yaml").exists():
        pytest.skip(f"{name} has no {kind}-{split}.yaml")
    return FLOORS[kind][name][split]


@pytest.mark.parametrize("split", SPLITS)
def test_questions_meet_their_floors(corpus, split: str) -> None:  # type: ignore[no-untyped-def]
    name, pipeline = corpus
    floor = _floor("questions", name, split)
    report = evaluate_corpus(pipeline, name, split, ROOT / EVAL_DIR)
    failures = [f"{r['id']} [{r['outcome']}]" for r in report["results"] if not r["passed"]]
    assert report["pass_rate"] >= floor["pass_rate"], failures
    assert report["refusal_precision"] >= floor["refusal_precision"]
    assert report["refusal_recall"] >= floor["refusal_recall"]
    assert report["wrong_topic"] <= floor["wrong_topic_max"]
    for r in report["results"]:
        assert not [p for p in r["problems"] if "verbatim" in p or "names no citation" in p or "not in its quote" in p], r


@pytest.mark.parametrize("split", SPLITS)
def test_the_verifier_shows_no_false_claim(corpus, split: str) -> None:  # type: ignore[no-untyped-def]
    name, pipeline = corpus
    floor = _floor("claims", name, split)
    report = evaluate_claims(pipeline, load_claims(ROOT / EVAL_DIR / name / f"claims-{split}.yaml"))
    shown = [r["id"] for r in report["rows"] if not r["faithful"] and r["kept"]]
    assert report["false_shown"] <= floor["false_shown_max"], shown
    assert report["faithful_kept_rate"] >= floor["faithful_kept_rate"]


def test_floors_file_names_every_corpus() -> None:
    assert set(FLOORS["questions"]) == set(NAMES) == set(FLOORS["claims"])
    assert Path(ROOT / "tests/eval/floors.yaml").exists()


def test_calibrate_fits_the_model_and_the_verifier_threshold_as_data(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    """`assistant calibrate` on a small eval root: it writes both data files with their figures,
    and the fitted model loads."""
    import shutil

    from assistant.calibrate import fit
    from assistant.decision import load_model

    root = tmp_path / "eval"
    source = ROOT / EVAL_DIR / "orchid-migraine"
    shutil.copytree(source / "corpus", root / "orchid-migraine" / "corpus")
    questions = yaml.safe_load((source / "questions-dev.yaml").read_text())
    kept = [q for q in questions if q["style"] in ("plain", "clinician", "near_refuse", "offtopic")]
    (root / "orchid-migraine" / "questions-dev.yaml").write_text(yaml.safe_dump(kept))
    claims = yaml.safe_load((source / "claims-dev.yaml").read_text())
    (root / "orchid-migraine" / "claims-dev.yaml").write_text(yaml.safe_dump(claims[:6] + claims[-4:]))
    out = tmp_path / "data"
    out.mkdir()
    fit(make_settings(tmp_path / "index"), root, out_dir=out)
    model = load_model(out / "decision.json")
    assert model.fitted["on"] == ["orchid-migraine/questions-dev.yaml"] and model.fitted["pairs"] > 0
    assert 0.0 < model.answer_threshold_ < 1.0
    verify = yaml.safe_load((out / "verify.json").read_text())
    assert verify["fitted"]["scan"] and 0.0 < verify["word_support_"] <= 1.0


def test_every_emergency_and_crisis_of_the_sets_goes_to_real_care(real_embedder) -> None:  # type: ignore[no-untyped-def]
    """Every emergency and crisis question of every set, and no other question, is routed as one
    (patterns, then the similarity check) — on the sets the patterns have been read against; a
    later held-out set has its first run reported before it joins this list."""
    from assistant.question import strip_markup
    from assistant.triage import SafetyNeighbours, triage

    neighbours = SafetyNeighbours.for_embedder(real_embedder)
    assert neighbours is not None
    missed, alarms = [], []
    for name in NAMES:
        for split in ("dev", "test", "test2", "test3"):
            path = ROOT / EVAL_DIR / name / f"questions-{split}.yaml"
            for case in yaml.safe_load(path.read_text()) if path.exists() else []:
                text = strip_markup(case["q"])
                routed = triage(text, case["q"]) or neighbours.classify(text)
                risky = case.get("safety") in ("emergency", "crisis")
                if risky and routed not in ("emergency", "crisis"):
                    missed.append(f"{name}/{split}/{case['id']}")
                if not risky and routed in ("emergency", "crisis"):
                    alarms.append(f"{name}/{split}/{case['id']}")
    assert not missed and not alarms, (missed, alarms)

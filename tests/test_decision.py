"""Fast unit tests for the parts that decide an answer: question analysis, units, vocabulary,
kinds, the decision model's data and the verifier's rules (a tiny deterministic embedder)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from assistant.answer.verify import Verifier
from assistant.decision import DecisionModel, load_model
from assistant.embeddings import HashEmbedder
from assistant.evidence import FEATURES, holds_type
from assistant.kinds import kind_info, kind_label, register_kinds
from assistant.question import analyse, answer_type, strip_markup
from assistant.text import STOPWORDS, terms
from assistant.units import unit_spans
from assistant.vocabulary import Vocabulary, _data
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How many people took part in the trial?", "count"),
        ("How long were participants followed?", "duration"),
        ("How long after their injury were people treated?", "time"),
        ("Where was the study done?", "place"),
        ("Which hospital ran this research?", "place"),
        ("Who led the study?", "person"),
        ("Which journal published the results?", "publication"),
        ("What's the registration number?", "identifier"),
        ("What does autologous mean?", "definition"),
        ("Why did they wait until rehab plateaued?", "reason"),
        ("How were the cells given?", "procedure"),
        ("Was there a placebo group?", "yes_no"),
        ("What dose of cells was given?", "quantity"),
        ("dose?", "quantity"),
        ("n?", "count"),
        ("What AIS grades were the three people who didn't improve?", "list"),
    ],
)
def test_answer_types(question: str, expected: str) -> None:
    assert answer_type(question) == expected


def test_context_sentences_are_not_parts_of_the_question() -> None:
    analysis = analyse("My son was paralyzed in a car accident last year. What side effects did people have?")
    assert analysis.context == ["My son was paralyzed in a car accident last year."]
    assert [p.text for p in analysis.parts] == ["What side effects did people have?"]


def test_markup_is_stripped_before_analysis() -> None:
    assert strip_markup("<img src=x onerror=alert(1)> what side effects were seen?") == "what side effects were seen?"
    assert analyse("<b>Where</b> was the study done?").parts[0].answer_type == "place"


def test_multi_part_questions_split_into_parts_with_their_own_types() -> None:
    parts = analyse("How many people were in the study, and how many of them came from outside the US?").parts
    assert [p.answer_type for p in parts] == ["count", "count"] and len(parts) == 2
    parts = analyse("What was the dose and how much did it cost?").parts
    assert [p.answer_type for p in parts] == ["quantity", "quantity"]
    assert len(analyse("Primary endpoint?").parts) == 1


def test_units_split_field_lines_and_join_short_sentences() -> None:
    text = "Registry number: NCT0001\nPhase: Phase 2\nMasking: None (open label)"
    spans = unit_spans(text)
    assert [text[s.start : s.end] for s in spans] == ["Registry number: NCT0001", "Phase: Phase 2", "Masking: None (open label)"]
    assert all(s.field for s in spans)
    text = "No, not yet. The study was small and everyone got the treatment. These side effects went away."
    spans = unit_spans(text)
    assert text[spans[0].start : spans[0].end].startswith("No, not yet. The study was small")
    assert spans[1].leans and not spans[0].leans


def test_every_vocabulary_entry_still_yields_terms() -> None:
    data = _data()
    empty = [p for group in data["synonyms"] for p in group if not terms(p)]
    empty += [p for aliases in data["fields"].values() for p in aliases if not terms(p)]
    assert not empty, f"vocabulary entries that can never match: {empty}"


def test_stopwords_keep_what_changes_meaning() -> None:
    for word in ("not", "no", "none", "all", "every", "most", "some", "one", "two", "ten"):
        assert word not in STOPWORDS
    assert {"where", "the", "which", "thanks"} <= STOPWORDS


def test_spelling_is_corrected_only_for_words_that_are_not_english() -> None:
    vocabulary = Vocabulary({"journal", "which", "published", "trial", "randomized"}, frozenset({"trail", "was", "the"}))
    assert vocabulary.correct_text("wich jurnal was it publishd in") == "which journal was it published in"
    assert vocabulary.correct_text("was the trail randomized") == "was the trail randomized"


def test_kinds_come_from_the_data_table_and_settings_may_add_more() -> None:
    assert kind_label("news") == "News article" and kind_info("news").secondary
    assert kind_info("limitations").caveats and kind_info("paper-summary").trust == 1.0
    register_kinds({"leaflet": {"label": "Patient leaflet", "trust": 0.8}})
    try:
        assert kind_label("leaflet") == "Patient leaflet" and kind_info("leaflet").trust == 0.8
    finally:
        register_kinds({})
    with pytest.raises(ValueError):
        register_kinds({"bad": {"trust": 0.5}})
    register_kinds({})


def test_type_detectors() -> None:
    assert holds_type("The trial enrolled 10 adults.", "count") == 1.0
    assert holds_type("The trial was published in 2024.", "count") == 0.0
    assert holds_type("Follow-up: two years.", "duration") == 1.0
    assert holds_type("The sponsor was Mayo Clinic in Rochester.", "place") == 1.0
    assert holds_type("It was safe.", "yes_no") == 0.5


def test_the_decision_model_is_data_and_rejects_other_features() -> None:
    model = load_model()
    again = DecisionModel.from_json(json.loads(json.dumps(model.as_json())))
    features = np.random.default_rng(0).random((5, len(FEATURES))).astype(np.float32)
    assert np.allclose(model.probabilities(features), again.probabilities(features))
    assert model.fitted.get("on"), "decision.json must say what it was fitted on"
    data = model.as_json()
    data["features"] = data["features"][:-1]
    with pytest.raises(ValueError, match="calibrate"):
        DecisionModel.from_json(data)


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    from assistant.evidence import WordMatcher

    embedder = HashEmbedder()
    snapshot = SimpleNamespace(
        vocabulary=Vocabulary(set(), frozenset()),
        units=[],
        word_index={},
        word_matrix=np.zeros((0, embedder.dim), dtype=np.float32),
    )
    return Verifier(snapshot, WordMatcher(snapshot, embedder))  # type: ignore[arg-type]


QUOTE = "There was no control group and no placebo group, and there was no randomization."


@pytest.mark.parametrize(
    ("sentence", "quote", "reason"),
    [
        ("There was a control group and a placebo group.", QUOTE, "negation"),
        ("Treatment began on average 11 days after the injury.", "Treatment began on average 11 months after the injury.", "11 days"),
        ("All participants improved by at least one AIS grade.", "7 of the 10 participants improved by at least one AIS grade.", "all"),
        ("The cells calm inflammation.", "Researchers have proposed that the cells may calm inflammation.", "hedge"),
        ("The study proved that the cells caused the improvements.", "The study cannot show that the cells caused the improvements.", ""),
        ("It is an approved treatment.", "It is not an approved treatment.", "negation"),
        ("Each injury was graded C or D.", "Each injury was graded A or B.", "C, D"),
        ("The trial is registered as NCT99999999.", "The trial is registered as NCT03308565.", "NCT99999999"),
        ("8 of the 10 patients had headaches.", "Headaches were reported in 8 patients.", "10"),
        # closed classes: a unit, a compass point, a sex, a status replaced by another member
        ("Symptoms eased within the first week.", "Symptoms eased within the first month.", "week"),
        ("The clinics were in the south of the country.", "The clinics were in the north of the country.", "south"),
        ("The condition is most common in younger men.", "The condition is most common in younger women.", "men"),
        ("The drug is now approved.", "The drug is still experimental.", "approved"),
        ("The probe was 3 inches long.", "The probe was 3 cm long.", "3 inches"),
        # "only", a cause, a comparison or a range the other way round, a grade named by "A"
        ("Only the new dose worked better than placebo.", "Both doses worked better than placebo, the new dose most.", "only"),
        ("Because the sites volunteered, most patients were older.", "Most patients were older, and the sites volunteered.", "cause"),
        ("Relapse was more common in adults than in children.", "Relapse was more common in children than in adults.", "other way"),
        ("Patients moved from grade C to grade B.", "Patients moved from grade B to grade C.", "other way"),
        ("Two were graded A and none worse.", "Two were graded B and none worse.", "A"),
        # a swap inside the quote: which number or name goes with which
        ("Pain fell 2.1 points on the 10 mg dose and 1.2 points on the 20 mg dose.",
         "Pain fell 2.1 points on the 20 mg dose and 1.2 points on the 10 mg dose.", "ties"),
        ("Mia Okafor was the surgeon, and Tom Hale was the nurse.",
         "Dr. Tom Hale was the surgeon, and Mia Okafor was the nurse.", "ties"),
        ("Of the 40 enrolled, 31 were smokers and 9 were non-smokers.",
         "Of the 40 enrolled, 31 were non-smokers and 9 were smokers.", "ties"),
        ("The effect was significant for 5 mg but not for 10 mg.",
         "The effect was significant for 10 mg but not for 5 mg.", "ties"),
        # a registry field valued "No", a denial in the sentence a leaning quote rests on, "X without Y"
        ("The results have been posted on the registry.", "Results posted on registry: No", "negation"),
        ("The trial takes people who have not tried any medicine.",
         "The trial takes people who have tried a medicine without enough benefit.", "negation"),
        ("The device was used in sites S2 and S3.", "The device was used in sites S4 and S5.", "S2"),
        ("The researchers showed that the protein starts attacks.",
         "The researchers believe that the protein helps start attacks.", "hedge"),
    ],
)
def test_the_verifier_drops_distortions(verifier: Verifier, sentence: str, quote: str, reason: str) -> None:
    problem = verifier.problem(sentence, quote)
    assert problem is not None, f"{sentence!r} was accepted against {quote!r}"
    assert reason in problem


def test_a_denial_in_the_sentence_a_leaning_quote_rests_on_counts(verifier: Verifier) -> None:
    context = "Some clinics sell stem cell shots that are not approved."
    problem = verifier.problem("These approved shots are sold online.", "These shots are sold online.", context)
    assert problem is not None and "negation" in problem
    assert verifier.problem("These shots are sold online.", "These shots are sold online.", context) is None


@pytest.mark.parametrize(
    ("sentence", "quote"),
    [
        (QUOTE, QUOTE),
        ("There was no placebo group and no randomization.", QUOTE),
        ("Headaches were reported in 8 patients.", "Headaches were reported in 8 patients, and went away."),
        ("Pain fell 2.1 points on the 20 mg dose.", "Pain fell 2.1 points on the 20 mg dose and 1.2 points on the 10 mg dose."),
        ("Tom Hale was the surgeon.", "Dr. Tom Hale was the surgeon, and Mia Okafor was the nurse."),
        ("Relapse was more common in children than in adults.", "Relapse was more common in children than in adults."),
        ("A nurse called each patient.", "A nurse called each patient."),
    ],
)
def test_the_verifier_keeps_what_the_quote_states(verifier: Verifier, sentence: str, quote: str) -> None:
    assert verifier.problem(sentence, quote) is None


def test_grading_scale_names_are_data_not_code() -> None:
    """"AIS B" is the grade term grade_b because the vocabulary names AIS as a scale; a clinic's
    material names its own scales there, and "grade C" works with none."""
    import yaml

    from assistant.text import grade_terms

    data = yaml.safe_load((ROOT / "assistant" / "data" / "vocabulary.yaml").read_text(encoding="utf-8"))
    assert {"AIS", "ASIA"} <= set(data["grade_scales"])
    assert grade_terms("AIS B or C") == ["grade_b", "grade_c"]
    assert grade_terms("graded D") == ["grade_d"] and grade_terms("MRS B") == []
    assert "AIS" not in "".join(line for line in (ROOT / "assistant" / "text.py").read_text().splitlines() if "re.compile" in line)


def test_a_word_vector_lookup_survives_another_thread_replacing_the_cache() -> None:
    """The word matcher's cache is shared by the threads that answer. One call finding it full
    replaces it; a call already under way must still find the words it counted on."""
    from assistant.evidence import WordMatcher

    embedder = HashEmbedder()
    snapshot = SimpleNamespace(word_index={}, word_matrix=np.zeros((0, embedder.dim), dtype=np.float32))
    matcher = WordMatcher(snapshot, embedder)  # type: ignore[arg-type]
    matcher.CACHE_MAX = 3
    matcher.vectors(["alpha"])

    def embed_while_another_call_fills_the_cache(words: list[str]) -> np.ndarray:
        if words == ["beta", "gamma"]:
            matcher.vectors(["delta", "epsilon", "zeta"])  # "another thread": the cache is now full and replaced
        return embedder.embed(words)

    matcher._embed = embed_while_another_call_fills_the_cache  # type: ignore[method-assign]
    got = matcher.vectors(["alpha", "beta", "gamma"])
    assert np.allclose(got, embedder.embed(["alpha", "beta", "gamma"]))

"""The verifier's rules, one case each: a faithful rewording it keeps and the false claim next to it
that it drops (the real model, the shipped index). The claim suites in tests/eval measure the rules
as a whole; these pin each rule down."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from assistant.answer.verify import Verifier, _direction_problem, _superlatives, _tokens
from assistant.lexicon import Lexicon, lexicon
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def verifier(pipeline):  # type: ignore[no-untyped-def]
    return Verifier(pipeline.snapshot, pipeline._matcher(pipeline.snapshot))


KEPT = [
    ("The study tested safety, not whether the treatment works.",
     "The study tested safety rather than whether the treatment works."),
    ("If you cannot pass urine, go to the emergency department.",
     "If you are unable to pass urine, go to the emergency department."),
    ("Participants were not paid for taking part.", "Taking part was unpaid for participants."),
    ("Masking: None (open label)", "There was no masking (open label)."),
    ("Mayo Clinic sponsored the study and ran it.", "Mayo Clinic both sponsored the study and ran it."),
    ("Episodes fell by at least 50%.", "Episodes fell by 50% or more."),
    ("64 participants were enrolled.", "Sixty-four participants were enrolled."),
    ("Two people out of 61 had a wound infection.", "Two of the 61 people had a wound infection."),
    ("Larger trials are needed.", "Bigger trials are needed."),
    ("Adverse events were reported by 130 of 540 app participants (24%) and 115 of 522 group participants (22%).",
     "24% of app participants (130 of 540) and 22% of group participants (115 of 522) reported adverse events."),
    ("People in the first arm improved at 3 months, while people in the second arm improved at 6 months.",
     "At 3 months people in the first arm improved, and at 6 months people in the second arm did."),
    ("Pain, swelling or itching may occur where the needle went in.",
     "Itching, swelling or pain may occur where the needle went in."),
    ("The drug is experimental.", "The drug is still experimental."),
    ("Grade 1 is the most severe.", "At least one grade is the most severe."),
    ("Grade D means an incomplete injury.", "Grade D stands for an incomplete injury."),
    ("Headaches can last for two days.", "Headaches may last for two days."),
    ("Some patients needed a second dose.", "A second dose was needed by some patients."),
    ("A few people had a rash.", "Some people had a rash."),
    ("It was a single-group study in which everyone had the implant.", "The study had one group, and everyone had the implant."),
    ("Stopping will not change the care you get.", "Stopping won't change the care you get."),
    ("No serious side effects were seen, though some minor problems such as rashes were reported.",
     "Some minor problems such as rashes were reported."),
]  # fmt: skip

DROPPED = [
    ("Most people noticed a change, but it does not help everyone.", "Everyone noticed a change.", "quantifier"),
    ("Most women had redness and some felt tired.", "Most women had redness and most felt tired.", "says 'most'"),
    ("Redness peaked two weeks after the end with five fractions and in the final week with fifteen fractions.",
     "Redness peaked in the final week with five fractions and two weeks after the end with fifteen fractions.", "ties"),
    ("The 60 mg dose did better than the 30 mg dose.", "The 30 mg dose did better than the 60 mg dose.", "other way round"),
    ("More people finished with the app (about 7 in 10) than with the groups.",
     "More people finished with the groups than with the app.", "other way round"),
    ("A small disadvantage cannot be ruled out.", "There is a small disadvantage.", "cannot be shown"),
    ("Larger trials are needed.", "Smaller trials are needed.", "smaller"),
    ("Participants were not paid for taking part.", "Participants were paid for taking part.", "negation"),
    ("24% of app participants reported adverse events and 22% of group participants did.",
     "24% of group participants reported adverse events.", "ties"),
    ("Surgery was done in 40% of the men and radiation in 12%.", "Radiation was done in 40% of the men and surgery in 12%.",
     "ties '40' to 'radiation'"),
    ("One patient recovered with rest; the other needed surgery.", "One patient needed surgery; the other recovered with rest.",
     "ties '1' to 'surgery'"),
    ("Men in the clinic arm waited longer, while men using the device started at once.",
     "Men using the device waited longer, while men in the clinic arm started at once.", "joins 'device'"),
    ("Grade 1 is the most severe.", "Grade 1 is the least severe.", "says 'least' where the quote says 'most'"),
    ("The trial enrolled 40 adults.", "The trial is still enrolling adults.", "going on now"),
    ("At the end, 6 of the 12 patients walked without help.",
     "The drug led 6 of the 12 patients to walk without help by the end.", "claims causation"),
    ("Grade D means an incomplete injury.", "Grade D means a complete injury.",
     "says 'complete' where the quote says 'incomplete'"),
    ("Headaches can last for two days.", "Headaches last for two days.", "hedge (can)"),
    ("Some recovery of AIS grade can happen without any treatment.",
     "Some recovery of AIS grade cannot happen without any treatment.", "hedge (can)"),
    ("Some patients needed a second dose.", "Patients needed a second dose.", "drops the quote's 'some'"),
    ("A few people had a rash.", "Many people had a rash.", "quantifier 'many'"),
    ("More people finished the clinic course than the home course.",
     "More people finished the home course than the clinic course.", "other way round"),
    ("No serious side effects were seen, though some minor problems such as rashes were reported.",
     "No serious side effects were seen, though some people had severe rashes.", "does not state: severe"),
    ("Participants were stratified by centre and planned tumour-bed boost.",
     "Participants were stratified by centre, planned boost and tumour size.", "does not state: tumour"),
    ("It was a non-randomized study.", "It was a randomized study.", "randomized"),
]  # fmt: skip


@pytest.mark.parametrize(("quote", "claim"), KEPT)
def test_a_faithful_rewording_is_kept(verifier: Verifier, quote: str, claim: str) -> None:
    assert verifier.problem(claim, quote) is None


@pytest.mark.parametrize(("quote", "claim", "reason"), DROPPED)
def test_a_false_claim_is_dropped_with_its_reason(verifier: Verifier, quote: str, claim: str, reason: str) -> None:
    problem = verifier.problem(claim, quote)
    assert problem is not None and reason in problem, problem


@pytest.mark.parametrize(
    ("claim", "quote"),
    [
        ("Patients on the sugar pill got better too.", "Patients taking the sugar pill also improved."),
        ("Each session lasts a few minutes.", "Each treatment takes a few minutes."),
        ("The study is no longer enrolling.", "The study has finished and is not enrolling."),
    ],
)
def test_a_word_that_only_looks_like_a_direction_is_not_one(claim: str, quote: str) -> None:
    """"better" is not "best" (they share the lemma "good"), "lasts" is a verb, "no longer" compares nothing."""
    assert _direction_problem(_superlatives(claim), set(_tokens(quote))) is None
    assert _direction_problem(_superlatives("The higher dose worked best."), set(_tokens("The lower dose worked best.")))


def test_a_name_from_the_title_does_not_stand_in_for_a_name_the_quote_gives(verifier: Verifier) -> None:
    title = "Riverside Heart Clinic: the PULSE study"
    quote = "A larger study is planned by the sponsor, Corvane Medical."
    assert verifier.problem("Corvane Medical, the sponsor, plans a larger study.", quote, "", title) is None
    problem = verifier.problem("A larger study is planned by Riverside Heart Clinic.", quote, "", title)
    assert problem == "names 'Riverside' where the quote names 'Corvane'"


def test_a_unit_is_checked_against_the_quote_not_the_sentence_beside_it(verifier: Verifier) -> None:
    beside = "Treatment starts 4 weeks after surgery."
    assert verifier.problem("It is given twice a day.", "It is given twice a day.", beside) is None
    problem = verifier.problem("It is given twice a week.", "It is given twice a day.", beside)
    assert problem == "says 'week' where the quote says 'day'"


def test_a_word_of_the_documents_subject_may_name_it_but_not_replace_a_word_of_the_quote(verifier: Verifier) -> None:
    title = "A trial of a device against a drug"
    assert verifier.problem("The device trial enrolled adults.", "It enrolled adults.", "", title) is None
    problem = verifier.problem("One device user had a rash.", "One drug user had a rash.", "", title)
    assert problem == "says 'device' where the quote says 'drug'"


@pytest.mark.parametrize(
    ("word", "other", "relation"),
    [
        ("bigger", "larger", "synonym"),
        ("device", "implant", "more general"),
        ("surgeon", "doctor", None),  # the quote's "doctor" does not say "surgeon"
        ("doctor", "surgeon", "more general"),
        ("recovery", "recovered", "derived"),
        ("studies", "study", "same word"),
        ("went", "go", "same word"),
        ("sciatic", "tibial", None),  # two nerves: neither states the other
        ("knee", "ankle", None),
        ("moved", "devices", None),  # a verb is not read as the noun "move" (a ploy, a kind of device)
    ],
)
def test_the_lexicon_states_a_word_only_by_synonym_general_term_or_derivation(word: str, other: str, relation: str | None) -> None:
    assert lexicon().stated_by(word, other) == relation


def test_the_shipped_lexicon_is_what_the_build_script_makes_from_wordnet(tmp_path: Path) -> None:
    """The data file is reproducible from Debian's WordNet 3.0 (wordnet-base, which `make test`
    installs), byte for byte."""
    if not Path("/usr/share/wordnet/data.noun").exists():
        pytest.fail("wordnet-base is not installed (make test installs it)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_lexicon", ROOT / "scripts" / "build_lexicon.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = tmp_path / "lexicon.tsv.gz"
    module.build(Path("/usr/share/wordnet"), out)
    shipped = ROOT / "assistant" / "data" / "lexicon.tsv.gz"
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(shipped.read_bytes())
    small = Lexicon(gzip.decompress(out.read_bytes()).decode("utf-8"))
    assert small.stated_by("device", "implant") == "more general"

"""Property tests (Hypothesis) for the parts every answer rests on: sentence and unit splitting,
chunking, triage and the verifier.

Fast and deterministic: the tiny HashEmbedder stands in for the model (the real tokenizer is
used where token counts matter, without loading the model), every test has a bounded number of
examples, and ``derandomize=True`` makes each run draw the same examples, so CI cannot flake.
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from assistant.answer.llm import parse_answer
from assistant.answer.types import Answer, Claim, Draft, Quote
from assistant.answer.verify import (
    _CODE,
    _SKIP_AFTER_NEGATION,
    CLAUSE_END,
    NEGATION_CUES,
    SCOPE_WORDS,
    Verifier,
    _asserted,
    _is_word,
    _negated_heads,
    _numbers,
    _tokens,
)
from assistant.chain import QuestionError, validate
from assistant.chunking import Chunk, chunk_document, split_sentences
from assistant.documents import Block, Document, LoadError, load_document
from assistant.embeddings import HashEmbedder
from assistant.question import strip_markup
from assistant.text import STOPWORDS
from assistant.triage import strip_instructions, triage
from assistant.units import quote_start, unit_spans
from tests.conftest import CORPUS, ROOT, make_settings

# Every property runs this many examples (or fewer, below), the same ones on every run.
PROPS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(PROPS, max_examples=60)

HASH = HashEmbedder()


@pytest.fixture(scope="module")
def hash_pipeline(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The shipped corpus indexed with the HashEmbedder (a few seconds, no model)."""
    from assistant.chain import Pipeline
    from assistant.ingest import ingest
    from assistant.store import VectorStore

    settings_ = make_settings(tmp_path_factory.mktemp("props-data"))
    ingest(settings_, HASH)
    return Pipeline(settings_, HASH, VectorStore(settings_))


@pytest.fixture(scope="module")
def verifier(hash_pipeline) -> Verifier:  # type: ignore[no-untyped-def]
    return Verifier(hash_pipeline.snapshot, hash_pipeline._matcher(hash_pipeline.snapshot))


# --- text: arbitrary unicode, and text shaped like the corpus (abbreviations, lists, fields) --------

PIECES = [
    "The trial enrolled 10 adults.", "Dr. Bydon led it.", "e.g. in 2017", "No. 5", "J. R. Smith agreed.",
    "Scores rose from 1.5 to 2.25 points.", "Really?", "Yes!", '"Stop." Then', "(see Fig. 2).", "U.S. FDA",
    "\n- item one\n- item two", "\nPhase: 1\nEnrollment: 10 participants\n", "\n1. first\n2) second",
    "These side effects went away.", "It works.", "No, not yet.", "\n\n", "\t", "  ", "\u00a0", "\u2028",
    "\x1c", "\u200b", "é", "e\u0301", "İ", "ß", "ﬁ", "𝟓", "٣", "中文。", "…", "?!", ".", "...", "—", "•",
    "’", "“quoted”", "A", "b", "7 of the 10", "70%", "AIS B", "NCT03308565",
]  # fmt: skip
shaped_text = st.lists(st.sampled_from(PIECES), max_size=40).map(" ".join)
shaped_tight = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
any_text = st.one_of(st.text(max_size=400), shaped_text, shaped_tight)


def _corpus_texts() -> list[str]:
    return [load_document(p, CORPUS).text for p in sorted(CORPUS.iterdir()) if p.is_file()]


CORPUS_TEXTS = _corpus_texts()


@st.composite
def corpus_excerpts(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(CORPUS_TEXTS))
    start = draw(st.integers(0, len(text) - 1))
    return text[start : start + draw(st.integers(1, 1500))]


# --- sentence and unit splitting -------------------------------------------------------------------


def _check_spans(text: str, spans: list[tuple[int, int]], what: str) -> None:
    """In reading order, disjoint, inside the text, trimmed, and covering every non-space character."""
    previous_end = 0
    covered = bytearray(len(text))
    for start, end in spans:
        assert previous_end <= start < end <= len(text), f"{what} {start}:{end} out of order in {text!r}"
        piece = text[start:end]
        assert piece == piece.strip(), f"{what} {piece!r} is not trimmed"
        covered[start:end] = b"\x01" * (end - start)
        previous_end = end
    lost = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not lost, f"{what}s lose {[text[i] for i in lost]!r} of {text!r}"


@PROPS
@given(st.one_of(any_text, corpus_excerpts()))
def test_sentences_are_in_order_disjoint_verbatim_and_cover_the_text(text: str) -> None:
    sentences = split_sentences(text)
    for sentence in sentences:
        assert text[sentence.start : sentence.end] == sentence.text
    _check_spans(text, [(s.start, s.end) for s in sentences], "sentence")


@PROPS
@given(st.one_of(any_text, corpus_excerpts()))
def test_units_are_in_order_disjoint_and_cover_the_text(text: str) -> None:
    spans = unit_spans(text)
    _check_spans(text, [(s.start, s.end) for s in spans], "unit")
    for i, span in enumerate(spans):
        # A leaning unit's quote starts with the unit before it; any other starts with itself.
        assert quote_start(spans, i) == (spans[i - 1].start if span.leans else span.start)
        assert not (span.leans and i == 0)


# --- chunking --------------------------------------------------------------------------------------

word = st.one_of(
    st.from_regex(r"[A-Za-z]{1,12}[.,!?;:]?", fullmatch=True),
    st.text(min_size=1, max_size=20).filter(lambda s: not any(c.isspace() for c in s)),
    st.sampled_from(["Dr.", "e.g.", "1.5", "10", "(see", "Fig.", "2).", "-"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["!", "=", "-", "a", "中", "é"]), st.integers(20, 300)),
)
paragraph = st.lists(word, min_size=1, max_size=60).map(" ".join)
heading = st.from_regex(r"[A-Z][a-z]{0,10}( [a-z]{1,8}){0,3}", fullmatch=True)


@st.composite
def documents(draw: st.DrawFn) -> Document:
    """A document built from blocks, with text outside the blocks (headings) between some of them."""
    text, blocks = "", []
    for _ in range(draw(st.integers(1, 6))):
        if text:
            text += draw(st.sampled_from(["\n\n", "\n\n# Another top heading\n\n", "\n\nA Title Line\n\n"]))
        para = draw(paragraph)
        blocks.append(
            Block(para, len(text), draw(st.lists(heading, max_size=2).map(tuple)), draw(st.sampled_from([None, 1, 2])))
        )
        text += para
    return Document(
        id="doc", title=draw(heading), kind="document", audience="both", date="2025-01-01", source="test",
        url=None, text=text, blocks=blocks, path="doc.md", content_hash="x",
    )  # fmt: skip


def _check_chunks(
    doc: Document, chunks: list[Chunk], count_tokens: Callable[[str], int], max_tokens: int, overlap: int
) -> None:
    covered = bytearray(len(doc.text))
    previous: Chunk | None = None
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text and chunk.text.strip()
        tokens = count_tokens(chunk.embed_text)
        assert tokens <= max_tokens, f"a chunk of {tokens} tokens (limit {max_tokens}): {chunk.text[:80]!r}"
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
        if previous is not None:
            assert chunk.start > previous.start if overlap else chunk.start >= previous.end
        previous = chunk
    assert len({c.id for c in chunks}) == len(chunks)
    for block in doc.blocks:
        lost = [i for i, ch in enumerate(block.text) if not ch.isspace() and not covered[block.start + i]]
        assert not lost, f"chunks lose {block.text[lost[0] : lost[0] + 20]!r}"


ABSURD_WORD = Document(
    id="doc", title="T", kind="document", audience="both", date="2025-01-01", source="test", url=None,
    text="!" * 300, blocks=[Block("!" * 300, 0, ())], path="doc.md", content_hash="x",
)  # fmt: skip
_H1 = "0\n\n# A\n\n" + " ".join(["0"] * 27)
H1_BETWEEN = Document(
    id="doc", title="T", kind="document", audience="both", date="2025-01-01", source="test", url=None,
    text=_H1, blocks=[Block("0", 0, ()), Block(_H1[8:], 8, ())], path="doc.md", content_hash="x",
)  # fmt: skip


@PROPS
@given(documents(), st.integers(30, 260), st.sampled_from([0, 0, 10, 40]))
@example(ABSURD_WORD, 40, 0)  # a 300-token "word" left 260 tokens uncounted in one chunk
@example(H1_BETWEEN, 32, 0)  # a top-level heading between two blocks was inside a chunk, uncounted
def test_chunks_are_verbatim_within_the_limit_and_lose_nothing(doc: Document, max_tokens: int, overlap: int) -> None:
    chunks = chunk_document(doc, HASH.count_tokens, max_tokens, overlap)
    _check_chunks(doc, chunks, HASH.count_tokens, max_tokens, overlap)
    assert [c.id for c in chunk_document(doc, HASH.count_tokens, max_tokens, overlap)] == [c.id for c in chunks]


@pytest.fixture(scope="module")
def model_token_counter() -> Callable[[str], int]:
    """The real model's tokenizer (what ingest counts with), loaded without the model."""
    from tokenizers import Tokenizer

    from assistant.embeddings import packaged_model_dir

    tokenizer = Tokenizer.from_file(str(packaged_model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


@FEW
@given(documents(), st.integers(30, 254), st.sampled_from([0, 20]))
def test_chunks_fit_the_model_tokenizer_too(model_token_counter, doc: Document, max_tokens: int, overlap: int) -> None:  # type: ignore[no-untyped-def]
    chunks = chunk_document(doc, model_token_counter, max_tokens, overlap)
    _check_chunks(doc, chunks, model_token_counter, max_tokens, overlap)


markdown_line = st.one_of(
    st.text(max_size=100),
    st.from_regex(r"#{1,4} [A-Z][a-z ]{0,20}", fullmatch=True),
    st.from_regex(r"[-*] [A-Za-z ,.]{1,60}", fullmatch=True),
    st.sampled_from(["", "   ", "Field: value", "Phase: 1", "---", "Title", "The trial enrolled 10 adults."]),
    paragraph,
)


@FEW
@given(st.lists(markdown_line, max_size=25).map("\n".join), st.sampled_from([".md", ".txt"]), st.integers(30, 200))
def test_loaded_files_chunk_verbatim_and_lose_nothing(body: str, suffix: str, max_tokens: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"notes{suffix}"
        path.write_text(body, encoding="utf-8")
        try:
            doc = load_document(path, Path(tmp))
        except LoadError:
            return  # refused with a reason (empty, no text): what ingest reports
    for block in doc.blocks:
        assert doc.text[block.start : block.start + len(block.text)] == block.text
    # Titles here are short; a header longer than the limit leaves no room for any text.
    assume(HASH.count_tokens(f"{doc.title} (Document)\n") + 16 <= max_tokens)
    _check_chunks(doc, chunk_document(doc, HASH.count_tokens, max_tokens), HASH.count_tokens, max_tokens, 0)


# --- triage ----------------------------------------------------------------------------------------


def _safety_phrases() -> list[tuple[str, str]]:
    """Emergency and crisis questions of the evaluation sets that triage catches on their own."""
    phrases = [
        ("I just fell down the stairs and suddenly can't move my legs", "emergency"),
        ("I can't breathe", "emergency"),
        ("I want to kill myself", "crisis"),
    ]
    for path in sorted((ROOT / "tests/eval").glob("*/questions-*.yaml")):
        for item in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            if item.get("safety") in ("emergency", "crisis") and triage(item["q"]) == item["safety"]:
                phrases.append((item["q"], item["safety"]))
    return phrases


SAFETY_PHRASES = _safety_phrases()
CORPUS_SENTENCES = sorted({s.text for text in CORPUS_TEXTS for s in split_sentences(text)})
padding = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(CORPUS_SENTENCES), max_size=3).map(" ".join),
    # Markup, and text that looks like it: "<90 ... >120" reads as one tag.
    st.lists(
        st.sampled_from(["my pressure is <90", "pulse >120", "a<b", "c > d", "<b>", "</b>", "&amp;", "**", "`", "_"]),
        max_size=4,
    ).map(" ".join),
)


def test_the_triage_phrases_are_many_and_of_both_kinds() -> None:
    assert len(SAFETY_PHRASES) > 15
    assert {s for _, s in SAFETY_PHRASES} == {"emergency", "crisis"}


@PROPS
@given(any_text)
def test_triage_never_crashes(text: str) -> None:
    assert triage(text) in (None, "emergency", "crisis", "medical_advice")
    assert isinstance(strip_instructions(text), str)
    try:
        asked = validate(text)
    except QuestionError:
        return
    assert triage(strip_markup(asked), asked) in (None, "emergency", "crisis", "medical_advice")


@PROPS
@given(st.sampled_from(SAFETY_PHRASES), padding, padding, st.sampled_from([" ", "\n", ". ", " - ", "\n\n"]))
@example(("I can't breathe", "emergency"), "My blood pressure is <90", "and my pulse is >120.", " ")
def test_padding_never_hides_an_emergency_or_a_crisis(hash_pipeline, phrase, before: str, after: str, sep: str) -> None:  # type: ignore[no-untyped-def]
    """Text around an emergency or crisis (separated from it by a space or a line) may make it more
    urgent (padding can hold a crisis), never less; asked through the pipeline, which strips markup."""
    question, safety = phrase
    answers = [a for a in hash_pipeline.stream(f"{before}{sep}{question}{sep}{after}") if isinstance(a, Answer)]
    allowed = ("crisis",) if safety == "crisis" else ("emergency", "crisis")
    assert answers[0].safety in allowed, (answers[0].safety, question)


def test_an_emergency_run_together_with_other_sentences_is_still_found() -> None:
    """What the property above found: text the sentence splitter kept in one piece with the
    emergency ("... in 2024. - Started ... - April 3") hid it behind the other text's past tense."""
    text = (
        "# CELLTOP Phase 1 trial: summary of the published paper\n\nThis is a summary, in our own words, of the "
        "Phase 1 paper published in Nature Communications in 2024. - Started a new sleeping tablet from my GP "
        "tonight and I'm covered in hives and my tongue is swelling. - April 3, 2024\n\nSpinal cord injuries, "
        "often resulting from traumatic events like accidents and falls, have typically left affected "
        "individuals with minimal prospects for recuperation."
    )
    assert triage(text) == "emergency"


# --- the verifier ----------------------------------------------------------------------------------


def _corpus_quotes(pipeline: Any) -> list[str]:
    snapshot = pipeline.snapshot
    units = {u.quote for u in snapshot.units} | {u.text for u in snapshot.units}
    return sorted(units | {s.text for c in snapshot.corpus.chunks for s in split_sentences(c.text)})


def test_every_corpus_sentence_states_itself(hash_pipeline, verifier: Verifier) -> None:  # type: ignore[no-untyped-def]
    """All of them, not a sample. A sentence that denies a word it also states elsewhere ("designed
    to test safety, not to test whether ...") is the one known exception: the polarity rule compares
    words, not clauses. The answer path never meets it (a verbatim quote is accepted before the rules)."""
    quotes = _corpus_quotes(hash_pipeline)
    assert len(quotes) > 100
    mixed = []
    for quote in quotes:
        problem = verifier.problem(quote, quote)
        if _negated_heads(quote) & _asserted(quote):
            mixed.append(quote)
            assert problem is None or problem.startswith("negation differs"), (quote, problem)
        else:
            assert problem is None, (quote, problem)
    assert len(mixed) <= 5, mixed


def test_a_name_inside_a_hyphenated_word_is_given(verifier: Verifier) -> None:
    """Found by the test above: "Adipose" was "a name the quote does not give" in "Adipose-Derived"."""
    quote = "Official title: Clinical Trial of Autologous Adipose-Derived Mesenchymal Stem Cells."
    assert verifier.problem(quote, quote) is None
    assert "Bone" in (verifier.problem("The cells were Bone cells.", quote) or "")


AUX = re.compile(r"\b(is|are|was|were|has|have|had|did|does|do|can|could|will|would|may|might|should|must)\b(?! not\b)")


@functools.cache
def _negation_sites(pipeline: Any) -> list[tuple[str, int]]:
    """(quote, offset after an auxiliary verb) where a " not " would deny a content word of a clause
    that has no negation yet: the verifier's own contract ("what either side denies, the other
    does not assert")."""
    sites = []
    for quote in _corpus_quotes(pipeline):
        for match in AUX.finditer(quote):
            before = _tokens(quote[: match.end()])
            after = _tokens(quote[match.end() :])
            while before and not CLAUSE_END.fullmatch(before[-1]):
                before.pop()
            clause_before = _tokens(quote[: match.end()])[len(before) :]
            clause_after = []
            for token in after:
                if CLAUSE_END.fullmatch(token):
                    break
                clause_after.append(token)
            if set(clause_before + clause_after) & NEGATION_CUES:
                continue
            head = next(
                (t for t in clause_after[:SCOPE_WORDS] if t not in _SKIP_AFTER_NEGATION and t not in STOPWORDS),
                None,
            )
            if head is not None and _is_word(head):
                sites.append((quote, match.end()))
    return sites


def test_negation_sites_are_many(hash_pipeline) -> None:  # type: ignore[no-untyped-def]
    assert len(_negation_sites(hash_pipeline)) > 100


@PROPS
@given(st.data())
def test_a_negation_inserted_into_a_quote_is_rejected(hash_pipeline, verifier: Verifier, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    quote, at = data.draw(st.sampled_from(_negation_sites(hash_pipeline)))
    claim = f"{quote[:at]} not{quote[at:]}"
    assert verifier.problem(claim, quote) is not None, claim


# What the property above found: a negation followed by a stopword ("not still", "not also") denied
# nothing, and a possessive ("the patient's own") was never counted as stated.
@pytest.mark.parametrize(
    ("claim", "quote"),
    [
        ("These ideas are not still being studied.", "These ideas are still being studied."),
        (
            "Future work will not also ask whether stem cells help.",
            "Future work will also ask whether stem cells help.",
        ),
        ("Autologous means the cells are not the patient's own.", "Autologous means the cells are the patient's own."),
    ],
)
def test_negations_the_property_found(verifier: Verifier, claim: str, quote: str) -> None:
    problem = verifier.problem(claim, quote)
    assert problem is not None and problem.startswith("negation differs"), problem


# Negations the rules do not catch (the LLM yes/no check, when configured, is the only other guard):
# a negation added to a clause that already has one. ("Some recovery cannot happen" for "... can
# happen", once a gap here, is dropped since "can" counts as a hedge: tests/test_verify_rules.py.)
@pytest.mark.xfail(strict=True, reason="known gap of the word-level polarity rule")
@pytest.mark.parametrize(
    ("claim", "quote"),
    [
        ("How these cells might not help after spinal cord injury is not known.", "How these cells might help after spinal cord injury is not known."),
        ("Other participants in the trial were not moderate responders or did not respond.", "Other participants in the trial were moderate responders or did not respond."),
    ],
)  # fmt: skip
def test_known_gaps_in_catching_a_negation(verifier: Verifier, claim: str, quote: str) -> None:
    assert verifier.problem(claim, quote) is not None


_NUMBER_AT = re.compile(r"(?<![\w.,])\d+(?:\.\d+)?(?![\w]|[.,]\d)")


@functools.cache
def _number_sites(pipeline: Any) -> list[tuple[str, int, int]]:
    """(quote, start, end) of each number of a corpus quote that is a count or measure, not part of a code."""
    sites = []
    for quote in _corpus_quotes(pipeline):
        codes = [m.span() for m in _CODE.finditer(quote)]
        for match in _NUMBER_AT.finditer(quote):
            if not any(a <= match.start() < b for a, b in codes):
                sites.append((quote, match.start(), match.end()))
    return sites


new_number = st.one_of(
    st.integers(0, 3000).map(str),
    st.tuples(st.integers(0, 99), st.integers(0, 99)).map(lambda p: f"{p[0]}.{p[1]}"),
)


@PROPS
@given(st.data(), new_number)
def test_a_changed_number_is_rejected(hash_pipeline, verifier: Verifier, data: st.DataObject, number: str) -> None:  # type: ignore[no-untyped-def]
    """A number changed to one the quote does not give anywhere (in digits or words) is rejected."""
    sites = _number_sites(hash_pipeline)
    assert len(sites) > 30
    quote, start, end = data.draw(st.sampled_from(sites))
    assume(number not in {n for n, _ in _numbers(quote)})
    claim = quote[:start] + number + quote[end:]
    assert verifier.problem(claim, quote) is not None, claim


# What the properties above found: a decimal was read as two numbers, so 1.5 stated 5.1; and "1"
# passed whenever the quote had an "a", though the quote counts the same thing as 10.
@pytest.mark.parametrize(
    ("claim", "quote"),
    [
        ("Scores rose from 5.1 to 2.25 points.", "Scores rose from 1.5 to 2.25 points."),
        ("Toilet visits fell from 12.6 to 6.8 per day.", "Toilet visits fell from 12.6 to 9.8 per day."),
        ("A clinical trial with 1 adults with spinal injuries tested the safety of stem cell therapy.",
         "A clinical trial with 10 adults with spinal injuries tested the safety of stem cell therapy."),
        ("The other 1 participants did not improve by an AIS grade.", "The other 3 participants did not improve by an AIS grade."),
    ],
)  # fmt: skip
def test_changed_numbers_the_properties_found(verifier: Verifier, claim: str, quote: str) -> None:
    problem = verifier.problem(claim, quote)
    assert problem is not None and "is not in the cited quote" in problem, problem


@pytest.mark.parametrize(
    ("claim", "quote"),
    [
        ("Scores rose from 1.5 to 2.25 points.", "Scores rose from 1.5 to 2.25 points, and then fell."),
        ("One participant had a headache.", "A participant had a headache."),
    ],
)
def test_numbers_the_quote_gives_still_pass(verifier: Verifier, claim: str, quote: str) -> None:
    assert verifier.problem(claim, quote) is None


claim_text = st.one_of(
    any_text, st.lists(st.sampled_from([*PIECES, "not", "[1]", "[2]", "[9]", "[0]"]), max_size=30).map(" ".join)
)


@PROPS
@given(claim_text, claim_text, claim_text, st.sampled_from([None, "celltop-paper-summary", "no-such-doc"]))
def test_the_verifier_never_crashes(
    verifier: Verifier, sentence: str, quote: str, context: str, doc_id: str | None
) -> None:
    problem = verifier.problem(sentence, quote, context, context, doc_id)
    assert problem is None or (isinstance(problem, str) and problem)


@PROPS
@given(st.data())
def test_whatever_is_claimed_only_cited_verbatim_quotes_are_shown(
    hash_pipeline, verifier: Verifier, data: st.DataObject
) -> None:  # type: ignore[no-untyped-def]
    corpus = hash_pipeline.snapshot.corpus
    chunk_ids = [c.id for c in corpus.chunks]
    quote = st.builds(
        Quote, st.sampled_from([*chunk_ids, "no-such-chunk"]), st.integers(-3, 1200), st.integers(-3, 1200)
    )
    claims = data.draw(st.lists(st.builds(Claim, claim_text, st.lists(quote, max_size=3)), max_size=4))
    sentences, citations, dropped = verifier.verify(Draft(claims=claims))
    assert len(sentences) + len(dropped) == len(claims)
    for sentence in sentences:
        assert sentence.cites and all(1 <= n <= len(citations) for n in sentence.cites)
    for citation in citations:
        assert corpus.by_id[citation.chunk_id].text[citation.quote_start : citation.quote_end] == citation.quote


@PROPS
@given(claim_text)
def test_any_llm_text_parses_and_verifies(hash_pipeline, verifier: Verifier, text: str) -> None:  # type: ignore[no-untyped-def]
    retriever = hash_pipeline.snapshot.retriever
    evidence = retriever.retrieve(retriever.vocabulary.query("What side effects were seen?"), 6)
    draft = parse_answer(text, evidence, hash_pipeline.snapshot.corpus)
    sentences, citations, _dropped = verifier.verify(draft)
    assert all(s.cites for s in sentences)
    for citation in citations:
        assert citation.context[citation.quote_start : citation.quote_end] == citation.quote


# --- spelling correction: the fast nearest word is difflib's --------------------------------


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    pool=st.lists(st.text(alphabet="abcdeilnorst'-", min_size=1, max_size=9), max_size=40),
    word=st.text(alphabet="abcdeilnorstxz", min_size=1, max_size=10),
)
def test_near_words_picks_what_difflib_picks(pool: list[str], word: str) -> None:
    from difflib import get_close_matches

    from assistant.vocabulary import CORRECTION_CUTOFF, NearWords

    expected = get_close_matches(word, pool, n=1, cutoff=CORRECTION_CUTOFF)
    assert NearWords(pool).closest(word) == (expected[0] if expected else None)


def test_near_words_on_the_real_word_lists_picks_what_difflib_picks(pipeline) -> None:  # type: ignore[no-untyped-def]
    """On the words the pipeline corrects against (the corpus's and the model's English), for every
    word of the eval questions and a misspelling of each (a letter dropped, doubled or swapped)."""
    import random
    from difflib import get_close_matches

    from assistant.text import words as words_of
    from assistant.vocabulary import CORRECTION_CUTOFF

    vocabulary = pipeline.snapshot.vocabulary
    rng = random.Random(7)
    asked: set[str] = set()
    for path in sorted((Path(__file__).parent / "eval").glob("*/questions-dev.yaml")):
        for entry in yaml.safe_load(path.read_text()):
            asked.update(w for w in words_of(str(entry.get("question", entry.get("q", "")))) if len(w) >= 4)
    probes = set()
    for word in sorted(asked)[:150]:
        i = rng.randrange(len(word) - 1)
        probes.update(
            {
                word,
                word[:i] + word[i + 1 :],
                word[:i] + word[i] + word[i:],
                word[:i] + word[i + 1] + word[i] + word[i + 2 :],
            }
        )
    assert len(probes) > 300
    for pool in vocabulary._pools:
        for probe in sorted(probes):
            expected = get_close_matches(probe, pool.words, n=1, cutoff=CORRECTION_CUTOFF)
            assert pool.closest(probe) == (expected[0] if expected else None), probe

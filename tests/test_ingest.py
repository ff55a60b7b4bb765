"""Incremental ingest with the real model and a real Chroma (embedded and `chroma run`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from assistant.embeddings import ModelError, SentenceTransformerEmbedder, packaged_model_dir
from assistant.ingest import IngestBusy, db_path, ingest, lexical_path
from assistant.settings import PACKAGED_MODEL_SHA256
from assistant.store import ChunkDB, LexicalIndex, VectorStore
from tests.conftest import ROOT, free_port, make_settings

pytestmark = pytest.mark.slow


class CountingEmbedder:
    """Wraps the real embedder and records which chunk texts it embedded (``embedded``) and which
    other texts, units and words, it embedded beside them (``others``)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.name = inner.name
        self.max_tokens = inner.max_tokens
        self.embedded: list[str] = []
        self.others: list[str] = []

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.others.extend(texts)
        return self.inner.embed(texts)

    def embed_with_spans(self, texts, spans):  # type: ignore[no-untyped-def]
        self.embedded.extend(texts)
        return self.inner.embed_with_spans(texts, spans)


def index_ids(settings) -> tuple[set[str], set[str], set[str]]:  # type: ignore[no-untyped-def]
    db = ChunkDB(db_path(settings))
    try:
        chunks = db.chunks()
    finally:
        db.close()
    committed = {c.id for c in chunks}
    lexical = set(LexicalIndex.load_or_build(lexical_path(settings), chunks).ids)
    saved = set(json.loads((lexical_path(settings) / "ids.json").read_text())["ids"])
    vector = VectorStore(settings).ids()
    assert lexical == saved
    return committed, lexical, vector


def run_incremental_steps(settings, corpus: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    embedder = CountingEmbedder(real_embedder)
    first = ingest(settings, embedder)
    assert (first.documents, first.added, first.updated, first.removed, first.skipped) == (8, 8, 0, 0, [])
    assert first.chunks == len(embedder.embedded) > 20
    committed, lexical, vector = index_ids(settings)
    assert committed == lexical == vector and len(committed) == first.chunks
    for text in embedder.embedded:
        assert real_embedder.count_tokens(text) <= real_embedder.max_tokens

    embedder.embedded.clear()
    embedder.others.clear()
    again = ingest(settings, embedder)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 8)
    assert embedder.embedded == [] and embedder.others == []  # no chunk, unit or word embedded again

    faq = corpus / "patient-faq.md"
    faq.write_text(faq.read_text().replace("Ten adults with a spinal cord injury took part.", "Ten adults took part."))
    edited = ingest(settings, embedder)
    assert (edited.added, edited.updated, edited.removed, edited.unchanged) == (0, 1, 0, 7)
    assert embedder.embedded and all(t.startswith("Patient questions") for t in embedder.embedded)
    assert len(embedder.embedded) == 1  # only the changed chunk of the edited document
    committed, lexical, vector = index_ids(settings)
    assert committed == lexical == vector

    embedder.embedded.clear()
    (corpus / "glossary-ais-grades.md").unlink()
    removed = ingest(settings, embedder)
    assert (removed.documents, removed.removed, removed.unchanged) == (7, 1, 7)
    assert embedder.embedded == []
    committed, lexical, vector = index_ids(settings)
    assert committed == lexical == vector
    assert not any(i.startswith("glossary-ais-grades:") for i in vector)


def test_incremental_ingest_embedded_chroma(tmp_path: Path, corpus_copy: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    run_incremental_steps(make_settings(tmp_path / "data", corpus_copy), corpus_copy, real_embedder)


def test_incremental_ingest_against_a_chroma_server(tmp_path: Path, corpus_copy: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    chroma = Path(sys.executable).parent / "chroma"
    port = free_port()
    log = (tmp_path / "chroma.log").open("w")
    server = subprocess.Popen(
        [str(chroma), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp_path / "chroma-server")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        settings = make_settings(tmp_path / "data", corpus_copy, chroma_url=f"http://127.0.0.1:{port}")
        deadline = time.time() + 60
        while True:
            try:
                VectorStore(settings)
                break
            except Exception as exc:
                if time.time() > deadline or server.poll() is not None:
                    log.flush()
                    raise RuntimeError(f"chroma run did not come up; its log:\n{(tmp_path / 'chroma.log').read_text()}") from exc
                time.sleep(0.5)
        run_incremental_steps(settings, corpus_copy, real_embedder)
        assert not (tmp_path / "data" / "index" / "chroma").exists()  # vectors live on the server
    finally:
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_bad_input_is_skipped_and_indexed_documents_stay(tmp_path: Path, corpus_copy: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data", corpus_copy)
    ingest(settings, real_embedder)
    before = index_ids(settings)[0]
    faq = corpus_copy / "patient-faq.md"
    faq.write_text("---\nid: [broken\n---\nNow corrupt.\n")  # an indexed file goes bad
    (corpus_copy / "empty.md").write_text("")
    (corpus_copy / "scan.pdf").write_bytes(b"%PDF-1.4 not a pdf")
    (corpus_copy / "notes.docx").write_bytes(b"PK\x03\x04")
    (corpus_copy / "copy.md").write_text(
        "---\nid: celltop-registry\ntitle: Copy\nkind: registry\naudience: both\n---\nA duplicate id.\n"
    )
    (corpus_copy / "fine.txt").write_text(
        "Clinic Hours\n\nThe clinic is open on weekdays for questions about trials.\n"
    )
    report = ingest(settings, real_embedder)
    reasons = {Path(s["path"]).name: s["reason"] for s in report.skipped}
    assert set(reasons) == {"patient-faq.md", "empty.md", "scan.pdf", "notes.docx", "copy.md"}
    assert "YAML" in reasons["patient-faq.md"] and "empty" in reasons["empty.md"]
    assert "duplicate id 'celltop-registry'" in reasons["copy.md"]
    assert "unsupported" in reasons["notes.docx"] and "PDF" in reasons["scan.pdf"]
    assert (report.added, report.removed) == (1, 0)
    committed, lexical, vector = index_ids(settings)
    assert before <= committed  # the corrupt FAQ keeps its earlier chunks
    assert committed == lexical == vector


def test_a_second_ingest_stops_with_a_clear_message(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data")
    settings.index_dir.mkdir(parents=True)
    with (
        FileLock(str(settings.index_dir / ".ingest.lock")),
        pytest.raises(IngestBusy, match="another ingest is running"),
    ):
        ingest(settings, real_embedder)


def _synthetic_corpus(target: Path, documents: int) -> None:
    shutil.copytree(ROOT / "corpus", target)
    for i in range(documents):
        body = " ".join(
            f"Synthetic note {i} sentence {j} describes rehabilitation schedules and clinic visits in plain words."
            for j in range(40)
        )
        (target / f"synthetic-{i:03d}.md").write_text(
            f"---\nid: synthetic-{i:03d}\ntitle: Synthetic {i}\nkind: document\naudience: both\n---\n# S{i}\n\n{body}\n"
        )


def test_sigkill_mid_ingest_leaves_a_working_index_that_the_next_ingest_repairs(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "corpus"
    _synthetic_corpus(corpus, 40)
    settings = make_settings(tmp_path / "data", corpus)
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(settings.data_dir), "ASSISTANT_CORPUS_DIR": str(corpus)}
    log_path = tmp_path / "ingest.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "ingest", "--json"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 120
    committed_docs = 0
    while time.time() < deadline and proc.poll() is None:
        if db_path(settings).exists():
            try:
                with sqlite3.connect(db_path(settings), timeout=1) as conn:
                    committed_docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            except sqlite3.Error:
                committed_docs = 0
            if committed_docs >= 10:
                break
        time.sleep(0.1)
    if proc.poll() is not None:
        log.close()
        pytest.fail(f"ingest exited ({proc.returncode}) before it could be killed; its output:\n{log_path.read_text()}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()

    from assistant.chain import build_pipeline

    pipeline = build_pipeline(settings, embedder=real_embedder)  # the half-built index still answers
    assert pipeline.stats()["documents"] >= 10
    answer = pipeline.ask("What side effects were seen?")
    assert answer.citations and all(pipeline.corpus.by_id[c.chunk_id] for c in answer.citations)

    report = ingest(settings, real_embedder)
    assert report.documents == 48 and not report.skipped
    assert report.added + report.unchanged + report.updated == 48
    committed, lexical, vector = index_ids(settings)
    assert committed == lexical == vector


def test_a_tampered_model_fails_the_hash_check(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(packaged_model_dir(), copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        SentenceTransformerEmbedder(copy, PACKAGED_MODEL_SHA256, str(copy))
    assert str(weights) in str(err.value) and "sha256" in str(err.value)


def test_cli_ingest_prints_json_summary_and_reports_bad_files(tmp_path: Path, corpus_copy: Path) -> None:
    (corpus_copy / "empty.md").write_text("")
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(tmp_path / "data"), "ASSISTANT_CORPUS_DIR": str(corpus_copy)}
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "ingest", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 3, output  # a file was skipped
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary) == {"documents", "chunks", "added", "updated", "removed", "unchanged", "skipped", "seconds"}
    assert summary["documents"] == 8 and summary["added"] == 8, output
    assert summary["skipped"] == [{"path": str(corpus_copy / "empty.md"), "reason": "empty file"}], output
    assert "Traceback" not in done.stderr, output


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    env = {**os.environ, "ASSISTANT_CHROMA_ULR": "http://x", "ASSISTANT_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "ingest"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unknown setting ASSISTANT_CHROMA_ULR" in done.stderr and "Traceback" not in done.stderr

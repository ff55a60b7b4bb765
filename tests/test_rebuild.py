"""`assistant ingest --rebuild` builds the new index beside the one in use and switches in one step:
killed part way it leaves the old index answering, and a running app answers throughout."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant import generations
from assistant.ingest import db_path, ingest
from assistant.store import ChunkDB
from tests.conftest import CORPUS, ROOT, make_settings
from tests.test_api import start_server, stop
from tests.test_ingest import _synthetic_corpus, index_ids
from tests.test_live_index import NEW_DOCUMENT

pytestmark = pytest.mark.slow

MAX_QUESTIONS = 400  # asked while waiting on a rebuild or on the app to follow it
WAIT_S = 300  # the longest wait for a rebuild, or for the app to load the new index and drop the old


def documents(settings) -> tuple[set[str], int]:  # type: ignore[no-untyped-def]
    """The ids of the documents in the index in use, and its generation number."""
    db = ChunkDB(db_path(settings))
    try:
        return set(db.documents()), db.generation()
    finally:
        db.close()


def leftovers(settings) -> list[str]:  # type: ignore[no-untyped-def]
    """What the index folder holds besides the index in use, the pointer and the ingest lock."""
    in_use = generations.current(settings)
    keep = {".ingest.lock", generations.POINTER, in_use.name} if in_use.name else None
    if keep is None:
        return sorted(p.name for p in settings.index_dir.glob(generations.PREFIX + "*"))
    return sorted(p.name for p in settings.index_dir.iterdir() if p.name not in keep)


def test_a_rebuild_switches_to_a_new_index_and_removes_the_old_one(tmp_path: Path, corpus_copy: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data", corpus_copy)
    ingest(settings, real_embedder)
    before, generation_before = documents(settings)

    rebuilt = ingest(settings, real_embedder, rebuild=True)
    assert (rebuilt.documents, rebuilt.added) == (8, 8)
    in_use = generations.current(settings)
    assert in_use.name and in_use.dir.is_dir()
    assert leftovers(settings) == []  # the first index's files are gone
    after, generation_after = documents(settings)
    assert after == before and generation_after > generation_before
    committed, lexical, vector = index_ids(settings)
    assert committed == lexical == vector and committed

    (corpus_copy / "clinic-parking.md").write_text(NEW_DOCUMENT)
    incremental = ingest(settings, real_embedder)  # written into the index in use, no new one
    assert (incremental.added, incremental.unchanged) == (1, 8)
    assert generations.current(settings) == in_use and leftovers(settings) == []


def test_a_rebuild_killed_part_way_leaves_the_old_index_answering(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    settings = make_settings(tmp_path / "data", corpus)
    ingest(settings, real_embedder)
    before, _generation = documents(settings)
    shutil.rmtree(corpus)
    _synthetic_corpus(corpus, 40)  # a rebuild long enough to be killed part way

    log_path = tmp_path / "rebuild.log"
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(settings.data_dir), "ASSISTANT_CORPUS_DIR": str(corpus)}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "ingest", "--rebuild"], env=env, cwd=ROOT, stdout=log, stderr=log
        )
        deadline = time.time() + WAIT_S
        while proc.poll() is None and time.time() < deadline:
            if sum(line.startswith("added ") for line in log_path.read_text().splitlines()) >= 10:
                break
            time.sleep(0.1)
        if proc.poll() is not None:
            pytest.fail(f"the rebuild exited ({proc.returncode}) before it could be killed:\n{log_path.read_text()}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    after, _generation = documents(settings)
    assert after == before  # every document of the old index, and none of the new
    from assistant.chain import build_pipeline

    pipeline = build_pipeline(settings, embedder=real_embedder)
    assert pipeline.stats()["documents"] == len(before)
    answer = pipeline.ask("What side effects were seen?")
    assert answer.citations and not answer.refused

    assert leftovers(settings)  # the half-built index, not in use
    ingest(settings, real_embedder)  # the next ingest removes it
    assert leftovers(settings) == []


def test_a_running_app_answers_throughout_a_rebuild_and_follows_it(tmp_path: Path, corpus_copy: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data", corpus_copy)
    ingest(settings, real_embedder)
    # Two worker processes, as `make run` has on two cores: each follows the rebuild on its own.
    proc, base = start_server(settings, {"ASSISTANT_RELOAD_INTERVAL_S": "0.5", "ASSISTANT_WORKERS": "2"})
    try:

        def ask(question: str) -> dict:  # type: ignore[type-arg]
            response = httpx.post(base + "/api/ask", json={"question": question}, timeout=120)
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        before = httpx.get(base + "/api/health").json()
        (corpus_copy / "clinic-parking.md").write_text(NEW_DOCUMENT)
        env = {**os.environ, "ASSISTANT_DATA_DIR": str(settings.data_dir), "ASSISTANT_CORPUS_DIR": str(corpus_copy)}
        rebuild = subprocess.Popen(
            [sys.executable, "-m", "assistant", "ingest", "--rebuild", "--json"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        asked = 0
        while rebuild.poll() is None and asked < MAX_QUESTIONS:
            assert ask("What side effects were seen?")["citations"]
            asked += 1
        output = rebuild.communicate(timeout=WAIT_S)[0]
        assert rebuild.returncode == 0, output
        assert asked >= 1

        deadline = time.time() + WAIT_S
        health = before
        for _ in range(MAX_QUESTIONS):
            if time.time() > deadline or health["documents"] != before["documents"]:
                break
            assert ask("What side effects were seen?")["citations"]
            health = httpx.get(base + "/api/health").json()
        assert health["documents"] == before["documents"] + 1 and health["generation"] > before["generation"]
        answer = ask("Where do study visitors park?")
        assert "Gonda ramp" in answer["answer"], answer

        deadline = time.time() + WAIT_S
        while time.time() < deadline and leftovers(settings):
            time.sleep(0.5)
        assert leftovers(settings) == []  # the app let go of the old index and it was removed
        assert ask("What side effects were seen?")["citations"]
    finally:
        stop(proc)

"""Documents a clinic adds while the app serves: answered from within seconds, no restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import CORPUS, ROOT, make_settings
from tests.test_api import start_server, stop

pytestmark = pytest.mark.slow

NEW_DOCUMENT = """---
id: clinic-parking
title: "Visiting the study clinic: parking and arrival"
kind: faq
audience: patient
---
# Visiting the study clinic

## Where do I park?

Study visitors park free of charge in the Gonda ramp on Second Street. Bring your parking ticket
to the front desk of the research unit, where it is validated.
"""


def _ingest(settings, *extra: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(settings.data_dir), "ASSISTANT_CORPUS_DIR": str(settings.corpus_dir)}
    return subprocess.run(
        [sys.executable, "-m", "assistant", "ingest", "--json", *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_running_app_answers_from_a_document_ingested_while_it_serves(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from assistant.ingest import ingest

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    settings = make_settings(tmp_path / "data", corpus)
    ingest(settings, real_embedder)
    proc, base = start_server(settings)
    try:
        before = httpx.get(base + "/api/health").json()
        asked = httpx.post(base + "/api/ask", json={"question": "Where do study visitors park?"}, timeout=60).json()
        assert "Gonda" not in asked["answer"]

        (corpus / "clinic-parking.md").write_text(NEW_DOCUMENT)
        done = _ingest(settings)
        assert done.returncode == 0, done.stderr
        deadline = time.time() + 60
        health = before
        while time.time() < deadline:
            health = httpx.get(base + "/api/health").json()
            if health["documents"] == before["documents"] + 1:
                break
            time.sleep(0.5)
        assert health["documents"] == before["documents"] + 1 and health["generation"] > before["generation"]
        answer = httpx.post(base + "/api/ask", json={"question": "Where do study visitors park?"}, timeout=60).json()
        assert "Gonda ramp" in answer["answer"], answer
        assert "clinic-parking" in {c["doc_id"] for c in answer["citations"]}
    finally:
        stop(proc)


def test_ingest_fails_when_a_file_is_skipped_unless_told_that_is_fine(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text("# Good\n\nThe trial enrolled forty adults with knee pain.\n")
    (corpus / "odd-kind.md").write_text("---\nid: odd\ntitle: Odd\nkind: leaflet\naudience: both\n---\nText here.\n")
    settings = make_settings(tmp_path / "data", corpus)
    done = _ingest(settings)
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["skipped"] and "leaflet" in report["skipped"][0]["reason"]
    assert "ASSISTANT_EXTRA_KINDS" in report["skipped"][0]["reason"]
    assert _ingest(settings, "--allow-skipped").returncode == 0
    env_kinds = {"ASSISTANT_EXTRA_KINDS": json.dumps({"leaflet": {"label": "Patient leaflet", "trust": 0.9}})}
    env = {**os.environ, **env_kinds, "ASSISTANT_DATA_DIR": str(settings.data_dir), "ASSISTANT_CORPUS_DIR": str(corpus)}
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "ingest", "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["skipped"] == []


def test_a_loaded_index_is_kept_out_of_full_collections_and_a_replaced_one_is_collected(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    """A full collection walks every object of the loaded index (about 270 ms here), stalling health
    checks and answers; the serving process freezes what it loaded (api.settle_heap). A snapshot
    replaced by a newer index must still be collected, not kept frozen."""
    import gc
    import shutil
    import weakref

    from assistant.api import PipelineHolder
    from assistant.ingest import ingest

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    settings = make_settings(tmp_path / "data", corpus)
    ingest(settings, real_embedder)
    gc.unfreeze()
    try:
        holder = PipelineHolder(settings)
        holder.start()
        pipeline = holder.wait(300)
        assert pipeline is not None
        assert gc.get_freeze_count() > len(pipeline.snapshot.units)
        pipeline.ask("What side effects were seen?")  # the snapshot and its word matcher refer to each other
        holder._follow_once()  # nothing new: the loaded index stays frozen
        old = weakref.ref(pipeline.snapshot)
        generation = pipeline.snapshot.generation

        (corpus / "clinic-parking.md").write_text(NEW_DOCUMENT)
        ingest(settings, real_embedder)
        holder._follow_once()
        assert pipeline.snapshot.generation > generation
        assert old() is None, "the replaced snapshot was kept"
        assert gc.get_freeze_count() > len(pipeline.snapshot.units)
        assert "Gonda ramp" in " ".join(s.text for s in pipeline.ask("Where do study visitors park?").sentences)
    finally:
        gc.unfreeze()

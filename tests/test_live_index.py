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

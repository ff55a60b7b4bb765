"""Ingest on awkward input and a damaged index: symbolic link loops, names ASCII cannot spell,
files too large to read, an emptied or damaged chunk table. Real model, embedded Chroma."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.ingest import db_path, ingest
from assistant.store import ChunkDB
from tests.conftest import ROOT, make_settings

pytestmark = pytest.mark.slow

GOOD = "# Clinic hours\n\nThe study clinic is open on weekdays from eight until four for trial visits.\n"


def run_cli(settings, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "ASSISTANT_DATA_DIR": str(settings.data_dir),
        "ASSISTANT_CORPUS_DIR": str(settings.corpus_dir),
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )


# --- 1. symbolic link loops ----------------------------------------------------------------------


def test_ingest_of_a_path_that_is_a_symlink_loop_says_so_in_one_line(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    done = run_cli(make_settings(tmp_path / "data", tmp_path), "ingest", str(loop))
    output = f"exit {done.returncode}\nstderr:\n{done.stderr}"
    assert done.returncode != 0 and "Traceback" not in done.stderr, output
    assert f"skipped {loop}: symbolic link loop" in done.stderr.splitlines(), output


def test_symlink_loops_inside_a_folder_are_reported_as_skipped(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hours.md").write_text(GOOD)
    (corpus / "self.md").symlink_to("self.md")
    (corpus / "ping.md").symlink_to("pong.md")
    (corpus / "pong.md").symlink_to("ping.md")
    report = ingest(make_settings(tmp_path / "data", corpus), real_embedder)
    reasons = {Path(s["path"]).name: s["reason"] for s in report.skipped}
    assert reasons == {name: "symbolic link loop" for name in ("self.md", "ping.md", "pong.md")}
    assert (report.documents, report.added) == (1, 1)


# --- 2. names ASCII cannot spell ------------------------------------------------------------------


def test_files_named_in_other_scripts_get_distinct_ids_that_stay(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "研究.md").write_text("# 研究\n\nThe first study enrolled twelve adults with a knee injury.\n")
    (corpus / "دراسة.txt").write_text("The second study enrolled thirty adults with chronic back pain.\n")
    settings = make_settings(tmp_path / "data", corpus)
    first = ingest(settings, real_embedder)
    assert (first.documents, first.added, first.skipped) == (2, 2, [])
    db = ChunkDB(db_path(settings))
    try:
        ids = set(db.documents())
    finally:
        db.close()
    assert len(ids) == 2 and "document" not in ids
    again = ingest(settings, real_embedder)
    assert (again.unchanged, again.added, again.removed) == (2, 0, 0)  # the same ids at the next ingest

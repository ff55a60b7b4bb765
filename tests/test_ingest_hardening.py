"""Ingest on awkward input and a damaged index: symbolic link loops, names ASCII cannot spell,
files too large to read, an emptied or damaged chunk table. Real model, embedded Chroma."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

from assistant.documents import MB, LoadError, load_document
from assistant.ingest import db_path, ingest
from assistant.store import ChunkDB, IndexDamaged
from tests.conftest import ROOT, free_port, make_settings
from tests.pdfgen import assemble
from tests.test_ingest import index_ids

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


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The run failed with a message of one line and no traceback; the message."""
    output = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode not in (0, None), output
    assert "Traceback" not in done.stderr, output
    lines = [line for line in done.stderr.splitlines() if line.startswith("assistant:")]
    assert len(lines) == 1, output
    return lines[0]
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


# --- 3. files too large ---------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "export.txt"
    with huge.open("wb") as out:
        out.truncate(64 * MB)  # sparse: takes no disk, and would take 64 MB of memory if read
    tracemalloc.start()
    try:
        with pytest.raises(LoadError) as refused:
            load_document(huge, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value) == "too large (64.0 MB > limit 10 MB; setting ASSISTANT_MAX_FILE_MB)"
    assert peak < MB


def test_a_small_pdf_that_unpacks_into_too_much_text_is_refused(tmp_path: Path) -> None:
    line = "The trial enrolled adults with a spinal cord injury and followed them for two years. " * 10
    page = "\n".join([line] * 60)
    stream = zlib.compress("\n".join(f"BT /F1 9 Tf 20 {780 - 12 * i} Td ({line}) Tj ET" for i in range(60)).encode())
    pages = 40  # about 2 MB of text in a file of a few kB
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    objects.append(
        f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(pages))}] /Count {pages} >>".encode()
    )
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i in range(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
            f" /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
    pdf = tmp_path / "compressed.pdf"
    pdf.write_bytes(assemble(objects))
    assert pdf.stat().st_size < MB / 10 and len(page) * pages > MB
    with pytest.raises(LoadError, match=r"^too large \(1\.\d MB of text > limit 1 MB; setting ASSISTANT_MAX_FILE_MB\)$"):
        load_document(pdf, tmp_path, max_mb=1)


def test_ingest_skips_a_file_over_the_size_setting_and_indexes_the_rest(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hours.md").write_text(GOOD)
    with (corpus / "dump.txt").open("wb") as out:
        out.truncate(3 * MB)
    report = ingest(make_settings(tmp_path / "data", corpus, max_file_mb=2), real_embedder)
    assert report.skipped == [
        {"path": str(corpus / "dump.txt"), "reason": "too large (3.0 MB > limit 2 MB; setting ASSISTANT_MAX_FILE_MB)"}
    ]
    assert (report.documents, report.added) == (1, 1)


# --- 4. an emptied or damaged chunk table -----------------------------------------------------------


def test_ingest_repairs_an_emptied_chunk_table(tmp_path: Path, corpus_copy: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data", corpus_copy)
    first = ingest(settings, real_embedder)
    with sqlite3.connect(db_path(settings)) as conn:
        conn.execute("DELETE FROM chunks")  # document rows kept
    repaired = ingest(settings, real_embedder)
    assert (repaired.documents, repaired.updated, repaired.unchanged) == (8, 8, 0)
    assert repaired.chunks == first.chunks
    committed, lexical, vector = index_ids(settings)
    assert committed == lexical == vector and len(committed) == first.chunks

    from assistant.chain import build_pipeline

    answer = build_pipeline(settings, embedder=real_embedder).ask("What side effects were seen?")
    assert answer.citations and not answer.refused


@pytest.mark.parametrize("damage", ["garbage header", "truncated"])
def test_a_damaged_chunk_table_is_named_with_its_fix(tmp_path: Path, corpus_copy: Path, real_embedder, damage: str) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data", corpus_copy)
    ingest(settings, real_embedder)
    path = db_path(settings)
    data = path.read_bytes()
    assert not path.with_name(path.name + "-wal").exists() and len(data) > 8 * 4096
    path.write_bytes(b"this is not SQLite" + data[18:] if damage == "garbage header" else data[: len(data) // 2])

    with pytest.raises(IndexDamaged) as err:
        ChunkDB(path)
    assert str(path) in str(err.value) and "assistant ingest --rebuild" in str(err.value)

    for args in (["ingest"], ["ask", "What side effects were seen?"]):
        message = one_line_error(run_cli(settings, *args))
        assert str(path) in message and "damaged" in message and "`assistant ingest --rebuild`" in message
    started = subprocess.run(
        [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(free_port())],
        env={**os.environ, "ASSISTANT_DATA_DIR": str(settings.data_dir), "ASSISTANT_CORPUS_DIR": str(corpus_copy)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert str(path) in one_line_error(started)

    rebuilt = run_cli(settings, "ingest", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    committed, lexical, vector = index_ids(settings)
    assert committed == lexical == vector and committed


# --- 6. a full disk, a read-only data dir ----------------------------------------------------------

DISK_MB = 32  # a tmpfs this size holds the shipped corpus's index (about 3 MB) several times over
NEW_NOTES = 5


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A tmpfs of DISK_MB, so that a disk can really be full or read-only (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "--lazy", str(mount_point)], check=False)  # this process may hold Chroma's files


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` up to ``leave`` bytes free; the file that does it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def add_notes(corpus: Path, tag: str) -> None:
    for i in range(NEW_NOTES):
        sentences = " ".join(f"Note {tag}-{i} sentence {j} is about visits and parking at the clinic." for j in range(60))
        (corpus / f"note-{tag}-{i}.md").write_text(f"# Note {tag} {i}\n\n{sentences}\n")


def answers_from(settings, real_embedder) -> set[str]:  # type: ignore[no-untyped-def]
    """The documents of the index in use, once it has loaded and answered a question."""
    from assistant.chain import build_pipeline

    pipeline = build_pipeline(settings, embedder=real_embedder)
    answer = pipeline.ask("What side effects were seen?")
    assert answer.citations and not answer.refused
    return set(pipeline.corpus.docs)


@pytest.mark.parametrize("leave_kb", [0, 64, 512])  # it fails opening the table, writing vectors, committing
def test_a_full_disk_stops_ingest_with_one_line_and_the_index_still_answers(
    small_disk: Path, corpus_copy: Path, real_embedder, leave_kb: int
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(small_disk / "data", corpus_copy)
    ingest(settings, real_embedder)
    before = answers_from(settings, real_embedder)
    where = f"assistant: cannot write to the index at {settings.index_dir}"

    add_notes(corpus_copy, "a")
    filler = fill(small_disk, leave_kb * 1024)
    message = one_line_error(run_cli(settings, "ingest"))
    assert message.startswith(where) and "free some space" in message.lower(), message
    filler.unlink()
    assert before <= answers_from(settings, real_embedder)  # what was committed, nothing half-written
    again = ingest(settings, real_embedder)
    assert again.documents == len(before) + NEW_NOTES and not again.skipped
    committed, lexical, vector = index_ids(settings)
    assert committed == lexical == vector
    in_use = answers_from(settings, real_embedder)

    add_notes(corpus_copy, "b")
    filler = fill(small_disk, leave_kb * 1024)
    message = one_line_error(run_cli(settings, "ingest", "--rebuild"))
    assert message.startswith(where) and "free some space" in message.lower(), message
    filler.unlink()
    assert not list(settings.index_dir.glob("gen-*"))  # the new index it was writing is gone
    assert answers_from(settings, real_embedder) == in_use


def test_a_read_only_data_dir_stops_ingest_with_one_line_and_the_index_still_answers(
    small_disk: Path, corpus_copy: Path, real_embedder
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(small_disk / "data", corpus_copy)
    built = run_cli(settings, "ingest")  # in another process: this one must hold no file open to remount
    assert built.returncode == 0, built.stderr
    add_notes(corpus_copy, "a")
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, text=True)
    assert remounted.returncode == 0, remounted.stderr
    try:
        for args in (["ingest"], ["ingest", "--rebuild"]):
            message = one_line_error(run_cli(settings, *args))
            assert f"cannot write to the index at {settings.index_dir}" in message, message
            assert "Read-only file system" in message and "ASSISTANT_DATA_DIR" in message, message
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    documents = answers_from(settings, real_embedder)
    assert documents and not any(d.startswith("note-") for d in documents)  # as before, none half-written
    assert not list(settings.index_dir.glob("gen-*"))

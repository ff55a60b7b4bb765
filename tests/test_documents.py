"""Loaders and chunking: front matter, plain text, HTML, PDF, and every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.chunking import chunk_document, split_sentences
from assistant.documents import KINDS, LoadError, load_document
from assistant.embeddings import HashEmbedder
from tests.conftest import CORPUS
from tests.pdfgen import write_pdf


def test_every_shipped_document_has_complete_front_matter() -> None:
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    assert len(files) >= 8
    kinds = set()
    for path in files:
        doc = load_document(path, CORPUS)
        assert doc.id and doc.title and doc.date and doc.source
        assert doc.kind in KINDS and doc.kind != "document"
        assert doc.audience in ("patient", "clinician", "both")
        kinds.add(doc.kind)
        for block in doc.blocks:
            assert doc.text[block.start : block.start + len(block.text)] == block.text
    assert kinds == {"paper-summary", "registry", "case-report", "news", "glossary", "faq", "limitations"}


def test_news_article_is_verbatim_without_newsletter_footer() -> None:
    doc = load_document(CORPUS / "news-fat-derived-stem-cells.txt")
    seed = Path(__file__).resolve().parents[2] / "shared/material/seed-article.txt"
    assert "Subscribe" not in doc.text and "Invalid Email" not in doc.text
    if seed.exists():
        original = seed.read_text(encoding="utf-8").split("Subscribe to our weekly news digest!")[0].strip()
        assert doc.text.strip() == original
    sections = {b.headings for b in doc.blocks}
    assert ("The Study and Its Findings", "Phase 1 Clinical Trial Insights") in sections


def test_corpus_figures_come_from_the_fact_sheet() -> None:
    import re

    allowed = {
        "1",
        "10",
        "100",
        "11",
        "2017",
        "2024",
        "3",
        "58",
        "23",
        "7",
        "8",
        "6",
        "70",
        "4",
        "5",
        "S4",
        "S5",
        "03308565",
        "NCT03308565",
        "2026",
        "24",
        "03",
        "04",
        "2",
        "0",
    }
    for path in CORPUS.iterdir():
        for number in re.findall(r"\d+", path.read_text(encoding="utf-8")):
            assert number in allowed or number.lstrip("0") in allowed, f"{path.name}: unexpected figure {number}"


def test_sentence_splitting_survives_abbreviations_and_decimals() -> None:
    text = "Dr. Bydon led it, e.g. in Rochester. The dose was 1.5 units. See No. 5 for more."
    sentences = [s.text for s in split_sentences(text)]
    assert sentences == ["Dr. Bydon led it, e.g. in Rochester.", "The dose was 1.5 units.", "See No. 5 for more."]
    for s in split_sentences(text):
        assert text[s.start : s.end] == s.text


def test_sentence_splitting_matches_pysbd_on_the_corpus_and_hard_cases() -> None:
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False)
    texts = [b.text for path in sorted(CORPUS.iterdir()) for b in load_document(path).blocks]
    texts += [
        'He said "stop." Then he left. Mohamad Bydon, M.D., a neurosurgeon. The U.S. FDA has approved no product.',
        "It works (see Fig. 2). Done! Really? Yes. Mr. Smith met Dr. Jones on Jan. 5 at 3 p.m. in Rochester.",
        "Scores rose from 1.5 to 2.25 points. J. R. Smith agreed. The end.",
    ]
    for text in texts:
        expected = [s.strip() for s in segmenter.segment(text) if s.strip()]
        assert [s.text for s in split_sentences(text)] == expected


def test_chunks_keep_offsets_sections_and_fit_the_window() -> None:
    embedder = HashEmbedder(max_tokens=60)
    doc = load_document(CORPUS / "celltop-paper-summary.md")
    chunks = chunk_document(doc, embedder.count_tokens, 60)
    assert len(chunks) > 5
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert embedder.count_tokens(chunk.embed_text) <= 60
    assert any(c.headings == ("Results: safety",) for c in chunks)
    again = chunk_document(load_document(CORPUS / "celltop-paper-summary.md"), embedder.count_tokens, 60)
    assert [c.id for c in again] == [c.id for c in chunks]


def test_an_overlong_sentence_is_split_not_truncated(tmp_path: Path) -> None:
    embedder = HashEmbedder()
    doc_path = tmp_path / "long.md"
    doc_path.write_text("# Long\n\n" + " ".join(f"word{i}" for i in range(400)) + ".\n")
    doc = load_document(doc_path)
    chunks = chunk_document(doc, embedder.count_tokens, 50)
    assert len(chunks) > 5
    assert all(embedder.count_tokens(c.embed_text) <= 50 for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == doc.blocks[0].text.replace(" ", "")


def test_clinic_files_txt_html_pdf_without_front_matter(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("Clinic Notes\n\nOur clinic offers rehabilitation after spinal cord injury.\n")
    (tmp_path / "page.html").write_text(
        "<html><head><title>Clinic page</title></head><body><nav>Home | About | Contact</nav>"
        "<article><h1>Trial information</h1><p>This page explains how clinical trials are registered and "
        "what a Phase 1 trial tests. Patients should talk to their own doctor before joining any trial.</p>"
        "<p>Registered trials are listed on ClinicalTrials.gov with a number that starts with NCT.</p></article>"
        "<footer>Copyright footer text</footer></body></html>"
    )
    write_pdf(tmp_path / "leaflet.pdf", ["Page one says hello to patients.", "Page two explains the study."])
    txt = load_document(tmp_path / "notes.txt", tmp_path)
    assert (txt.id, txt.kind, txt.audience) == ("notes", "document", "both")
    html_doc = load_document(tmp_path / "page.html", tmp_path)
    assert "registered" in html_doc.text and "Home | About" not in html_doc.text
    assert html_doc.title in ("Clinic page", "Trial information")
    pdf = load_document(tmp_path / "leaflet.pdf", tmp_path)
    assert [b.page for b in pdf.blocks] == [1, 2]
    chunks = chunk_document(pdf, HashEmbedder().count_tokens, 200)
    assert {c.page for c in chunks} == {1, 2}


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.md", b"", "empty file"),
        ("blank.txt", b"   \n\n", "empty file"),
        ("binary.md", b"\x00\x01\x02garbage", "binary"),
        ("latin1.txt", "caf\xe9".encode("latin-1") + b" text", "not UTF-8"),
        ("badyaml.md", b"---\nid: [unclosed\n---\nBody text here.\n", "not valid YAML"),
        ("unclosed.md", b"---\nid: x\nBody without closing\n", "no closing"),
        ("badkind.md", b"---\nid: x\ntitle: X\nkind: blog\naudience: both\n---\nBody.\n", "kind 'blog'"),
        ("missing.md", b"---\ntitle: X\n---\nBody.\n", "missing id"),
        ("badid.md", b"---\nid: Bad Id!\ntitle: X\nkind: faq\naudience: both\n---\nBody.\n", "id 'Bad Id!'"),
        ("unknown.md", b"---\nid: x\ntitle: X\nkind: faq\naudience: both\ncolour: red\n---\nBody.\n", "unknown front"),
        ("list.md", b"---\n- a\n- b\n---\nBody.\n", "mapping"),
        ("notes.docx", b"PK\x03\x04", "unsupported file type .docx"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "PDF"),
        ("empty.html", b"<html><body><script>x()</script></body></html>", "no main text"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError) as err:
        load_document(path, tmp_path)
    assert reason.lower() in str(err.value).lower()

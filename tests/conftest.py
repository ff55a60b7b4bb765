"""Shared fixtures: temp data dirs (no test touches ./data), the real model loaded once."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from assistant.offline import go_offline

go_offline()

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(autouse=True)
def _no_assistant_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ASSISTANT_"):
            monkeypatch.delenv(key)


def make_settings(data_dir: Path, corpus_dir: Path = CORPUS, **overrides: object):  # type: ignore[no-untyped-def]
    from assistant.settings import Settings

    return Settings(data_dir=data_dir, corpus_dir=corpus_dir, prompts_dir=ROOT / "prompts", **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    from assistant.embeddings import make_embedder

    return make_embedder(make_settings(Path("unused")))


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory, real_embedder):  # type: ignore[no-untyped-def]
    """The shipped corpus ingested once with the real model and embedded Chroma."""
    from assistant.ingest import ingest

    data = tmp_path_factory.mktemp("data")
    settings = make_settings(data)
    ingest(settings, real_embedder)
    return settings


@pytest.fixture(scope="session")
def pipeline(built_index, real_embedder):  # type: ignore[no-untyped-def]
    from assistant.chain import build_pipeline

    return build_pipeline(built_index, embedder=real_embedder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the browser: Debian's Chromium, headless, driven by Playwright --------------------

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()

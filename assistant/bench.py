"""`assistant bench ingest|ask|load`: speed and memory figures, measured in one run (not tests).

`load` lives in assistant/bench_load.py."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant.settings import Settings

SERVER_START_S = 180  # cold start: the model, the index and Gradio's two apps


def bench_ingest(settings: Settings, n_chunks: int) -> dict[str, object]:
    from assistant.embeddings import make_embedder
    from assistant.ingest import db_path, ingest
    from assistant.store import ChunkDB

    embedder = make_embedder(settings)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        per_doc = 50
        sentence = "Participant {i}.{j} reported changes in sensation, strength and daily function at visit {j}. "
        # ~10 sentences of ~20 tokens make one chunk of ~200 tokens.
        for d in range((n_chunks + per_doc - 1) // per_doc):
            paragraphs = []
            for c in range(min(per_doc, n_chunks - d * per_doc)):
                paragraphs.append(f"## Section {c}\n\n" + "".join(sentence.format(i=d, j=c * 10 + k) for k in range(9)))
            (corpus / f"doc-{d:04d}.md").write_text(
                f"---\nid: doc-{d:04d}\ntitle: Synthetic {d}\nkind: document\naudience: both\n---\n# Synthetic {d}\n\n"
                + "\n\n".join(paragraphs)
                + "\n"
            )
        embedder.embed(["warm-up: the first call pays for thread pools and memory."] * 4)
        # The same texts the ingest will embed, encoded raw before and after it: this machine's
        # encode rate drifts, so the ratio uses the mean of both.
        from assistant.chunking import chunk_document
        from assistant.documents import load_document
        from assistant.text import surface_words
        from assistant.units import embed_units, unit_spans

        max_tokens = min(settings.chunk_size, embedder.max_tokens)
        chunks = [
            c
            for path in sorted(corpus.iterdir())
            for c in chunk_document(
                load_document(path, corpus), embedder.count_tokens, max_tokens, settings.chunk_overlap
            )
        ]
        texts = [c.embed_text for c in chunks]
        words = sorted({w for c in chunks for w in surface_words(c.text)})

        def raw() -> tuple[float, float]:
            """Seconds to encode the chunk texts alone, and everything ingest encodes (chunks, each
            unit's quote, the material's words) without any of ingest's other work."""
            started = time.perf_counter()
            embed_units(embedder, chunks)
            for i in range(0, len(words), 512):
                embedder.embed(words[i : i + 512])
            everything = time.perf_counter() - started
            started = time.perf_counter()
            embedder.embed(texts)
            return time.perf_counter() - started, everything

        chunks_before, all_before = raw()
        bench_settings = settings.model_copy(
            update={"data_dir": Path(tmp) / "data", "corpus_dir": corpus, "chroma_url": None}
        )
        report = ingest(bench_settings, embedder, progress=False)
        db = ChunkDB(db_path(bench_settings))
        assert sorted(texts) == sorted(c.embed_text for c in db.chunks())
        db.close()
        chunks_after, all_after = raw()
    ingest_rate = report.embedded_chunks / report.seconds
    raw_rate = len(texts) / ((chunks_before + chunks_after) / 2)
    all_seconds = (all_before + all_after) / 2
    return {
        "chunks": report.chunks,
        "units": sum(len(unit_spans(c.text)) for c in chunks),
        "words": len(words),
        "ingest_seconds": round(report.seconds, 2),
        "ingest_chunks_per_s": round(ingest_rate, 2),
        "raw_chunk_encode_chunks_per_s": round(raw_rate, 2),
        "raw_chunks_before_after_s": f"{chunks_before:.1f} / {chunks_after:.1f}",
        "ratio_to_chunk_encoding": round(ingest_rate / raw_rate, 3),
        "raw_all_encoding_s": f"{all_before:.1f} / {all_after:.1f}",
        "ratio_to_all_encoding": round(all_seconds / report.seconds, 3),
        "mean_tokens_per_chunk": round(sum(embedder.count_tokens(t) for t in texts) / len(texts), 1),
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(settings: Settings, log_file: Any = subprocess.DEVNULL) -> tuple[subprocess.Popen[bytes], str, float]:
    """`assistant serve` on a free port of 127.0.0.1, answering from the settings' index: the
    process, its base URL and the seconds until /api/health said 200."""
    import httpx

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(settings.data_dir), "ASSISTANT_CORPUS_DIR": str(settings.corpus_dir)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log_file,
        stderr=log_file,
        env=env,
    )
    while True:
        try:
            if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                return proc, base, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.perf_counter() - started > SERVER_START_S:
            _stop_server(proc)
            raise RuntimeError("server did not start")
        time.sleep(0.05)


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_ask(settings: Settings) -> dict[str, object]:
    import httpx

    from assistant.api import ensure_index
    from assistant.evaluate import SHIPPED, load_split

    ensure_index(settings)
    cases = load_split(SHIPPED, "dev")
    proc, base, cold = _start_server(settings)
    try:
        with httpx.Client(timeout=30) as client:

            def ask(case) -> float:
                t = time.perf_counter()
                client.post(
                    base + "/api/ask",
                    json={"question": case.question, "audience": case.audience, "history": case.history},
                ).raise_for_status()
                return (time.perf_counter() - t) * 1000

            for case in cases:  # warm-up pass
                ask(case)
            times = sorted(ask(case) for _ in range(3) for case in cases)
        rss = _rss_mb(proc.pid)
    finally:
        _stop_server(proc)
    return {
        "requests": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "max_ms": round(times[-1], 1),
        "cold_start_s": round(cold, 2),
        "rss_mb": round(rss, 1),
    }


def main(settings: Settings, what: str, n_chunks: int, as_json: bool, load: dict[str, Any] | None = None) -> int:
    if what == "load":
        from assistant.bench_load import LoadError, bench_load, format_load

        try:
            figures = bench_load(settings, **(load or {}))
        except LoadError as exc:
            print(f"assistant bench load: {exc}", file=sys.stderr)
            return 2
        result: dict[str, object] = {"bench": what, "cpus": os.cpu_count(), **figures}
        print(json.dumps(result) if as_json else format_load(result))
        return 0
    figures = bench_ingest(settings, n_chunks) if what == "ingest" else bench_ask(settings)
    result = {"bench": what, "cpus": os.cpu_count(), **figures}
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<26} {value}")
    return 0

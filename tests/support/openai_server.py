"""A small OpenAI-compatible server for tests: embeddings and chat completions, stdlib only.

    with FakeOpenAI() as server:          # 127.0.0.1, a free port, in a thread
        client = OpenAI(base_url=server.base_url, api_key="k")
        server.mode = "error"             # or "stall", "break_stream", "stream_error", "ok"
        server.set_mode("error", times=2) # the next 2 requests fail, then "ok" again
        server.requests                   # every request received (headers, JSON body)

Modes: "error" answers ``error_status`` (500) with an OpenAI error body; "stall" waits
``stall_seconds`` before answering normally (longer than the client's timeout, it is a
timeout); "break_stream" sends ``break_after`` chunks of a streamed chat answer then drops the
connection; "stream_error" sends them then an ``{"error": ...}`` event.

Embeddings are a hashed bag of words (texts sharing words are closer), normalised and
deterministic. A chat answer is ``reply_prefix`` plus the first ``reply_words`` words of the
last user message, streamed one word per chunk when ``stream`` is true.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "error", "stall", "break_stream", "stream_error"]
MODES: tuple[Mode, ...] = ("ok", "error", "stall", "break_stream", "stream_error")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class FakeOpenAI:
    """The server; its attributes may be changed while it runs."""

    dimension: int = 64
    model: str = "fake-model"
    mode: Mode = "ok"
    error_status: int = 500
    stall_seconds: float = 5.0
    break_after: int = 2
    reply_prefix: str = "Echo: "
    reply_words: int = 8
    reverse_data: bool = False  # answer embeddings last-first (clients must sort by index)
    requests: list[RecordedRequest] = field(default_factory=list)
    _times: int | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _closing: threading.Event = field(default_factory=threading.Event, init=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake OpenAI server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeOpenAI:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # releases stalled handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_mode(self, mode: Mode, times: int | None = None) -> None:
        """Apply ``mode`` to the next ``times`` requests (all of them if None), then "ok"."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            self.mode, self._times = mode, times

    def reset(self) -> None:
        with self._lock:
            self.mode, self._times = "ok", None
            self.requests.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def _record(self, request: RecordedRequest) -> Mode:
        """Store the request and return the mode it gets."""
        with self._lock:
            self.requests.append(request)
            mode = self.mode
            if self._times is not None:
                self._times -= 1
                if self._times <= 0:
                    self.mode, self._times = "ok", None
            return mode

    def embedding(self, text: str, dimension: int | None = None) -> list[float]:
        """The deterministic vector of ``text``: its words hashed into buckets, normalised."""
        size = dimension or self.dimension
        vector = [0.0] * size
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            vector[int.from_bytes(digest, "big") % size] += 1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if not norm:
            vector[0], norm = 1.0, 1.0
        return [x / norm for x in vector]

    def reply(self, messages: list[dict[str, Any]]) -> str:
        """The chat answer to ``messages``: the prefix and the last user message's first words."""
        last: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        content = last.get("content") or ""
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return self.reply_prefix + " ".join(str(content).split()[: self.reply_words])


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``FakeOpenAI.requests`` instead."""

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:  # the client gave up (timeout) or the test broke the stream
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._send_error(400, "the body is not JSON", "invalid_request_error")
            return
        self._dispatch(body)

    def _dispatch(self, body: Any) -> None:
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        mode = self.fake._record(RecordedRequest(self.command, path, headers, body))
        if mode == "stall" and self.fake._closing.wait(self.fake.stall_seconds):
            self.close_connection = True
            return  # the server is stopping: no answer at all
        if mode == "error":
            self._send_error(self.fake.error_status, "fake failure", "server_error")
            return
        if self.command == "GET" and path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [self._model_entry()]})
        elif self.command == "POST" and path == "/v1/embeddings":
            self._embeddings(body)
        elif self.command == "POST" and path == "/v1/chat/completions":
            self._chat(body, mode)
        else:
            self._send_error(404, f"no route {self.command} {path}", "invalid_request_error")

    def _model_entry(self) -> dict[str, Any]:
        return {"id": self.fake.model, "object": "model", "created": 0, "owned_by": "tests"}

    def _embeddings(self, body: dict[str, Any]) -> None:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) and t for t in texts):
            self._send_error(400, "input must be a non-empty string or list", "invalid_request")
            return
        vectors = [self.fake.embedding(text, body.get("dimensions")) for text in texts]
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": _b64(v) if as_base64 else v}
            for i, v in enumerate(vectors)
        ]
        if self.fake.reverse_data:
            data.reverse()
        used = sum(len(text.split()) for text in texts)
        usage = {"prompt_tokens": used, "total_tokens": used}
        model = body.get("model", self.fake.model)
        self._send_json(200, {"object": "list", "data": data, "model": model, "usage": usage})

    def _chat(self, body: dict[str, Any], mode: Mode) -> None:
        answer = self.fake.reply(body.get("messages") or [])
        model = body.get("model", self.fake.model)
        completion_id = f"chatcmpl-{hashlib.blake2b(answer.encode(), digest_size=6).hexdigest()}"
        if body.get("stream"):
            wants_usage = (body.get("stream_options") or {}).get("include_usage")
            usage = _usage(body, answer) if wants_usage else None
            self._stream(completion_id, model, answer, mode, usage)
            return
        message = {"role": "assistant", "content": answer, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        self._send_json(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [choice],
                "usage": _usage(body, answer),
            },
        )

    def _stream(
        self, completion_id: str, model: str, answer: str, mode: Mode, usage: dict[str, int] | None
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time())}
        base["model"] = model
        words = answer.split(" ")
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
        for sent, delta in enumerate(deltas):
            if sent == self.fake.break_after and mode == "break_stream":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-body: chunking never ends
                return
            if sent == self.fake.break_after and mode == "stream_error":
                error = {"message": "fake failure mid-stream", "type": "server_error"}
                self._event({"error": error})
                self._end_chunks()
                return
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
            self._event({**base, "choices": [choice]})
        finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
        self._event({**base, "choices": [finish]})
        if usage is not None:
            self._event({**base, "choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._end_chunks()

    def _event(self, payload: dict[str, Any]) -> None:
        self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str, kind: str) -> None:
        error = {"message": message, "type": kind, "param": None, "code": None}
        self._send_json(status, {"error": error})


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _usage(body: dict[str, Any], answer: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
    completion = len(answer.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }

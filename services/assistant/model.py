"""Answers written by a chat model on any OpenAI-compatible server, streamed token by token.

The model sees the numbered passages with an instruction to answer from them only and cite
them, the conversation's recent turns, then the question. Every upstream failure (timeout,
HTTP error, a stream that breaks) becomes :class:`ModelFailed`, whose message is safe to show.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from contracts.assistant import Turn
from contracts.content import Passage
from services.assistant.citations import label

log = logging.getLogger(__name__)

HISTORY_ANSWER_MAX = 2000
INSTRUCTIONS = (
    "You are the assistant of an online course. Answer the student's question using only the "
    "numbered course passages below. Cite the passages you use by their numbers in square "
    "brackets, like [1] or [2][3]. If the passages do not answer the question, say that the "
    "course does not cover it. Answer in the language of the question, concisely."
)


class ModelFailed(RuntimeError):
    """The model did not answer, or broke off; the message is safe to show a user."""


def messages(
    question: str, passages: list[Passage], history: list[Turn]
) -> list[ChatCompletionMessageParam]:
    """The chat: instructions with the numbered passages, recent turns, the question."""
    system = f"{INSTRUCTIONS}\n\n{context(passages)}"
    chat: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}]
    for turn in history:
        chat.append({"role": "user", "content": turn.question})
        if turn.answer:
            chat.append({"role": "assistant", "content": turn.answer[:HISTORY_ANSWER_MAX]})
    chat.append({"role": "user", "content": question})
    return chat


def context(passages: list[Passage]) -> str:
    blocks = [
        f"[{number}] ({label(passage)})\n{passage.text}"
        for number, passage in enumerate(passages, start=1)
    ]
    return "Passages:\n\n" + "\n\n".join(blocks)


class ChatModel:
    """One model on one OpenAI-compatible server; ``stream`` yields the answer's pieces."""

    def __init__(self, client: openai.OpenAI, model: str, max_tokens: int) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    def stream(self, chat: list[ChatCompletionMessageParam]) -> Iterator[str]:
        """The answer's text deltas in order; ModelFailed on any upstream failure. Closing
        the iterator early closes the HTTP stream."""
        try:
            with self.client.chat.completions.create(
                model=self.model,
                messages=chat,
                stream=True,
                max_tokens=self.max_tokens,
            ) as answer:
                for chunk in answer:
                    yield from _deltas(chunk)
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise _failure(exc) from exc

    def close(self) -> None:
        self.client.close()


def _deltas(chunk: Any) -> Iterator[str]:
    for choice in chunk.choices:
        if choice.delta is not None and choice.delta.content:
            yield choice.delta.content


def _failure(exc: Exception) -> ModelFailed:
    """A message for the user (the upstream's own may quote keys or internals: logs only)."""
    log.warning("the language model failed: %r", exc)
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return ModelFailed("the language model did not answer in time")
    if isinstance(exc, openai.APIStatusError):
        return ModelFailed(f"the language model failed (HTTP {exc.status_code})")
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return ModelFailed("the language model could not be reached, or broke off its answer")
    return ModelFailed("the language model failed while answering")


def make_model(
    *, base_url: str | None, api_key: str, model: str, timeout: float, max_tokens: int
) -> ChatModel:
    """A chat model client; no retry: a half-streamed answer cannot be resumed, and a retry
    of a timed-out request would double the wait before the user hears of it."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
    return ChatModel(client, model, max_tokens)

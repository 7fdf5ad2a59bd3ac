"""The assistant's set-up, read from Settings at start: its chat model and limits."""

from __future__ import annotations

from typing import Any

from nameko.extensions import DependencyProvider

from mesh.embedding import PLACEHOLDER_API_KEY
from mesh.settings import Settings, get_settings
from services.assistant.logic import Limits, Setup
from services.assistant.model import ChatModel, make_model


def chat_model(settings: Settings) -> ChatModel | None:
    """The configured chat model: OPENAI_BASE_URL and/or OPENAI_API_KEY; else None."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if key is None and settings.openai_base_url is None:
        return None
    return make_model(
        base_url=settings.openai_base_url,
        api_key=key or PLACEHOLDER_API_KEY,
        model=settings.assistant_model,
        timeout=settings.assistant_timeout,
        max_tokens=settings.assistant_max_tokens,
    )


def limits(settings: Settings) -> Limits:
    return Limits(
        min_similarity=settings.assistant_min_similarity,
        history_turns=settings.assistant_history_turns,
        max_seconds=settings.assistant_max_seconds,
    )


def setup_from(settings: Settings) -> Setup:
    return Setup(model=chat_model(settings), limits=limits(settings))


class AssistantSetup(DependencyProvider):
    """Injects the :class:`Setup` (one chat-model client per process)."""

    def setup(self) -> None:
        self.value = setup_from(get_settings())

    def stop(self) -> None:
        if self.value.model is not None:
            self.value.model.close()

    def get_dependency(self, worker_ctx: Any) -> Setup:
        return self.value

"""Where an answer's events go while it is generated: a Redis Stream the gateway relays.

Each write also reads the cancel flag the gateway sets when its client went away, in the
same round trip, so the generator can stop at the next token.
"""

from __future__ import annotations

from typing import Protocol

import redis
from redis.typing import EncodableT, FieldT

from contracts.assistant import CANCEL_KEY, STREAM_KEY, STREAM_TTL_SECONDS, StreamEvent
from contracts.base import Contract

STREAM_MAXLEN = 4096
"""Entries kept per answer; far above the tokens of one answer (ASSISTANT_MAX_TOKENS)."""


class Events(Protocol):
    """An answer's event sink; ``send`` answers True once the reader asked to stop."""

    def send(self, event: StreamEvent, payload: Contract) -> bool: ...


class RedisEvents:
    """Appends events to ``assistant:stream:{stream_id}`` and watches its cancel flag."""

    def __init__(self, client: redis.Redis, stream_id: str) -> None:
        self.client = client
        self.key = STREAM_KEY.format(stream_id=stream_id)
        self.cancel_key = CANCEL_KEY.format(stream_id=stream_id)

    def send(self, event: StreamEvent, payload: Contract) -> bool:
        pipe = self.client.pipeline(transaction=False)
        fields: dict[FieldT, EncodableT] = {"event": event, "data": payload.model_dump_json()}
        pipe.xadd(self.key, fields, maxlen=STREAM_MAXLEN, approximate=True)
        pipe.expire(self.key, STREAM_TTL_SECONDS)
        pipe.exists(self.cancel_key)
        cancelled = pipe.execute()[-1]
        return bool(cancelled)


class NoEvents:
    """Nobody streams this answer (the caller waits for the whole of it)."""

    def send(self, event: StreamEvent, payload: Contract) -> bool:
        return False


def events_for(client: redis.Redis, stream_id: str | None) -> Events:
    return NoEvents() if stream_id is None else RedisEvents(client, stream_id)

"""nameko's RPC request and reply, published transient and without waiting for the broker's
confirm (why: ``mesh.rpc``)."""

from __future__ import annotations

from typing import Any

import nameko.rpc
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    NON_PERSISTENT,
    SERIALIZER_CONFIG_KEY,
)
from nameko.rpc import get_rpc_exchange


class UnconfirmedPublisher(Publisher):
    """Publishes transient messages without waiting for the broker's confirm, and so without
    ``mandatory`` (an unroutable message can only be told by its confirm)."""

    use_confirms = False
    delivery_mode = NON_PERSISTENT

    def publish(self, payload: Any, **kwargs: Any) -> None:
        kwargs["mandatory"] = False
        super().publish(payload, **kwargs)


class MethodProxy(nameko.rpc.MethodProxy):
    """One call to another service, its request unconfirmed."""

    publisher_cls = UnconfirmedPublisher


class _Responder(nameko.rpc.Responder):
    publisher_cls = UnconfirmedPublisher


class _RpcConsumer(nameko.rpc.RpcConsumer):
    def handle_result(self, message: Any, result: Any, exc_info: Any) -> Any:
        """nameko's, with an unconfirmed reply."""
        config = self.container.config
        responder = _Responder(
            config[AMQP_URI_CONFIG_KEY],
            get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
            message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class Rpc(nameko.rpc.Rpc):
    """nameko's RPC entrypoint, replying unconfirmed. Every entrypoint of a service must be
    this one: two entrypoint classes would put two consumers on the service's queue."""

    rpc_consumer = _RpcConsumer()


rpc = Rpc.decorator

from __future__ import annotations

import eventlet
import pytest

from mesh.rpc import BoundedTransport


class SlowReply:
    def result(self) -> str:
        eventlet.sleep(5)
        return "too late"


class QuickReply:
    def result(self) -> str:
        return "on time"


class Method:
    def __init__(self, reply: object) -> None:
        self.reply = reply

    def call_async(self, *args: object) -> object:
        return self.reply


def test_a_reply_that_does_not_come_in_time_is_a_timeout() -> None:
    transport = BoundedTransport(lambda name: Method(SlowReply()), 0.05)
    with pytest.raises(TimeoutError, match=r"users\.get_user did not answer within 0\.05 s"):
        transport.call("users", "get_user", 7)


def test_a_reply_in_time_is_returned() -> None:
    transport = BoundedTransport(lambda name: Method(QuickReply()), 1.0)
    assert transport.call("users", "get_user", 7) == "on time"

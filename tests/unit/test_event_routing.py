from __future__ import annotations

from contracts.errors import ContractViolation
from mesh.events import MAX_BACKOFF_MS, backoff_ms, route_failure


def test_transient_failures_retry_until_attempts_are_spent() -> None:
    assert route_failure(0, RuntimeError("x"), 3) == ("retry", 1)
    assert route_failure(1, RuntimeError("x"), 3) == ("retry", 2)
    assert route_failure(2, RuntimeError("x"), 3) == ("dead", 3)


def test_a_contract_violation_goes_straight_to_the_dead_letters() -> None:
    assert route_failure(0, ContractViolation("bad"), 5) == ("dead", 1)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_ms(n, 1000) for n in (1, 2, 3)] == [1000, 2000, 4000]
    assert backoff_ms(30, 1000) == MAX_BACKOFF_MS


def test_the_email_actor_dead_letters_are_replayable() -> None:
    from mesh import dead_letters

    assert dead_letters.dead_letter_queue("email") == "email.XQ"
    assert "email" in dead_letters.replayable_queues()
    assert dead_letters.dead_letter_queue("mesh.mirror") == "mesh.mirror.dlq"

"""How an answer names its passages: [1], [2]... in the order of its sources."""

from __future__ import annotations

from contracts.content import Passage


def label(passage: Passage) -> str:
    """Where a passage is: its lesson, and its page or timestamp (else its place)."""
    where = passage.locator or f"passage {passage.position + 1}"
    return f"lesson {passage.lesson_id}, {where}"

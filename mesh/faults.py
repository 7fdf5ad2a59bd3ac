"""Fault injection for crash tests: a pause or a hard crash at a named point.

``MESH_FAULTS`` lists the faults a process may inject, read once at start-up::

    MESH_FAULTS="notifications.after_effect=pause:120,users.after_commit=crash"

A point is ``<service>.<where>``: ``after_effect`` (a reliable event handler
succeeded, its message is not acked yet, ``mesh.events``) and ``after_commit``
(a transaction with outbox events committed, the relay has not run,
``mesh.outbox``). A listed fault fires only while armed: the file
``<MESH_VAR_DIR>/faults/<point>`` exists and, if it holds a JSON object, the point's
detail (the event body) has each of its items, e.g. ``{"type": "order.created",
"user_id": 7}``. Firing removes the file (so a restarted process does not fire again)
and writes ``<point>.fired`` (``{"pid": ..., "detail": ...}``) before pausing, or
exiting at once with ``os._exit``.

Unset, every hook is a method call that returns at once. Settings refuse
``MESH_FAULTS`` when ``MESH_ENV=production``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 70
Action = Literal["pause", "crash"]


class FaultSpecError(ValueError):
    """MESH_FAULTS does not parse."""


@dataclass(frozen=True)
class Fault:
    """What happens at a point: ``pause`` for ``seconds``, or ``crash``."""

    action: Action
    seconds: float = 0.0


def parse(spec: str | None) -> dict[str, Fault]:
    """``"svc.point=pause:30,svc.other=crash"`` -> ``{point: Fault}``; empty or None -> {}."""
    faults: dict[str, Fault] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        point, sep, action = (part.strip() for part in item.partition("="))
        service, dot, where = point.partition(".")
        if not (sep and dot and service and where):
            raise FaultSpecError(f"{item.strip()!r}: expected <service>.<point>=<action>")
        if point in faults:
            raise FaultSpecError(f"{point!r} is listed twice")
        faults[point] = _parse_action(action)
    return faults


def _parse_action(text: str) -> Fault:
    if text == "crash":
        return Fault("crash")
    name, _, seconds = text.partition(":")
    if name == "pause":
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if 0 < value <= 3600:
            return Fault("pause", value)
    raise FaultSpecError(f"{text!r}: expected crash or pause:<seconds up to 3600>")


class Faults:
    """The faults of one process; ``hit(point, detail)`` is the hook."""

    def __init__(self, faults: dict[str, Fault], arm_dir: Path) -> None:
        self.faults = faults
        self.arm_dir = arm_dir

    @classmethod
    def from_spec(cls, spec: str | None, var_dir: Path) -> Faults:
        return cls(parse(spec), var_dir.resolve() / "faults")

    def __bool__(self) -> bool:
        return bool(self.faults)

    def hit(self, point: str, detail: object = None) -> None:
        """Pause or crash here if ``point`` is listed and armed; otherwise do nothing."""
        if not self.faults:
            return
        fault = self.faults.get(point)
        if fault is None or not self._disarm(point, detail):
            return
        rendered = _render(detail)
        self._record(point, rendered)
        log.warning("fault injected", extra={"point": point, "action": fault.action})
        if fault.action == "crash":
            os._exit(CRASH_EXIT_CODE)
        time.sleep(fault.seconds)  # green under eventlet: the process keeps its connections

    def _disarm(self, point: str, detail: object) -> bool:
        """True if ``point`` was armed for this detail; removing the file claims it."""
        armed = self.arm_dir / point
        try:
            text = armed.read_text().strip()
            wanted = json.loads(text) if text else {}
        except (OSError, ValueError):
            return False
        if not _matches(detail, wanted):
            return False
        try:
            armed.unlink()
        except FileNotFoundError:
            return False  # another worker fired it first
        return True

    def _record(self, point: str, detail: str) -> None:
        target = self.arm_dir / f"{point}.fired"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "detail": detail}))
        os.replace(tmp, target)


def _matches(detail: object, wanted: object) -> bool:
    if not isinstance(wanted, dict) or not wanted:
        return wanted == {}
    return isinstance(detail, dict) and all(detail.get(k) == v for k, v in wanted.items())


def _render(detail: object) -> str:
    return json.dumps(detail, separators=(",", ":"), sort_keys=True, default=str)

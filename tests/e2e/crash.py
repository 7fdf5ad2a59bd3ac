"""Crash-test helpers: arm a fault in the running e2e mesh, find the process it holds, kill it.

The e2e mesh starts with ``MESH_FAULTS`` (``conftest.FAULTS``) in every program's environment,
so no program needs restarting with a different one: a listed fault stays inert until a test
arms it here, then fires once, in the process of its service that next reaches its point
with a matching event (``mesh.faults``). That process writes ``<point>.fired`` (its pid and
the event) before it pauses or exits, which is how a test knows where the crash landed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from kombu import Connection, Queue

from mesh import topology
from tests.e2e.conftest import Mesh, eventually


@dataclass(frozen=True)
class Fired:
    pid: int
    detail: Any  # the event body the fault fired on (None where the point has none)


def _folder(mesh: Mesh) -> Path:
    folder = mesh.var_dir / "faults"
    folder.mkdir(exist_ok=True)
    return folder


def arm(mesh: Mesh, point: str, match: dict[str, Any] | None = None) -> None:
    """Arm ``point`` once, for the next event having every item of ``match``."""
    folder = _folder(mesh)
    (folder / f"{point}.fired").unlink(missing_ok=True)
    tmp = folder / f".{point}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(match or {}))
    os.replace(tmp, folder / point)


def disarm(mesh: Mesh, point: str) -> None:
    (_folder(mesh) / point).unlink(missing_ok=True)


def wait_fired(mesh: Mesh, point: str, timeout: float = 30) -> Fired:
    """Wait until ``point`` fired; the pid of the process it holds and the event."""
    fired = _folder(mesh) / f"{point}.fired"
    eventually(fired.exists, timeout=timeout, interval=0.05, what=f"fault {point} to fire")
    record = json.loads(fired.read_text())
    detail = json.loads(record["detail"])
    return Fired(pid=int(record["pid"]), detail=detail)


def program_pid(mesh: Mesh, program: str) -> int:
    """The pid supervisord has for ``program`` now (0 when it is not running)."""
    out = mesh.supervisorctl("pid", program).stdout.strip()
    return int(out) if out.isdigit() else 0


def sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)  # the process a fault holds: one of this test's mesh


def wait_restarted(mesh: Mesh, program: str, old_pid: int, timeout: float = 60) -> int:
    """Wait until supervisord runs ``program`` again under a new pid; return it."""

    def restarted() -> int:
        pid = program_pid(mesh, program)
        running = "RUNNING" in mesh.supervisorctl("status", program).stdout
        return pid if running and pid not in (0, old_pid) else 0

    new_pid: int = eventually(restarted, timeout=timeout, interval=0.5, what=f"{program} back")
    return new_pid


def queue_counts(mesh: Mesh, rabbitmqctl: list[str], prefix: str) -> dict[str, tuple[int, int]]:
    """``{queue: (ready, unacked)}`` of the mesh's queues whose name starts with ``prefix``."""
    vhost = unquote(urlsplit(mesh.env["AMQP_URI"]).path[1:]) or "/"
    columns = ("name", "messages_ready", "messages_unacknowledged")
    listed = subprocess.run(
        [*rabbitmqctl, "-q", "list_queues", "-p", vhost, "--no-table-headers", *columns],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    counts = {}
    for line in listed.stdout.splitlines():
        name, ready, unacked = line.split()
        if name.startswith(prefix):
            counts[name] = (int(ready), int(unacked))
    return counts


class EventTap:
    """A queue of the test's own on a service's event exchange: it sees every publication,
    so an event published twice shows twice."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.seen: list[dict[str, Any]] = []

    def matching(self, **items: Any) -> list[dict[str, Any]]:
        """Every event received so far that has all of ``items``."""
        while (message := self.queue.get(no_ack=True)) is not None:
            self.seen.append(message.payload)
        return [e for e in self.seen if all(e.get(k) == v for k, v in items.items())]


@contextmanager
def event_tap(mesh: Mesh, source: str, event_type: str) -> Iterator[EventTap]:
    """Record every ``event_type`` event ``source`` publishes while the block runs."""
    with Connection(mesh.env["AMQP_URI"]) as connection:
        queue = Queue(
            f"e2e-tap-{uuid.uuid4().hex[:8]}",
            exchange=topology.event_exchange(source),
            routing_key=event_type,
            auto_delete=True,
        )(connection.channel())
        queue.declare()
        try:
            yield EventTap(queue)
        finally:
            queue.delete()


def log_lines(mesh: Mesh, program: str, message: str) -> list[dict[str, Any]]:
    """The JSON log records of ``program`` whose message is ``message``."""
    found = []
    for line in (mesh.var_dir / "log" / f"{program}.log").read_text(errors="replace").splitlines():
        if message in line:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("message") == message:
                found.append(record)
    return found


def assert_redelivered(mesh: Mesh, key: str, timeout: float = 30) -> None:
    """notifications handled the event of ``key`` again and found its document stored."""

    def again() -> list[dict[str, Any]]:
        records = log_lines(mesh, "notifications", "notification already stored")
        return [r for r in records if r.get("key") == key]

    eventually(again, timeout=timeout, what=f"the event of {key} redelivered")
    stored = log_lines(mesh, "notifications", "notification stored")
    assert len([r for r in stored if r.get("key") == key]) == 1

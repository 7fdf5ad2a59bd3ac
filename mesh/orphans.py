"""No process of the mesh outlives it.

- A Dramatiq worker process dies with its master (:class:`DieWithMaster`): a master killed
  with SIGKILL cannot stop its workers, which would otherwise live on under PID 1, consuming.
- Every program supervisord starts carries ``MESH_SUPERVISED=<var dir>`` in its environment
  (``supervisord.conf``), and so do the processes they fork. :func:`reap` finds those
  still running once supervisord is gone (``make stop`` runs it) and stops them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

MARKER = "MESH_SUPERVISED"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> bool:
    """Have the kernel SIGKILL this process when its parent dies (Linux); False if it
    cannot (another system), or if the parent is already gone: then the caller must exit."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    # The parent may have died before prctl took effect: then we were re-parented already.
    return parent != 1 and os.getppid() == parent


class DieWithMaster(Middleware):
    """Makes each Dramatiq worker process die with the master process that forked it."""

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        if die_with_parent():
            return
        if os.getppid() == 1:
            log.error("the Dramatiq master is gone; this worker process exits")
            os._exit(1)
        log.warning("this worker process cannot follow its master's death (no prctl)")


@dataclass(frozen=True)
class Found:
    pid: int
    command: str


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def mesh_processes(var_dir: Path) -> list[Found]:
    """Running processes started under the supervisord of ``var_dir`` (or forked by one)."""
    wanted = str(var_dir.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        if _environ(pid).get(MARKER) == wanted:
            command = _command(pid)
            if command:  # a zombie has no command line: it is gone already
                found.append(Found(pid, command))
    return found


def reap(var_dir: Path, grace: float = 10.0) -> list[Found]:
    """Stop every process of ``var_dir``'s mesh still running: SIGTERM, then SIGKILL after
    ``grace`` seconds. Returns what it found."""
    found = mesh_processes(var_dir)
    _signal_all(found, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and mesh_processes(var_dir):
        time.sleep(0.2)
    _signal_all(mesh_processes(var_dir), signal.SIGKILL)
    return found


def _signal_all(found: list[Found], signum: int) -> None:
    for process in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)

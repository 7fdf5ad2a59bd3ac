"""wrk (the system's /usr/bin/wrk) driving tests/bench/wrk/orders.lua, and what it printed.

A run answers its request rate, p50/p99, the answers' statuses and X-Cache tally, the CPU
wrk itself took, and for POST the (order id, epoch seconds of its 201) of every order placed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "wrk" / "orders.lua"
LONGEST = 600  # seconds: a cold run ends when its ids run out, well before this
TIMEOUT = 10  # seconds before wrk gives up on an answer (its default, 2, is short on a busy box)


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no BENCH line."""


@dataclass
class WrkRun:
    """What one wrk run measured (times in milliseconds, rates per second)."""

    name: str
    answered: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    hits: int = 0
    misses: int = 0
    socket_errors: int = 0
    timeouts: int = 0
    cpu_seconds: float = 0.0  # wrk's own user + system time
    answers: list[tuple[int, float]] = field(default_factory=list)  # (order id, 201 at)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds

    def describe_failures(self, ok: int) -> str:
        """What went wrong, e.g. ``409 x3, timeouts x1`` (empty when nothing did)."""
        parts = [f"{status} x{n}" for status, n in sorted(self.statuses.items()) if status != ok]
        parts += [f"socket errors x{self.socket_errors}"] if self.socket_errors else []
        parts += [f"timeouts x{self.timeouts}"] if self.timeouts else []
        return ", ".join(parts)

    def failures(self, ok: int) -> int:
        """Answers other than ``ok``, plus connection errors and timeouts."""
        wrong = sum(n for status, n in self.statuses.items() if status != ok)
        return wrong + self.socket_errors + self.timeouts


def parse(output: str) -> dict[str, str]:
    """The key=value pairs of the script's ``BENCH`` line."""
    for line in output.splitlines():
        if line.startswith("BENCH "):
            return dict(part.split("=", 1) for part in line.split()[1:])
    raise WrkError(f"wrk printed no BENCH line:\n{output[-2000:]}")


def statuses(text: str) -> dict[int, int]:
    """``"201:80,409:2"`` as ``{201: 80, 409: 2}``."""
    pairs = (item.split(":") for item in text.split(",") if item)
    return {int(status): int(n) for status, n in pairs}


def read_answers(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    rows = (line.split() for line in path.read_text().splitlines() if line.strip())
    return [(int(order_id), float(at)) for order_id, at in rows]


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed: apt-get install wrk (the benchmark's load generator)")
    return found


def _wait(proc: subprocess.Popen[str], out: Path, threads: int, until_done: bool) -> str:
    """wrk's output; for a cold run, stop it (SIGINT: it still prints its summary) once every
    thread has left its marker, since wrk itself would sleep out its whole duration."""
    assert proc.stdout is not None
    deadline = time.monotonic() + LONGEST + 30
    while until_done and proc.poll() is None and time.monotonic() < deadline:
        if len(list(out.glob("done.*"))) >= threads:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    return proc.stdout.read()


def run(
    name: str,
    base_url: str,
    env: dict[str, str],
    *,
    connections: int,
    threads: int = 1,
    seconds: float = LONGEST,
) -> WrkRun:
    """One wrk run of orders.lua; ``env`` holds its BENCH_* variables (BENCH_OUT is set here)."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as scratch:
        out = Path(scratch)
        command = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
        command += ["--timeout", f"{TIMEOUT}s", "-s", str(SCRIPT), base_url]
        variables = {**os.environ, **env, "BENCH_OUT": scratch, "BENCH_THREADS": str(threads)}
        proc = subprocess.Popen(command, env=variables, stdout=subprocess.PIPE, text=True)
        output = _wait(proc, out, threads, until_done=env.get("BENCH_MODE") == "cold")
        # wait4, not wait: it hands back the child's CPU time as well.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, -signal.SIGINT):
            raise WrkError(f"wrk exited {proc.returncode}:\n{output[-2000:]}")
        values = parse(output)
        return WrkRun(
            name=name,
            answered=int(values["answered"]),
            seconds=float(values["seconds"]),
            p50_ms=float(values["p50_ms"]),
            p99_ms=float(values["p99_ms"]),
            statuses=statuses(values["statuses"]),
            hits=int(values["hits"]),
            misses=int(values["misses"]),
            socket_errors=int(values["socket_errors"]),
            timeouts=int(values["timeouts"]),
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            answers=read_answers(out / "answers.txt"),
        )

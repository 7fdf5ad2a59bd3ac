"""Private RabbitMQ and Redis servers that a fault test may stop and start at will.

Never the machine's shared ones (5672, 6379): other suites use those concurrently. Each
server gets its own ports and a temp dir; ``close()`` stops it and removes the dir.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait(check_ok: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check_ok():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {seconds}s")
        time.sleep(0.25)


class PrivateRabbit:
    """A RabbitMQ node of its own (name, AMQP and distribution ports, data and logs)."""

    def __init__(self, node: str = "faults@localhost") -> None:
        self.node = node
        self.port = free_port()
        self.dist_port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mesh-faults-rabbit-"))
        self.ctl_path = shutil.which("rabbitmqctl") or "rabbitmqctl"
        (self.root / "enabled_plugins").write_text("[].\n")  # no management listener
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.port}\ndisk_free_limit.absolute = 50MB\n"
        )
        for sub in ("mnesia", "log"):
            (self.root / sub).mkdir()
        if os.geteuid() == 0:
            # The packaged scripts run the node as the rabbitmq user (su): it must own the dir.
            self.root.chmod(0o755)
            for path in (self.root, *self.root.rglob("*")):
                shutil.chown(path, "rabbitmq", "rabbitmq")

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def ctl(self) -> list[str]:
        return [self.ctl_path, "-n", self.node]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
        }

    def run_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.ctl, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self, seconds: float = 90) -> None:
        """Boot the node (about ten seconds) and wait until it takes AMQP connections."""
        subprocess.run(
            ["rabbitmq-server", "-detached"], env=self.env(), cwd=self.root, check=True, timeout=60
        )
        wait(
            lambda: self.run_ctl("-q", "await_startup", "-t", "5").returncode == 0,
            seconds,
            f"RabbitMQ node {self.node} did not start",
        )
        wait(lambda: answers(self.port), 30, f"RabbitMQ did not listen on {self.port}")

    def stop_app(self) -> None:
        """Stop the broker inside the node: every connection drops, durable data stays."""
        done = self.run_ctl("-q", "stop_app")
        assert done.returncode == 0, done.stderr

    def start_app(self) -> None:
        done = self.run_ctl("-q", "start_app")
        assert done.returncode == 0, done.stderr
        wait(lambda: answers(self.port), 30, f"RabbitMQ did not listen on {self.port}")

    def close(self) -> None:
        self.run_ctl("-q", "stop", str(self.root / "rabbit.pid"), timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server on a port of its own, without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mesh-faults-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait(self._pings, 20, f"redis-server did not answer on {self.port}")

    def _pings(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

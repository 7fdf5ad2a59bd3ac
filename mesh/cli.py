"""Operator commands: ``mesh <command>`` (``.venv/bin/mesh --help``)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO
from urllib.parse import urlparse

from nameko.exceptions import RpcTimeout
from pydantic import ValidationError

from contracts.base import field_errors
from mesh import readiness
from mesh.settings import Settings, get_settings

HOW_TO_START = {
    "RabbitMQ": "rabbitmq-server -detached",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}
ADMIN_PASSWORD_ENV = "MESH_ADMIN_PASSWORD"  # noqa: S105 (a variable name, not a secret)


class NoPassword(Exception):
    """No password could be read for create-admin."""


def answers(url: str, default_port: int, timeout: float = 2.0) -> bool:
    """True if something accepts TCP connections at ``url``'s host and port."""
    parts = urlparse(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout
        ):
            return True
    except OSError:
        return False


def check_services(settings: Settings) -> int:
    """Exit status 0 if RabbitMQ and Redis answer; otherwise say how to start them."""
    missing = [
        name
        for name, url, port in (
            ("RabbitMQ", settings.amqp_uri, 5672),
            ("Redis", settings.redis_url, 6379),
        )
        if not answers(url, port)
    ]
    for name in missing:
        print(f"{name} does not answer. Start it with:  {HOW_TO_START[name]}", file=sys.stderr)
    return 1 if missing else 0


def wait_ready(settings: Settings, timeout: float) -> int:
    """Poll the gateway's /ready until it says every service answers, saying what is missing."""
    last = readiness.wait(lambda: readiness.probe(settings.gateway_url), timeout, sys.stdout)
    if last.ready:
        print(f"mesh ready at {settings.gateway_url}")
        return 0
    print(f"mesh not ready after {timeout:.0f}s: waiting for {last.waiting_for}", file=sys.stderr)
    return 1


def admin_password(
    environ: Mapping[str, str], stdin: TextIO, ask: Callable[[str], str] = getpass.getpass
) -> str:
    """The new admin's password: ``MESH_ADMIN_PASSWORD``, else asked twice on a terminal.

    Never an argument: a command line shows in ``ps`` and the shell history. It is read here,
    not in Settings, because it is an input of this one command, not configuration of the mesh.
    """
    if password := environ.get(ADMIN_PASSWORD_ENV):
        return password
    if not stdin.isatty():
        raise NoPassword(f"set {ADMIN_PASSWORD_ENV}, or run it on a terminal to be asked")
    try:
        password, again = ask("Password: "), ask("Password again: ")
    except EOFError:
        raise NoPassword("no answer to the prompt") from None
    if again != password:
        raise NoPassword("the two passwords differ")
    return password


def create_admin_command(settings: Settings, email: str, name: str, argv_password: bool) -> int:
    """``mesh create-admin``: the password from the environment or a prompt, then create_admin."""
    if argv_password:
        print(
            "--password is refused: the command line shows in ps and the shell history. "
            f"Set {ADMIN_PASSWORD_ENV} in the environment, or leave it unset to be asked.",
            file=sys.stderr,
        )
        return 2
    try:
        password = admin_password(os.environ, sys.stdin)
    except NoPassword as exc:
        print(f"no password: {exc}", file=sys.stderr)
        return 2
    return create_admin(settings, email, password, name)


def create_admin(settings: Settings, email: str, password: str, name: str) -> int:
    """Create an admin user, or promote the existing user with that e-mail.

    Both go through the running users service, so the write takes the same path as every
    other (validation, argon2id, the outbox and its user.registered event).
    """
    from contracts.errors import Conflict, InvalidInput, Unavailable
    from contracts.users import RegisterRequest, UsersApi
    from mesh.rpc import standalone_client

    try:
        request = RegisterRequest(email=email, password=password, name=name)
    except ValidationError as exc:
        for detail in field_errors(exc):
            print(f"{detail['field']}: {detail['message']}", file=sys.stderr)
        return 2
    try:
        with standalone_client(UsersApi, "users", settings, settings.rpc_timeout * 4) as users:
            with contextlib.suppress(Conflict):  # an existing account: promote it
                users.register(request)
            user = users.promote_admin(request.email)
    except InvalidInput as exc:
        print(f"refused: {exc.message} {exc.details or ''}", file=sys.stderr)
        return 2
    except (Unavailable, RpcTimeout, OSError) as exc:
        print(f"the users service did not answer ({exc!r}): is the mesh running?", file=sys.stderr)
        return 1
    print(f"{user.email} (id {user.id}) is an admin")
    return 0


def dlq(settings: Settings, action: str, queue: str | None) -> int:
    """List dead-letter queues, or move a queue's dead letters back onto it."""
    from mesh import dead_letters

    if action == "list":
        for name, count in dead_letters.counts(settings.amqp_uri).items():
            print(
                f"{count:8d}  {dead_letters.dead_letter_queue(name)}  (replay: dlq replay {name})"
            )
        return 0
    if not queue:
        print("dlq replay needs a queue name (see `dlq list`)", file=sys.stderr)
        return 2
    try:
        moved = dead_letters.replay(settings.amqp_uri, queue)
    except dead_letters.UnknownQueue:
        print(f"no dead-letter queue for {queue!r}; see `dlq list`", file=sys.stderr)
        return 2
    print(f"replayed {moved} message(s) onto {queue}")
    return 0


def reap(settings: Settings, grace: float) -> int:
    """Stop every process of this var dir's mesh that outlived supervisord; say which."""
    from mesh import orphans

    var_dir = settings.mesh_var_dir.resolve()
    found = orphans.reap(var_dir, grace)
    for process in found:
        print(f"stopped leftover process {process.pid}: {process.command}")
    if not found:
        print(f"no process of the mesh in {var_dir} is left")
    return 0


def watch_job(settings: Settings, job_id: str, interval: float) -> int:
    """Show a publishing job as a progress bar until it ends: 0 if it succeeded."""
    from tqdm import tqdm

    from contracts.base import OPERATOR
    from contracts.courses import CoursesApi
    from contracts.errors import MeshError
    from mesh.rpc import standalone_client

    with (
        standalone_client(CoursesApi, "courses", settings) as courses,
        tqdm(total=100, unit="%", bar_format="{desc} {bar} {n:3.0f}%") as bar,
    ):
        while True:
            try:
                job = courses.get_job(job_id, OPERATOR)
            except MeshError as exc:
                bar.write(f"job {job_id}: {exc}")
                return 2
            bar.set_description_str(
                f"{job.status:9} {job.step:9} {job.step_index}/{job.steps_total}"
            )
            bar.update(job.percent - bar.n)
            if job.status in ("succeeded", "failed"):
                break
            time.sleep(interval)
    if job.status == "failed":
        print(f"job {job_id} failed: {job.error}", file=sys.stderr)
        return 1
    return 0


def metrics_serve(settings: Settings, host: str, port: int) -> int:
    """Serve the metrics files of this machine's processes (a machine with no gateway)."""
    from mesh.metrics import metrics_dir, serve_textfiles

    folder = metrics_dir(settings.mesh_var_dir)
    server, thread = serve_textfiles(folder, host, port)
    print(f"serving {folder} on http://{host}:{server.server_port}/metrics", flush=True)
    thread.join()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesh", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-services", help="check that RabbitMQ and Redis answer")
    ready = commands.add_parser("wait-ready", help="wait until GET /ready answers 200")
    ready.add_argument("--timeout", type=float, default=120)
    admin = commands.add_parser(
        "create-admin",
        help=f"create or promote an admin user (password: {ADMIN_PASSWORD_ENV} or a prompt)",
    )
    admin.add_argument("--email", required=True)
    # Refused with a message saying why (see admin_password), rather than "unknown argument".
    admin.add_argument("--password", help=argparse.SUPPRESS)
    admin.add_argument("--name", default="Admin")
    dead = commands.add_parser("dlq", help="inspect or replay dead-lettered events")
    dead.add_argument("action", choices=["list", "replay"])
    dead.add_argument("queue", nargs="?")
    leftovers = commands.add_parser(
        "reap", help="stop processes of this MESH_VAR_DIR's mesh that outlived supervisord"
    )
    leftovers.add_argument("--grace", type=float, default=10, help="seconds before SIGKILL")
    jobs = commands.add_parser("jobs", help="follow a course publishing job")
    jobs.add_argument("action", choices=["watch"])
    jobs.add_argument("job_id")
    jobs.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    serve = commands.add_parser(
        "metrics-serve", help="serve this machine's metrics files (where no gateway runs)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9464)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # nameko imports eventlet, which warns on import; the CLI never runs eventlet.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    args = build_parser().parse_args(argv)
    settings = get_settings()
    commands: dict[str, Callable[[], int]] = {
        "check-services": lambda: check_services(settings),
        "wait-ready": lambda: wait_ready(settings, args.timeout),
        "create-admin": lambda: create_admin_command(
            settings, args.email, args.name, args.password is not None
        ),
        "dlq": lambda: dlq(settings, args.action, args.queue),
        "jobs": lambda: watch_job(settings, args.job_id, args.interval),
        "reap": lambda: reap(settings, args.grace),
        "metrics-serve": lambda: metrics_serve(settings, args.host, args.port),
    }
    return commands[args.command]()


if __name__ == "__main__":
    sys.exit(main())

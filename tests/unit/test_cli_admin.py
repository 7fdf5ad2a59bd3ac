"""``mesh create-admin`` never takes the password from its command line.

A command line shows in ``ps`` and in the shell history, so the password comes from
MESH_ADMIN_PASSWORD or from a prompt on a terminal, and ``--password`` is refused.
"""

from __future__ import annotations

import io

import pytest

from mesh import cli
from mesh.settings import Settings


class Terminal(io.StringIO):
    """A stdin that is a terminal."""

    def isatty(self) -> bool:
        return True


class Answers:
    """Answers a prompt with the given lines, in order, and records the prompts."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Stands in for the users service call: records (email, password, name)."""
    calls: list[tuple[str, str, str]] = []

    def create_admin(settings: Settings, email: str, password: str, name: str) -> int:
        calls.append((email, password, name))
        return 0

    monkeypatch.setattr(cli, "create_admin", create_admin)
    return calls


def test_the_environment_variable_gives_the_password() -> None:
    ask = Answers()
    environ = {"MESH_ADMIN_PASSWORD": "correct-horse-battery-9"}
    assert cli.admin_password(environ, Terminal(), ask) == "correct-horse-battery-9"
    assert ask.prompts == []


def test_a_terminal_is_asked_twice() -> None:
    ask = Answers("correct-horse-battery-9", "correct-horse-battery-9")
    assert cli.admin_password({}, Terminal(), ask) == "correct-horse-battery-9"
    assert len(ask.prompts) == 2


def test_two_different_answers_are_refused() -> None:
    with pytest.raises(cli.NoPassword, match="differ"):
        cli.admin_password({}, Terminal(), Answers("correct-horse-battery-9", "typo"))


def test_the_end_of_input_at_the_prompt_is_no_password() -> None:
    def closed(prompt: str) -> str:
        raise EOFError

    with pytest.raises(cli.NoPassword, match="no answer"):
        cli.admin_password({}, Terminal(), closed)


def test_without_a_terminal_or_the_variable_it_says_what_to_set() -> None:
    with pytest.raises(cli.NoPassword, match="MESH_ADMIN_PASSWORD"):
        cli.admin_password({}, io.StringIO(), Answers())


def test_password_on_the_command_line_is_refused(
    created: list[tuple[str, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MESH_ADMIN_PASSWORD", "correct-horse-battery-9")
    argv = ["create-admin", "--email", "root@example.com", "--password", "on-the-command-line"]
    assert cli.main(argv) == 2
    assert created == []
    err = capsys.readouterr().err
    assert "--password is refused" in err
    assert "MESH_ADMIN_PASSWORD" in err
    assert "on-the-command-line" not in err


def test_the_command_takes_the_password_from_the_environment(
    created: list[tuple[str, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESH_ADMIN_PASSWORD", "correct-horse-battery-9")
    assert cli.main(["create-admin", "--email", "root@example.com", "--name", "Root"]) == 0
    assert created == [("root@example.com", "correct-horse-battery-9", "Root")]


def test_the_command_without_any_password_stops_before_the_users_service(
    created: list[tuple[str, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MESH_ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO())
    assert cli.main(["create-admin", "--email", "root@example.com"]) == 2
    assert created == []
    assert "no password: set MESH_ADMIN_PASSWORD" in capsys.readouterr().err

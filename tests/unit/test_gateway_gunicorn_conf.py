"""The gateway's gunicorn settings: one socket per worker, and never a port shared with
another gateway."""

from __future__ import annotations

import importlib
import socket
from types import ModuleType

import pytest


@pytest.fixture
def gunicorn_conf(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # Importing the settings file sets this variable for the gateway's workers; here it must
    # not outlive the test and turn other tests' metrics multiprocess.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent")
    return importlib.import_module("gateway.gunicorn_conf")


def test_each_worker_listens_on_its_own_socket(gunicorn_conf: ModuleType) -> None:
    assert gunicorn_conf.reuse_port is True


def test_a_port_something_listens_on_is_refused_and_a_free_one_taken(
    gunicorn_conf: ModuleType,
) -> None:
    with socket.create_server(("127.0.0.1", 0), reuse_port=True) as taken:
        port = taken.getsockname()[1]
        # even by a listener that allows sharing: a second gateway must not get half of it
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}"):
            gunicorn_conf._refuse_a_taken_port("127.0.0.1", port)
    gunicorn_conf._refuse_a_taken_port("127.0.0.1", port)


def test_an_ipv6_address_is_checked_in_its_own_family(gunicorn_conf: ModuleType) -> None:
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit, match=f"cannot listen on ::1:{port}"):
            gunicorn_conf._refuse_a_taken_port("::1", port)
    gunicorn_conf._refuse_a_taken_port("::1", port)


def test_gunicorn_builds_no_access_record_of_its_own(gunicorn_conf: ModuleType) -> None:
    """The app writes the access line; gunicorn's logger must not even format one."""
    from gunicorn.config import Config

    config = Config()
    config.set("logconfig_dict", gunicorn_conf.logconfig_dict)
    config.set("logger_class", gunicorn_conf.logger_class)
    logger = config.logger_class(config)

    class Unreadable:
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"gunicorn read the response's {name}")

    logger.access(Unreadable(), Unreadable(), {}, None)

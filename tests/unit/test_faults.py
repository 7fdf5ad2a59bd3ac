"""mesh.faults: the MESH_FAULTS parser, arming, and the refusal in production."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from mesh.faults import CRASH_EXIT_CODE, Fault, Faults, FaultSpecError, parse
from mesh.settings import Settings


def test_parse_reads_every_fault() -> None:
    spec = " notifications.after_effect=pause:2.5 , users.after_commit=crash,"
    assert parse(spec) == {
        "notifications.after_effect": Fault("pause", 2.5),
        "users.after_commit": Fault("crash"),
    }


@pytest.mark.parametrize("spec", [None, "", "  ", ","])
def test_parse_of_nothing_is_no_fault(spec: str | None) -> None:
    assert parse(spec) == {}


@pytest.mark.parametrize(
    "spec",
    [
        "after_effect=crash",  # no service
        "users.=crash",
        ".after_commit=crash",
        "users.after_commit",  # no action
        "users.after_commit=explode",
        "users.after_commit=pause",
        "users.after_commit=pause:",
        "users.after_commit=pause:soon",
        "users.after_commit=pause:0",
        "users.after_commit=pause:-1",
        "users.after_commit=pause:3601",
        "users.after_commit=crash,users.after_commit=pause:1",  # twice
    ],
)
def test_parse_refuses_a_bad_spec(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse(spec)


def production(mesh_faults: str | None) -> Settings:
    return Settings(
        mesh_env="production",
        jwt_secret=SecretStr("x" * 40),
        mongo_url="mongodb://db:27017/",
        mesh_faults=mesh_faults,
    )


def test_settings_refuse_faults_in_production() -> None:
    with pytest.raises(ValidationError, match="MESH_FAULTS"):
        production("users.after_commit=crash")
    assert production(" ").mesh_env == "production"  # blank: no fault, accepted
    assert production(None).mesh_env == "production"


def test_settings_refuse_a_bad_spec_at_start_up() -> None:
    with pytest.raises(ValidationError, match="expected"):
        Settings(mesh_faults="users.after_commit=explode")
    assert Settings(mesh_faults="users.after_commit=crash").mesh_faults


def test_an_unarmed_or_unlisted_point_does_nothing(tmp_path: Path) -> None:
    faults = Faults.from_spec("users.after_commit=pause:3600", tmp_path)
    faults.hit("users.after_commit", {"user_id": 1})  # listed, not armed: returns at once
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "orders.after_commit").write_text("")
    faults.hit("orders.after_commit")  # armed, not listed
    assert (tmp_path / "faults" / "orders.after_commit").exists()
    Faults.from_spec(None, tmp_path).hit("users.after_commit")


def test_an_armed_pause_fires_once_for_the_matching_detail(tmp_path: Path) -> None:
    arm = tmp_path / "faults"
    arm.mkdir()
    (arm / "notifications.after_effect").write_text('{"type": "user.registered", "user_id": 7}')
    faults = Faults.from_spec("notifications.after_effect=pause:0.01", tmp_path)

    faults.hit("notifications.after_effect", {"type": "user.registered", "user_id": 8})
    faults.hit("notifications.after_effect", {"type": "order.created", "user_id": 7})
    faults.hit("notifications.after_effect", ["not", "an", "event"])
    assert (arm / "notifications.after_effect").exists()  # another event: still armed
    assert not (arm / "notifications.after_effect.fired").exists()

    faults.hit("notifications.after_effect", {"user_id": 7, "type": "user.registered"})
    assert not (arm / "notifications.after_effect").exists()  # disarmed by firing
    fired = json.loads((arm / "notifications.after_effect.fired").read_text())
    assert fired["pid"] > 0
    assert '"user_id":7' in fired["detail"]

    (arm / "notifications.after_effect.fired").unlink()
    faults.hit("notifications.after_effect", {"type": "user.registered", "user_id": 7})
    assert not (arm / "notifications.after_effect.fired").exists()  # fired once only


def test_an_unreadable_arm_never_fires(tmp_path: Path) -> None:
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "users.after_commit").write_text("{not json")
    Faults.from_spec("users.after_commit=pause:3600", tmp_path).hit("users.after_commit", {})
    assert (tmp_path / "faults" / "users.after_commit").exists()


def test_an_armed_crash_exits_at_once(tmp_path: Path) -> None:
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "users.after_commit").write_text("")
    code = (
        "import sys; from pathlib import Path; from mesh.faults import Faults; "
        f"Faults.from_spec('users.after_commit=crash', Path({str(tmp_path)!r}))"
        ".hit('users.after_commit'); print('survived'); sys.exit(0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == CRASH_EXIT_CODE, done.stdout + done.stderr
    assert "survived" not in done.stdout
    fired = json.loads((tmp_path / "faults" / "users.after_commit.fired").read_text())
    assert fired["detail"] == "null"

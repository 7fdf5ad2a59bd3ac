"""supervisord.conf with each layout of supervisord.d/, read by supervisord's own parser.

One replica (the default) keeps every name and log of supervisord.conf; MESH_REPLICAS=N runs
N of each service and of the workers, each named and logged apart, and one of the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from supervisor.options import ServerOptions

ROOT = Path(__file__).resolve().parents[2]
# One process whatever MESH_REPLICAS says (supervisord.d/replicas.conf says why).
SINGLE = {"mongo", "content", "mirror", "gateway"}


def processes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, layout: str, replicas: int
) -> dict[str, list[tuple[str, str]]]:
    """``{group: [(process name, log file name)]}`` as supervisord would run them."""
    for folder in ("log", "run"):
        (tmp_path / folder).mkdir(exist_ok=True)
    for name, value in {
        "MESH_VAR_DIR": str(tmp_path),
        "MESH_EMBEDDED_MONGO": "true",
        "MONGO_EMBEDDED_PORT": "27027",
        "MESH_LAYOUT": layout,
        "MESH_REPLICAS": str(replicas),
    }.items():
        monkeypatch.setenv(name, value)
    options = ServerOptions()
    options.realize(["-c", str(ROOT / "supervisord.conf")])
    assert not options.parse_warnings, options.parse_warnings
    return {
        group.name: [(p.name, Path(p.stdout_logfile).name) for p in group.process_configs]
        for group in options.process_group_configs
    }


def test_one_replica_keeps_every_name_and_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    groups = processes(monkeypatch, tmp_path, "single", 1)
    assert {"users", "workers", "gateway"} <= set(groups)
    for group, members in groups.items():
        assert members == [(group, f"{group}.log")]


def test_replicas_run_each_service_and_the_workers_n_times(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    single = processes(monkeypatch, tmp_path, "single", 1)
    groups = processes(monkeypatch, tmp_path, "replicas", 3)
    assert set(groups) == set(single)
    for group, members in groups.items():
        if group in SINGLE:
            assert members == [(group, f"{group}.log")]
        else:
            assert members == [(f"{group}-{i}", f"{group}-{i}.log") for i in range(3)]
    logs = [log for members in groups.values() for _, log in members]
    assert len(logs) == len(set(logs)), "two processes share a log file"

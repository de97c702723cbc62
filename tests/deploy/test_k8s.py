"""deploy/k8s: built-in kinds against Kubernetes' OpenAPI schemas (kubernetes-validate, strict); KEDA's
objects against models generated from KEDA's CRDs (cloudcoil-models-keda) and, for what the CRDs leave open
(the redis scaler's trigger parameters), a schema written here from KEDA's docs."""

from __future__ import annotations

import copy
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pydantic
import pytest
import yaml

from tests.support.deploy import DEPLOY, load_all, parse_command, settings_from_env, unknown_settings

K8S = DEPLOY / "k8s"
# The oldest minor the manifests promise to work on, and the newest kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())

# KEDA is not in Kubernetes' schemas. This is the part of KEDA 2.x's CRDs these manifests use, written from
# keda.sh/docs/latest/reference/scaledobject-spec, .../concepts/authentication and .../scalers/redis-lists,
# with field names and types checked against the CRDs (config/crd/bases/keda.sh_*.yaml, KEDA 2.20). Unknown
# fields are errors here, as with `kubectl apply`'s strict field validation.
_INT = {"type": "integer"}
_SCALING_RULES = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "tolerance": {"type": ["string", "number"]},
        "policies": {"type": "array", "items": {
            "type": "object", "required": ["type", "value", "periodSeconds"], "additionalProperties": False,
            "properties": {"type": {"enum": ["Pods", "Percent"]}, "value": {"type": "integer", "minimum": 1},
                           "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800}}}},
    },
}
# The redis (lists) scaler's trigger parameters (pkg/scalers/redis_scaler.go); any may also come `...FromEnv`.
_REDIS_PARAMETERS = ["address", "addresses", "host", "hosts", "port", "ports", "username", "password",
                     "sentinelUsername", "sentinelPassword", "sentinelMaster", "listName", "listLength",
                     "activationListLength", "databaseIndex", "enableTLS", "unsafeSsl"]
_TRIGGER = {
    "type": "object", "required": ["type", "metadata"], "additionalProperties": False,
    "properties": {
        "type": {"type": "string"}, "name": {"type": "string"}, "useCachedMetrics": {"type": "boolean"},
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "authenticationRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                              "properties": {"name": {"type": "string"},
                                             "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]}}},
    },
    "if": {"properties": {"type": {"const": "redis"}}},
    "then": {"properties": {"metadata": {
        "required": ["listName"],
        "propertyNames": {"enum": _REDIS_PARAMETERS + [f"{name}FromEnv" for name in _REDIS_PARAMETERS]},
        "properties": {name: {"pattern": r"^\d+$"} for name in ("listLength", "activationListLength", "databaseIndex")},
    }}},
}
_SCALED_OBJECT_SPEC = {
    "type": "object", "required": ["scaleTargetRef", "triggers"], "additionalProperties": False,
    "properties": {
        "scaleTargetRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                           "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                          "apiVersion": {"type": "string"},
                                          "envSourceContainerName": {"type": "string"}}},
        "pollingInterval": {"type": "integer", "minimum": 1},
        "cooldownPeriod": {"type": "integer", "minimum": 0},
        "initialCooldownPeriod": {"type": "integer", "minimum": 0},
        "idleReplicaCount": _INT,
        "minReplicaCount": {"type": "integer", "minimum": 0},
        "maxReplicaCount": {"type": "integer", "minimum": 1},
        "fallback": {"type": "object"},
        "advanced": {"type": "object", "additionalProperties": False, "properties": {
            "restoreToOriginalReplicaCount": {"type": "boolean"},
            "scalingModifiers": {"type": "object"},
            "horizontalPodAutoscalerConfig": {"type": "object", "additionalProperties": False, "properties": {
                "name": {"type": "string"},
                "behavior": {"type": "object", "additionalProperties": False,
                             "properties": {"scaleUp": _SCALING_RULES, "scaleDown": _SCALING_RULES}}}}}},
        "triggers": {"type": "array", "minItems": 1, "items": _TRIGGER},
    },
}
_TRIGGER_AUTHENTICATION_SPEC = {
    "type": "object", "minProperties": 1,
    "properties": {"secretTargetRef": {"type": "array", "items": {
        "type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False,
        "properties": {"parameter": {"type": "string"}, "name": {"type": "string"}, "key": {"type": "string"}}}}},
}


def _keda(kind: str, spec: dict) -> dict:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
            "properties": {"apiVersion": {"const": "keda.sh/v1alpha1"}, "kind": {"const": kind},
                           "metadata": {"type": "object", "required": ["name"]}, "spec": spec}}


KEDA_SCHEMAS = {"ScaledObject": _keda("ScaledObject", _SCALED_OBJECT_SPEC),
                "TriggerAuthentication": _keda("TriggerAuthentication", _TRIGGER_AUTHENTICATION_SPEC)}


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def manifests() -> list[dict]:
    return [doc for name in kustomization()["resources"] for doc in load_all(K8S / name)]


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


class UnknownFields(ValueError):
    """Fields KEDA's CRD does not define (``kubectl apply`` with strict field validation refuses them)."""


def keda_crd_check(doc: dict) -> None:
    """``doc`` against the pydantic models cloudcoil generates from KEDA's own CRDs (cloudcoil-models-keda):
    types and required fields by pydantic, unknown fields by what a parse and dump would drop."""
    from cloudcoil.models.keda import v1alpha1

    parsed = getattr(v1alpha1, doc["kind"]).model_validate(doc)
    kept = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    if dropped := _dropped(doc, kept):
        raise UnknownFields(f"{doc['kind']}/{doc['metadata']['name']}: not in KEDA's CRD: {', '.join(dropped)}")


def _dropped(given: object, kept: object, path: str = "") -> list[str]:
    if isinstance(given, dict) and isinstance(kept, dict):
        return [f"{path}.{key}".lstrip(".") for key in given if key not in kept] + [
            miss for key in given if key in kept for miss in _dropped(given[key], kept[key], f"{path}.{key}")]
    if isinstance(given, list) and isinstance(kept, list):
        return [miss for index, (a, b) in enumerate(zip(given, kept)) for miss in _dropped(a, b, f"{path}[{index}]")]
    return []


def validate(doc: dict) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        keda_crd_check(doc)
        # Also the parts a CRD leaves open: the redis scaler's trigger parameters and their formats.
        jsonschema.Draft202012Validator.check_schema(KEDA_SCHEMAS[doc["kind"]])
        jsonschema.validate(doc, KEDA_SCHEMAS[doc["kind"]], cls=jsonschema.Draft202012Validator)
    else:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def pod_specs() -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc["spec"]["template"]["spec"] for doc in manifests()
            if doc["kind"] in ("Deployment", "Job")}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_kustomization_lists_every_manifest_and_names_every_image():
    listed = set(kustomization()["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    images = {entry["name"] for entry in kustomization()["images"]}
    used = {each["image"] for pod in pod_specs().values() for each in pod["containers"]}
    assert used == images, "a container image kustomize does not rewrite would be pulled from Docker Hub"


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_matches_its_schema(doc):
    validate(doc)


def _broken(kind: str, name: str, path: tuple, value) -> dict:
    doc = copy.deepcopy(by_kind(kind)[name])
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(("kind", "name", "path", "value"), [
    ("Deployment", "stackyard-web", ("spec", "replicas"), "two"),
    ("Deployment", "stackyard-web", ("spec", "template", "spec", "containers", 0, "envForm"), []),
    ("Deployment", "stackyard-web", ("spec", "template", "spec", "containers", 0, "readinessProbe", "httpGet", "paht"), "/"),
    ("Job", "stackyard-migrate", ("spec", "template", "spec", "restartPolicy"), ["Never"]),
    ("Ingress", "stackyard", ("spec", "rules", 0, "http", "paths", 0, "pathType"), 3),
    ("ScaledObject", "stackyard-worker-cpu", ("spec", "triggers", 0, "metadata", "listLength"), 4),
    ("ScaledObject", "stackyard-worker-cpu", ("spec", "triggers", 0, "metadata", "listname"), "cpu"),
    ("ScaledObject", "stackyard-worker-cpu", ("spec", "minReplicas"), 1),
    ("ScaledObject", "stackyard-worker-cpu",
     ("spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "stabilizationWindowSeconds"), "600"),
    ("TriggerAuthentication", "stackyard-redis", ("spec", "secretTargetRef", 0, "secret"), "stackyard-redis"),
])
def test_the_schema_checks_catch_mistakes(kind, name, path, value):
    # kubernetes_validate.ValidationError is a jsonschema one; the KEDA CRD models raise pydantic's or UnknownFields
    with pytest.raises((jsonschema.ValidationError, pydantic.ValidationError, UnknownFields)):
        validate(_broken(kind, name, path, value))


@pytest.mark.parametrize(("kind", "name", "path", "value"), [
    ("ScaledObject", "stackyard-worker-cpu", ("spec", "minReplicas"), 1),
    ("ScaledObject", "stackyard-worker-cpu", ("spec", "pollingInterval"), "often"),
    ("ScaledObject", "stackyard-worker-cpu", ("spec", "triggers"), "redis"),
    ("ScaledObject", "stackyard-worker-cpu", ("spec", "scaleTargetRef", "nmae"), "x"),
    ("TriggerAuthentication", "stackyard-redis", ("spec", "secretTargetRef", 0, "secret"), "stackyard-redis"),
])
def test_the_keda_crd_models_alone_catch_mistakes(kind, name, path, value):
    keda_crd_check(by_kind(kind)[name])
    with pytest.raises((pydantic.ValidationError, UnknownFields)):
        keda_crd_check(_broken(kind, name, path, value))


def test_web_probes_metrics_and_one_process_per_pod():
    deployment = by_kind("Deployment")["stackyard-web"]
    web = container(deployment)
    command = parse_command(web["args"])
    assert command.command == "web" and command.host == "0.0.0.0"
    assert command.workers == 1, "/metrics' HTTP histogram is per process: one uvicorn process per scraped pod"
    assert web["ports"] == [{"name": "http", "containerPort": command.port}]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(command.port),
                           "prometheus.io/path": "/metrics"}
    service = by_kind("Service")["stackyard-web"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_workers_beat_and_migrations():
    deployments = by_kind("Deployment")
    cpu, gpu = container(deployments["stackyard-worker-cpu"]), container(deployments["stackyard-worker-gpu"])
    assert parse_command(cpu["args"]).queues == "cpu"
    assert (parse_command(gpu["args"]).queues, parse_command(gpu["args"]).concurrency) == ("gpu", 1)
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1 and gpu["image"] == "stackyard-gpu"
    gpu_pod = deployments["stackyard-worker-gpu"]["spec"]["template"]["spec"]
    assert gpu_pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in gpu_pod["tolerations"])
    hard_limit = int(by_kind("ConfigMap")["stackyard"]["data"]["STACKYARD_RUN_HARD_TIME_LIMIT"])
    for name in ("stackyard-worker-cpu", "stackyard-worker-gpu"):
        grace = deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > hard_limit, f"{name} would be killed before a running run reaches its hard limit"
    assert parse_command(container(deployments["stackyard-beat"])["args"]).command == "beat"
    (job,) = by_kind("Job").values()
    assert parse_command(job["spec"]["template"]["spec"]["containers"][0]["args"]).command == "migrate"


def test_keda_scales_the_cpu_workers_on_the_brokers_cpu_list():
    assert "replicas" not in by_kind("Deployment")["stackyard-worker-cpu"]["spec"], \
        "KEDA's HPA owns the replica count; a replicas field resets it on every kubectl apply"
    (scaler,) = by_kind("ScaledObject").values()
    assert scaler["spec"]["scaleTargetRef"]["name"] == "stackyard-worker-cpu"
    (trigger,) = scaler["spec"]["triggers"]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == "cpu"
    broker = urlsplit(by_kind("Secret")["stackyard"]["stringData"]["STACKYARD_BROKER_URL"])
    assert trigger["metadata"]["address"] == broker.netloc.rpartition("@")[2]
    assert trigger["metadata"]["databaseIndex"] == (broker.path.strip("/") or "0")
    (auth,) = by_kind("TriggerAuthentication").values()
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert by_kind("Secret")[ref["name"]]["stringData"][ref["key"]] == broker.password


def test_env_is_only_real_settings():
    names = set(by_kind("ConfigMap")["stackyard"]["data"]) | set(by_kind("Secret")["stackyard"]["stringData"])
    for pod in pod_specs().values():
        for each in pod["containers"]:
            names |= {env["name"] for env in each.get("env", [])}
            assert {"configMapRef": {"name": "stackyard"}} in each["envFrom"]
            assert {"secretRef": {"name": "stackyard"}} in each["envFrom"]
    assert {"STACKYARD_DATABASE_URL", "STACKYARD_BROKER_URL", "STACKYARD_MILVUS_URI", "STACKYARD_LOG_FORMAT"} <= names
    assert unknown_settings(names) == set()


def test_configmap_and_secret_parse_into_settings(monkeypatch):
    env = {**by_kind("ConfigMap")["stackyard"]["data"], **by_kind("Secret")["stackyard"]["stringData"]}
    settings = settings_from_env(env, monkeypatch)
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.log_format == "json" and settings.db_durable_commits is True
    assert not settings.embedded_milvus

"""The Helm chart, rendered by the real Helm engine (the Go library inside the helm-python-sdk
wheel) and checked against Kubernetes' own schemas (kubernetes-validate, strict: an unknown or
misplaced field fails). No cluster, no network, no helm binary."""

from __future__ import annotations

import base64
import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm  # the dev extra: a missing engine must fail, not skip
import kubernetes_validate
import pytest
import yaml

from service.config import Settings
from service.intake.routes import DEFAULT_CONTRACTS_DIR, load_route_table
from service.tenants import TenantDirectory

CHART = Path(__file__).resolve().parents[2] / "helm" / "sagebridge"
KUBE_VERSION = "1.33.0"
CRD_API_VERSIONS = {"monitoring.coreos.com/v1", "keda.sh/v1alpha1"}

TOKEN = "default-token-5e1d9b7c"
BETA_TOKEN = "beta-token-77a0c2"
SASL_PASSWORD = "sasl-pass-91f3e"
REDIS_PASSWORD = "redis-pass-3c8e1a"
REGISTRY_PASSWORD = "registry-pass-0d4b7e"
PROXY_PASSWORD = "proxy-pass-58c2a9"
SECRETS = (TOKEN, BETA_TOKEN, SASL_PASSWORD, REDIS_PASSWORD, REGISTRY_PASSWORD, PROXY_PASSWORD)

EVERYTHING_ON: dict[str, Any] = {
    "replicaCount": 3,
    "image": {"repository": "registry.example/sagebridge", "tag": "1.2.3"},
    "settings": {
        "KAFKA_BOOTSTRAP": "kafka-0.kafka:9093,kafka-1.kafka:9093",
        "INPUT_TOPICS": "crm.events,crm.invoices",
        "GROUP_ID": "sagebridge-prod",
        "REPLY_TOPIC": "sage.replies",
        "DLT_TOPIC": "sage.dlt",
        "REDIS_URL": "redis://redis:6379/0",
        "CONNECTOR_URL": "https://connector.example",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_IDEMPOTENCE": True,
        "HTTP_PORT": 9100,
        "LOG_LEVEL": "DEBUG",
        "REPLY_TOPICS": "crm.*.replies",
        "RETRY_AFTER_MAX_S": 120,
        "MAX_RECORD_IDS": 5000,
        "SCHEMA_REGISTRY_URL": "https://registry.example",
        "SCHEMA_REGISTRY_USER": "registry-key",
        "IMAGE_TTL_S": 2592000,
        "IMAGE_MAX_BYTES": 262144,
    },
    "schemaRegistry": {"password": REGISTRY_PASSWORD},
    "connector": {
        "ca": {"configMapName": "corp-ca-bundle", "key": "bundle.pem"},
        "clientCert": {"secretName": "connector-client-tls"},
        "proxy": {"https": "http://proxy.corp:3128", "noProxy": ".svc,.cluster.local"},
    },
    "defaultTenant": {"customer": "1001", "company": "ACME", "token": TOKEN},
    "tenants": [
        {
            "customer": "2002",
            "company": "BETA",
            "tokenEnv": "BETA_SAGE_TOKEN",
            "token": BETA_TOKEN,
            "replyTopics": ["beta.replies", "beta.*.answers"],
        }
    ],
    "kafka": {
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "sagebridge", "password": SASL_PASSWORD},
        "tls": {"secretName": "kafka-client-tls", "certKey": "tls.crt", "keyKey": "tls.key"},
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "keda": {"enabled": True, "authenticationRef": "kafka-auth"},
    "networkPolicy": {
        "enabled": True,
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        "egress": {
            "kafka": {"ports": [9093], "to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}]},
            "redis": {"ports": [6379]},
            "connector": {"ports": [443]},
        },
    },
    "grafanaDashboard": {"enabled": True},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "sagebridge"}},
        }
    ],
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    values = copy.deepcopy(base)
    values.update(changes)
    return values


XREF_TABLES = {
    "salesforce_accounts": "AccountId,ARDivisionNo,CustomerNo\n001Ak00000AbCdEfGH,01,ACME\n",
    "salesforce_contacts": "ContactId,ContactCode,ARDivisionNo,CustomerNo\n"
    "003Ak00000XyZaBcDE,JSMITH,01,ACME\n",
}
WITH_XREF = with_(EVERYTHING_ON, crossReferences={"tables": XREF_TABLES})
EXISTING_SECRET = with_(EVERYTHING_ON, existingSecret="sagebridge-tokens")
HPA = with_(EVERYTHING_ON, keda={"enabled": False}, autoscaling={"enabled": True})
REDIS_WITH_PASSWORD = with_(
    EVERYTHING_ON,
    settings={
        **EVERYTHING_ON["settings"],
        "REDIS_URL": f"rediss://sagebridge:{REDIS_PASSWORD}@redis:6380/0",
    },
)
TOKEN_FILES = with_(EVERYTHING_ON, tenantTokenFiles={"enabled": True})
TOKEN_FILES_EXISTING = with_(EXISTING_SECRET, tenantTokenFiles={"enabled": True})
PROXY_URL_WITH_PASSWORD = f"http://sagebridge:{PROXY_PASSWORD}@proxy.corp:3128"
CONNECTOR_SECRETS = with_(
    EVERYTHING_ON,
    connector={
        "ca": {"secretName": "corp-ca", "key": "ca.pem", "mountPath": "/etc/corp-ca"},
        "clientCert": {"secretName": "connector-client", "certKey": "both.pem", "keyKey": ""},
        "proxy": {"https": PROXY_URL_WITH_PASSWORD},
    },
)


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def chart_app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))["appVersion"])


def render(chart: Any, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    manifests = chart.render(values, name="prod", namespace="integrations", is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def one(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{len(found)} {kind} objects named *{suffix}"
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects}


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [only] = one(objects, "Deployment", "prod-sagebridge")["spec"]["template"]["spec"]["containers"]
    return dict(only)


VARIANTS = {
    "defaults": None,
    "everything": EVERYTHING_ON,
    "existing": EXISTING_SECRET,
    "hpa": HPA,
    "redis-password": REDIS_WITH_PASSWORD,
    "token-files": TOKEN_FILES,
    "token-files-existing": TOKEN_FILES_EXISTING,
    "connector-secrets": CONNECTOR_SECRETS,
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_lint_is_clean(variant: str) -> None:
    report = helm.lint(CHART, VARIANTS[variant], strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 1 is info ("icon")
    assert not problems and not report["errors"], report


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_builtin_object_is_valid_kubernetes(chart: Any, variant: str) -> None:
    objects = render(chart, VARIANTS[variant])
    builtin = [o for o in objects if o["apiVersion"] not in CRD_API_VERSIONS]
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget"} <= kinds(builtin)
    for obj in builtin:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {exc.path}")


def test_defaults_render_the_core_and_no_options(chart: Any) -> None:
    objects = render(chart)
    assert kinds(objects) == {
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
    }
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    config = one(objects, "ConfigMap")["data"]
    assert config["SAGEBRIDGE_KAFKA_IDEMPOTENCE"] == "true", "real Kafka: idempotent producer"
    assert config["SAGEBRIDGE_CONTRACTS_DIR"] == "/app/contracts", "the image's contracts"
    connector_files = [k for k in config if k.startswith("SAGEBRIDGE_CONNECTOR_C")]
    assert not connector_files, "no Connector CA or certificate unless asked for"
    assert [m["mountPath"] for m in container(objects)["volumeMounts"]] == ["/tmp"]
    assert "env" not in container(objects), "no proxy unless asked for"


def test_everything_on_renders_every_option(chart: Any) -> None:
    objects = render(chart, EVERYTHING_ON)
    assert {"ServiceMonitor", "ScaledObject", "NetworkPolicy", "Secret"} <= kinds(objects)
    assert one(objects, "ConfigMap", "-dashboard")
    assert "replicas" not in one(objects, "Deployment")["spec"], "KEDA owns the replica count"
    hpa = render(chart, HPA)
    assert one(hpa, "HorizontalPodAutoscaler")["apiVersion"] == "autoscaling/v2"
    assert "ScaledObject" not in kinds(hpa)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_names_its_namespace(chart: Any, variant: str) -> None:
    """checkov's CKV_K8S_21: an object without ``metadata.namespace`` lands wherever the
    applying context points, not necessarily where the release lives."""
    objects = render(chart, VARIANTS[variant])
    assert {o["metadata"].get("namespace") for o in objects} == {"integrations"}


def test_an_image_digest_pins_the_image(chart: Any) -> None:
    digest = "sha256:" + "ab" * 32
    assert container(render(chart))["image"] == "sagebridge:" + chart_app_version()
    pinned = render(chart, {"image": {"repository": "reg/sagebridge", "digest": digest}})
    assert container(pinned)["image"] == "reg/sagebridge@" + digest


@pytest.mark.parametrize("variant", ["defaults", "everything"])
def test_probes_use_the_settings_port(chart: Any, variant: str) -> None:
    values = VARIANTS[variant]
    objects = render(chart, values)
    port = ((values or {}).get("settings") or {}).get("HTTP_PORT", 8000)
    c = container(objects)
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert one(objects, "ConfigMap", "sagebridge")["data"]["SAGEBRIDGE_HTTP_PORT"] == str(port)
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    [service_port] = one(objects, "Service")["spec"]["ports"]
    assert service_port["name"] == "http" and service_port["targetPort"] == "http"


def test_security_context_and_resources(chart: Any) -> None:
    objects = render(chart)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["terminationGracePeriodSeconds"] >= 30, "room for the SIGTERM drain"
    c = container(objects)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume, "a writable /tmp on a read-only root"


@pytest.mark.parametrize("variant", VARIANTS)
def test_configmaps_hold_real_settings_and_no_secret(chart: Any, variant: str) -> None:
    objects = render(chart, VARIANTS[variant])
    fields = set(Settings.model_fields)
    for cm in (o for o in objects if o["kind"] == "ConfigMap"):
        text = json.dumps(cm)
        for secret in SECRETS:
            assert secret not in text, f"a token is in ConfigMap {cm['metadata']['name']}"
        if cm["metadata"]["name"] == "prod-sagebridge":
            for key in cm["data"]:
                assert key.startswith("SAGEBRIDGE_"), key
                assert key.removeprefix("SAGEBRIDGE_").lower() in fields, f"{key}: no such setting"
            assert "SAGEBRIDGE_AUTH_TOKEN" not in cm["data"]
            assert "SAGEBRIDGE_KAFKA_SASL_PASSWORD" not in cm["data"]


def test_tokens_live_in_the_secret_and_reach_the_pod(chart: Any) -> None:
    objects = render(chart, EVERYTHING_ON)
    secret = one(objects, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "SAGEBRIDGE_AUTH_TOKEN": TOKEN,
        "BETA_SAGE_TOKEN": BETA_TOKEN,
        "SAGEBRIDGE_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "SAGEBRIDGE_SCHEMA_REGISTRY_PASSWORD": REGISTRY_PASSWORD,
    }
    env_from = container(objects)["envFrom"]
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in env_from
    # Nothing secret in plain sight anywhere but the Secret.
    for obj in objects:
        if obj["kind"] != "Secret":
            text = json.dumps(obj)
            assert not any(s in text for s in SECRETS), f"token in {obj['kind']}"


def test_a_redis_url_with_a_password_lives_in_the_secret(chart: Any) -> None:
    url = REDIS_WITH_PASSWORD["settings"]["REDIS_URL"]
    objects = render(chart, REDIS_WITH_PASSWORD)
    secret = one(objects, "Secret")
    assert base64.b64decode(secret["data"]["SAGEBRIDGE_REDIS_URL"]).decode() == url
    assert "SAGEBRIDGE_REDIS_URL" not in one(objects, "ConfigMap", "sagebridge")["data"]
    for obj in objects:
        if obj["kind"] != "Secret":
            assert REDIS_PASSWORD not in json.dumps(obj), f"Redis password in {obj['kind']}"
    # Without a password the URL is an ordinary setting.
    plain = render(chart, EVERYTHING_ON)
    config = one(plain, "ConfigMap", "sagebridge")["data"]
    assert config["SAGEBRIDGE_REDIS_URL"] == EVERYTHING_ON["settings"]["REDIS_URL"]
    assert "SAGEBRIDGE_REDIS_URL" not in one(plain, "Secret")["data"]


def test_existing_secret_suppresses_the_secret(chart: Any) -> None:
    objects = render(chart, EXISTING_SECRET)
    assert "Secret" not in kinds(objects)
    assert {"secretRef": {"name": "sagebridge-tokens"}} in container(objects)["envFrom"]
    assert not any(s in json.dumps(objects) for s in SECRETS)


def test_tenants_file_is_mounted_where_the_setting_points(chart: Any) -> None:
    objects = render(chart, EVERYTHING_ON)
    config = one(objects, "ConfigMap", "sagebridge")["data"]
    path = Path(config["SAGEBRIDGE_TENANTS_FILE"])
    tenants_cm = one(objects, "ConfigMap", "-tenants")
    tenants = yaml.safe_load(tenants_cm["data"][path.name])
    assert tenants == {
        "tenants": [
            {
                "customer": "2002",
                "company": "BETA",
                "token_env": "BETA_SAGE_TOKEN",
                "reply_topics": ["beta.replies", "beta.*.answers"],
            }
        ]
    }
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    mount = next(
        m for m in container(objects)["volumeMounts"] if m["mountPath"] == str(path.parent)
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == tenants_cm["metadata"]["name"]
    assert config["SAGEBRIDGE_CUSTOMER"] == "1001" and config["SAGEBRIDGE_COMPANY"] == "ACME"


@pytest.mark.parametrize("variant", ["token-files", "token-files-existing"])
def test_tenant_tokens_can_be_mounted_as_files_that_update_in_place(
    chart: Any, variant: str
) -> None:
    objects = render(chart, VARIANTS[variant])
    tenants = yaml.safe_load(one(objects, "ConfigMap", "-tenants")["data"]["tenants.yaml"])
    [beta] = tenants["tenants"]
    assert "token_env" not in beta
    token_file = Path(beta["token_file"])
    assert token_file == Path("/etc/sagebridge/tenant-tokens/BETA_SAGE_TOKEN")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "tenant-tokens")
    assert mount["mountPath"] == str(token_file.parent) and mount["readOnly"] is True
    assert "subPath" not in mount, "a subPath mount is never updated in place"
    volume = next(v for v in pod["volumes"] if v["name"] == "tenant-tokens")
    assert volume["secret"]["items"] == [{"key": "BETA_SAGE_TOKEN", "path": token_file.name}]
    env_secrets = [
        s["secretRef"]["name"] for s in container(objects)["envFrom"] if "secretRef" in s
    ]
    if variant == "token-files-existing":
        assert volume["secret"]["secretName"] == "sagebridge-tokens"
        assert not any(s in json.dumps(objects) for s in SECRETS)
        return
    files = one(objects, "Secret", "-tenant-tokens")
    assert volume["secret"]["secretName"] == files["metadata"]["name"]
    assert base64.b64decode(files["data"]["BETA_SAGE_TOKEN"]).decode() == BETA_TOKEN
    assert files["metadata"]["name"] not in env_secrets, "not an env var: it would not rotate"
    env_secret = one(objects, "Secret", "prod-sagebridge")
    assert "BETA_SAGE_TOKEN" not in env_secret["data"], "a token change must not roll the pods"


def test_kafka_tls_and_sasl_reach_the_settings(chart: Any) -> None:
    objects = render(chart, EVERYTHING_ON)
    config = one(objects, "ConfigMap", "sagebridge")["data"]
    assert config["SAGEBRIDGE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["SAGEBRIDGE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["SAGEBRIDGE_KAFKA_SASL_USERNAME"] == "sagebridge"
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "kafka-tls")
    assert mount["readOnly"] is True
    for key, file in (("CAFILE", "ca.crt"), ("CERTFILE", "tls.crt"), ("KEYFILE", "tls.key")):
        assert config[f"SAGEBRIDGE_KAFKA_SSL_{key}"] == f"{mount['mountPath']}/{file}"
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "kafka-tls")
    assert volume["secret"]["secretName"] == "kafka-client-tls"


CONSOLE_PASSWORD = "console-pass-6b2f0d"
PROXY_PEERS = [{"podSelector": {"matchLabels": {"app": "oauth2-proxy"}}}]
CONSOLE_VARIANTS = {
    "console-password": with_(
        EVERYTHING_ON, console={"enabled": True, "password": CONSOLE_PASSWORD}
    ),
    "console-proxy": with_(
        EVERYTHING_ON,
        console={
            "enabled": True,
            "trustedProxyHeader": "X-Forwarded-Email",
            "ingressFrom": PROXY_PEERS,
        },
    ),
    "console-existing-secret": with_(
        TOKEN_FILES,
        console={"enabled": True, "existingSecret": "ops-console", "existingSecretKey": "pw"},
    ),
}


def console_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [only] = one(objects, "Deployment", "-console")["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def pod_spec(objects: list[dict[str, Any]], suffix: str = "prod-sagebridge") -> dict[str, Any]:
    return dict(one(objects, "Deployment", suffix)["spec"]["template"]["spec"])


def mounted_source(pod: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The volume a file path lies in (through the pod's only container's mounts), and the
    file's key in that volume: where the pod would really find the file."""
    [c] = pod["containers"]
    mounts = [m for m in c["volumeMounts"] if Path(path).parent == Path(m["mountPath"])]
    assert len(mounts) == 1, f"{path} is not in a mounted directory of {c['name']}"
    [mount] = mounts
    assert mount["readOnly"] is True and "subPath" not in mount
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return volume, Path(path).name


PATH_SETTINGS = ("_FILE", "_CAFILE", "_CERTFILE", "_KEYFILE", "_CLIENT_CERT", "_CLIENT_KEY")


@pytest.mark.parametrize("variant", [*(v for v in VARIANTS if v != "defaults"), *CONSOLE_VARIANTS])
def test_every_file_a_setting_names_is_mounted_in_every_pod_that_reads_it(
    chart: Any, variant: str
) -> None:
    """The service and the console load the same settings, and start-up refuses a Connector
    CA or certificate path that is not a readable file: each pod mounts every such file."""
    objects = render(chart, {**VARIANTS, **CONSOLE_VARIANTS}[variant])
    config = one(objects, "ConfigMap", "prod-sagebridge")["data"]
    paths = [
        v for k, v in config.items() if k.endswith(PATH_SETTINGS) and k != "SAGEBRIDGE_TENANTS_FILE"
    ]
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for path in paths:
            volume, _ = mounted_source(pod, path)
            source = volume.get("secret") or volume.get("configMap")
            assert source is not None, f"{path}: {volume}"


@pytest.mark.parametrize("suffix", ["prod-sagebridge", "-console"])
def test_the_connector_ca_and_client_certificate_are_mounted_where_the_settings_point(
    chart: Any, suffix: str
) -> None:
    objects = render(chart, CONSOLE_VARIANTS["console-password"])
    config = one(objects, "ConfigMap", "prod-sagebridge")["data"]
    pod = pod_spec(objects, suffix)
    ca, key = mounted_source(pod, config["SAGEBRIDGE_CONNECTOR_CA_FILE"])
    assert ca["configMap"]["name"] == "corp-ca-bundle" and key == "bundle.pem"
    assert config["SAGEBRIDGE_CONNECTOR_CA_FILE"] == "/etc/sagebridge/connector-ca/bundle.pem"
    cert, cert_key = mounted_source(pod, config["SAGEBRIDGE_CONNECTOR_CLIENT_CERT"])
    key_volume, key_key = mounted_source(pod, config["SAGEBRIDGE_CONNECTOR_CLIENT_KEY"])
    assert cert == key_volume and cert["secret"]["secretName"] == "connector-client-tls"
    assert (cert_key, key_key) == ("tls.crt", "tls.key"), "a kubernetes.io/tls Secret's keys"


def test_the_connector_ca_can_come_from_a_secret_and_the_key_with_the_certificate(
    chart: Any,
) -> None:
    objects = render(chart, CONNECTOR_SECRETS)
    config = one(objects, "ConfigMap", "prod-sagebridge")["data"]
    pod = pod_spec(objects)
    ca, key = mounted_source(pod, config["SAGEBRIDGE_CONNECTOR_CA_FILE"])
    assert (ca["secret"]["secretName"], key) == ("corp-ca", "ca.pem")
    assert config["SAGEBRIDGE_CONNECTOR_CA_FILE"] == "/etc/corp-ca/ca.pem"
    cert, cert_key = mounted_source(pod, config["SAGEBRIDGE_CONNECTOR_CLIENT_CERT"])
    assert (cert["secret"]["secretName"], cert_key) == ("connector-client", "both.pem")
    assert "SAGEBRIDGE_CONNECTOR_CLIENT_KEY" not in config, "the key is in the certificate file"


def test_the_proxy_is_set_in_the_service_pods_only(chart: Any) -> None:
    """The standard variables, as the Connector's client reads them; the console never calls
    the Connector, so it gets none."""
    objects = render(chart, CONSOLE_VARIANTS["console-password"])
    env = env_of(container(objects))
    assert env["HTTPS_PROXY"] == "http://proxy.corp:3128"
    assert env["NO_PROXY"] == ".svc,.cluster.local"
    assert "HTTP_PROXY" not in env
    assert not {"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"} & set(env_of(console_container(objects)))
    assert "HTTPS_PROXY" not in one(objects, "ConfigMap", "prod-sagebridge")["data"]


def test_a_proxy_url_with_a_password_lives_in_the_secret(chart: Any) -> None:
    objects = render(chart, CONNECTOR_SECRETS)
    secret = one(objects, "Secret", "prod-sagebridge")
    assert base64.b64decode(secret["data"]["HTTPS_PROXY"]).decode() == PROXY_URL_WITH_PASSWORD
    ref = env_of(container(objects))["HTTPS_PROXY"]
    assert ref == {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "HTTPS_PROXY"}}
    for obj in objects:
        if obj["kind"] != "Secret":
            assert PROXY_PASSWORD not in json.dumps(obj), f"proxy password in {obj['kind']}"
    # With existingSecret there is no Secret of ours to hold it: refused, naming the way out.
    with pytest.raises(helm.HelmError, match="HTTPS_PROXY"):
        render(chart, with_(CONNECTOR_SECRETS, existingSecret="sagebridge-tokens"))


def test_the_grace_period_covers_a_call_in_flight_and_the_drain(chart: Any) -> None:
    """A stopping replica may be inside a transactional call that lasts up to HTTP_TIMEOUT_S
    before the drain's own DRAIN_TIMEOUT_S: the kubelet must not kill it before both."""
    for values in (None, *VARIANTS.values()):
        objects = render(chart, values)
        config = one(objects, "ConfigMap", "prod-sagebridge")["data"]
        needed = float(config["SAGEBRIDGE_HTTP_TIMEOUT_S"]) + float(
            config["SAGEBRIDGE_DRAIN_TIMEOUT_S"]
        )
        assert pod_spec(objects)["terminationGracePeriodSeconds"] > needed
    slow = {**EVERYTHING_ON["settings"], "HTTP_TIMEOUT_S": 55, "LOCK_TTL_MS": 60000}
    with pytest.raises(helm.HelmError, match="HTTP_TIMEOUT_S"):
        render(chart, with_(EVERYTHING_ON, settings=slow))
    render(chart, with_(EVERYTHING_ON, settings=slow, terminationGracePeriodSeconds=70))


def test_crd_objects_have_the_expected_shape(chart: Any) -> None:
    objects = render(chart, EVERYTHING_ON)
    selector = one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"] == selector
    assert one(objects, "Service")["metadata"]["labels"].items() >= selector.items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"

    scaled = one(objects, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert (
        scaled["spec"]["scaleTargetRef"]["name"] == one(objects, "Deployment")["metadata"]["name"]
    )
    triggers = scaled["spec"]["triggers"]
    assert [t["metadata"]["topic"] for t in triggers] == ["crm.events", "crm.invoices"]
    for trigger in triggers:
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == "sagebridge-prod"
        assert (
            trigger["metadata"]["bootstrapServers"] == EVERYTHING_ON["settings"]["KAFKA_BOOTSTRAP"]
        )
        assert int(trigger["metadata"]["lagThreshold"]) > 0
        assert trigger["authenticationRef"] == {"name": "kafka-auth"}


def test_network_policy_allows_dns_kafka_redis_connector_and_the_http_port(chart: Any) -> None:
    policy = one(render(chart, EVERYTHING_ON), "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    [ingress] = policy["ingress"]
    assert ingress["ports"] == [{"port": 9100, "protocol": "TCP"}]
    egress_ports = [{p["port"] for p in rule["ports"]} for rule in policy["egress"]]
    assert egress_ports == [{53}, {9093}, {6379}, {443}]
    assert policy["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.0.0.0/16"}}]


def test_grafana_dashboard_is_shipped_with_the_sidecar_label(chart: Any) -> None:
    cm = one(render(chart, EVERYTHING_ON), "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["sagebridge.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "sagebridge_events_total",
        "sagebridge_dead_letters_total",
        "sagebridge_connector_latency_seconds_bucket",
        "sagebridge_batch_size",
        "sagebridge_lock_wait_seconds_bucket",
        "sagebridge_in_flight",
        "sagebridge_serial_lane_paused",
        "sagebridge_serial_busy_companies",
        "sagebridge_breaker_open",
    ):
        assert metric in exprs, f"no panel shows {metric}"


@pytest.mark.parametrize(
    "bad",
    [
        {"replicaCount": "three"},
        {"replicaCaunt": 3},
        {
            "settings": {
                "KAFKA_BOOTSTRAP": "k:9092",
                "INPUT_TOPICS": "t",
                "HTTP_PORT": 8000,
                "AUTH_TOKEN": "in-a-configmap",
            }
        },
        {"terminationGracePeriodSeconds": 5},
        {"tenants": [{"customer": "2", "company": "B", "tokenEnv": "not a name"}]},
    ],
    ids=["wrong-type", "typo", "token-in-settings", "short-grace", "bad-token-env"],
)
def test_schema_rejects_bad_values(chart: Any, bad: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        chart.render(bad, name="prod")
    report = helm.lint(CHART, bad, strict=True)
    assert report["errors"], "lint must fail too"


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        (
            {"settings": {"SCHEMA_REGISTRY_URL": "https://registry.example:8081/sr"}},
            {"settings": {"SCHEMA_REGISTRY_URL": "https://key:secret@registry.example"}},
        ),
        (
            {"connector": {"proxy": {"https": "proxy.corp:3128"}}},
            {"connector": {"proxy": {"https": "socks5://proxy.corp:1080"}}},
        ),
        ({"settings": {"RETRY_AFTER_MAX_S": 3600}}, {"settings": {"RETRY_AFTER_MAX_S": 3601}}),
        ({"settings": {"IMAGE_MAX_BYTES": 1024}}, {"settings": {"IMAGE_MAX_BYTES": 1023}}),
        (
            {"connector": {"ca": {"secretName": "ca"}}},
            {"settings": {"CONNECTOR_CA_FILE": "/etc/ca.pem"}},  # the chart mounts the file
        ),
    ],
    ids=["registry-credentials", "socks-proxy", "retry-after", "image-bytes", "ca-path"],
)
def test_the_schema_checks_the_newer_values(
    chart: Any, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    """What the service would refuse at start-up fails ``helm install`` instead; the same key
    with a value it takes renders."""
    base = {"KAFKA_BOOTSTRAP": "k:9092", "INPUT_TOPICS": "t", "HTTP_PORT": 8000}

    def values(change: dict[str, Any]) -> dict[str, Any]:
        return {**change, "settings": {**base, **change.get("settings", {})}}

    render(chart, values(good))
    with pytest.raises(helm.HelmValuesError):
        chart.render(values(bad), name="prod")


def test_template_guards_refuse_impossible_combinations(chart: Any) -> None:
    with pytest.raises(helm.HelmError, match="exclusive"):
        render(chart, with_(EVERYTHING_ON, autoscaling={"enabled": True}))
    sasl_without_user = with_(EVERYTHING_ON, kafka={"sasl": {"mechanism": ""}})
    with pytest.raises(helm.HelmError, match="SASL"):
        render(chart, sasl_without_user)
    settings = {**EVERYTHING_ON["settings"], "DRAIN_TIMEOUT_S": 90}
    with pytest.raises(helm.HelmError, match="DRAIN_TIMEOUT_S"):
        render(chart, with_(EVERYTHING_ON, settings=settings))
    # A stopping replica finishes its transactional call: the grace period must cover it.
    slow_calls = {**EVERYTHING_ON["settings"], "DRAIN_TIMEOUT_S": 8, "HTTP_TIMEOUT_S": 55}
    with pytest.raises(helm.HelmError, match=r"must exceed settings\.HTTP_TIMEOUT_S"):
        render(chart, with_(EVERYTHING_ON, settings=slow_calls, terminationGracePeriodSeconds=60))
    both_cas = with_(EVERYTHING_ON, connector={"ca": {"configMapName": "a", "secretName": "b"}})
    with pytest.raises(helm.HelmError, match="not both"):
        render(chart, both_cas)
    # existingSecret: the chart renders no Secret that could hold the Redis password.
    with pytest.raises(helm.HelmError, match="SAGEBRIDGE_REDIS_URL"):
        render(chart, with_(REDIS_WITH_PASSWORD, existingSecret="sagebridge-tokens"))


def test_schema_settings_are_real_and_never_secret() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    allowed = schema["properties"]["settings"]["properties"]
    fields = set(Settings.model_fields)
    for key in allowed:
        assert key.lower() in fields, f"values.schema.json: settings.{key} is not a setting"
    for secret in ("AUTH_TOKEN", "KAFKA_SASL_PASSWORD", "SCHEMA_REGISTRY_PASSWORD"):
        assert secret not in allowed, f"{secret} would land in a ConfigMap"


CHART_MANAGED = {
    "auth_token": "defaultTenant.token",
    "customer": "defaultTenant.customer",
    "company": "defaultTenant.company",
    "tenants_file": "tenants",
    "contracts_dir": "the image's /app/contracts",
    "kafka_sasl_mechanism": "kafka.sasl.mechanism",
    "kafka_sasl_username": "kafka.sasl.username",
    "kafka_sasl_password": "kafka.sasl.password",
    "kafka_ssl_cafile": "kafka.tls.caKey",
    "kafka_ssl_certfile": "kafka.tls.certKey",
    "kafka_ssl_keyfile": "kafka.tls.keyKey",
    "schema_registry_password": "schemaRegistry.password",
    "connector_ca_file": "connector.ca",
    "connector_client_cert": "connector.clientCert.certKey",
    "connector_client_key": "connector.clientCert.keyKey",
}


def test_the_chart_takes_every_setting() -> None:
    """Each setting of the service is a settings.<NAME> the schema accepts, or one the chart
    renders from a value of its own (a secret, a mounted file): none is out of reach."""
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    accepted = {k.lower() for k in schema["properties"]["settings"]["properties"]}
    missing = set(Settings.model_fields) - accepted - set(CHART_MANAGED)
    assert not missing, f"the chart cannot set {sorted(missing)}"
    for path in CHART_MANAGED.values():
        top = path.split(".")[0]
        assert top.startswith("the ") or top in schema["properties"], path


def pod_environment(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The service container's environment as the kubelet builds it: the ConfigMap and the
    Secret (envFrom), then its own ``env``, whose secretKeyRefs name the chart's Secret."""
    secrets = [
        o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "prod-sagebridge"
    ]
    data = {k: base64.b64decode(v).decode() for s in secrets for k, v in s["data"].items()}
    env = dict(one(objects, "ConfigMap", "prod-sagebridge")["data"]) | data
    for var in container(objects).get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "prod-sagebridge", ref
            env[var["name"]] = data[ref["key"]]
    return env


def write_mounted_pem_files(
    objects: list[dict[str, Any]], env: dict[str, str], root: Path
) -> dict[str, str]:
    """``env`` with each Connector file setting pointing at a real PEM file under ``root``, in
    the place the pod's mount would hold it (a CA of the test's own, a client certificate)."""
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("sagebridge.integrations.svc")
    split_key = "SAGEBRIDGE_CONNECTOR_CLIENT_KEY" in env
    blobs = {
        "SAGEBRIDGE_CONNECTOR_CA_FILE": ca.cert_pem,
        "SAGEBRIDGE_CONNECTOR_CLIENT_CERT": issued.cert_chain_pems[0]
        if split_key
        else issued.private_key_and_cert_chain_pem,
        "SAGEBRIDGE_CONNECTOR_CLIENT_KEY": issued.private_key_pem,
    }
    local = dict(env)
    for name, blob in blobs.items():
        if name in env:
            volume, key = mounted_source(pod_spec(objects), env[name])
            path = root / volume["name"] / key
            path.parent.mkdir(exist_ok=True)
            blob.write_to_path(str(path))
            local[name] = str(path)
    return local


@pytest.mark.parametrize(
    "variant", ["defaults", "everything", "redis-password", "connector-secrets"]
)
def test_the_service_accepts_the_rendered_settings(
    chart: Any, variant: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The pod's environment (ConfigMap, Secret, env) loads as Settings: no value the service
    would refuse at start-up (a bool spelled wrong, a number out of range, a file not there),
    and the Connector's client takes the mounted CA and certificate and the proxy."""
    from service.config import load_settings
    from service.connector.network import connector_network

    objects = render(chart, VARIANTS[variant])
    for name in Settings.model_fields:
        monkeypatch.delenv("SAGEBRIDGE_" + name.upper(), raising=False)
    env = write_mounted_pem_files(objects, pod_environment(objects), tmp_path)
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    tenants_file = tmp_path / "tenants.yaml"
    if "SAGEBRIDGE_TENANTS_FILE" in env:  # mounted from the tenants ConfigMap in the pod
        tenants_file.write_text(one(objects, "ConfigMap", "-tenants")["data"]["tenants.yaml"])
        monkeypatch.setenv("SAGEBRIDGE_TENANTS_FILE", str(tenants_file))
    settings = load_settings(_env_file=None)
    directory = TenantDirectory.from_settings(settings)
    assert settings.kafka_idempotence is True
    assert settings.http_port == int(env["SAGEBRIDGE_HTTP_PORT"])
    given = (VARIANTS[variant] or {}).get("settings", {}).get("REDIS_URL")
    assert settings.redis_url == (given or "redis://redis:6379/0"), "from the Secret if secret"
    network = connector_network(
        settings.connector_url,
        ca_file=settings.connector_ca_file,
        client_cert=settings.connector_client_cert,
        client_key=settings.connector_client_key,
        environ=env,
    )
    if variant == "defaults":
        assert network.ssl_context is None and network.proxy is None
        assert settings.schema_registry_url is None
    else:
        assert network.ssl_context is not None, "the mounted CA and client certificate load"
        assert network.proxy == VARIANTS[variant]["connector"]["proxy"]["https"]
        secret = settings.schema_registry_password
        assert secret is not None and secret.get_secret_value() == REGISTRY_PASSWORD
    if variant == "everything":
        assert settings.reply_topics == ("crm.*.replies",)
        beta = directory.tenants[("2002", "BETA")].reply_topics
        assert beta is not None and beta.matches("beta.x.answers") and not beta.matches("crm.a")
        assert (settings.retry_after_max_s, settings.max_record_ids) == (120, 5000)
        assert (settings.image_ttl_s, settings.image_max_bytes) == (2592000, 262144)
        assert settings.schema_registry_url == "https://registry.example"
        assert settings.schema_registry_user == "registry-key"


def test_the_dashboard_shows_unknown_outcomes_and_dead_letters_by_stage(chart: Any) -> None:
    """The runbook's panels exist, and every selector in the dashboard names labels the service
    really exports on that metric (a typo would show an empty panel, not an error)."""
    import re

    from prometheus_client.metrics import MetricWrapperBase

    from service.ops.metrics import Metrics

    labels_of: dict[str, set[str]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            names = set(metric._labelnames)
            for suffix in ("", "_total", "_sum", "_count"):
                labels_of[metric._name + suffix] = names
            labels_of[metric._name + "_bucket"] = names | {"le"}
    cm = one(render(chart, EVERYTHING_ON), "ConfigMap", "-dashboard")
    panels = json.loads(cm["data"]["sagebridge.json"])["panels"]
    by_title = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels}
    assert 'sagebridge_dead_letters_total{stage="unknown_outcome"' in by_title["Unknown outcomes"]
    assert 'stage="unknown_outcome"' in by_title["Unknown outcomes by type"]
    assert (
        "sum by (stage) (increase(sagebridge_dead_letters_total"
        in by_title["Dead letters by stage"]
    )
    for expr in by_title.values():
        for metric, selector in re.findall(r"(sagebridge_\w+)\{([^}]*)\}", expr):
            named = set(re.findall(r"(\w+)\s*=~?", selector)) - {"namespace", "pod"}
            assert metric in labels_of, f"{metric} is not exported"
            assert named <= labels_of[metric], f"{metric} has no label {named - labels_of[metric]}"


def test_the_unknown_outcome_panels_give_the_runbooks_steps(chart: Any) -> None:
    """An operator reading a panel's help at 3 a.m. gets the runbook's steps in order, including
    the wait before ``--not-delivered`` (the Connector may still be storing the record) and when
    ``--force`` is allowed, and the page that has the rest."""
    cm = one(render(chart, EVERYTHING_ON), "ConfigMap", "-dashboard")
    panels = json.loads(cm["data"]["sagebridge.json"])["panels"]
    helps = [p["description"] for p in panels if "unknown_outcome" in json.dumps(p["targets"])]
    runbook = (CHART.parents[1] / "docs" / "operating.md").read_text(encoding="utf-8")
    assert "### Runbook: `unknown_outcome`" in runbook
    assert len(helps) == 2
    for text in helps:
        assert "docs/operating.md, Runbook: unknown_outcome" in text
        steps = [
            "dlt list --stage unknown_outcome",
            "--delivered",
            "ledger show EVENT_ID",
            "--not-delivered",
            "--force",
            "dlt replay --stage unknown_outcome",
        ]
        places = [text.find(step) for step in steps]
        assert -1 not in places and places == sorted(places), text


def test_cross_reference_tables_are_mounted_over_the_shipped_ones(
    chart: Any, tmp_path: Path
) -> None:
    """The tables land where the image's contracts read them, and a contracts directory holding
    them passes the start-up check of every mapping."""
    objects = render(chart, WITH_XREF)
    tables = one(objects, "ConfigMap", "-xref")["data"]
    assert tables == {f"{name}.csv": csv for name, csv in XREF_TABLES.items()}
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "xref")
    assert mount["mountPath"] == "/app/contracts/xref" and mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == "xref")
    assert volume["configMap"]["name"].endswith("-xref")
    contracts = tmp_path / "contracts"
    shutil.copytree(DEFAULT_CONTRACTS_DIR, contracts)
    for name, csv in tables.items():
        (contracts / "xref" / name).write_text(csv, encoding="utf-8")
    assert "salesforce.contact.change" in load_route_table(contracts).routes


def test_an_existing_config_map_of_tables_is_mounted_instead(chart: Any) -> None:
    objects = render(chart, with_(EVERYTHING_ON, crossReferences={"existingConfigMap": "mine"}))
    assert not [o for o in objects if o["metadata"]["name"].endswith("-xref")]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert next(v for v in pod["volumes"] if v["name"] == "xref")["configMap"]["name"] == "mine"


@pytest.mark.parametrize("variant", CONSOLE_VARIANTS)
def test_the_console_renders_valid_kubernetes(chart: Any, variant: str) -> None:
    values = CONSOLE_VARIANTS[variant]
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert not [m for m in report["messages"] if m["severity"] >= 2] and not report["errors"]
    for manifest in render(chart, values):
        assert manifest["metadata"]["namespace"] == "integrations"
        if manifest["apiVersion"] not in CRD_API_VERSIONS:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


def test_the_console_is_off_by_default(chart: Any) -> None:
    for values in (None, EVERYTHING_ON):
        names = [o["metadata"]["name"] for o in render(chart, values)]
        assert not [n for n in names if n.endswith("-console")]


def test_the_console_runs_apart_from_the_service(chart: Any) -> None:
    objects = render(chart, CONSOLE_VARIANTS["console-password"])
    console = one(objects, "Deployment", "-console")
    pod_labels = console["spec"]["template"]["metadata"]["labels"]
    service_selector = one(objects, "Service", "prod-sagebridge")["spec"]["selector"]
    assert not service_selector.items() <= pod_labels.items(), "the service must not route to it"
    assert console["spec"]["replicas"] == 1, "sessions live in one process's memory"
    assert one(objects, "Service", "-console")["spec"]["selector"].items() <= pod_labels.items()
    container = console_container(objects)
    assert container["args"] == ["console"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "console"}
    assert container["resources"]["limits"]["memory"] == "256Mi"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["args"] == ["console"] and container_args_of_service(objects) == ["run"]


def container_args_of_service(objects: list[dict[str, Any]]) -> list[str]:
    [service] = [
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "prod-sagebridge"
    ]
    return list(service["spec"]["template"]["spec"]["containers"][0]["args"])


def test_the_console_password_lives_in_a_secret(chart: Any) -> None:
    objects = render(chart, CONSOLE_VARIANTS["console-password"])
    secret = one(objects, "Secret", "-console")
    assert base64.b64decode(secret["data"]["password"]).decode() == CONSOLE_PASSWORD
    env = env_of(console_container(objects))
    assert env["SAGEBRIDGE_CONSOLE_PASSWORD"] == {
        "secretKeyRef": {"name": "prod-sagebridge-console", "key": "password"}
    }
    assert "SAGEBRIDGE_CONSOLE_TRUSTED_PROXY_HEADER" not in env
    plain = [o for o in objects if o["kind"] != "Secret"]
    assert CONSOLE_PASSWORD not in json.dumps(plain)

    own = render(chart, CONSOLE_VARIANTS["console-existing-secret"])
    assert not [
        o for o in own if o["kind"] == "Secret" and o["metadata"]["name"].endswith("-console")
    ]
    assert env_of(console_container(own))["SAGEBRIDGE_CONSOLE_PASSWORD"] == {
        "secretKeyRef": {"name": "ops-console", "key": "pw"}
    }


def test_behind_a_proxy_the_console_takes_its_header_and_only_its_traffic(chart: Any) -> None:
    objects = render(chart, CONSOLE_VARIANTS["console-proxy"])
    env = env_of(console_container(objects))
    assert env["SAGEBRIDGE_CONSOLE_TRUSTED_PROXY_HEADER"] == "X-Forwarded-Email"
    assert "SAGEBRIDGE_CONSOLE_PASSWORD" not in env
    assert env["SAGEBRIDGE_AUDIT_TOPIC"] == "sage.audit"
    policy = one(objects, "NetworkPolicy", "-console")
    [ingress] = policy["spec"]["ingress"]
    assert ingress == {"ports": [{"port": 8090, "protocol": "TCP"}], "from": PROXY_PEERS}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 9093, 6379}, "DNS, Kafka, Redis: never a Cloud Connector"


def test_the_console_needs_exactly_one_way_to_sign_in(chart: Any) -> None:
    with pytest.raises(helm.HelmError, match="refuses to start without a way to sign in"):
        render(chart, with_(EVERYTHING_ON, console={"enabled": True}))
    both = {"enabled": True, "password": "p", "trustedProxyHeader": "X-User"}
    with pytest.raises(helm.HelmError, match="not both"):
        render(chart, with_(EVERYTHING_ON, console=both))

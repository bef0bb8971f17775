"""The deployment files agree with the code: deploy/k8s manifests and deploy/Containerfile.

Every YAML document parses, the kustomization lists the manifests, probes and the metrics
annotation name paths the broker answers, every ``HOTDESK_*`` variable is a real setting,
the Ingress routes the public surface but not ``/metrics`` or the probes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from hotdesk.api.app import create_app
from hotdesk.api.routers.console import WS_PATH
from hotdesk.api.routers.web import NOVNC_ENV
from hotdesk.cli import app as cli_app
from hotdesk.db.engine import Database
from hotdesk.services import bootstrap
from hotdesk.services.context import BrokerContext
from hotdesk.settings import Settings
from tests.api.helpers import TestClient

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
CONTAINERFILE = DEPLOY / "Containerfile"
NAMESPACE = "hotdesk"
#: In deploy/k8s but deliberately not in the kustomization (see the comment in it).
NOT_IN_KUSTOMIZATION = {"secret.example.yaml", "db-upgrade-job.yaml"}
#: Variables the code reads directly instead of through Settings.
DIRECT_ENV = {NOVNC_ENV}


def load_all(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a file."""
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def manifests() -> list[dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s (the kustomization itself excluded)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in load_all(path) if d["kind"] != "Kustomization"]
    return docs


def one(kind: str) -> dict[str, Any]:
    """The only object of ``kind``."""
    found = [d for d in manifests() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def broker_container() -> dict[str, Any]:
    """The broker container of the Deployment."""
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["broker"]
    container: dict[str, Any] = containers[0]
    return container


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A container port given by number or by name."""
    for p in container["ports"]:
        if port in (p["containerPort"], p.get("name")):
            return int(p["containerPort"])
    raise AssertionError(f"container {container['name']} has no port {port!r}")


def broker_environment() -> dict[str, str]:
    """The broker's environment as the pod gets it: ConfigMap, Secret (example), env."""
    env: dict[str, str] = {}
    refs = broker_container()["envFrom"]
    assert {"configMapRef", "secretRef"} == {key for ref in refs for key in ref}
    for ref in refs:
        if "configMapRef" in ref:
            source = one("ConfigMap")
            assert ref["configMapRef"]["name"] == source["metadata"]["name"]
            env.update(source["data"])
        else:
            source = one("Secret")
            assert ref["secretRef"]["name"] == source["metadata"]["name"]
            env.update(source["stringData"])
    env.update({e["name"]: e["value"] for e in broker_container()["env"]})
    return env


def settings_field(variable: str) -> bool:
    """Whether ``HOTDESK_A__B`` names a field of Settings (nested models split on ``__``)."""
    if not variable.startswith("HOTDESK_"):
        return False
    model: type[BaseModel] = Settings
    parts = variable.removeprefix("HOTDESK_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        nested = field.annotation
        is_model = isinstance(nested, type) and issubclass(nested, BaseModel)
        if i == len(parts) - 1:
            return not is_model  # a variable sets a value, not a whole model
        if not is_model:
            return False
        model = cast(type[BaseModel], nested)
    return False


def test_settings_field_walks_nested_models() -> None:
    assert settings_field("HOTDESK_DB__URL")
    assert settings_field("HOTDESK_RECONCILER__INTERVAL_SECONDS")
    assert settings_field("HOTDESK_DATA_DIR")
    assert not settings_field("HOTDESK_RECONCILER__NO_SUCH_SETTING")
    assert not settings_field("HOTDESK_DB__URL__MORE")
    assert not settings_field("HOTDESK_RECONCILER")  # a model, not a value
    assert not settings_field("DB__URL")


# --- files --------------------------------------------------------------------------------


def test_every_yaml_document_parses_into_a_named_object() -> None:
    paths = sorted(K8S.glob("*.y*ml"))
    assert paths, "no manifests under deploy/k8s"
    for path in paths:
        assert path.suffix == ".yaml", f"{path.name}: use the .yaml suffix"
        docs = load_all(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert {"apiVersion", "kind"} <= doc.keys(), path.name
            if doc["kind"] != "Kustomization":
                meta = doc["metadata"]
                assert meta.get("name") or meta.get("generateName"), path.name


def test_kustomization_lists_exactly_the_manifests_present() -> None:
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert present >= NOT_IN_KUSTOMIZATION
    assert set(listed) == present - NOT_IN_KUSTOMIZATION
    assert kustomization["namespace"] == NAMESPACE
    text = (K8S / "kustomization.yaml").read_text(encoding="utf-8")
    for name in NOT_IN_KUSTOMIZATION:  # the reason is written next to the list
        assert f"#   {name}" in text


def test_every_object_lives_in_the_hotdesk_namespace() -> None:
    for doc in manifests():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_the_secret_is_an_example_without_a_real_password() -> None:
    secret = one("Secret")
    assert secret["metadata"]["annotations"]["hotdesk.dev/example"] == "true"
    assert set(secret["stringData"]) == {"HOTDESK_DB__URL"}
    assert "CHANGE-ME" in secret["stringData"]["HOTDESK_DB__URL"]
    assert "EXAMPLE ONLY" in (K8S / "secret.example.yaml").read_text(encoding="utf-8")


# --- settings -----------------------------------------------------------------------------


def test_every_hotdesk_variable_of_the_manifests_is_a_setting() -> None:
    names = set(broker_environment())
    job = one("Job")["spec"]["template"]["spec"]["containers"][0]
    names |= {e["name"] for e in job.get("env", [])}
    unknown = sorted(n for n in names if not settings_field(n))
    assert not unknown, f"not fields of hotdesk.settings.Settings: {unknown}"


def test_the_manifests_environment_gives_valid_broker_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOTDESK_DB__URL", raising=False)
    env = broker_environment()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.api.host == "0.0.0.0"
    assert settings.demo is False
    assert settings.log_format == "json"
    assert settings.database_url().startswith("postgresql+psycopg://")
    assert str(settings.data_dir) == env["HOTDESK_DATA_DIR"]
    assert settings.api.port == container_port(broker_container(), "http")
    reconciler = settings.reconciler.model_dump()
    for name, value in env.items():
        if name.startswith("HOTDESK_RECONCILER__"):
            key = name.removeprefix("HOTDESK_RECONCILER__").lower()
            assert str(reconciler[key]).removesuffix(".0") == value.removesuffix(".0"), name


def test_the_containerfile_sets_only_real_settings_and_runs_the_broker() -> None:
    text = CONTAINERFILE.read_text(encoding="utf-8")
    variables = set(re.findall(r"\b(HOTDESK_[A-Z0-9_]+)=", text))
    assert variables, "the Containerfile sets no HOTDESK_ variable"
    unknown = sorted(v for v in variables - DIRECT_ENV if not settings_field(v))
    assert not unknown, f"not fields of hotdesk.settings.Settings: {unknown}"
    assert "HOTDESK_API__HOST=0.0.0.0" in text
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"pip install [^\n]*\"\.", text), "installs the project from the copy"
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (\[.*\])$", text, re.M)[-1])
    cmd = json.loads(re.findall(r"^CMD (\[.*\])$", text, re.M)[-1])
    assert entrypoint[-1] == "hotdesk" and cmd == ["serve"]


# --- commands -----------------------------------------------------------------------------


def cli_command_exists(args: list[str]) -> bool:
    """Whether ``hotdesk <args>`` is a command (its --help answers)."""
    result = CliRunner().invoke(cli_app, [*args, "--help"])
    return result.exit_code == 0


def test_the_containers_run_real_hotdesk_commands() -> None:
    assert broker_container()["args"] == ["serve"]
    assert cli_command_exists(broker_container()["args"])
    job = one("Job")["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert container["args"] == ["db", "upgrade"]
    assert container["envFrom"] == [{"secretRef": {"name": one("Secret")["metadata"]["name"]}}]
    assert cli_command_exists(container["args"])
    assert not cli_command_exists(["no-such-command"])
    assert container["image"] == broker_container()["image"]
    assert job["restartPolicy"] == "Never"


# --- the Deployment and its neighbours ----------------------------------------------------


def test_the_deployment_is_highly_available_and_locked_down() -> None:
    deployment = one("Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = broker_container()
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["lifecycle"]["preStop"]["exec"]["command"][0].endswith("sleep")
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    spread = pod["topologySpreadConstraints"]
    assert any(s["topologyKey"] == "kubernetes.io/hostname" for s in spread)
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def test_the_data_dir_is_a_writable_volume() -> None:
    data_dir = broker_environment()["HOTDESK_DATA_DIR"]
    pod = one("Deployment")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in broker_container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in (data_dir, "/tmp"):
        assert path in mounts, f"nothing mounted at {path} (read-only root filesystem)"
        assert "emptyDir" in volumes[mounts[path]]
    assert set(mounts.values()) <= set(volumes)


def test_service_and_budget_select_the_broker_pods() -> None:
    deployment = one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one("Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert container_port(broker_container(), port["targetPort"]) == 8080
    budget = one("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["minAvailable"] == 2 < deployment["spec"]["replicas"]


# --- paths the broker must answer ---------------------------------------------------------


@pytest.fixture
def broker(sqlite_url: str) -> Iterator[TestClient]:
    """The broker's HTTP app on a fresh SQLite database (no reconciler)."""
    db = Database(sqlite_url)
    ctx = BrokerContext(db=db, broker_id=bootstrap.ensure_broker_id(db))
    try:
        with TestClient(create_app(ctx)) as client:
            yield client
    finally:
        db.dispose()


def test_probes_and_scrape_annotation_name_paths_the_broker_answers(broker: TestClient) -> None:
    container = broker_container()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert container_port(container, get["port"]) == 8080
        response = broker.get(get["path"])
        assert response.status_code == 200, f"{probe} {get['path']}: {response.status_code}"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == container_port(container, "http")
    metrics = broker.get(annotations["prometheus.io/path"])
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")


def ingress_routes(path: str) -> bool:
    """Whether the Ingress sends ``path`` to the broker (Kubernetes Exact/Prefix matching)."""
    ingress = one("Ingress")
    service = one("Service")
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            backend = entry["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
            want = entry["path"]
            if entry["pathType"] == "Exact" and path == want:
                return True
            if entry["pathType"] == "Prefix":
                prefix = want.rstrip("/").split("/")
                if path.rstrip("/").split("/")[: len(prefix)] == prefix:
                    return True
    return False


def test_ingress_routes_the_public_surface_and_not_metrics_or_probes() -> None:
    app = create_app(BrokerContext(db=cast(Database, None), broker_id="hd-test"))
    operator_only = {"/metrics", "/healthz", "/readyz"}
    api_paths = set(app.openapi()["paths"])
    assert operator_only <= api_paths, "the broker's operator paths moved"
    public = {re.sub(r"\{[^}]+\}", "x", p) for p in api_paths - operator_only}
    public |= {WS_PATH, "/", "/admin", "/console/x", "/favicon.ico", "/static/app/x.js"}
    public |= {"/static/novnc/core/rfb.js", "/openapi.json", "/docs", "/redoc"}
    missing = sorted(p for p in public if not ingress_routes(p))
    assert not missing, f"the Ingress does not route {missing}"
    for path in operator_only:
        assert not ingress_routes(path), f"the Ingress exposes {path}"
    assert not ingress_routes("/metricsx") and not ingress_routes("/adminx")


def test_ingress_keeps_websockets_and_streams_open() -> None:
    annotations = one("Ingress")["metadata"]["annotations"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) >= 3600
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"

"""The deployment files hold together: the kustomize base and overlays render, validate against
the Kubernetes API schemas, and keep the promises deploy/README.md makes (probes, limits,
security context, secrets by reference only, headless gRPC Services with dns:/// targets, a
NetworkPolicy per component, commands that exist in the repository); the Dockerfile and the
monitoring files match them. Fast: no cluster, no Docker."""

import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from amoroute.grpc_server import serve_until_signalled
from router_svc.rules import parse_rules_yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
TARGETS = {
    "base": K8S / "base",
    "dev": K8S / "overlays" / "dev",
    "prod": K8S / "overlays" / "prod",
}
# kubernetes_validate ships schemas for 1.25 to 1.37; native gRPC probes need 1.24+,
# PodDisruptionBudget.unhealthyPodEvictionPolicy 1.27+.
KUBERNETES_VERSION = "1.33.0"
# The release version has one source (deploy/README.md, "Releasing a new version").
VERSION = (REPO / "VERSION").read_text().strip()

SECRET_NAME = "amoroute-secrets"
SECRET_KEYS = {
    "AMOCRM_ACCESS_TOKEN",
    "TELEGRAM_BOT_TOKEN",
    "ADMIN_TOKEN",
    "ADMIN_TOKENS",
    "WEBHOOK_SECRET",
    "EDGE_DATABASE_URL",
    "ROUTER_DATABASE_URL",
    "REFERRAL_DATABASE_URL",
    "TRAFFIC_DATABASE_URL",
    "NOTIFIER_DATABASE_URL",
    "GRPC_AUTH_TOKENS",
    "AMOCRM_CLIENT_SECRET",
    "AMOCRM_REFRESH_TOKEN",
    "AMOROUTE_SECRET_KEY",
}
# AmoCRM OAuth 2.0 (optional keys: a Secret made before them still works).
AMOCRM_OAUTH_KEYS = {"AMOCRM_CLIENT_SECRET", "AMOCRM_REFRESH_TOKEN", "AMOROUTE_SECRET_KEY"}
DEPLOYMENTS = {"edge", "edge-worker", "router", "referral", "traffic", "notifier"}
GRPC_PORTS = {"router": 50051, "referral": 50052, "traffic": 50053, "notifier": 50054}
GRPC_MODULES = {
    "router": "router_svc",
    "referral": "referral_svc",
    "traffic": "traffic_svc",
    "notifier": "notifier_svc",
}
MIGRATIONS = {
    "edge-migrate": "edge",
    "router-migrate": "router_svc",
    "referral-migrate": "referral_svc",
    "traffic-migrate": "traffic_svc",
    "notifier-migrate": "notifier_svc",
}
LABELS = tuple(
    f"app.kubernetes.io/{k}"
    for k in ("name", "instance", "component", "part-of", "version", "managed-by")
)
# Who may open a connection to whom, on which port (deploy/k8s/base/network-policies.yaml).
CALLS = {
    ("edge", "router", 50051),
    ("edge-worker", "router", 50051),
    ("router", "referral", 50052),
    ("router", "traffic", 50053),
    ("router", "notifier", 50054),
    ("edge", "referral", 50052),
    ("edge", "traffic", 50053),
    ("edge", "notifier", 50054),
    ("notifier", "router", 50051),
    ("notifier", "referral", 50052),
    ("notifier", "traffic", 50053),
}
RULES_DIR = "/etc/amoroute/rules"
METRICS = {
    "amoroute_webhooks_total",
    "amoroute_webhook_ack_seconds",
    "amoroute_pending_events",
    "amoroute_amocrm_hook_disabled",
    "amoroute_amocrm_oauth_needs_reconnect",
    "amoroute_webhook_invalid_answers_2h",
    "amoroute_amocrm_blocked",
    "amoroute_notifications_total",
    "amoroute_telegram_rate_limited_total",
    "amoroute_telegram_chat_moves_total",
    "amoroute_grpc_server_handled_total",
    "amoroute_grpc_server_handling_seconds",
}

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl is not installed, so the kustomizations cannot be rendered "
    "(.ci/run installs it; locally: apt-get install kubectl)",
)


# --- rendering ------------------------------------------------------------------------------


@cache
def render_all(target: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(TARGETS[target])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


# The Collector and Jaeger of components/tracing: not amoroute's own processes, tested apart.
TRACING = "amoroute-tracing"


def is_tracing(o: dict[str, Any]) -> bool:
    return o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == TRACING


@cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    """amoroute's own objects of a target."""
    return tuple(o for o in render_all(target) if not is_tracing(o))


def render_tracing(target: str) -> tuple[dict[str, Any], ...]:
    return tuple(o for o in render_all(target) if is_tracing(o))


@pytest.fixture(params=sorted(TARGETS))
def objects(request: pytest.FixtureRequest) -> tuple[dict[str, Any], ...]:
    return render(request.param)


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_specs(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, pod template) of every Deployment and Job."""
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]


def containers(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, template in pod_specs(objects):
        for c in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            yield f"{name}/{c['name']}", c


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def sleep_seconds(container: dict[str, Any]) -> int:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


# --- rendering and schemas ------------------------------------------------------------------


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_kustomization_renders_every_process_and_its_objects(target: str) -> None:
    objects = render(target)
    assert set(of_kind(objects, "Deployment")) == DEPLOYMENTS
    assert set(of_kind(objects, "Service")) == DEPLOYMENTS
    assert set(of_kind(objects, "PodDisruptionBudget")) == DEPLOYMENTS
    assert set(of_kind(objects, "Job")) == set(MIGRATIONS)
    assert set(of_kind(objects, "HorizontalPodAutoscaler")) == {"edge", "router"}
    assert set(of_kind(objects, "Ingress")) == {"edge"}
    assert "routing-rules" in of_kind(objects, "ConfigMap")


def test_every_object_validates_against_the_kubernetes_schema(objects: tuple) -> None:
    for o in objects:
        try:
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{o['kind']}/{o['metadata']['name']}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_overlays_put_everything_in_their_namespace(target: str) -> None:
    namespace = yaml.safe_load((TARGETS[target] / "kustomization.yaml").read_text())["namespace"]
    for o in render(target):
        assert o["metadata"].get("namespace") == namespace, f"{o['kind']}/{o['metadata']['name']}"


# --- labels and selectors -------------------------------------------------------------------


def test_every_object_and_pod_carries_the_standard_labels(objects: tuple) -> None:
    for o in objects:
        where = f"{o['kind']}/{o['metadata']['name']}"
        labels = o["metadata"].get("labels", {})
        assert not [k for k in LABELS if not labels.get(k)], f"{where} lacks labels"
        assert labels["app.kubernetes.io/part-of"] == "amoroute", where
        assert labels["app.kubernetes.io/version"] == VERSION, where
    for where, template in pod_specs(objects):
        labels = template["metadata"]["labels"]
        assert not [k for k in LABELS if not labels.get(k)], f"{where} pod lacks labels"


def test_image_tag_is_the_released_version(objects: tuple) -> None:
    for where, container in containers(objects):
        assert container["image"].rsplit(":", 1)[-1] == VERSION, where


def test_version_has_one_source_and_every_copy_agrees_with_it() -> None:
    import amoroute

    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", VERSION), VERSION
    assert amoroute.__version__ == VERSION
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    (image,) = base["images"]
    assert image["newTag"] == VERSION
    assert base["labels"][0]["pairs"]["app.kubernetes.io/version"] == VERSION
    # Overlays name only their registry: a tag there would be one more copy to bump.
    for overlay in (K8S / "overlays").glob("*/kustomization.yaml"):
        for entry in yaml.safe_load(overlay.read_text()).get("images", []):
            assert "newTag" not in entry, overlay
    arg = re.search(r"^ARG VERSION=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert arg and arg.group(1) == VERSION, "Dockerfile ARG VERSION"
    assert "app.kubernetes.io/version" not in (K8S / "secret.example.yaml").read_text()


def test_set_version_rewrites_every_copy(tmp_path: Path) -> None:
    for name in (
        "VERSION",
        "Dockerfile",
        "deploy/set-version.sh",
        "deploy/k8s/base/kustomization.yaml",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, tmp_path / name)
    result = subprocess.run(
        ["bash", str(tmp_path / "deploy/set-version.sh"), "9.8.7"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "VERSION").read_text() == "9.8.7\n"
    base = yaml.safe_load((tmp_path / "deploy/k8s/base/kustomization.yaml").read_text())
    assert base["images"][0]["newTag"] == "9.8.7"
    assert base["labels"][0]["pairs"]["app.kubernetes.io/version"] == "9.8.7"
    assert "ARG VERSION=9.8.7\n" in (tmp_path / "Dockerfile").read_text()
    bad = subprocess.run(
        ["bash", str(tmp_path / "deploy/set-version.sh"), "v1"], capture_output=True
    )
    assert bad.returncode == 2


def test_selectors_pick_exactly_their_own_pods(objects: tuple) -> None:
    deployments = of_kind(objects, "Deployment")
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    jobs = [j["spec"]["template"]["metadata"]["labels"] for j in of_kind(objects, "Job").values()]
    for name, d in deployments.items():
        selector = d["spec"]["selector"]["matchLabels"]
        # Version and instance change between releases and environments; selectors are immutable.
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/component"}, name
        assert [p for p, labels in pods.items() if matches(selector, labels)] == [name]
        assert not [labels for labels in jobs if matches(selector, labels)], name
    for kind in ("Service", "PodDisruptionBudget"):
        for name, o in of_kind(objects, kind).items():
            spec = o["spec"]
            selector = spec["selector"] if kind == "Service" else spec["selector"]["matchLabels"]
            assert [p for p, labels in pods.items() if matches(selector, labels)] == [name], (
                f"{kind}/{name}"
            )


# --- pods -----------------------------------------------------------------------------------


def test_every_deployment_has_liveness_and_readiness_probes(objects: tuple) -> None:
    for name, d in of_kind(objects, "Deployment").items():
        (container,) = d["spec"]["template"]["spec"]["containers"]
        assert "livenessProbe" in container and "readinessProbe" in container, name
        if name in GRPC_PORTS:
            for probe in ("livenessProbe", "readinessProbe"):
                assert container[probe]["grpc"] == {"port": GRPC_PORTS[name]}, f"{name} {probe}"
    (edge,) = of_kind(objects, "Deployment")["edge"]["spec"]["template"]["spec"]["containers"]
    assert edge["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert edge["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_every_container_has_resource_requests_and_limits(objects: tuple) -> None:
    for where, container in containers(objects):
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert set(resources.get(kind, {})) >= {"cpu", "memory"}, f"{where} {kind}"


def test_every_pod_runs_as_non_root_on_a_read_only_filesystem(objects: tuple) -> None:
    for where, template in pod_specs(objects):
        spec = template["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        # Service links would inject e.g. EDGE_PORT=tcp://10.0.0.1:8080 over the setting.
        assert spec["enableServiceLinks"] is False, where
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: no emptyDir at /tmp"


def test_termination_grace_outlasts_the_prestop_sleep_and_the_drain(objects: tuple) -> None:
    grpc_grace = inspect.signature(serve_until_signalled).parameters["grace"].default
    gunicorn_conf = importlib.import_module("edge.gunicorn_conf")
    for name, d in of_kind(objects, "Deployment").items():
        spec = d["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        if name == "edge-worker":
            continue  # no traffic to drain; its own grace is documented in edge-worker.yaml
        drain = gunicorn_conf.graceful_timeout if name == "edge" else grpc_grace
        needed = sleep_seconds(container) + drain
        assert spec["terminationGracePeriodSeconds"] > needed, name


def test_edge_and_router_autoscale_and_leave_replicas_to_the_autoscaler(objects: tuple) -> None:
    deployments = of_kind(objects, "Deployment")
    for name, hpa in of_kind(objects, "HorizontalPodAutoscaler").items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert "replicas" not in deployments[name]["spec"], f"{name}: replicas fights the HPA"


# --- secrets and configuration --------------------------------------------------------------


def test_no_secret_is_rendered(objects: tuple) -> None:
    assert not [o["metadata"]["name"] for o in objects if o["kind"] == "Secret"]


def test_secrets_are_referenced_by_the_documented_name_and_keys_only(objects: tuple) -> None:
    refs = 0
    for node in walk(list(objects)):
        if "secretKeyRef" in node:
            ref = node["secretKeyRef"]
            assert ref["name"] == SECRET_NAME and ref["key"] in SECRET_KEYS, ref
            refs += 1
        if "secretRef" in node:
            assert node["secretRef"]["name"] == SECRET_NAME, node
    assert refs, "no secret references at all"
    for where, container in containers(objects):
        for name, entry in env_of(container).items():
            if name in SECRET_KEYS:
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{where}: {name} inline"
    for name, cm in of_kind(objects, "ConfigMap").items():
        assert not SECRET_KEYS & set(cm.get("data", {})), f"ConfigMap/{name} holds a secret"


def test_each_process_gets_the_secrets_it_needs(objects: tuple) -> None:
    # Every process that serves or calls gRPC checks or sends GRPC_AUTH_TOKENS.
    needs = {
        "edge": {"EDGE_DATABASE_URL", "WEBHOOK_SECRET", "ADMIN_TOKEN", "ADMIN_TOKENS",
                 "AMOCRM_ACCESS_TOKEN"} | AMOCRM_OAUTH_KEYS,
        "edge-worker": {"EDGE_DATABASE_URL", "AMOCRM_ACCESS_TOKEN"} | AMOCRM_OAUTH_KEYS,
        "router": {"ROUTER_DATABASE_URL"},
        "referral": {"REFERRAL_DATABASE_URL"},
        "traffic": {"TRAFFIC_DATABASE_URL"},
        "notifier": {"NOTIFIER_DATABASE_URL", "TELEGRAM_BOT_TOKEN"},
    }
    needs = {name: keys | {"GRPC_AUTH_TOKENS"} for name, keys in needs.items()}
    for name, d in of_kind(objects, "Deployment").items():
        (container,) = d["spec"]["template"]["spec"]["containers"]
        assert SECRET_KEYS & set(env_of(container)) == needs[name], name


def test_secret_example_lists_every_key_with_placeholders_and_is_never_rendered() -> None:
    example_path = K8S / "secret.example.yaml"
    example = yaml.safe_load(example_path.read_text())
    kubernetes_validate.validate(example, KUBERNETES_VERSION, strict=True)
    assert example["metadata"]["name"] == SECRET_NAME
    assert set(example["stringData"]) == SECRET_KEYS
    assert all("REPLACE_ME" in value for value in example["stringData"].values())
    for kustomization in K8S.rglob("kustomization.yaml"):
        resources = yaml.safe_load(kustomization.read_text()).get("resources", [])
        assert not [r for r in resources if "secret" in r], kustomization


def test_grpc_services_are_headless(objects: tuple) -> None:
    services = of_kind(objects, "Service")
    for name, port in GRPC_PORTS.items():
        spec = services[name]["spec"]
        assert spec.get("clusterIP") == "None", f"Service/{name} must be headless"
        assert {"name": "grpc", "port": port}.items() <= spec["ports"][0].items()


def test_grpc_addresses_are_dns_targets_of_the_headless_services(objects: tuple) -> None:
    addresses: dict[str, str] = {}
    for cm in of_kind(objects, "ConfigMap").values():
        addresses |= {k: v for k, v in cm.get("data", {}).items() if k.endswith("_ADDR")}
    for _, container in containers(objects):
        for name, entry in env_of(container).items():
            if name.endswith("_ADDR"):
                addresses[name] = entry["value"]
    namespace = objects[0]["metadata"].get("namespace", "amoroute")
    assert set(addresses) == {f"{s.upper()}_ADDR" for s in GRPC_PORTS}
    for name, service in ((f"{s.upper()}_ADDR", s) for s in GRPC_PORTS):
        expected = f"dns:///{service}.{namespace}.svc.cluster.local:{GRPC_PORTS[service]}"
        assert addresses[name] == expected, name


def test_processes_read_the_shared_config(objects: tuple) -> None:
    configs = of_kind(objects, "ConfigMap")
    for name, d in of_kind(objects, "Deployment").items():
        (container,) = d["spec"]["template"]["spec"]["containers"]
        refs = [e["configMapRef"]["name"] for e in container.get("envFrom", [])]
        assert len(refs) == 1 and refs[0] in configs, name
        assert refs[0].startswith("amoroute-config"), name


def test_no_amocrm_account_is_built_in(objects: tuple) -> None:
    # Each installation names its own account; a real subdomain here would reject every other
    # account's webhooks, and preflight.sh refuses the placeholder.
    (config,) = [
        c for n, c in of_kind(objects, "ConfigMap").items() if n.startswith("amoroute-config")
    ]
    assert config["data"]["AMOCRM_DOMAIN"].startswith("REPLACE_ME"), config["data"]


def test_servers_listen_beyond_loopback_for_probes_and_other_pods(objects: tuple) -> None:
    (config,) = [
        c for n, c in of_kind(objects, "ConfigMap").items() if n.startswith("amoroute-config")
    ]
    assert config["data"]["BIND_HOST"] == "0.0.0.0"


def test_the_notifier_may_post_to_every_chat_the_routing_rules_name(objects: tuple) -> None:
    configs = of_kind(objects, "ConfigMap")
    (config,) = [c for n, c in configs.items() if n.startswith("amoroute-config")]
    allowed = set(config["data"]["TELEGRAM_ALLOWED_CHAT_IDS"].split(","))
    rules = parse_rules_yaml(configs["routing-rules"]["data"]["routing_rules.yaml"])
    named = {t.telegram_chat_id for t in rules.targetologists if t.telegram_chat_id}
    assert named and named <= allowed


def test_routing_rules_are_a_mounted_directory_that_parses(objects: tuple) -> None:
    router = of_kind(objects, "Deployment")["router"]["spec"]["template"]["spec"]
    (container,) = router["containers"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == RULES_DIR)
    assert "subPath" not in mount, "a subPath mount never receives ConfigMap updates"
    volume = next(v for v in router["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "routing-rules"  # stable name: updated in place
    assert env_of(container)["ROUTING_RULES"]["value"] == f"{RULES_DIR}/routing_rules.yaml"
    rules = of_kind(objects, "ConfigMap")["routing-rules"]["data"]["routing_rules.yaml"]
    parsed = parse_rules_yaml(rules)
    assert parsed.pipelines and parsed.won_status_ids


# --- network --------------------------------------------------------------------------------


def _component(selector: dict[str, Any], deployments: dict[str, dict[str, Any]]) -> list[str]:
    labels = selector.get("matchLabels", {})
    return [
        name
        for name, d in deployments.items()
        if matches(labels, d["spec"]["template"]["metadata"]["labels"])
    ]


def test_every_component_has_its_own_network_policy(objects: tuple) -> None:
    policies = of_kind(objects, "NetworkPolicy")
    for where, template in pod_specs(objects):
        labels = template["metadata"]["labels"]
        own = [
            p
            for name, p in policies.items()
            if name != "default-deny" and matches(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        assert own, f"{where} has no NetworkPolicy"
        assert all(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in own), where
    deny = policies["default-deny"]["spec"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny


def test_network_policies_allow_exactly_the_documented_calls(objects: tuple) -> None:
    deployments = of_kind(objects, "Deployment")
    ingress: set[tuple[str, str, int]] = set()
    egress: set[tuple[str, str, int]] = set()
    open_ports: set[tuple[str, int]] = set()
    for policy in of_kind(objects, "NetworkPolicy").values():
        selected = _component(policy["spec"]["podSelector"], deployments)
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule["ports"]]
            if "from" not in rule:
                open_ports |= {(s, p) for s in selected for p in ports}
            for peer in rule.get("from", []):
                if "podSelector" in peer:
                    callers = _component(peer["podSelector"], deployments)
                    ingress |= {(c, s, p) for c in callers for s in selected for p in ports}
        for rule in policy["spec"].get("egress", []):
            ports = [p["port"] for p in rule["ports"]]
            for peer in rule.get("to", []):
                if "podSelector" in peer:
                    callees = _component(peer["podSelector"], deployments)
                    egress |= {(s, c, p) for s in selected for c in callees for p in ports}
    assert ingress == CALLS
    assert egress == CALLS
    assert open_ports == {("edge", 8080)}, "only the edge is reachable from outside"


def test_ingress_exposes_only_the_webhook_and_admin_paths(objects: tuple) -> None:
    (ingress,) = of_kind(objects, "Ingress").values()
    paths = set()
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == "edge"
            paths.add(path["path"])
    assert paths == {"/webhook/", "/admin", "/api/admin"}


# --- commands -------------------------------------------------------------------------------


def _module_exists(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:  # a package: needs __main__
        return importlib.util.find_spec(f"{module}.__main__") is not None
    return True


def test_container_commands_are_python_modules_of_the_repository(objects: tuple) -> None:
    for where, container in containers(objects):
        assert "command" not in container, f"{where}: keep the image's `python -m` entrypoint"
        args = container["args"]
        assert _module_exists(args[0]), f"{where}: python -m {args[0]} does not exist"
    (edge,) = of_kind(objects, "Deployment")["edge"]["spec"]["template"]["spec"]["containers"]
    assert edge["args"][:2] == ["gunicorn", "-c"]
    config = edge["args"][2].removeprefix("python:")
    assert edge["args"][2].startswith("python:") and _module_exists(config)
    app_module, _, factory = edge["args"][3].partition(":")
    assert factory == "create_app()" and callable(importlib.import_module(app_module).create_app)
    deployments = of_kind(objects, "Deployment")
    for name, module in GRPC_MODULES.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [module], name
    (worker,) = deployments["edge-worker"]["spec"]["template"]["spec"]["containers"]
    assert worker["args"] == ["edge.worker"]


@cache
def _help(module: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"python -m {module} --help:\n{result.stderr}"
    return result.stdout


def test_migration_jobs_run_the_migrate_command_of_each_database_owner(objects: tuple) -> None:
    for name, job in of_kind(objects, "Job").items():
        spec = job["spec"]["template"]["spec"]
        assert spec["restartPolicy"] == "Never", name
        (container,) = spec["containers"]
        assert container["args"] == [MIGRATIONS[name], "migrate"], name
        assert "migrate" in _help(MIGRATIONS[name]), f"python -m {MIGRATIONS[name]} has no migrate"
        # Only the Secret, so the Jobs can run before the release's ConfigMaps exist.
        assert "envFrom" not in container, name


def test_metrics_are_scraped_from_the_ports_the_processes_open(objects: tuple) -> None:
    for name, d in of_kind(objects, "Deployment").items():
        template = d["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/path"] == "/metrics", name
        (container,) = template["spec"]["containers"]
        port = int(annotations["prometheus.io/port"])
        assert port in {p["containerPort"] for p in container["ports"]}, name
        if name != "edge":
            assert env_of(container)["METRICS_PORT"]["value"] == str(port), name


# --- image ----------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_builds_in_stages_and_runs_as_a_non_root_user() -> None:
    instructions = _instructions()
    args = {
        k: v for k, _, v in (rest.partition("=") for word, rest in instructions if word == "ARG")
    }
    froms = [
        rest.replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"])
        for w, rest in instructions
        if w == "FROM"
    ]
    assert len(froms) >= 2, "multi-stage build expected"
    assert all(re.match(r"python:3\.11[\w.-]*-slim", f) for f in froms), froms
    assert not [f for f in froms if ":latest" in f]
    assert any(" AS builder" in f for f in froms)
    assert any(w == "COPY" and rest.startswith("--from=builder") for w, rest in instructions)
    users = [rest for w, rest in instructions if w == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, users
    assert users[-1].split(":")[0].isdigit(), "numeric USER, so runAsNonRoot can verify it"
    last_stage = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    assert ("USER", users[-1]) in last_stage


def test_image_entrypoint_and_default_command_match_the_edge_deployment() -> None:
    instructions = dict(_instructions())  # the last ENTRYPOINT and CMD: the runtime stage's
    entrypoint = json.loads(instructions["ENTRYPOINT"])
    cmd = json.loads(instructions["CMD"])
    assert entrypoint == ["python", "-m"]
    edge = of_kind(render("base"), "Deployment")["edge"]["spec"]["template"]["spec"]
    assert cmd == edge["containers"][0]["args"]


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", "__pycache__", ".pytest_cache", "test-artifacts"} <= ignored


# --- monitoring -----------------------------------------------------------------------------


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\bamoroute_[a-z0-9_]+", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_alert_rules_cover_the_operational_failures_with_known_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "monitoring" / "alerts.yaml").read_text())
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    readme = (DEPLOY / "README.md").read_text().lower()
    used: set[str] = set()
    for name, rule in alerts.items():
        names = _metric_names(rule["expr"])
        assert names and names <= METRICS, f"{name} uses unknown metrics {names - METRICS}"
        used |= names
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert f"### {anchor}" in readme, f"deploy/README.md has no section for {name}"
    assert {
        "amoroute_webhooks_total",
        "amoroute_pending_events",
        "amoroute_amocrm_hook_disabled",
        "amoroute_amocrm_oauth_needs_reconnect",
        "amoroute_webhook_invalid_answers_2h",
        "amoroute_amocrm_blocked",
        "amoroute_notifications_total",
    } <= used


def test_grafana_dashboard_queries_known_metrics() -> None:
    dashboard = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used == METRICS
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "namespace"}


# --- other namespaces, the local try-out, the databases -------------------------------------


def render_dir(kustomization_dir: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(kustomization_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize {kustomization_dir}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def assert_all_in_namespace(objects: tuple[dict[str, Any], ...], namespace: str) -> None:
    for o in objects:
        assert o["metadata"].get("namespace") == namespace, f"{o['kind']}/{o['metadata']['name']}"
    (config,) = [
        c for n, c in of_kind(objects, "ConfigMap").items() if n.startswith("amoroute-config")
    ]
    for key in ("ROUTER_ADDR", "REFERRAL_ADDR", "TRAFFIC_ADDR", "NOTIFIER_ADDR"):
        assert f".{namespace}.svc.cluster.local:" in config["data"][key], key
    # Nothing else names a namespace of ours: only the overlay's own, and the monitoring and DNS
    # namespaces the NetworkPolicies allow.
    for node in walk(list(objects)):
        for key, value in node.items():
            if key in ("namespace", "kubernetes.io/metadata.name") and isinstance(value, str):
                assert value in (namespace, "monitoring", "kube-system"), node
    for text in strings(list(objects)):
        assert ".amoroute.svc" not in text or namespace == "amoroute", text


def test_a_copy_of_the_prod_overlay_installs_into_another_namespace(tmp_path: Path) -> None:
    overlay = yaml.safe_load((TARGETS["prod"] / "kustomization.yaml").read_text())
    overlay["namespace"] = "sales-team"
    overlay["resources"] = [os.path.relpath(K8S / "base", tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    assert_all_in_namespace(render_dir(tmp_path), "sales-team")


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_overlays_name_no_namespace_but_their_own(target: str) -> None:
    namespace = yaml.safe_load((TARGETS[target] / "kustomization.yaml").read_text())["namespace"]
    assert_all_in_namespace(render(target), namespace)


def test_monitoring_selects_no_namespace_by_name() -> None:
    # The alerts group by namespace and the dashboard picks it from a variable.
    for path in (DEPLOY / "monitoring").iterdir():
        text = path.read_text()
        assert not re.search(r'namespace\s*=~?\s*\\?"amoroute', text), path


def test_local_overlay_runs_every_process_with_its_own_postgres() -> None:
    local = K8S / "overlays" / "local"
    objects = render_dir(local)
    namespace = yaml.safe_load((local / "kustomization.yaml").read_text())["namespace"]
    assert_all_in_namespace(objects, namespace)
    for o in objects:
        kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
    deployments = of_kind(objects, "Deployment")
    assert set(deployments) == DEPLOYMENTS | {"postgres"}
    assert set(of_kind(objects, "Job")) == set(MIGRATIONS)
    assert "postgres" in of_kind(objects, "Service")
    assert not of_kind(objects, "Secret")
    for where, container in containers(objects):
        if container["name"] != "postgres":
            # kind load docker-image puts this exact name on the node: no registry.
            assert container["image"] == f"amoroute:{VERSION}", where
    for name in DEPLOYMENTS - {"edge", "router"}:
        assert deployments[name]["spec"]["replicas"] == 1, name
    # The default-deny policy must not fence the try-out's database off.
    deny = of_kind(objects, "NetworkPolicy")["default-deny"]["spec"]["podSelector"]["matchLabels"]
    postgres_pod = deployments["postgres"]["spec"]["template"]["metadata"]["labels"]
    assert not matches(deny, postgres_pod)
    (config,) = [
        c for n, c in of_kind(objects, "ConfigMap").items() if n.startswith("amoroute-config")
    ]
    fixture = (REPO / "tests" / "fixtures" / "amocrm" / "status_won_with_utm.form").read_text()
    assert f"account%5Bsubdomain%5D={config['data']['AMOCRM_DOMAIN']}&" in fixture


def test_postgres_setup_creates_one_locked_database_and_role_per_service() -> None:
    sql = (DEPLOY / "postgres-setup.sql").read_text()
    example = yaml.safe_load((K8S / "secret.example.yaml").read_text())["stringData"]
    for service in ("edge", "router", "referral", "traffic", "notifier"):
        url = example[f"{service.upper()}_DATABASE_URL"]
        user, database = re.fullmatch(
            r"postgresql\+psycopg://(\w+):[^@]+@[^/]+/(\w+)", url
        ).groups()
        assert user == database == f"amoroute_{service}", url
        assert f"'{database}'" in sql
        assert f"ALTER ROLE {user} NOSUPERUSER NOCREATEDB NOCREATEROLE" in sql
        assert f":'{service}_password'" in sql
        assert f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;" in sql
        assert f"\\connect {database}\nALTER SCHEMA public OWNER TO {user};" in sql
    statements = [line for line in sql.splitlines() if not line.startswith("--")]
    assert not [line for line in statements if "GRANT" in line], "no role gets more than it owns"


def test_every_runbook_section_the_deploy_files_point_to_exists() -> None:
    runbook = (DEPLOY / "README.md").read_text()
    headings = set(re.findall(r"^#+ (.+)$", runbook, re.M))
    pointers = set()
    for path in [*DEPLOY.rglob("*.yaml"), *DEPLOY.glob("*.sh"), *DEPLOY.glob("*.sql")]:
        pointers |= set(re.findall(r'deploy/README\.md, \\?"([^"\\]+)\\?"', path.read_text()))
    assert {"Secrets", "Install"} <= pointers
    assert not [
        p for p in pointers if p not in headings and not any(h.startswith(p) for h in headings)
    ]


# --- traces ---------------------------------------------------------------------------------


def test_dev_overlay_sends_every_process_s_spans_through_a_collector_to_jaeger() -> None:
    tracing = render_tracing("dev")
    assert set(of_kind(tracing, "Deployment")) == {"otel-collector", "jaeger"}
    assert set(of_kind(tracing, "Service")) == {"otel-collector", "jaeger"}
    namespace = yaml.safe_load((TARGETS["dev"] / "kustomization.yaml").read_text())["namespace"]
    for o in tracing:
        where = f"{o['kind']}/{o['metadata']['name']}"
        assert o["metadata"].get("namespace") == namespace, where
        kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
    for where, container in containers(tracing):
        assert container["resources"]["limits"] and container["readinessProbe"], where
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
        assert not container["image"].endswith(":latest") and ":" in container["image"], where
    # Every amoroute process reads the endpoint from the shared config: the Collector's HTTP port.
    (config,) = [
        c for n, c in of_kind(render("dev"), "ConfigMap").items() if n.startswith("amoroute-config")
    ]
    assert config["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert config["data"]["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    collector_ports = {p["port"] for p in of_kind(tracing, "Service")["otel-collector"]["spec"]["ports"]}
    assert {4317, 4318} <= collector_ports
    # The Collector receives OTLP both ways and exports to Jaeger's OTLP port.
    (collector_config,) = [
        c for n, c in of_kind(tracing, "ConfigMap").items() if n.startswith("otel-collector-config")
    ]
    pipeline = yaml.safe_load(collector_config["data"]["collector.yaml"])
    assert set(pipeline["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    [exporter] = pipeline["service"]["pipelines"]["traces"]["exporters"]
    host, port = pipeline["exporters"][exporter]["endpoint"].split(":")
    jaeger_ports = {p["port"] for p in of_kind(tracing, "Service")["jaeger"]["spec"]["ports"]}
    assert host == "jaeger" and int(port) in jaeger_ports
    # amoroute's pods deny egress by default: one policy lets every one reach the Collector.
    policy = of_kind(tracing, "NetworkPolicy")["amoroute-to-otel-collector"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "amoroute"}
    [rule] = policy["egress"]
    [peer] = rule["to"]
    collector_pod = of_kind(tracing, "Deployment")["otel-collector"]["spec"]["template"]
    assert matches(peer["podSelector"]["matchLabels"], collector_pod["metadata"]["labels"])
    assert {p["port"] for p in rule["ports"]} == {4317, 4318}


@pytest.mark.parametrize("target", ["base", "prod"])
def test_tracing_is_off_unless_an_overlay_turns_it_on(target: str) -> None:
    assert render_tracing(target) == ()
    (config,) = [
        c for n, c in of_kind(render(target), "ConfigMap").items() if n.startswith("amoroute-config")
    ]
    assert not config["data"].get("OTEL_EXPORTER_OTLP_ENDPOINT")


def test_grafana_dashboard_links_to_the_traces() -> None:
    dashboard = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text())
    [link] = [link for link in dashboard["links"] if link["title"] == "Traces"]
    assert link["type"] == "link" and link["url"].startswith("/explore")
    assert "traces" in link["url"] and link["targetBlank"] is True

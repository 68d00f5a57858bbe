"""deploy/preflight.sh against a fake cluster: stand-ins for kubectl, grpcurl and curl on PATH
answer as a healthy (or broken) installation would, so the script's checks and verdicts run for
real without a cluster."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFLIGHT = REPO / "deploy" / "preflight.sh"

WEBHOOK_SECRET = "s3cr3t-webhook-path-0123456789"
SECRETS = {
    "AMOCRM_ACCESS_TOKEN": "amocrm-token-value",
    "TELEGRAM_BOT_TOKEN": "123:telegram-token-value",
    "ADMIN_TOKEN": "admin-token-0123456789abcdef-0123456789",
    "WEBHOOK_SECRET": WEBHOOK_SECRET,
    "EDGE_DATABASE_URL": "postgresql+psycopg://edge:pw-edge@db:5432/edge",
    "ROUTER_DATABASE_URL": "postgresql+psycopg://router:pw-router@db:5432/router",
    "REFERRAL_DATABASE_URL": "postgresql+psycopg://referral:pw-referral@db:5432/referral",
    "TRAFFIC_DATABASE_URL": "postgresql+psycopg://traffic:pw-traffic@db:5432/traffic",
    "NOTIFIER_DATABASE_URL": "postgresql+psycopg://notifier:pw-notifier@db:5432/notifier",
    "GRPC_AUTH_TOKENS": "router:router-token-value,edge:edge-token-value,operator:op-token-value",
}
IMAGE = "registry.example.com/amoroute:0.1.0"
JOBS = ["edge-migrate", "router-migrate", "referral-migrate", "traffic-migrate", "notifier-migrate"]
SERVICES = [
    "amoroute.v1.RouterService",
    "amoroute.v1.ReferralService",
    "amoroute.v1.TrafficService",
    "amoroute.v1.NotifierService",
]

# One Python program plays kubectl, grpcurl and curl (the stub names which); the
# installation it describes comes in FAKE_CLUSTER (JSON).
FAKE = r"""
import base64, json, os, sys, time

cluster = json.loads(os.environ["FAKE_CLUSTER"])
tool, args = sys.argv[1], sys.argv[2:]

def jsonpath():
    return next((a.split("=", 1)[1] for a in args if a.startswith("jsonpath=")),
                args[args.index("-o") + 1].split("=", 1)[1] if "-o" in args else None)

if tool == "kubectl":
    if args[:2] == ["config", "current-context"]:
        print("fake"); sys.exit(0)
    args = args[2:]  # -n NAMESPACE
    if args[0] == "port-forward":
        port = args[2].lstrip(":")
        print(f"Forwarding from 127.0.0.1:4{port[-4:]} -> {port}", flush=True)
        time.sleep(60); sys.exit(0)
    if args[0] == "rollout":
        sys.exit(0 if args[2].split("/")[1] in cluster["available"] else 1)
    kind, name, path = args[1], args[2], jsonpath()
    if kind == "secret":
        if not cluster["secret"]:
            sys.exit(1)
        if path:
            key = path.strip("{}").split(".")[-1]
            value = cluster["secret"].get(key)
            print(base64.b64encode(value.encode()).decode() if value is not None else "", end="")
        sys.exit(0)
    if kind == "job":
        if name not in cluster["jobs"]:
            print(f'Error from server (NotFound): jobs.batch "{name}" not found', file=sys.stderr)
            sys.exit(1)
        if path and "succeeded" in path: print(cluster["jobs"][name], end="")
        if path and "image" in path: print(cluster.get("job_image", cluster["image"]), end="")
        sys.exit(0)
    if kind == "deployment":
        if path and "image" in path: print(cluster["image"], end="")
        elif path and "configMapRef" in path: print("amoroute-config-abc123", end="")
        elif path: print("2/2", end="")
        sys.exit(0)
    if kind == "configmap":
        print(cluster["amocrm_domain"], end=""); sys.exit(0)
    sys.exit(f"fake kubectl: unexpected {args}")

if tool == "grpcurl":
    if args[-1] == "list":
        print("\n".join(cluster["grpc_services"] + ["grpc.health.v1.Health"])); sys.exit(0)
    service = json.loads(args[args.index("-d") + 1])["service"]
    if service in cluster["grpc_serving"]:
        print('{\n  "status": "SERVING"\n}'); sys.exit(0)
    print("ERROR:\n  Code: Unavailable\n  Message: connection refused", file=sys.stderr); sys.exit(1)

if tool == "curl":
    url = args[-1]
    if url.endswith("/readyz"):
        print(json.dumps({"ready": cluster["ready"], "checks": {}})); sys.exit(0)
    if url.endswith("/webhook/amocrm/test"):
        print(json.dumps({"success": True})); sys.exit(0)
    if url.endswith("/api/v4/webhooks"):
        assert "Authorization: Bearer " + cluster["secret"]["AMOCRM_ACCESS_TOKEN"] in args
        with open(args[args.index("-o") + 1], "w") as f:
            json.dump({"_embedded": {"webhooks": cluster["webhooks"]}}, f)
        print("200", end=""); sys.exit(0)
    sys.exit(f"fake curl: unexpected {args}")
"""


def healthy_cluster() -> dict[str, Any]:
    return {
        "secret": dict(SECRETS),
        "image": IMAGE,
        "jobs": {job: 1 for job in JOBS},
        "available": ["edge", "edge-worker", "router", "referral", "traffic", "notifier"],
        "grpc_services": list(SERVICES),
        "grpc_serving": list(SERVICES),
        "ready": True,
        "amocrm_domain": "onaiagencykz",
        "webhooks": [
            {
                "id": 1,
                "destination": f"https://amoroute.example.com/webhook/amocrm/{WEBHOOK_SECRET}",
                "disabled": False,
                "settings": ["add_lead", "update_lead", "status_lead"],
            }
        ],
    }


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fake-bin")
    program = folder / "fake.py"
    program.write_text(FAKE)
    for tool in ("kubectl", "grpcurl", "curl"):
        stub = folder / tool
        stub.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "{program}" {tool} "$@"\n')
        stub.chmod(0o755)
    return folder


def preflight(fake_bin: Path, cluster: dict[str, Any], *args: str) -> subprocess.CompletedProcess:
    # Only the fakes and the basic tools: no real kubectl or curl may be reached.
    tools = fake_bin.parent / "tools"
    tools.mkdir(exist_ok=True)
    for tool in (
        "bash",
        "sh",
        "sed",
        "head",
        "tail",
        "seq",
        "sleep",
        "base64",
        "mktemp",
        "rm",
        "cat",
        "tr",
        "grep",
        "dirname",
        "python3",
        "env",
    ):
        link = tools / tool
        if not link.exists():
            found = shutil.which(tool) if tool != "python3" else sys.executable
            assert found, f"{tool} is needed to run preflight.sh"
            link.symlink_to(found)
    env = {
        "PATH": f"{fake_bin}:{tools}",
        "FAKE_CLUSTER": json.dumps(cluster),
        "HOME": str(fake_bin.parent),
        "PREFLIGHT_TIMEOUT": "1",
    }
    return subprocess.run(
        ["bash", str(PREFLIGHT), "-n", "amoroute", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="preflight.sh needs bash")


def test_preflight_passes_on_a_healthy_installation_without_printing_secrets(
    fake_bin: Path,
) -> None:
    result = preflight(fake_bin, healthy_cluster(), "--host", "amoroute.example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    for service in SERVICES:
        assert f"ok    {service} SERVING" in result.stdout
    assert "/webhook/amocrm/<WEBHOOK_SECRET> enabled" in result.stdout
    assert "ok    AMOCRM_DOMAIN in configmap/amoroute-config-abc123: onaiagencykz" in result.stdout
    for value in SECRETS.values():
        assert value not in result.stdout + result.stderr
    assert "pw-edge" not in result.stdout


def test_preflight_fails_when_amocrm_has_disabled_the_webhook(fake_bin: Path) -> None:
    cluster = healthy_cluster()
    cluster["webhooks"][0]["disabled"] = True
    result = preflight(fake_bin, cluster)
    assert result.returncode == 1
    assert "is DISABLED in AmoCRM" in result.stdout
    assert "1 check(s) failed" in result.stdout


def test_preflight_names_every_problem_it_finds(fake_bin: Path) -> None:
    cluster = healthy_cluster()
    cluster["secret"]["ADMIN_TOKEN"] = "short"
    cluster["secret"]["TELEGRAM_BOT_TOKEN"] = ""
    del cluster["jobs"]["traffic-migrate"]
    cluster["available"].remove("notifier")
    cluster["grpc_serving"].remove("amoroute.v1.NotifierService")
    cluster["ready"] = False
    cluster["webhooks"][0]["destination"] = "https://amoroute.example.com/webhook/amocrm/old"
    cluster["webhooks"][0]["settings"] = ["status_lead"]
    result = preflight(fake_bin, cluster)
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL  ADMIN_TOKEN must be 32+ random characters (is 5)" in out
    assert "FAIL  TELEGRAM_BOT_TOKEN is empty" in out
    assert "FAIL  job/traffic-migrate not found" in out
    assert "FAIL  deployment/notifier not available" in out
    assert "FAIL  amoroute.v1.NotifierService health" in out
    assert "FAIL  /readyz" in out
    assert "does not end with /webhook/amocrm/<WEBHOOK_SECRET>" in out
    assert "lacks events add_lead, update_lead" in out
    assert "8 check(s) failed" in out


def test_preflight_reports_a_missing_secret_and_stale_migrations(fake_bin: Path) -> None:
    cluster = healthy_cluster()
    cluster["secret"] = {}
    cluster["job_image"] = "registry.example.com/amoroute:0.0.9"
    result = preflight(fake_bin, cluster, "--skip-amocrm")
    assert result.returncode == 1
    assert "FAIL  secret/amoroute-secrets not found" in result.stdout
    assert (
        "FAIL  job/edge-migrate ran registry.example.com/amoroute:0.0.9, the Deployments run "
        f"{IMAGE}: migrate again for this release" in result.stdout
    )
    # The Secret, and each of the five migration Jobs.
    assert "6 check(s) failed" in result.stdout
    assert "skipped (--skip-amocrm)" in result.stdout


def test_preflight_syntax_and_help() -> None:
    assert subprocess.run(["bash", "-n", str(PREFLIGHT)]).returncode == 0
    assert os.access(PREFLIGHT, os.X_OK), "deploy/preflight.sh must be executable"
    usage = subprocess.run(["bash", str(PREFLIGHT), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--host" in usage.stdout


def test_preflight_refuses_the_base_placeholder_for_the_amocrm_account(fake_bin: Path) -> None:
    cluster = healthy_cluster()
    cluster["amocrm_domain"] = "REPLACE_ME_amocrm_subdomain"
    result = preflight(fake_bin, cluster)
    assert result.returncode == 1
    assert (
        "FAIL  AMOCRM_DOMAIN in configmap/amoroute-config-abc123 is the placeholder "
        "REPLACE_ME_amocrm_subdomain: set AMOCRM_DOMAIN=<subdomain> (the X of X.amocrm.ru) in "
        "your overlay's configMapGenerator" in result.stdout
    )
    assert "skipped: AMOCRM_DOMAIN is the placeholder" in result.stdout
    assert "1 check(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("domain", "verdict"),
    [("", "is empty: set your AmoCRM subdomain"), ("acme.amocrm.ru", "give only the subdomain")],
)
def test_preflight_wants_only_the_account_subdomain(
    fake_bin: Path, domain: str, verdict: str
) -> None:
    cluster = healthy_cluster()
    cluster["amocrm_domain"] = domain
    result = preflight(fake_bin, cluster, "--skip-amocrm")
    assert result.returncode == 1
    assert verdict in result.stdout
    assert "1 check(s) failed" in result.stdout

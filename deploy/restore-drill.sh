#!/usr/bin/env bash
# Restore drill: dump every database of a running amoroute on PostgreSQL, drop them,
# restore them from the dumps, and show that the dashboards' totals are unchanged.
#
#   EDGE_URL=http://127.0.0.1:8080 ADMIN_TOKEN=... \
#   EDGE_DATABASE_URL=postgresql+psycopg://... ROUTER_DATABASE_URL=... REFERRAL_DATABASE_URL=... \
#   TRAFFIC_DATABASE_URL=... NOTIFIER_DATABASE_URL=... \
#   deploy/restore-drill.sh [DUMP_DIR]
#
# The URLs are the ones the processes run with (`postgresql+psycopg://` is accepted). The
# user in each URL must own its database (the drill drops and creates it); the `postgres`
# maintenance database of the same server must accept that user. The processes keep
# running: their next query after the restore reconnects. Exits 1 when a total differs.
# Needs curl and PostgreSQL's client tools (pg_dump, pg_restore, psql) of the server's
# major version.
set -euo pipefail

: "${EDGE_URL:?EDGE_URL: the edge, e.g. http://127.0.0.1:8080}"
: "${ADMIN_TOKEN:?ADMIN_TOKEN: the admin token the edge runs with}"
DUMP_DIR="${1:-$(mktemp -d -t amoroute-drill-XXXXXX)}"
mkdir -p "$DUMP_DIR"
SERVICES=(edge router referral traffic notifier)

libpq_url() { # the libpq form of a SQLAlchemy URL
  local url="$1"
  case "$url" in
    postgresql+*://*) echo "postgresql://${url#*://}" ;;
    postgresql://*) echo "$url" ;;
    *) echo "not a PostgreSQL URL: $url" >&2; return 1 ;;
  esac
}

database_url() { # the URL of service $1, from <SERVICE>_DATABASE_URL
  local name
  name="$(echo "$1" | tr '[:lower:]' '[:upper:]')_DATABASE_URL"
  [ -n "${!name:-}" ] || { echo "$name is not set" >&2; return 1; }
  libpq_url "${!name}"
}

totals() { # what the dashboards show: sales per targetologist and per referral code
  local path answer
  for path in sales/traffic sales/referral; do
    for _ in $(seq 1 30); do # the first query after the restore may meet a dropped connection
      if answer="$(curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$EDGE_URL/api/admin/$path")"; then
        echo "$path $answer"
        continue 2
      fi
      sleep 1
    done
    echo "GET /api/admin/$path kept failing" >&2
    return 1
  done
}

echo "== totals before"
before="$(totals)"
echo "$before"

echo "== dump into $DUMP_DIR"
for service in "${SERVICES[@]}"; do
  url="$(database_url "$service")"
  started=$(date +%s%N)
  pg_dump "$url" --format=custom --no-owner --file="$DUMP_DIR/$service.dump"
  printf '  %-9s %10s bytes  %6d ms\n' "$service" "$(stat -c %s "$DUMP_DIR/$service.dump")" \
    $(( ($(date +%s%N) - started) / 1000000 ))
done

echo "== drop, create and restore"
for service in "${SERVICES[@]}"; do
  url="$(database_url "$service")"
  db="${url##*/}"
  db="${db%%\?*}"
  maintenance="${url%/*}/postgres"
  started=$(date +%s%N)
  psql "$maintenance" -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
  pg_restore --no-owner --exit-on-error -d "$url" "$DUMP_DIR/$service.dump"
  printf '  %-9s restored in %6d ms\n' "$service" $(( ($(date +%s%N) - started) / 1000000 ))
done

echo "== totals after"
after="$(totals)"
echo "$after"
if [ "$before" != "$after" ]; then
  echo "RESTORE DRILL FAILED: the totals differ" >&2
  exit 1
fi
echo "restore drill passed: the dashboards' totals are unchanged (dumps kept in $DUMP_DIR)"

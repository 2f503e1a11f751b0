#!/bin/sh
# Bounded read load against a gateway on this machine: scripts/load_test.sh API_KEY_FILE [URL].
# Thin over `gateway load-test`; prints requests/s and p50/p95/p99 latency. Reads only, never
# orders. REQUESTS (500), CONCURRENCY (8) and MAX_SECONDS (60) bound it.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 API_KEY_FILE [URL]" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
gateway=${GATEWAY_BIN:-$here/.venv/bin/gateway}
[ -x "$gateway" ] || gateway=gateway
exec "$gateway" load-test --api-key-file "$1" --url "${2:-http://127.0.0.1:8000}" \
  --requests "${REQUESTS:-500}" --concurrency "${CONCURRENCY:-8}" --max-seconds "${MAX_SECONDS:-60}"

#!/bin/sh
# Back up the gateway's database: scripts/backup.sh [FILE] (default: backups/gateway-<UTC time>.dump).
# Thin over `gateway backup`; the same GATEWAY_* settings as the server (an env file works:
# `set -a; . /etc/gateway/gateway.env; set +a`). The secrets stay encrypted: keep the key file too.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
gateway=${GATEWAY_BIN:-$here/.venv/bin/gateway}
[ -x "$gateway" ] || gateway=gateway
file=${1:-backups/gateway-$(date -u +%Y%m%dT%H%M%SZ).dump}
exec "$gateway" backup "$file"

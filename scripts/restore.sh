#!/bin/sh
# Restore a backup into the configured database, replacing its contents: scripts/restore.sh FILE.
# Thin over `gateway restore --yes`: one transaction, then the roles' grants, then a check that
# every secret decrypts with the configured keys. Stop the web servers and the scheduler first.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 BACKUP_FILE" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
gateway=${GATEWAY_BIN:-$here/.venv/bin/gateway}
[ -x "$gateway" ] || gateway=gateway
exec "$gateway" restore --yes "$1"

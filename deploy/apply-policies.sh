#!/usr/bin/env bash
# Applies policies/ (in the order policies/ORDER gives) in one transaction, as the owner role.
# Idempotent: a second run changes nothing. Usage: DATABASE_OWNER_URL=postgres://... deploy/apply-policies.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_OWNER_URL:?set DATABASE_OWNER_URL to the owner role's connection URL}"
command -v psql >/dev/null || { echo "psql not found: install the PostgreSQL client (Debian: apt-get install postgresql-client)" >&2; exit 2; }
args=()
while read -r file; do
  case "$file" in ''|'#'*) continue ;; esac
  args+=(-f "$here/policies/$file")
done < "$here/policies/ORDER"
psql "$DATABASE_OWNER_URL" -X -q -v ON_ERROR_STOP=1 --single-transaction "${args[@]}"
echo "policies applied: $(grep -v '^#' "$here/policies/ORDER" | grep -c .) files"

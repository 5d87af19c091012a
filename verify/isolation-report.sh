#!/usr/bin/env bash
# Writes the tenant isolation audit (every table, view and function of schema app with its
# protection) as markdown to stdout. Usage: DATABASE_OWNER_URL=postgres://... verify/isolation-report.sh > report.md
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_OWNER_URL:?set DATABASE_OWNER_URL to the owner role connection URL}"
command -v psql >/dev/null || { echo "FAIL psql not found. FIX: install the PostgreSQL 15 client (Debian: apt-get install postgresql-client)" >&2; exit 2; }
db=$(psql "$DATABASE_OWNER_URL" -X -At -v ON_ERROR_STOP=1 -c "select current_database() || ' on PostgreSQL ' || current_setting('server_version')")
printf '# Tenant isolation report\n\n%s, generated %s by verify/isolation-report.sh.\n\n' "$db" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
psql "$DATABASE_OWNER_URL" -X -At -q -v ON_ERROR_STOP=1 -f "$here/verify/isolation_report.sql"

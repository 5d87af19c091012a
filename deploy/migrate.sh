#!/usr/bin/env bash
# Snapshot, then migrate. 1) pg_dump -Fc into a timestamped file (SNAPSHOT_DIR, default
# snapshots/); if the snapshot fails, nothing is migrated unless --skip-snapshot is given.
# 2) the pending migrations from sql/ (node-pg-migrate, one transaction, as the owner role).
# Then run deploy/apply-policies.sh and verify/golive-status.sh (runbooks/go-live.md).
# Usage: DATABASE_OWNER_URL=postgres://... deploy/migrate.sh [--skip-snapshot]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_OWNER_URL:?set DATABASE_OWNER_URL to the owner role connection URL}"
skip_snapshot=false
for arg in "$@"; do
  case "$arg" in
    --skip-snapshot) skip_snapshot=true ;;
    *) echo "usage: deploy/migrate.sh [--skip-snapshot]" >&2; exit 2 ;;
  esac
done
command -v node >/dev/null || { echo "FAIL node not found. FIX: install Node 20.19+ and run npm ci" >&2; exit 2; }
[ -x "$here/node_modules/.bin/tsx" ] || { echo "FAIL node_modules missing. FIX: (cd $here && npm ci)" >&2; exit 2; }

if $skip_snapshot; then
  echo "WARNING: --skip-snapshot: migrating WITHOUT a snapshot; rollback to a snapshot will not be possible for this run."
else
  command -v pg_dump >/dev/null || { echo "FAIL pg_dump not found. FIX: install the PostgreSQL 15 client (Debian: apt-get install postgresql-client), or rerun with --skip-snapshot to accept migrating without one" >&2; exit 2; }
  dir="${SNAPSHOT_DIR:-$here/snapshots}"
  mkdir -p "$dir"
  db=$(psql "$DATABASE_OWNER_URL" -X -At -c 'select current_database()' 2>/dev/null || echo db)
  file="$dir/$db-$(date -u +%Y%m%dT%H%M%SZ)-pre-migrate.dump"
  echo "snapshot: pg_dump -Fc -> $file"
  if ! pg_dump -Fc --file "$file" "$DATABASE_OWNER_URL"; then
    rm -f "$file"
    echo "FAIL snapshot failed: nothing was migrated. FIX: check pg_dump's message above (pg_dump must be the server's major version or newer, the owner role must read every table), or rerun with --skip-snapshot to migrate without one" >&2
    exit 1
  fi
  echo "snapshot: ok ($(du -h "$file" | cut -f1)); roll back with: deploy/rollback.sh --snapshot $file"
fi

cd "$here"
"$here/node_modules/.bin/tsx" server/cli.ts migrate --url "$DATABASE_OWNER_URL"
echo "next: deploy/apply-policies.sh, then verify/golive-status.sh"

#!/usr/bin/env bash
# Snapshot, then deploy. 1) pg_dump -Fc into a timestamped file (SNAPSHOT_DIR, default
# snapshots/); if the snapshot fails, nothing is deployed unless --skip-snapshot is given.
# 2) `npm run cli -- deploy`, the one deploy command (server/setup/deploy.ts): pending migrations
# (one transaction), changed policy files, CONTEXT_KEY added beside the installed context keys, as the owner role, one
# deploy at a time, every lock bounded by --lock-timeout-ms and retried. Arguments after the
# script's own go to it: --no-context-key, --only migrations, --lock-timeout-ms 2000, ...
# Then verify/golive-status.sh, and start or roll the API instances (runbooks/go-live.md).
# Usage: DATABASE_OWNER_URL=postgres://... CONTEXT_KEY=... deploy/deploy.sh [--skip-snapshot] [deploy options]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_OWNER_URL:?set DATABASE_OWNER_URL to the owner role connection URL}"
skip_snapshot=false
deploy_args=()
for arg in "$@"; do
  case "$arg" in
    --skip-snapshot) skip_snapshot=true ;;
    *) deploy_args+=("$arg") ;;
  esac
done
command -v node >/dev/null || { echo "FAIL node not found. FIX: install Node 20.19+ and run npm ci" >&2; exit 2; }
[ -x "$here/node_modules/.bin/tsx" ] || { echo "FAIL node_modules missing. FIX: (cd $here && npm ci)" >&2; exit 2; }

if $skip_snapshot; then
  echo "WARNING: --skip-snapshot: deploying WITHOUT a snapshot; rollback to a snapshot will not be possible for this run."
else
  command -v pg_dump >/dev/null || { echo "FAIL pg_dump not found. FIX: install the PostgreSQL 15 client (Debian: apt-get install postgresql-client), or rerun with --skip-snapshot to accept migrating without one" >&2; exit 2; }
  dir="${SNAPSHOT_DIR:-$here/snapshots}"
  mkdir -p "$dir"
  db=$(psql "$DATABASE_OWNER_URL" -X -At -c 'select current_database()' 2>/dev/null || echo db)
  file="$dir/$db-$(date -u +%Y%m%dT%H%M%SZ)-pre-migrate.dump"
  echo "snapshot: pg_dump -Fc -> $file"
  if ! pg_dump -Fc --file "$file" "$DATABASE_OWNER_URL"; then
    rm -f "$file"
    echo "FAIL snapshot failed: nothing was migrated. FIX: check pg_dump's message above (pg_dump must be the server's major version or newer, the owner role must read every table), or rerun with --skip-snapshot to deploy without one" >&2
    exit 1
  fi
  echo "snapshot: ok ($(du -h "$file" | cut -f1)); roll back with: deploy/rollback.sh --snapshot $file"
fi

cd "$here"
"$here/node_modules/.bin/tsx" server/cli.ts deploy --url "$DATABASE_OWNER_URL" ${deploy_args[@]+"${deploy_args[@]}"}
echo "next: verify/golive-status.sh, then start or roll the API instances (runbooks/go-live.md)"

#!/usr/bin/env bash
# Roll the database back, fail-closed.
#   deploy/rollback.sh --snapshot FILE   restore a deploy/migrate.sh snapshot (pg_restore --clean and
#                                        policies/ in one transaction: the app role sees the old
#                                        state or the new)
#   deploy/rollback.sh --previous-migration   undo the last migration (only if it has a Down section)
# Asks before acting (type "yes"); --yes for automation. Afterwards it re-applies policies/ and
# runs verify/catalog.sql and verify/verify_rls.sql. If either fails, it revokes app_user's
# access to schema app so the API answers errors instead of unprotected rows, and exits 1.
# Usage: DATABASE_OWNER_URL=postgres://... deploy/rollback.sh (--snapshot FILE | --previous-migration) [--yes]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_OWNER_URL:?set DATABASE_OWNER_URL to the owner role connection URL}"
mode="" file="" yes=false
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshot) mode=snapshot; file="${2:-}"; shift ;;
    --previous-migration) mode=migration ;;
    --yes) yes=true ;;
    *) mode="" ; break ;;
  esac
  shift
done
[ -n "$mode" ] || { echo "usage: deploy/rollback.sh (--snapshot FILE | --previous-migration) [--yes]" >&2; exit 2; }
for tool in psql pg_restore; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool not found. FIX: install the PostgreSQL 15 client (Debian: apt-get install postgresql-client)" >&2; exit 2; }
done
if [ "$mode" = snapshot ]; then
  [ -f "$file" ] || { echo "FAIL snapshot file not found: '$file'. FIX: ls ${SNAPSHOT_DIR:-$here/snapshots}/" >&2; exit 2; }
  pg_restore --list "$file" >/dev/null || { echo "FAIL $file is not a pg_dump -Fc archive. FIX: pick a file deploy/migrate.sh wrote" >&2; exit 2; }
  plan="restore $file over database $(psql "$DATABASE_OWNER_URL" -X -At -c 'select current_database()') (every change since the snapshot is lost)"
else
  plan="undo the last migration: $(psql "$DATABASE_OWNER_URL" -X -At -c 'select name from public.pgmigrations order by run_on desc, id desc limit 1')"
fi

echo "rollback plan: $plan"
if ! $yes; then
  [ -t 0 ] || { echo "refusing to act without confirmation: not a terminal. FIX: rerun with --yes" >&2; exit 2; }
  read -r -p 'type "yes" to proceed: ' answer
  [ "$answer" = yes ] || { echo "aborted: nothing changed"; exit 1; }
fi

if [ "$mode" = snapshot ]; then
  # The restore and policies/ in one transaction, so the app role sees the old state or the
  # restored one with its policies, never a mix. --no-owner: the views' owner (app_views) may
  # take them only with CREATE on schema app, which the snapshot grants after the views; the
  # policies in the same transaction hand every view to app_views before anyone can read it.
  {
    pg_restore --clean --if-exists --no-owner --no-comments -f - "$file"
    echo "reset search_path; reset check_function_bodies;"
    grep -v '^#' "$here/policies/ORDER" | sed '/^[[:space:]]*$/d' | while read -r f; do cat "$here/policies/$f"; echo; done
  } | psql "$DATABASE_OWNER_URL" -X -q -v ON_ERROR_STOP=1 --single-transaction >/dev/null
  echo "restored: $file"
else
  (cd "$here" && "$here/node_modules/.bin/tsx" server/cli.ts migrate --down --url "$DATABASE_OWNER_URL") || {
    echo "FAIL the last migration could not be undone; nothing changed. FIX: migrations without a Down Migration section roll back by snapshot (deploy/rollback.sh --snapshot <file from deploy/migrate.sh>) or by a forward fix (runbooks/migrations.md)" >&2
    exit 1
  }
fi

"$here/deploy/apply-policies.sh"
failed=false
psql "$DATABASE_OWNER_URL" -X -q -v ON_ERROR_STOP=1 -f "$here/verify/catalog.sql" || failed=true
psql "$DATABASE_OWNER_URL" -X -q -v ON_ERROR_STOP=1 -f "$here/verify/verify_rls.sql" || failed=true
if $failed; then
  psql "$DATABASE_OWNER_URL" -X -q -v ON_ERROR_STOP=1 -c 'revoke usage on schema app from app_user, app_bi'
  echo "FAIL rollback left tenant isolation unverified: app_user and app_bi have lost USAGE on schema app (the API now answers errors, never unprotected rows). FIX: repair with the FIX lines above, run deploy/apply-policies.sh (it grants USAGE back) and verify/golive-status.sh" >&2
  exit 1
fi
echo "rollback: done, isolation verified"

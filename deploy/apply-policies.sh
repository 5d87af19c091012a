#!/usr/bin/env bash
# Applies policies/ (in the order policies/ORDER gives) in one transaction, as the owner role,
# and prints what it changed (policies, RLS flags, ACLs, function settings, role attributes),
# from a catalog snapshot taken before and after inside that transaction. Idempotent: a
# second run prints "no changes". Any error rolls everything back (ON_ERROR_STOP).
# Usage: DATABASE_OWNER_URL=postgres://... deploy/apply-policies.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_OWNER_URL:?set DATABASE_OWNER_URL to the owner role connection URL}"
command -v psql >/dev/null || { echo "FAIL psql not found. FIX: install the PostgreSQL 15 client (Debian: apt-get install postgresql-client)" >&2; exit 2; }
args=(-v snap=policy_before -f "$here/deploy/policy_state.sql")
count=0
while read -r file; do
  case "$file" in ''|'#'*) continue ;; esac
  [ -f "$here/policies/$file" ] || { echo "FAIL policies/ORDER names $file, which does not exist. FIX: add the file or remove the line" >&2; exit 2; }
  args+=(-f "$here/policies/$file")
  count=$((count + 1))
done < "$here/policies/ORDER"
# psql applies -v in order of the command line, so the second snapshot needs its own run of
# the state file with snap changed: a tiny inline step between the policy files and the diff.
step=$(mktemp)
trap 'rm -f "$step" "$step.out"' EXIT
printf '\\set snap policy_after\n\\ir %s\n\\ir %s\n' "$here/deploy/policy_state.sql" "$here/deploy/policy_diff.sql" > "$step"
echo "applying $count policy files in one transaction:"
set +e
psql "$DATABASE_OWNER_URL" -X -q -v ON_ERROR_STOP=1 --single-transaction "${args[@]}" -f "$step" > "$step.out" 2>&1
rc=$?
set -e
grep -v -E '^psql:.*NOTICE:  (drop cascades|policy .* does not exist|role .* is already a member)' "$step.out" | sed -e '/^$/d' -e 's/^ //' || true
rm -f "$step.out"
if [ "$rc" -ne 0 ]; then
  echo "FAIL policies not applied: the transaction rolled back, nothing changed. FIX: read the error above; run as the owner role (DATABASE_OWNER_URL), which owns schema app and may create temporary tables" >&2
  exit 1
fi
echo "policies applied: $count files ($(grep -v '^#' "$here/policies/ORDER" | grep . | tr '\n' ' '))"

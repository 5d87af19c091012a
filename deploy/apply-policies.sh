#!/usr/bin/env bash
# Applies every file of policies/ (in the order policies/ORDER gives) again, changed or not, in one
# transaction, as the owner role, and prints what it changed (policies, RLS flags, ACLs, function
# settings, role attributes, triggers), from the catalog before and after inside that transaction
# (deploy/policy_state.sql): it repairs drift, such as a policy dropped or RLS switched off by hand.
# The policies step of the one deploy command, forced: `npm run cli -- deploy --only policies
# --reapply-policies` (the deploy's lock, lock_timeout and retries). Idempotent: a second run
# prints "no changes". Any error rolls everything back.
# Usage: DATABASE_OWNER_URL=postgres://... deploy/apply-policies.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_OWNER_URL:?set DATABASE_OWNER_URL to the owner role connection URL}"
[ -x "$here/node_modules/.bin/tsx" ] || { echo "FAIL node_modules missing. FIX: (cd $here && npm ci)" >&2; exit 2; }
cd "$here"
if ! "$here/node_modules/.bin/tsx" server/cli.ts deploy --url "$DATABASE_OWNER_URL" --only policies --reapply-policies; then
  echo "FAIL policies not applied: the transaction rolled back, nothing changed. FIX: read the error above; run as the owner role (DATABASE_OWNER_URL), which owns schema app" >&2
  exit 1
fi

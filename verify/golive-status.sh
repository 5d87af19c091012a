#!/usr/bin/env bash
# Go-live status: one PASS/FAIL line per check, each FAIL with a FIX; exits 1 on any failure.
#   environment variables, database reachable, migrations at head, catalog (app role flags,
#   tenant tables: tenant_id NOT NULL, RLS enabled and forced, policies for every command,
#   views security_invoker, SECURITY DEFINER search_path, PUBLIC grants), the isolation and
#   fail-closed probe as the app role, then the API's /healthz, /readyz and error shape.
# Usage: DATABASE_URL=... DATABASE_OWNER_URL=... JWT_SECRET=... API_URL=http://host:port verify/golive-status.sh
#        (--skip-api checks the database only, before the API is started)
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
skip_api=false
[ "${1:-}" = "--skip-api" ] && skip_api=true
failures=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; failures=$((failures + 1)); }

for tool in psql curl jq; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool not found. FIX: install it (Debian: apt-get install postgresql-client curl jq)"; exit 2; }
done

required=(DATABASE_URL DATABASE_OWNER_URL)
[ "${JWT_ALGORITHM:-HS256}" = "HS256" ] && required+=(JWT_SECRET) || required+=(JWT_PUBLIC_KEY_FILE)
$skip_api || required+=(API_URL)
for name in "${required[@]}"; do
  if [ -n "${!name:-}" ]; then pass "env $name is set"; else fail "env $name is not set. FIX: export $name (see README, Configuration)"; fi
done
[ -n "${DATABASE_OWNER_URL:-}" ] || { echo "golive-status: cannot continue without DATABASE_OWNER_URL"; exit 1; }

if psql "$DATABASE_OWNER_URL" -X -At -c 'select 1' >/dev/null 2>&1; then pass "database reachable as owner"
else fail "database unreachable with DATABASE_OWNER_URL. FIX: check host, port, credentials; runbooks/incident-database-unavailable.md"; echo "golive-status: $failures failure(s)"; exit 1; fi
if [ -n "${DATABASE_URL:-}" ]; then
  if psql "$DATABASE_URL" -X -At -c 'select 1' >/dev/null 2>&1; then pass "database reachable as the app role (DATABASE_URL)"
  else fail "database unreachable with DATABASE_URL. FIX: check the app_user password and pg_hba.conf"; fi
fi

expected=$(cd "$here/sql" && ls -1 ./*.sql | sed -e 's|^\./||' -e 's/\.sql$//' | sort)
applied=$(psql "$DATABASE_OWNER_URL" -X -At -c 'select name from public.pgmigrations order by name' 2>/dev/null | sort)
pending=$(comm -23 <(echo "$expected") <(echo "$applied") | tr '\n' ' ')
if [ -z "${pending// /}" ]; then pass "migrations at head ($(echo "$expected" | grep -c .) applied)"
else fail "migrations pending: $pending. FIX: deploy/migrate.sh"; fi

if out=$(psql "$DATABASE_OWNER_URL" -X -q -v ON_ERROR_STOP=1 -f "$here/verify/catalog.sql" 2>&1); then pass "catalog: app role flags, tenant tables, views, functions, grants"
else fail "catalog checks:"; echo "$out" | grep -E '^FAIL' | sed 's/^/  /'; failures=$((failures + $(echo "$out" | grep -c '^FAIL') - 1)); fi

if out=$(psql "$DATABASE_OWNER_URL" -X -q -v ON_ERROR_STOP=1 -f "$here/verify/verify_rls.sql" 2>&1); then pass "isolation and fail-closed probe as app_user (verify_rls.sql)"
else fail "isolation probe:"; echo "$out" | grep -E '^(LEAK|ERROR|psql)' | sed 's/^/  /'; fi

if ! $skip_api; then
  api="${API_URL%/}"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$api/healthz")
  [ "$code" = 200 ] && pass "API /healthz 200" || fail "API /healthz answered $code. FIX: is the API running at $api? (runbooks/go-live.md)"
  body=$(curl -s --max-time 5 -w '\n%{http_code}' "$api/readyz")
  code=$(echo "$body" | tail -n1)
  [ "$code" = 200 ] && pass "API /readyz 200" || fail "API /readyz answered $code: $(echo "$body" | head -n1). FIX: runbooks/go-live.md"
  body=$(curl -s --max-time 5 "$api/api/v1/me")
  if echo "$body" | jq -e '.error.code == "AUTH_REQUIRED" and (.error.request_id | type == "string") and (.error.message | type == "string")' >/dev/null 2>&1; then
    pass "API error shape {error: {code, message, request_id}} on 401"
  else fail "API /api/v1/me without a token answered $body. FIX: the API must answer 401 with the error envelope"; fi
fi

if [ "$failures" -gt 0 ]; then echo "golive-status: $failures failure(s). NOT ready for go-live."; exit 1; fi
echo "golive-status: all checks passed"

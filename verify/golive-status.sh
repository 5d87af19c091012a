#!/usr/bin/env bash
# Go-live status: one PASS/FAIL line per check, every FAIL naming the object and a FIX; exits 1
# on any failure (2 when a tool is missing).
#   environment variables, database reachable, migrations at head, catalog (everything app_user,
#   app_bi and BI logins reach in every schema: role memberships, relations, partitions,
#   sequences, functions, default privileges, CREATE, ownership), the behavioural isolation
#   probe as app_user and app_bi (verify_rls.sql), the probe of every function they can execute
#   (verify_functions.sql), their role defaults (role_defaults.sql), the server's logging of
#   app_user's bind parameters (statement_logging.sql), scale-out readiness
#   (citus_readiness.sql), then the API's /healthz, /readyz and error shape at API_URL.
# Usage: DATABASE_URL=... DATABASE_OWNER_URL=... JWT_SECRET=... API_URL=http://host:port verify/golive-status.sh [--skip-api] [--json]
#   --skip-api  checks the database only, before the API is started (API_URL not needed)
#   --json      one JSON document on stdout: {"ok": bool, "failures": n, "checks": [{status, check, object, message, fix}]}
# Against `npm start`'s embedded database: eval "$(npm run -s cli -- env)" first (README, Operators).
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
skip_api=false
json=false
for arg in "$@"; do
  case "$arg" in
    --skip-api) skip_api=true ;;
    --json) json=true ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "FAIL unknown option $arg. FIX: verify/golive-status.sh [--skip-api] [--json]"; exit 2 ;;
  esac
done

for tool in psql curl jq; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool not found. FIX: install it (Debian: apt-get install postgresql-client curl jq)"; exit 2; }
done

failures=0
results=$(mktemp)
trap 'rm -f "$results"' EXIT
# record STATUS CHECK LINE: LINE is "<object>: <message>. FIX: <fix>" (or a plain message for PASS).
record() {
  local status=$1 check=$2 line=$3
  [ "$status" = FAIL ] && failures=$((failures + 1))
  $json || echo "$status $line"
  jq -cn --arg status "$status" --arg check "$check" --arg line "$line" '
    ($line | capture("^(LEAK )?(?<object>[^:]+): (?<message>.*?)(\\. FIX: (?<fix>.*))?$") // {object: null, message: $line, fix: null}) as $p
    | {status: $status, check: $check, object: $p.object, message: $p.message, fix: $p.fix}' >>"$results"
}
pass() { record PASS "$1" "$2"; }
fail() { record FAIL "$1" "$2"; }
finish() {
  if $json; then
    jq -s --argjson failures "$failures" '{ok: ($failures == 0), failures: $failures, checks: .}' "$results"
  elif [ "$failures" -gt 0 ]; then echo "golive-status: $failures failure(s). NOT ready for go-live."
  else echo "golive-status: all checks passed"; fi
  [ "$failures" -eq 0 ] && exit 0 || exit 1
}
# run_sql CHECK FILE SUMMARY: runs a verify/*.sql file as the owner; each FAIL/LEAK line it raises is one failure.
run_sql() {
  local check=$1 file=$2 summary=$3 out
  if out=$(psql "$DATABASE_OWNER_URL" -X -q -v ON_ERROR_STOP=1 -f "$here/verify/$file" 2>&1); then
    pass "$check" "$summary: ok $(echo "$out" | grep -oE "[a-z_]+: ok.*" | head -n1 | sed 's/^[a-z_]*: ok *//')"
  else
    local lines
    lines=$(echo "$out" | grep -E '^(FAIL|LEAK) ')
    if [ -z "$lines" ]; then fail "$check" "verify/$file: did not run: $(echo "$out" | grep -m1 -E 'ERROR|FATAL|psql:'). FIX: run it by hand: psql \"\$DATABASE_OWNER_URL\" -X -v ON_ERROR_STOP=1 -f verify/$file"
    else
      while IFS= read -r l; do
        case "$l" in
          FAIL\ *) fail "$check" "${l#FAIL }" ;;
          LEAK\ *) fail "$check" "$l" ;;
        esac
      done <<<"$lines"
    fi
  fi
}

required=(DATABASE_URL DATABASE_OWNER_URL)
# Each key: its single variable or its ring (runbooks/key-rotation.md).
if [ "${JWT_ALGORITHM:-HS256}" = "HS256" ]; then required+=("$([ -n "${JWT_SECRETS:-}" ] && echo JWT_SECRETS || echo JWT_SECRET)")
else required+=("$([ -n "${JWT_PUBLIC_KEY_FILES:-}" ] && echo JWT_PUBLIC_KEY_FILES || echo JWT_PUBLIC_KEY_FILE)"); fi
$skip_api || required+=(API_URL)
for name in "${required[@]}"; do
  if [ -n "${!name:-}" ]; then pass env "env $name is set"
  elif [ "$name" = API_URL ]; then fail env "env API_URL: is not set. FIX: export API_URL=http://host:port of the running API (README, Configuration), or pass --skip-api before the API is started"
  else fail env "env $name: is not set. FIX: export $name (README, Configuration; for npm start's embedded database: eval \"\$(npm run -s cli -- env)\")"; fi
done
[ -n "${DATABASE_OWNER_URL:-}" ] || { $json || echo "golive-status: cannot continue without DATABASE_OWNER_URL"; finish; }

if psql "$DATABASE_OWNER_URL" -X -At -c 'select 1' >/dev/null 2>&1; then pass database "database reachable as owner"
else fail database "DATABASE_OWNER_URL: database unreachable. FIX: check host, port, credentials; runbooks/incident-database-unavailable.md"; finish; fi
if [ -n "${DATABASE_URL:-}" ]; then
  if psql "$DATABASE_URL" -X -At -c 'select 1' >/dev/null 2>&1; then pass database "database reachable as the app role (DATABASE_URL)"
  else fail database "DATABASE_URL: database unreachable. FIX: check the app_user password and pg_hba.conf"; fi
fi

expected=$(cd "$here/sql" && ls -1 ./*.sql | sed -e 's|^\./||' -e 's/\.sql$//' | sort)
applied=$(psql "$DATABASE_OWNER_URL" -X -At -c 'select name from public.pgmigrations order by name' 2>/dev/null | sort)
pending=$(comm -23 <(echo "$expected") <(echo "$applied") | tr '\n' ' ')
if [ -z "${pending// /}" ]; then pass migrations "migrations at head ($(echo "$expected" | grep -c .) applied)"
else fail migrations "migrations: pending ${pending% }. FIX: npm run cli -- deploy (deploy/deploy.sh snapshots first)"; fi

run_sql catalog catalog.sql "catalog: what app_user, app_bi and BI logins reach in every schema"
run_sql isolation verify_rls.sql "isolation and fail-closed probe by behaviour (verify_rls.sql)"
run_sql oracles verify_functions.sql "no function answers without a context or tells another tenant's ids (verify_functions.sql)"
run_sql role-defaults role_defaults.sql "role defaults of app_user, app_bi and BI logins on the allow-list (role_defaults.sql)"
run_sql logging statement_logging.sql "no server setting logs app_user's bind parameters (statement_logging.sql)"
run_sql scale-out citus_readiness.sql "scale-out readiness by tenant_id (citus_readiness.sql)"

if ! $skip_api && [ -n "${API_URL:-}" ]; then
  api="${API_URL%/}"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$api/healthz")
  [ "$code" = 200 ] && pass api "API /healthz 200" || fail api "$api/healthz: answered $code. FIX: is the API running at $api? (runbooks/go-live.md)"
  body=$(curl -s --max-time 5 -w '\n%{http_code}' "$api/readyz")
  code=$(echo "$body" | tail -n1)
  [ "$code" = 200 ] && pass api "API /readyz 200" || fail api "$api/readyz: answered $code: $(echo "$body" | head -n1). FIX: runbooks/go-live.md"
  body=$(curl -s --max-time 5 "$api/api/v1/me")
  if echo "$body" | jq -e '.error.code == "AUTH_REQUIRED" and (.error.request_id | type == "string") and (.error.message | type == "string")' >/dev/null 2>&1; then
    pass api "API error shape {error: {code, message, request_id}} on 401"
  else fail api "$api/api/v1/me: without a token answered $body. FIX: the API must answer 401 with the error envelope"; fi
fi
finish

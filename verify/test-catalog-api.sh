#!/usr/bin/env bash
# Service catalog API checks with curl + jq against a running API:
#   GET /api/v1/service-operations answers a root JSON array, ordered as the API documents it:
#   display_order ascending with NULLs last, then name (names compare in the database's collation,
#   so an out-of-order name within one display_order is a note, not a failure);
#   it carries an ETag, and If-None-Match with that ETag answers 304 with no body;
#   an operation of tenant A requested with tenant B's token is 404 (indistinguishable from none).
# Usage: API_URL=http://host:port TOKEN_A=... TENANT_A=<slug> TOKEN_B=... TENANT_B=<slug> verify/test-catalog-api.sh
# Tokens: npm run -s cli -- token --email owner@acme.test --tenant acme
set -uo pipefail
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool not found. FIX: install it (Debian: apt-get install $tool)"; exit 2; }
done
for name in API_URL TOKEN_A TENANT_A TOKEN_B TENANT_B; do
  [ -n "${!name:-}" ] || { echo "FAIL $name is not set. FIX: see the usage line at the top of verify/test-catalog-api.sh"; exit 2; }
done
api="${API_URL%/}/api/v1/service-operations"
failures=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; failures=$((failures + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

code=$(curl -s --max-time 5 -o "$tmp/a.json" -D "$tmp/a.h" -w '%{http_code}' -H "Authorization: Bearer $TOKEN_A" -H "X-Tenant-Id: $TENANT_A" "$api")
if [ "$code" = 000 ]; then echo "FAIL no answer from $API_URL. FIX: start the API or correct API_URL"; exit 1; fi
if [ "$code" = 404 ] && jq -e '.error.code == "ROUTE_NOT_FOUND"' "$tmp/a.json" >/dev/null 2>&1; then
  echo "FAIL GET /api/v1/service-operations: ROUTE_NOT_FOUND, this API has no service catalog. FIX: deploy a release with the catalog routes, then rerun"
  exit 3
fi
[ "$code" = 200 ] && pass "GET service-operations 200" || fail "GET service-operations answered $code: $(head -c 300 "$tmp/a.json"). FIX: check the token and tenant"

if jq -e 'type == "array"' "$tmp/a.json" >/dev/null 2>&1; then pass "root is a JSON array ($(jq length "$tmp/a.json") operations)"
else fail "root is not a JSON array: $(head -c 200 "$tmp/a.json"). FIX: the catalog endpoint must answer a root array"; fi

if jq -e 'type == "array" and ([.[] | [(.display_order == null), (.display_order // 0)]] as $k | $k == ($k | sort))' "$tmp/a.json" >/dev/null 2>&1; then
  pass "operations ordered by display_order ascending, NULLs last"
else
  fail "operations are not ordered by display_order ascending with NULLs last: $(jq -c '[.[]? | .display_order]' "$tmp/a.json" 2>/dev/null | head -c 200). FIX: order by display_order asc nulls last, name, id in the catalog query (server/routes/serviceCatalog.ts)"
fi
if ! jq -e 'type == "array" and ([.[] | [(.display_order == null), (.display_order // 0), (.name // "")]] as $k | $k == ($k | sort))' "$tmp/a.json" >/dev/null 2>&1; then
  echo "note: within one display_order the names are not in code point order; expected when the database collation is not C"
fi

etag=$(grep -i '^etag:' "$tmp/a.h" | head -n1 | cut -d' ' -f2- | tr -d '\r')
if [ -n "$etag" ]; then
  pass "ETag $etag"
  code=$(curl -s --max-time 5 -o "$tmp/b.body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN_A" -H "X-Tenant-Id: $TENANT_A" -H "If-None-Match: $etag" "$api")
  if [ "$code" = 304 ] && [ ! -s "$tmp/b.body" ]; then pass "If-None-Match with the ETag: 304, empty body"
  else fail "If-None-Match with the ETag answered $code. FIX: compare If-None-Match with the current ETag and answer 304"; fi
else
  fail "no ETag header. FIX: the catalog endpoint must send an ETag"
fi

id=$(jq -r 'if type == "array" and length > 0 then .[0].id else empty end' "$tmp/a.json" 2>/dev/null)
if [ -n "$id" ]; then
  code=$(curl -s --max-time 5 -o "$tmp/c.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN_B" -H "X-Tenant-Id: $TENANT_B" "$api/$id")
  if [ "$code" = 404 ]; then pass "tenant B asking for tenant A's operation $id: 404"
  else fail "tenant B asking for tenant A's operation $id answered $code: $(head -c 200 "$tmp/c.json"). FIX: a cross-tenant row must be 404 — check RLS on the catalog tables (verify/verify_rls.sql)"; fi
  code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN_B" -H "X-Tenant-Id: $TENANT_A" "$api")
  [ "$code" = 404 ] && pass "tenant B's token naming tenant A: 404" || fail "tenant B's token naming tenant A answered $code. FIX: membership is checked in app.open_tenant_context"
else
  echo "note: tenant A has no operations; cross-tenant 404 not exercised"
fi

if [ "$failures" -gt 0 ]; then echo "test-catalog-api: $failures failure(s)"; exit 1; fi
echo "test-catalog-api: all checks passed"

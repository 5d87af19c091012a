-- The registry of tables. Global tables are named here, and only here; every other table
-- of the app schema with a tenant_id column is tenant-owned and receives RLS, policies and
-- grants from the files that follow. A new tenant table cannot skip them.

/* Global (cross-tenant) tables: reached by app_user only through SECURITY DEFINER functions. */
create or replace function app.global_table_names() returns text[]
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$ select array['tenants', 'users', 'memberships', 'permissions', 'role_permissions',
                    'context_keys', 'context_seal_key', 'context_streams', 'bi_grants', 'audit_purges',
                    -- features and entitlements (sql/0431): platform data, written only in a version
                    'features', 'plans', 'plan_features', 'tenant_plans', 'feature_overrides', 'feature_kill_switches',
                    'entitlement_versions', 'entitlement_changes',
                    -- the platform's record of each shop's life (sql/0471): it outlives a purged shop
                    'tenant_lifecycle_events',
                    -- failed logins per account and address (sql/0472), shared by every API process
                    'login_throttle']::text[] $$;
revoke execute on function app.global_table_names() from public;

/* Tenant-owned tables: every ordinary or partitioned table of schema app with a tenant_id column, not global. */
create or replace function app.tenant_tables() returns setof regclass
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select c.oid::regclass
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'app'
     and c.relkind in ('r', 'p')
     and not c.relispartition
     and c.relname <> all (app.global_table_names())
     and exists (select 1 from pg_catalog.pg_attribute a
                  where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
   order by c.relname
$$;
revoke execute on function app.tenant_tables() from public;

/*
 * Append-only tenant tables: app_user may only read them (RLS applies); no DML, no audit triggers.
 * The catalog's versions, their changes and its head (sql/0460) are written only by the SECURITY
 * DEFINER functions of policies/catalog_versions.sql (the recorder, the version makers, the head
 * lock): they are the catalog's history.
 */
create or replace function app.append_only_table_names() returns text[]
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$ select array['audit_log', 'catalog_heads', 'catalog_versions', 'catalog_version_changes']::text[] $$;
revoke execute on function app.append_only_table_names() from public;

/*
 * The audit records actions, not caches. Every tenant table is named in exactly one of the two
 * lists below (verify/catalog.sql fails, with a FIX, for a table in neither or both):
 *   * audited: the shop's records; every change of a row is an action someone took, written to
 *     app.audit_log by the statement triggers of policies/audit.sql, with actor, role and request;
 *   * unaudited, each with its reason: caches and bookkeeping. The audit is append-only and
 *     hash-chained, so nothing written there can be deleted: a table whose rows hold data that
 *     must expire or be erasable (a cached answer with a customer's name and email) must not feed it.
 * A new tenant table goes into one of them, one name a line, in alphabetical order. Until it is,
 * policies/audit.sql audits it (recording is the safe default) and the catalog contract fails.
 */
create or replace function app.audited_table_names() returns text[]
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$ select array[
  'appointments',
  'catalog_change_set_items', -- drafting a change set's items is an action (catalog:write)
  'catalog_change_sets',      -- drafting, approving, rejecting and applying are actions
  'customers',
  'integration_credentials', -- storing or replacing a shop's credential is an action; app.audit_redact drops the envelope
  'invitations',             -- inviting, accepting and revoking are actions; the audit leaves the token's hash out
  'invoice_lines',
  'invoices',
  'service_operations',
  'services',
  'vehicles'
]::text[] $$;
revoke execute on function app.audited_table_names() from public;

/* Tenant tables the audit does not record, and why (see app.audited_table_names()). */
create or replace function app.unaudited_tables() returns table (table_name text, reason text)
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$ values
  ('catalog_heads',
   'bookkeeping: the shop''s current catalog version; each version is the record of catalog writes audited on services and service_operations (and catalog.* actions)'),
  ('catalog_version_changes',
   'the catalog''s own history, append-only: the old and new image of each row a version changed, each change audited on its own table (services, service_operations)'),
  ('catalog_versions',
   'the catalog''s own history, append-only: who made each version and how; the writes it records are audited on their own tables, applies and restores as catalog.* actions'),
  ('audit_log',
   'the audit itself: append-only (app.append_only_table_names()), written by the triggers and app.audit_event'),
  ('idempotency_keys',
   'a 24-hour replay cache of POST answers: the change it replays is audited on its own table; its stored body holds personal data (a customer''s name and email) that must expire with the key, and app.idempotency_cleanup() deletes expired keys without an actor'),
  ('invoice_counters',
   'bookkeeping: the last invoice number issued per shop; each number is audited on the invoice it was given to (the update of app.invoices to issued)')
$$;
revoke execute on function app.unaudited_tables() from public;

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
                    'entitlement_versions', 'entitlement_changes']::text[] $$;
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

/* Append-only tenant tables: app_user may only read them (RLS applies); no DML, no audit triggers. */
create or replace function app.append_only_table_names() returns text[]
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$ select array['audit_log']::text[] $$;
revoke execute on function app.append_only_table_names() from public;

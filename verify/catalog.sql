-- Catalog checks for tenant isolation (psql -v ON_ERROR_STOP=1 -f verify/catalog.sql).
-- Read-only. Raises with one line per failure, each naming the object and a FIX; prints
-- "catalog: ok" when every check passes. Discovers tables, views and functions from the
-- catalog, so a table added tomorrow is checked the same way.
-- Optional: -v app_role=<name> (default app_user) names the API's login role.
\set QUIET on
\if :{?app_role}
\else
\set app_role app_user
\endif
select set_config('verify.app_role', :'app_role', false) \g /dev/null

do $verify$
declare
  app_role text := current_setting('verify.app_role');
  globals text[] := coalesce((select app.global_table_names()), array[]::text[]);
  fails text[] := array[]::text[];
  r record;
  cmds text[];
  missing text[];
begin
  -- The API role: a plain login role that policies bind.
  select * into r from pg_catalog.pg_roles where rolname = app_role;
  if not found then
    fails := fails || format('role %s: does not exist. FIX: deploy/apply-policies.sh (policies/roles.sql creates it)', app_role);
  else
    if r.rolsuper then fails := fails || format('role %s: is SUPERUSER and skips every policy. FIX: alter role %I nosuperuser', app_role, app_role); end if;
    if r.rolbypassrls then fails := fails || format('role %s: has BYPASSRLS and skips every policy. FIX: alter role %I nobypassrls (or deploy/apply-policies.sh)', app_role, app_role); end if;
    if r.rolcreaterole or r.rolcreatedb then fails := fails || format('role %s: has CREATEROLE/CREATEDB. FIX: alter role %I nocreaterole nocreatedb', app_role, app_role); end if;
    for r in select c.oid::regclass as rel from pg_catalog.pg_class c
              where c.relowner = (select oid from pg_catalog.pg_roles where rolname = app_role) and c.relkind in ('r','p','v','m','S')
    loop
      fails := fails || format('%s: owned by %s; owners skip RLS unless FORCE is set and can disable it. FIX: alter table %s owner to <owner role>', r.rel, app_role, r.rel);
    end loop;
  end if;

  -- Every table of schema app is global (named in app.global_table_names()) or tenant-owned.
  for r in select c.oid::regclass as rel, c.relname, c.relrowsecurity, c.relforcerowsecurity, a.attnotnull as tenant_not_null, a.attname is not null as has_tenant
             from pg_catalog.pg_class c
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             left join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
            where n.nspname = 'app' and c.relkind in ('r', 'p') and not c.relispartition
            order by c.relname
  loop
    if r.relname = any (globals) then
      if has_table_privilege(app_role, r.rel, 'SELECT') or has_table_privilege(app_role, r.rel, 'INSERT')
         or has_table_privilege(app_role, r.rel, 'UPDATE') or has_table_privilege(app_role, r.rel, 'DELETE') then
        fails := fails || format('%s: global table directly accessible to %s. FIX: revoke all on table %s from %I; reach it through a SECURITY DEFINER function', r.rel, app_role, r.rel, app_role);
      end if;
      continue;
    end if;
    if not r.has_tenant then
      fails := fails || format('%s: has no tenant_id column and is not on the global list. FIX: add tenant_id uuid not null with primary key (tenant_id, id), or name it in app.global_table_names() (policies/registry.sql)', r.rel);
      continue;
    end if;
    if not r.tenant_not_null then
      fails := fails || format('%s: tenant_id is nullable. FIX: alter table %s alter column tenant_id set not null (backfill first)', r.rel, r.rel);
    end if;
    if not r.relrowsecurity then
      fails := fails || format('%s: row level security is not enabled. FIX: deploy/apply-policies.sh (or alter table %s enable row level security)', r.rel, r.rel);
    end if;
    if not r.relforcerowsecurity then
      fails := fails || format('%s: row level security is not forced; the owner skips it. FIX: deploy/apply-policies.sh (or alter table %s force row level security)', r.rel, r.rel);
    end if;
    -- A command app_role may run needs a policy for it (append-only tables grant fewer commands).
    select array_agg(distinct p.cmd order by p.cmd) into cmds
      from pg_catalog.pg_policies p
     where p.schemaname = 'app' and p.tablename = r.relname and p.permissive = 'PERMISSIVE'
       and (app_role = any (p.roles) or 'public' = any (p.roles));
    select array_agg(c order by c) into missing
      from unnest(array['DELETE', 'INSERT', 'SELECT', 'UPDATE']) c
     where has_table_privilege(app_role, r.rel, c)
       and not (c = any (coalesce(cmds, array[]::text[])) or 'ALL' = any (coalesce(cmds, array[]::text[])));
    if missing is not null then
      fails := fails || format('%s: %s may %s but no policy covers it (policies cover %s). FIX: deploy/apply-policies.sh (policies/tenant_isolation.sql), or revoke the privilege', r.rel, app_role, array_to_string(missing, ', '), coalesce(array_to_string(cmds, ', '), 'nothing'));
    end if;
    -- A table app_role may write needs its role check (policies/rbac.sql), unless the registry
    -- says it has none of its own.
    if (has_table_privilege(app_role, r.rel, 'INSERT') or has_table_privilege(app_role, r.rel, 'UPDATE') or has_table_privilege(app_role, r.rel, 'DELETE'))
       and not exists (select 1 from pg_catalog.pg_trigger t where t.tgrelid = r.rel and t.tgname = '_authorize_write' and t.tgenabled <> 'D')
       and not (to_regprocedure('app.table_write_permissions()') is not null
                and exists (select 1 from app.table_write_permissions() w where w.table_name = r.relname and w.permission is null)) then
      fails := fails || format('%s: %s may write it but no enabled _authorize_write trigger checks the role''s permission. FIX: name its permission in app.table_write_permissions() (policies/rbac.sql), then deploy/apply-policies.sh', r.rel, app_role);
    end if;
    if has_table_privilege('public', r.rel, 'SELECT') or has_table_privilege('public', r.rel, 'INSERT')
       or has_table_privilege('public', r.rel, 'UPDATE') or has_table_privilege('public', r.rel, 'DELETE')
       or has_table_privilege('public', r.rel, 'TRUNCATE') then
      fails := fails || format('%s: privileges granted to PUBLIC. FIX: revoke all on table %s from public', r.rel, r.rel);
    end if;
    if has_table_privilege(app_role, r.rel, 'TRUNCATE') then
      fails := fails || format('%s: %s may TRUNCATE, which RLS does not cover. FIX: revoke truncate on table %s from %I', r.rel, app_role, r.rel, app_role);
    end if;
  end loop;

  -- Policies that let every row through.
  for r in select p.schemaname, p.tablename, p.policyname, p.qual, p.with_check from pg_catalog.pg_policies p
            where p.schemaname = 'app' and p.permissive = 'PERMISSIVE'
              and (p.qual in ('true', '(true)') or p.with_check in ('true', '(true)')
                   or (p.qual is not null and p.qual !~ 'tenant_id' and p.tablename <> all (globals)))
  loop
    fails := fails || format('policy %s on app.%s: permissive and not keyed on tenant_id (USING %s, WITH CHECK %s), so it lets other tenants'' rows through. FIX: drop policy %I on app.%I', r.policyname, r.tablename, coalesce(r.qual, '-'), coalesce(r.with_check, '-'), r.policyname, r.tablename);
  end loop;

  -- Views run as their owner unless security_invoker is set: acceptable only when the owner is
  -- bound by RLS itself (app_views: NOLOGIN, not superuser, not BYPASSRLS; policies/views.sql).
  for r in select c.oid::regclass as rel from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             join pg_catalog.pg_roles o on o.oid = c.relowner
            where n.nspname = 'app' and c.relkind in ('v', 'm')
              and (c.relkind = 'm' or not coalesce(c.reloptions @> array['security_invoker=true'] or c.reloptions @> array['security_invoker=on'], false))
              and not (c.relkind = 'v' and o.rolname = 'app_views' and not o.rolsuper and not o.rolbypassrls)
  loop
    fails := fails || format('%s: view is not security_invoker and runs as an owner other than app_views (bound by RLS), so it may bypass RLS. FIX: deploy/apply-policies.sh (hands every view of schema app to app_views), or alter view %s set (security_invoker = true)', r.rel, r.rel);
  end loop;

  -- SECURITY DEFINER functions must pin search_path.
  for r in select p.oid::regprocedure as fn from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            where n.nspname = 'app' and p.prosecdef
              and not exists (select 1 from unnest(coalesce(p.proconfig, array[]::text[])) c where c like 'search\_path=%')
  loop
    fails := fails || format('function %s: SECURITY DEFINER without a fixed search_path (object hijacking). FIX: alter function %s set search_path = pg_catalog, pg_temp', r.fn, r.fn);
  end loop;

  -- Functions executable by PUBLIC (PostgreSQL grants EXECUTE to PUBLIC on creation).
  for r in select p.oid::regprocedure as fn from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            where n.nspname = 'app' and p.prosecdef and has_function_privilege('public', p.oid, 'EXECUTE')
  loop
    fails := fails || format('function %s: SECURITY DEFINER and executable by PUBLIC. FIX: revoke execute on function %s from public', r.fn, r.fn);
  end loop;

  if cardinality(fails) > 0 then
    raise exception E'catalog: % failure(s)\n%', cardinality(fails), array_to_string(array(select 'FAIL ' || f from unnest(fails) f), E'\n');
  end if;
  raise notice 'catalog: ok';
end
$verify$;

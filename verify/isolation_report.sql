-- The tenant isolation audit for a security reviewer, as markdown: every table, view and
-- function of schema app with its protection. Read-only.
-- psql "$DATABASE_OWNER_URL" -X -At -f verify/isolation_report.sql > isolation-report.md
-- (verify/isolation-report.sh does the same with a header.)
\pset footer off
with globals as (select unnest(app.global_table_names()) as name),
tables as (
  select c.oid, c.oid::regclass::text as name, c.relname, c.relrowsecurity as rls, c.relforcerowsecurity as forced,
         exists (select 1 from globals g where g.name = c.relname) as is_global,
         (select a.attnotnull from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped) as tenant_not_null,
         (select string_agg(p.cmd || ' ' || p.policyname, '<br>' order by p.cmd) from pg_catalog.pg_policies p
           where p.schemaname = 'app' and p.tablename = c.relname) as policies,
         (select string_agg(r.rolname || ':' || (select string_agg(x, '') from unnest(array[
             case when has_table_privilege(r.oid, c.oid, 'SELECT') then 'r' else '' end,
             case when has_table_privilege(r.oid, c.oid, 'INSERT') then 'a' else '' end,
             case when has_table_privilege(r.oid, c.oid, 'UPDATE') then 'w' else '' end,
             case when has_table_privilege(r.oid, c.oid, 'DELETE') then 'd' else '' end,
             case when has_table_privilege(r.oid, c.oid, 'TRUNCATE') then 'D' else '' end]) x), ' ' order by r.rolname)
            from pg_catalog.pg_roles r where r.rolname in ('app_user', 'app_bi')
             and (has_table_privilege(r.oid, c.oid, 'SELECT') or has_table_privilege(r.oid, c.oid, 'INSERT') or has_table_privilege(r.oid, c.oid, 'UPDATE')
                  or has_table_privilege(r.oid, c.oid, 'DELETE') or has_table_privilege(r.oid, c.oid, 'TRUNCATE'))) as grants
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'app' and c.relkind in ('r', 'p') and not c.relispartition
)
select line from (
  select 1 as part, 0 as ord, E'## Tables\n\n| table | kind | tenant_id NOT NULL | RLS | FORCE | policies | app roles (r=select a=insert w=update d=delete D=truncate) | verdict |\n|---|---|---|---|---|---|---|---|' as line
  union all
  select 2, row_number() over (order by name), format('| %s | %s | %s | %s | %s | %s | %s | %s |', name,
         case when is_global then 'global' when tenant_not_null is null then '**no tenant_id**' else 'tenant-owned' end,
         case when tenant_not_null is null then '-' when tenant_not_null then 'yes' else '**no**' end,
         case when rls then 'on' else 'off' end, case when forced then 'on' else 'off' end,
         coalesce(policies, '-'), coalesce(grants, '-'),
         case when is_global then (case when grants is not null then '**FAIL: granted directly**' else 'ok: SECURITY DEFINER access only' end)
              when tenant_not_null and rls and forced and policies is not null then 'ok'
              else '**FAIL**' end)
    from tables
  union all
  select 3, 0, E'\n## Views\n\n| view | security_invoker | has tenant_id | verdict |\n|---|---|---|---|'
  union all
  select 4, row_number() over (order by c.oid::regclass::text), format('| %s | %s | %s | %s |', c.oid::regclass,
         coalesce(c.reloptions @> array['security_invoker=true'] or c.reloptions @> array['security_invoker=on'], false),
         exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id'),
         case when coalesce(c.reloptions @> array['security_invoker=true'] or c.reloptions @> array['security_invoker=on'], false) then 'ok'
              when c.relkind = 'v' and c.relowner = 'app_views'::regrole then 'ok: runs as app_views, bound by RLS'
              else '**FAIL: runs as owner, bypasses RLS**' end)
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'app' and c.relkind in ('v', 'm')
  union all
  select 5, 0, E'\n## Functions\n\n| function | security | search_path | executable by | verdict |\n|---|---|---|---|---|'
  union all
  select 6, row_number() over (order by p.oid::regprocedure::text), format('| %s | %s | %s | %s | %s |', p.oid::regprocedure,
         case when p.prosecdef then 'DEFINER' else 'invoker' end,
         coalesce((select substr(x, 13) from unnest(p.proconfig) x where x like 'search\_path=%'), '**not set**'),
         coalesce((select string_agg(r.rolname, ', ' order by r.rolname) from pg_catalog.pg_roles r
                    where r.rolname in ('app_user', 'app_bi') and has_function_privilege(r.oid, p.oid, 'EXECUTE')), '-')
           || case when has_function_privilege('public', p.oid, 'EXECUTE') then ', **PUBLIC**' else '' end,
         case when p.prosecdef and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) x where x like 'search\_path=%') then '**FAIL: no fixed search_path**'
              when p.prosecdef and has_function_privilege('public', p.oid, 'EXECUTE') then '**FAIL: PUBLIC may execute**'
              else 'ok' end)
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'app'
) report
order by part, ord;

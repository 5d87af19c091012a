-- The policy inventory for people: every RLS policy of schema app with its command, roles,
-- USING and WITH CHECK, next to the table's RLS flags. Read-only.
-- psql "$DATABASE_OWNER_URL" -X -f verify/show_policies.sql
select c.oid::regclass                                  as "table",
       case when c.relrowsecurity then 'on' else 'OFF' end  as rls,
       case when c.relforcerowsecurity then 'on' else 'OFF' end as forced,
       p.policyname                                     as policy,
       p.permissive                                     as kind,
       p.cmd                                            as command,
       array_to_string(p.roles, ', ')                   as roles,
       coalesce(p.qual, '')                             as "using",
       coalesce(p.with_check, '')                       as "with check"
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  left join pg_catalog.pg_policies p on p.schemaname = n.nspname and p.tablename = c.relname
 where n.nspname = 'app' and c.relkind in ('r', 'p')
 order by 1::text, p.cmd, p.policyname;

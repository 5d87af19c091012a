-- Catalog checks: everything the application roles can reach, in every schema
-- (psql -v ON_ERROR_STOP=1 -f verify/catalog.sql, as the owner role).
-- Read-only. Raises with one line per failure, each naming the object and a FIX; prints
-- "catalog: ok" when every check passes. Discovers roles, relations, functions and schemas
-- from the catalog, so an object added tomorrow, in any schema, is checked the same way.
-- The subjects are the API role, the BI role and every BI login (a member of the BI role).
-- Whether a relation is keyed on the tenant context is not judged here from policy text:
-- verify/verify_rls.sql probes it (no context and another tenant's context see nothing).
-- Optional: -v app_role=<name> (default app_user), -v bi_role=<name> (default app_bi).
\ir app_roles.psql

do $verify$
declare
  app_role text := current_setting('verify.app_role');
  bi_role text := coalesce(nullif(current_setting('verify.bi_role', true), ''), 'app_bi');
  globals text[] := coalesce((select app.global_table_names()), array[]::text[]);
  tenant_tables oid[] := coalesce((select array_agg(t::oid) from app.tenant_tables() t), array[]::oid[]);
  schema_owner oid := (select n.nspowner from pg_catalog.pg_namespace n where n.nspname = 'app');
  subjects oid[];
  fails text[] := array[]::text[];
  r record;
  s record;
  cmds text[];
  missing text[];
  privs text[];
begin
  -- Object names print schema-qualified.
  perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  -- Subjects: the API role, the BI role, and the BI logins (members of the BI role other than
  -- the role running this check and the schema owner, which probe as the BI role).
  for r in select x.rolname from (values (app_role), (bi_role)) x(rolname)
            where not exists (select 1 from pg_catalog.pg_roles g where g.rolname = x.rolname)
  loop
    fails := fails || format('role %s: does not exist. FIX: deploy/apply-policies.sh (policies/roles.sql creates it)', r.rolname);
  end loop;
  select array_agg(distinct g.oid) into subjects from pg_catalog.pg_roles g
   where g.rolname in (app_role, bi_role)
      or (g.oid in (select m.member from pg_catalog.pg_auth_members m join pg_catalog.pg_roles b on b.oid = m.roleid where b.rolname = bi_role)
          and g.rolname <> current_user and g.oid is distinct from schema_owner);
  subjects := coalesce(subjects, array[]::oid[]);

  -- Role attributes of each subject.
  for r in select g.* from pg_catalog.pg_roles g where g.oid = any (subjects) order by g.rolname loop
    if r.rolsuper then fails := fails || format('role %s: is SUPERUSER and skips every policy. FIX: alter role %I nosuperuser', r.rolname, r.rolname); end if;
    if r.rolbypassrls then fails := fails || format('role %s: has BYPASSRLS and skips every policy. FIX: alter role %I nobypassrls (or deploy/apply-policies.sh)', r.rolname, r.rolname); end if;
    if r.rolcreaterole or r.rolcreatedb or r.rolreplication then
      fails := fails || format('role %s: has CREATEROLE/CREATEDB/REPLICATION. FIX: alter role %I nocreaterole nocreatedb noreplication', r.rolname, r.rolname);
    end if;
  end loop;

  -- Roles each subject can become (SET ROLE works whatever INHERIT says), transitively.
  for r in
    with recursive up(subject, roleid, via) as (
      select m.member, m.roleid, array[m.roleid] from pg_catalog.pg_auth_members m where m.member = any (subjects)
      union
      select up.subject, m.roleid, up.via || m.roleid from pg_catalog.pg_auth_members m join up on m.member = up.roleid
       where m.roleid <> all (up.via)
    )
    select distinct us.rolname as subject, g.rolname, g.rolsuper, g.rolbypassrls, g.rolcreaterole, g.rolcreatedb,
           g.rolname like 'pg\_%' as predefined,
           exists (select 1 from pg_catalog.pg_class c where c.relowner = g.oid and c.relnamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace))
             or exists (select 1 from pg_catalog.pg_namespace n where n.nspowner = g.oid and n.nspname not like 'pg\_%' and n.nspname <> 'information_schema')
             or exists (select 1 from pg_catalog.pg_database d where d.datname = current_database() and d.datdba = g.oid) as owns
      from up join pg_catalog.pg_roles g on g.oid = up.roleid join pg_catalog.pg_roles us on us.oid = up.subject
     order by 1, 2
  loop
    if r.rolsuper or r.rolbypassrls or r.rolcreaterole or r.rolcreatedb or r.predefined or r.owns then
      fails := fails || format('role %s: is a member of %s (%s), so SET ROLE %s reaches around every policy. FIX: revoke %I from %I',
        r.subject, r.rolname,
        array_to_string(array_remove(array[
          case when r.rolsuper then 'SUPERUSER' end, case when r.rolbypassrls then 'BYPASSRLS' end,
          case when r.rolcreaterole then 'CREATEROLE' end, case when r.rolcreatedb then 'CREATEDB' end,
          case when r.predefined then 'a predefined role' end, case when r.owns then 'owns objects of this database' end], null), ', '),
        r.rolname, r.rolname, r.subject);
    end if;
  end loop;

  -- Ownership: owners skip RLS unless FORCE is set, and can disable it, change grants, drop.
  for r in select g.rolname, x.what from pg_catalog.pg_roles g, lateral (
             select format('%s %s', case c.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence' when 'f' then 'foreign table' when 'i' then 'index' else 'table' end, c.oid::regclass) as what
               from pg_catalog.pg_class c where c.relowner = g.oid and c.relkind <> 'c'
             union all select format('function %s', p.oid::regprocedure) from pg_catalog.pg_proc p where p.proowner = g.oid
             union all select format('schema %I', n.nspname) from pg_catalog.pg_namespace n where n.nspowner = g.oid
             union all select format('type %s', t.oid::regtype) from pg_catalog.pg_type t where t.typowner = g.oid and t.typrelid = 0 and t.typelem = 0
             union all select format('database %I', d.datname) from pg_catalog.pg_database d where d.datdba = g.oid and d.datname = current_database()) x
            where g.oid = any (subjects) order by 1, 2
  loop
    fails := fails || format('%s: owned by %s; an owner skips RLS unless FORCE is set and can disable it or grant it on. FIX: alter %s owner to <owner role>', r.what, r.rolname, r.what);
  end loop;

  -- CREATE on any schema or on the database: the application roles must not create objects.
  for r in select g.rolname, n.nspname from pg_catalog.pg_roles g, pg_catalog.pg_namespace n
            where g.oid = any (subjects) and n.nspname not like 'pg\_temp\_%' and n.nspname not like 'pg\_toast%'
              and has_schema_privilege(g.oid, n.oid, 'CREATE') order by 1, 2
  loop
    fails := fails || format('schema %I: %s may CREATE objects in it (a view or function of its own, a shadowing name). FIX: revoke create on schema %I from %I, public', r.nspname, r.rolname, r.nspname, r.rolname);
  end loop;
  for r in select g.rolname from pg_catalog.pg_roles g where g.oid = any (subjects) and has_database_privilege(g.oid, current_database(), 'CREATE') loop
    fails := fails || format('database %I: %s may CREATE schemas in it. FIX: revoke create on database %I from %I, public', current_database(), r.rolname, current_database(), r.rolname);
  end loop;

  -- Default privileges that would hand future objects to an application role or PUBLIC.
  for r in select d.defaclrole::regrole as grantor, coalesce(d.defaclnamespace::regnamespace::text, '(all schemas)') as nsp, d.defaclobjtype as objtype,
                  case when a.grantee = 0 then 'public' else a.grantee::regrole::text end as grantee, a.privilege_type
             from pg_catalog.pg_default_acl d, lateral aclexplode(d.defaclacl) a
            where a.grantee = any (subjects) or (a.grantee = 0 and d.defaclobjtype in ('r', 'S', 'n'))
            order by 1, 2, 4
  loop
    fails := fails || format('default privileges of %s in %s: %s is granted %s on every new %s. FIX: alter default privileges for role %s%s revoke %s on %s from %s',
      r.grantor, r.nsp, r.grantee, r.privilege_type,
      case r.objtype when 'r' then 'table' when 'S' then 'sequence' when 'f' then 'function' when 'T' then 'type' when 'n' then 'schema' else r.objtype::text end,
      r.grantor, case when r.nsp = '(all schemas)' then '' else ' in schema ' || r.nsp end, r.privilege_type,
      case r.objtype when 'r' then 'tables' when 'S' then 'sequences' when 'f' then 'functions' when 'T' then 'types' when 'n' then 'schemas' else 'objects' end, r.grantee);
  end loop;

  -- Every relation, in every schema, a subject holds any privilege on.
  for r in select c.oid, c.oid::regclass as rel, c.relname, c.relkind, n.nspname, c.relispartition, c.relrowsecurity, c.relforcerowsecurity, c.reloptions,
                  o.rolname as owner, o.rolsuper as owner_super, o.rolbypassrls as owner_bypass,
                  (select a.attnotnull from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped) as tenant_not_null
             from pg_catalog.pg_class c
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             join pg_catalog.pg_roles o on o.oid = c.relowner
            where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
              and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_toast%' and n.nspname not like 'pg\_temp\_%'
            order by n.nspname, c.relname
  loop
    for s in select g.oid, g.rolname, array_remove(array[
                case when c.relkind = 'S' then (case when has_sequence_privilege(g.oid, r.oid, 'USAGE') then 'USAGE' end) else (case when has_table_privilege(g.oid, r.oid, 'SELECT') then 'SELECT' end) end,
                case when c.relkind = 'S' then (case when has_sequence_privilege(g.oid, r.oid, 'SELECT') then 'SELECT' end) else (case when has_table_privilege(g.oid, r.oid, 'INSERT') then 'INSERT' end) end,
                case when c.relkind = 'S' then (case when has_sequence_privilege(g.oid, r.oid, 'UPDATE') then 'UPDATE' end) else (case when has_table_privilege(g.oid, r.oid, 'UPDATE') then 'UPDATE' end) end,
                case when c.relkind <> 'S' and has_table_privilege(g.oid, r.oid, 'DELETE') then 'DELETE' end,
                case when c.relkind <> 'S' and has_table_privilege(g.oid, r.oid, 'TRUNCATE') then 'TRUNCATE' end,
                case when c.relkind <> 'S' and has_table_privilege(g.oid, r.oid, 'REFERENCES') then 'REFERENCES' end,
                case when c.relkind <> 'S' and has_table_privilege(g.oid, r.oid, 'TRIGGER') then 'TRIGGER' end], null) as privs
               from pg_catalog.pg_roles g, (select r.relkind) c
              where g.oid = any (subjects) order by g.rolname
    loop
      privs := s.privs;
      continue when cardinality(privs) = 0;

      if r.relkind = 'S' then
        fails := fails || format('sequence %s: %s holds %s on it; nextval and setval are not bound by RLS and show other tenants'' activity. FIX: revoke all on sequence %s from %I (identity columns need no grant)', r.rel, s.rolname, array_to_string(privs, ', '), r.rel, s.rolname);
      elsif r.relkind = 'm' then
        fails := fails || format('%s: materialized view readable by %s; it holds rows computed by its owner and RLS never applies to it. FIX: revoke all on %s from %I; serve it through a security_invoker view or a table with RLS', r.rel, s.rolname, r.rel, s.rolname);
      elsif r.relkind = 'v' then
        if not (coalesce(r.reloptions @> array['security_invoker=true'] or r.reloptions @> array['security_invoker=on'] or r.reloptions @> array['security_invoker=1'], false)
                or not (r.owner_super or r.owner_bypass)) then
          fails := fails || format('%s: view readable by %s is not security_invoker and its owner %s has %s, so it reads every tenant''s rows. FIX: alter view %s set (security_invoker = true) (or let a NOSUPERUSER NOBYPASSRLS role own it)', r.rel, s.rolname, r.owner, case when r.owner_super then 'SUPERUSER' else 'BYPASSRLS' end, r.rel);
        end if;
        if privs && array['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'] then
          fails := fails || format('%s: %s may %s it; views are read-only for the application. FIX: revoke all on %s from %I; grant select on %s to %I', r.rel, s.rolname, array_to_string(privs, ', '), r.rel, s.rolname, r.rel, s.rolname);
        end if;
      elsif r.nspname = 'app' and r.relname = any (globals) then
        fails := fails || format('%s: global table directly accessible to %s (%s). FIX: revoke all on table %s from %I; reach it through a SECURITY DEFINER function', r.rel, s.rolname, array_to_string(privs, ', '), r.rel, s.rolname);
      else
        -- A table, a partition or a foreign table the role reaches directly: RLS must bind it
        -- on its own (a partition read directly does not use its parent's policies).
        if s.rolname <> app_role then
          fails := fails || format('%s: %s holds %s on a table; BI roles read views only. FIX: revoke all on table %s from %I', r.rel, s.rolname, array_to_string(privs, ', '), r.rel, s.rolname);
        end if;
        if not (r.oid = any (tenant_tables)) and not r.relispartition then
          fails := fails || format('%s: %s holds %s on a table that is neither a tenant table of schema app nor global. FIX: revoke all on table %s from %I, or move it into schema app with tenant_id (policies then cover it)', r.rel, s.rolname, array_to_string(privs, ', '), r.rel, s.rolname);
        end if;
        if r.relispartition then
          fails := fails || format('%s: partition read directly by %s (%s); only the partitioned table should be granted. FIX: revoke all on table %s from %I', r.rel, s.rolname, array_to_string(privs, ', '), r.rel, s.rolname);
        end if;
        if r.tenant_not_null is null then
          fails := fails || format('%s: has no tenant_id column but %s holds %s on it. FIX: revoke all on table %s from %I, or add tenant_id uuid not null with primary key (tenant_id, id)', r.rel, s.rolname, array_to_string(privs, ', '), r.rel, s.rolname);
        end if;
        if not r.relrowsecurity then
          fails := fails || format('%s: row level security is not enabled but %s holds %s on it. FIX: deploy/apply-policies.sh (or alter table %s enable row level security)', r.rel, s.rolname, array_to_string(privs, ', '), r.rel);
        end if;
        if not r.relforcerowsecurity then
          fails := fails || format('%s: row level security is not forced; the owner skips it. FIX: deploy/apply-policies.sh (or alter table %s force row level security)', r.rel, r.rel);
        end if;
        select array_agg(distinct p.cmd order by p.cmd) into cmds
          from pg_catalog.pg_policies p
         where p.schemaname = r.nspname and p.tablename = r.relname and p.permissive = 'PERMISSIVE'
           and (s.rolname = any (p.roles) or 'public' = any (p.roles));
        select array_agg(x order by x) into missing from unnest(array['DELETE', 'INSERT', 'SELECT', 'UPDATE']) x
         where x = any (privs) and not (x = any (coalesce(cmds, array[]::text[])) or 'ALL' = any (coalesce(cmds, array[]::text[])));
        if missing is not null then
          fails := fails || format('%s: %s may %s but no policy covers it (policies cover %s). FIX: deploy/apply-policies.sh (policies/tenant_isolation.sql), or revoke the privilege', r.rel, s.rolname, array_to_string(missing, ', '), coalesce(array_to_string(cmds, ', '), 'nothing'));
        end if;
        if privs && array['TRUNCATE', 'REFERENCES', 'TRIGGER'] then
          fails := fails || format('%s: %s may %s, which RLS does not cover. FIX: revoke truncate, references, trigger on table %s from %I', r.rel, s.rolname, array_to_string(array(select unnest(privs) intersect select unnest(array['TRUNCATE', 'REFERENCES', 'TRIGGER'])), ', '), r.rel, s.rolname);
        end if;
        if privs && array['INSERT', 'UPDATE', 'DELETE'] and r.oid = any (tenant_tables)
           and not exists (select 1 from pg_catalog.pg_trigger t where t.tgrelid = r.oid and t.tgname = '_authorize_write' and t.tgenabled <> 'D')
           and not (to_regprocedure('app.table_write_permissions()') is not null
                    and exists (select 1 from app.table_write_permissions() w where w.table_name = r.relname and w.permission is null)) then
          fails := fails || format('%s: %s may write it but no enabled _authorize_write trigger checks the role''s permission. FIX: name its permission in app.table_write_permissions() (policies/rbac.sql), then deploy/apply-policies.sh', r.rel, s.rolname);
        end if;
      end if;
    end loop;
  end loop;

  -- Tenant tables of schema app, whether or not anyone holds a privilege on them yet.
  for r in select c.oid, c.oid::regclass as rel, c.relname, c.relrowsecurity, c.relforcerowsecurity, a.attnotnull as tenant_not_null
             from pg_catalog.pg_class c
             left join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'app' and c.relkind in ('r', 'p') and not c.relispartition and c.relname <> all (globals)
            order by c.relname
  loop
    if r.tenant_not_null is null then
      fails := fails || format('%s: has no tenant_id column and is not on the global list. FIX: add tenant_id uuid not null with primary key (tenant_id, id), or name it in app.global_table_names() (policies/registry.sql)', r.rel);
      continue;
    end if;
    if not r.tenant_not_null then
      fails := fails || format('%s: tenant_id is nullable. FIX: alter table %s alter column tenant_id set not null (backfill first)', r.rel, r.rel);
    end if;
    if not r.relrowsecurity and not (fails::text like '%' || r.rel::text || ': row level security is not enabled%') then
      fails := fails || format('%s: row level security is not enabled. FIX: deploy/apply-policies.sh (or alter table %s enable row level security)', r.rel, r.rel);
    end if;
    if not r.relforcerowsecurity and not (fails::text like '%' || r.rel::text || ': row level security is not forced%') then
      fails := fails || format('%s: row level security is not forced; the owner skips it. FIX: deploy/apply-policies.sh (or alter table %s force row level security)', r.rel, r.rel);
    end if;
    if has_table_privilege('public', r.oid, 'SELECT') or has_table_privilege('public', r.oid, 'INSERT') or has_table_privilege('public', r.oid, 'UPDATE')
       or has_table_privilege('public', r.oid, 'DELETE') or has_table_privilege('public', r.oid, 'TRUNCATE') then
      fails := fails || format('%s: privileges granted to PUBLIC. FIX: revoke all on table %s from public', r.rel, r.rel);
    end if;
  end loop;

  -- The audit records actions, not caches: each tenant table is named in exactly one list of the
  -- registry (policies/registry.sql), an audited table carries the three audit triggers and an
  -- exempted one none. (plpgsql plans a statement when it first runs: a database without the
  -- registry's lists gets the one failure line.)
  if to_regprocedure('app.audited_table_names()') is null or to_regprocedure('app.unaudited_tables()') is null then
    fails := fails || 'audit registry: app.audited_table_names() and app.unaudited_tables() are missing. FIX: npm run cli -- deploy (policies/registry.sql)'::text;
  else
    for r in select c.oid::regclass as rel, c.relname,
                    c.relname = any (app.audited_table_names()) as audited,
                    exists (select 1 from app.unaudited_tables() u where u.table_name = c.relname) as exempt,
                    (select count(*) from pg_catalog.pg_trigger g where g.tgrelid = c.oid and g.tgname in ('audit_insert', 'audit_update', 'audit_delete')) as triggers
               from pg_catalog.pg_class c where c.oid = any (tenant_tables)
              order by c.relname
    loop
      if r.audited and r.exempt then
        fails := fails || format('%s: named in both app.audited_table_names() and app.unaudited_tables(). FIX: keep it in one list (policies/registry.sql)', r.rel);
      elsif not r.audited and not r.exempt then
        fails := fails || format('%s: in neither list of the audit registry. FIX: name it in policies/registry.sql: in app.audited_table_names() when its rows are the shop''s records (each change an action someone took), or in app.unaudited_tables() with the reason when it is a cache or bookkeeping (the audit is append-only: nothing written to it can be deleted)', r.rel);
      elsif r.audited and r.triggers <> 3 then
        fails := fails || format('%s: audited, but %s of its 3 audit triggers are there. FIX: deploy/apply-policies.sh (policies/audit.sql)', r.rel, r.triggers);
      elsif r.exempt and r.triggers <> 0 then
        fails := fails || format('%s: exempted from the audit (app.unaudited_tables()), but audit triggers write its rows to the audit. FIX: deploy/apply-policies.sh (policies/audit.sql)', r.rel);
      end if;
    end loop;
    for r in select x.name from (select unnest(app.audited_table_names()) union all select u.table_name from app.unaudited_tables() u) x(name)
              where not exists (select 1 from pg_catalog.pg_class c where c.oid = any (tenant_tables) and c.relname = x.name)
              order by 1
    loop
      fails := fails || format('app.%s: named in the audit registry, and no tenant table of that name exists. FIX: remove it from policies/registry.sql', r.name);
    end loop;
  end if;

  -- Functions: every SECURITY DEFINER function pins search_path; those a subject may execute
  -- live in schema app (the reviewed surface), not executable by PUBLIC, not run as a superuser.
  for r in select p.oid::regprocedure as fn, n.nspname, o.rolsuper as owner_super, o.rolname as owner,
                  exists (select 1 from unnest(coalesce(p.proconfig, array[]::text[])) c where c like 'search\_path=%') as pinned,
                  has_function_privilege('public', p.oid, 'EXECUTE') as public_exec,
                  (select string_agg(g.rolname, ', ' order by g.rolname) from pg_catalog.pg_roles g where g.oid = any (subjects) and has_function_privilege(g.oid, p.oid, 'EXECUTE')) as callers
             from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace join pg_catalog.pg_roles o on o.oid = p.proowner
            where p.prosecdef and n.nspname not in ('pg_catalog', 'information_schema')
            order by 1::text
  loop
    if not r.pinned then
      fails := fails || format('function %s: SECURITY DEFINER without a fixed search_path (object hijacking). FIX: alter function %s set search_path = pg_catalog, pg_temp', r.fn, r.fn);
    end if;
    if r.public_exec then
      fails := fails || format('function %s: SECURITY DEFINER and executable by PUBLIC. FIX: revoke execute on function %s from public', r.fn, r.fn);
    end if;
    if r.callers is not null and r.nspname <> 'app' then
      fails := fails || format('function %s: SECURITY DEFINER outside schema app, executable by %s; it runs as %s and reads past RLS. FIX: revoke execute on function %s from %s, public (or drop it)', r.fn, r.callers, r.owner, r.fn, r.callers);
    end if;
    if r.callers is not null and r.owner_super then
      fails := fails || format('function %s: SECURITY DEFINER owned by superuser %s and executable by %s. FIX: alter function %s owner to <owner role>', r.fn, r.owner, r.callers, r.fn);
    end if;
  end loop;

  -- The tenant context: policies, role checks and the audit read it only through
  -- app.verified_context() (policies/context.sql), which checks its seal (the capabilities and
  -- the session binding of read proofs likewise: app.verified_capabilities(),
  -- app.verified_session()). A function or policy
  -- that reads an app.* setting itself trusts what any session can write with set_config.
  for r in select p.oid::regprocedure as fn from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            where n.nspname = 'app' and p.prosrc ~* 'current_setting\s*\(\s*''app\.'
              and p.oid is distinct from to_regprocedure('app.verified_context()')
              and p.oid is distinct from to_regprocedure('app.verified_capabilities()')
              and p.oid is distinct from to_regprocedure('app.verified_session(bytea, bytea)')
            order by 1::text
  loop
    fails := fails || format('function %s: reads an app.* setting directly, which any session can write (set_config). FIX: read the context through app.current_tenant_id()/current_user_id()/current_member_role() or app.has_capability() (policies/context.sql)', r.fn);
  end loop;
  for r in select pol.polname, pol.polrelid::regclass as rel from pg_catalog.pg_policy pol
            where pg_catalog.pg_get_expr(pol.polqual, pol.polrelid) ~* 'current_setting'
               or pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid) ~* 'current_setting'
  loop
    fails := fails || format('policy %s on %s: reads a setting directly, which any session can write (set_config). FIX: key it on (select app.current_tenant_id()); deploy/apply-policies.sh', r.polname, r.rel);
  end loop;

  -- Entitlements (policies/features.sql): every change of a versioned table is recorded in a
  -- version by its row trigger, which also refuses a change outside one; a TRUNCATE fires no row
  -- trigger, so each also carries a guard against it. Disabled or dropped, changes go unrecorded.
  if to_regprocedure('app.versioned_tables()') is not null then
    for r in select format('app.%I', v.table_name) as rel, v.table_name,
                    exists (select 1 from pg_catalog.pg_trigger t where t.tgrelid = to_regclass(format('app.%I', v.table_name))
                             and t.tgname = v.table_name || '_versioned' and t.tgenabled <> 'D') as versioned,
                    exists (select 1 from pg_catalog.pg_trigger t where t.tgrelid = to_regclass(format('app.%I', v.table_name))
                             and t.tgname = v.table_name || '_no_truncate' and t.tgenabled <> 'D') as guarded
               from app.versioned_tables() v order by 1
    loop
      if not r.versioned or not r.guarded then
        fails := fails || format('%s: its changes are not recorded in entitlement versions (trigger %s missing or disabled). FIX: deploy/apply-policies.sh (policies/features.sql)',
          r.rel, case when not r.versioned then r.table_name || '_versioned' else r.table_name || '_no_truncate' end);
      end if;
    end loop;
  end if;

  if cardinality(fails) > 0 then
    raise exception E'catalog: % failure(s)\n%', cardinality(fails), array_to_string(array(select distinct 'FAIL ' || f from unnest(fails) f order by 1), E'\n');
  end if;
  raise notice 'catalog: ok (% roles checked)', cardinality(subjects);
end
$verify$;

-- Everything policies/ controls, one row per object: (object, state). The deploy (server/setup/
-- deploy.ts) reads it before and after applying policy files, in their transaction, and prints
-- what changed (`deploy/apply-policies.sh`, `npm run cli -- deploy`). Read-only; runs in psql too.
  select 'policy ' || p.schemaname || '.' || p.tablename || '.' || p.policyname as object,
         concat_ws(' | ', p.permissive, p.roles::text, p.cmd, 'using ' || p.qual, 'check ' || p.with_check) as state
    from pg_catalog.pg_policies p where p.schemaname = 'app'
  union all
  select 'table ' || c.oid::regclass::text,
         concat_ws(' | ', 'rls ' || c.relrowsecurity, 'force ' || c.relforcerowsecurity, 'acl ' || coalesce(c.relacl::text, 'default'), 'options ' || c.reloptions::text)
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'app' and c.relkind in ('r', 'p', 'v', 'm')
  union all
  select 'function ' || p.oid::regprocedure::text,
         concat_ws(' | ', 'acl ' || coalesce(p.proacl::text, 'default'), 'definer ' || p.prosecdef, 'config ' || p.proconfig::text, 'body ' || md5(p.prosrc))
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace where n.nspname = 'app'
  union all
  select 'role ' || r.rolname,
         concat_ws(' | ', 'super ' || r.rolsuper, 'bypassrls ' || r.rolbypassrls, 'createrole ' || r.rolcreaterole,
                   'createdb ' || r.rolcreatedb, 'login ' || r.rolcanlogin,
                   'member of ' || coalesce((select string_agg(g.rolname, ',' order by g.rolname) from pg_catalog.pg_auth_members m
                                               join pg_catalog.pg_roles g on g.oid = m.roleid where m.member = r.oid), '-'),
                   'members ' || coalesce((select string_agg(u.rolname, ',' order by u.rolname) from pg_catalog.pg_auth_members m
                                             join pg_catalog.pg_roles u on u.oid = m.member where m.roleid = r.oid), '-'))
    from pg_catalog.pg_roles r where r.rolname in ('app_user', 'app_bi')
  union all
  select 'schema ' || n.nspname, 'acl ' || coalesce(n.nspacl::text, 'default') from pg_catalog.pg_namespace n where n.nspname = 'app'
  union all
  select 'trigger ' || t.tgrelid::regclass::text || '.' || t.tgname,
         concat_ws(' | ', pg_catalog.pg_get_triggerdef(t.oid), 'enabled ' || t.tgenabled::text)
    from pg_catalog.pg_trigger t join pg_catalog.pg_class c on c.oid = t.tgrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'app' and not t.tgisinternal
  union all
  select 'permission ' || rp.role || ' ' || rp.permission, 'granted'
    from app.role_permissions rp;

-- Tenant isolation probe (psql -v ON_ERROR_STOP=1 -f verify/verify_rls.sql), run as the owner
-- role (BYPASSRLS, member of app_user) or a superuser. Inside one transaction that is rolled
-- back, it creates two throwaway tenants with a probe row in every tenant table it can fill,
-- then, as app_user, proves for every tenant table and every view with a tenant_id column:
--   * without tenant context: zero rows, and inserts are rejected (fail-closed);
--   * with tenant A's context: no row of another tenant, no insert into and no update moving
--     a row to tenant B (WITH CHECK).
-- Raises with one line per leak, each naming the object and a FIX. Leaves nothing behind.
-- Optional: -v app_role=<name> (default app_user).
\set QUIET on
\if :{?app_role}
\else
\set app_role app_user
\endif
begin;
select set_config('verify.app_role', :'app_role', true) \g /dev/null

do $verify$
#variable_conflict use_variable
declare
  app_role text := current_setting('verify.app_role');
  a uuid := gen_random_uuid();
  b uuid := gen_random_uuid();
  fails text[] := array[]::text[];
  notes text[] := array[]::text[];
  rel regclass;
  is_table boolean;
  cols text;
  vals text;
  col record;
  probe record;
  n bigint;
  probed int := 0;
  tenant uuid;
begin
  insert into app.tenants (id, slug, name) values
    (a, 'verify-rls-a-' || left(a::text, 8), 'verify_rls tenant A'),
    (b, 'verify-rls-b-' || left(b::text, 8), 'verify_rls tenant B');

  create temp table verify_rls_targets on commit drop as
    select c.oid::regclass as rel, c.relkind in ('r', 'p') as is_table
      from pg_catalog.pg_class c
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'app'
       and c.relkind in ('r', 'p', 'v', 'm')
       and not c.relispartition
       and c.relname <> all (app.global_table_names())
       and exists (select 1 from pg_catalog.pg_attribute x where x.attrelid = c.oid and x.attname = 'tenant_id' and not x.attisdropped)
     order by c.relkind, c.relname;
  alter table verify_rls_targets add column insert_cols text, add column insert_rest text;
  grant select on verify_rls_targets to public;

  -- Probe rows: one per throwaway tenant, from type defaults for required columns, else a copy
  -- of an existing row. Tables with required references may stay empty: noted, not failed.
  for rel in select t.rel from verify_rls_targets t where t.is_table loop
    cols := 'tenant_id';
    vals := '';
    for col in select x.attname, t.typcategory, x.atttypid
                 from pg_catalog.pg_attribute x join pg_catalog.pg_type t on t.oid = x.atttypid
                where x.attrelid = rel and x.attnum > 0 and not x.attisdropped and x.attnotnull
                  and not x.atthasdef and x.attidentity = '' and x.attgenerated = '' and x.attname <> 'tenant_id'
    loop
      cols := cols || ', ' || quote_ident(col.attname);
      vals := vals || ', ' || case
        when col.atttypid = 'uuid'::regtype then 'gen_random_uuid()'
        when col.typcategory = 'S' then quote_literal('verify_rls')
        when col.typcategory = 'N' then '1'
        when col.typcategory = 'B' then 'false'
        when col.typcategory = 'D' then 'now()'
        else 'null' end;
    end loop;
    update verify_rls_targets t set insert_cols = cols, insert_rest = vals where t.rel = rel;
    foreach tenant in array array[a, b] loop
      begin
        execute format('insert into %s (%s) values ($1%s)', rel, cols, vals) using tenant;
        probed := probed + 1;
      exception when others then
        notes := notes || format('%s: no probe row for a throwaway tenant (%s); existing rows are checked', rel, sqlerrm);
        exit;
      end;
    end loop;
  end loop;

  execute format('set local role %I', app_role);

  for rel, is_table, cols, vals in select t.rel, t.is_table, t.insert_cols, t.insert_rest from verify_rls_targets t loop
    -- Fail-closed: no context, no rows. (Contexts are opened by the owner, as the API's proof
    -- would open them, then the probe acts as the app role again.)
    reset role;
    perform app.close_context();
    execute format('set local role %I', app_role);
    begin
      execute format('select count(*) from %s', rel) into n;
    exception when insufficient_privilege then
      notes := notes || format('%s: %s cannot read it (%s)', rel, app_role, sqlerrm);
      continue;
    end;
    if n > 0 then
      fails := fails || format('LEAK %s: %s sees %s row(s) without tenant context. FIX: enable and force RLS and key every policy on tenant_id (deploy/apply-policies.sh); for a view, alter view %s set (security_invoker = true)', rel, app_role, n, rel);
    end if;

    -- Isolation: tenant A's context shows tenant A's rows only.
    foreach tenant in array array[a, b] loop
      reset role;
      perform app.open_operator_context(tenant);
      execute format('set local role %I', app_role);
      execute format('select count(*) from %s where tenant_id is distinct from $1', rel) into n using tenant;
      if n > 0 then
        fails := fails || format('LEAK %s: with tenant %s''s context %s sees %s row(s) of other tenants. FIX: verify/catalog.sql names the cause (RLS off, permissive policy, view without security_invoker, BYPASSRLS); then deploy/apply-policies.sh', rel, tenant, app_role, n);
      end if;
    end loop;

    continue when not is_table;

    -- Writes: never into another tenant, never without context. Each probe is undone.
    for probe in select * from (values
        (a::text, format('insert into %s (%s) values (%L%s)', rel, cols, b, vals), 'inserted a row into another tenant', 'INSERT'),
        (a::text, format('update %s set tenant_id = %L where tenant_id = %L', rel, b, a), 'moved rows to another tenant', 'UPDATE'),
        ('', format('insert into %s (%s) values (%L%s)', rel, cols, a, vals), 'inserted a row without tenant context', 'INSERT')
      ) p(ctx, stmt, what, cmd)
    loop
      reset role;
      perform app.open_operator_context(nullif(probe.ctx, '')::uuid);
      execute format('set local role %I', app_role);
      begin
        execute probe.stmt;
        get diagnostics n = row_count;
        if n > 0 then
          fails := fails || format('LEAK %s: %s %s (%s row(s)). FIX: the %s policy needs WITH CHECK (tenant_id = (select app.current_tenant_id())); deploy/apply-policies.sh', rel, app_role, probe.what, n, probe.cmd);
        end if;
        raise sqlstate 'VR001';
      exception
        when insufficient_privilege then null;
        when sqlstate 'VR001' then null;
        when others then
          notes := notes || format('%s: a probe that %s was refused with %s before RLS could be observed', rel, probe.what, sqlstate);
      end;
    end loop;
  end loop;

  reset role;
  foreach cols in array notes loop
    raise notice 'note: %', cols;
  end loop;
  if cardinality(fails) > 0 then
    raise exception E'verify_rls: % leak(s)\n%', cardinality(fails), array_to_string(fails, E'\n');
  end if;
  raise notice 'verify_rls: ok (% relations, % probe rows, two throwaway tenants rolled back)', (select count(*) from verify_rls_targets), probed;
end
$verify$;

rollback;

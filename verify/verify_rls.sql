-- Tenant isolation probe, judged by behaviour (psql -v ON_ERROR_STOP=1 -f verify/verify_rls.sql),
-- run as the owner role (a member of app_user and app_bi, BYPASSRLS) or a superuser.
-- Inside one transaction that is rolled back it creates three throwaway tenants: A and B get a
-- probe row in every tenant table, built by following foreign keys (parents first), so an
-- empty database is probed as fully as a seeded one; C gets none. Then, as app_user and as
-- app_bi, for every relation of every schema the role can read (tables, each partition on its
-- own, views, materialized views, foreign tables) and every argument-less set-returning
-- function it may call that returns tenant_id:
--   * without tenant context: zero rows; inserts, updates and deletes touch nothing;
--   * with tenant A's (B's) context: no row of another tenant; no insert into, update of,
--     move to or delete from another tenant;
--   * with the empty tenant C's context: zero rows (this catches views without tenant_id).
-- Contexts are opened only through app.open_operator_context(...) as the owner.
-- Raises with one line per leak, each naming the object and a FIX. Leaves nothing behind.
-- Optional: -v app_role=<name> (default app_user), -v bi_role=<name> (default app_bi).
\ir app_roles.psql
begin;

do $verify$
#variable_conflict use_variable
declare
  app_role text := current_setting('verify.app_role');
  bi_role text := coalesce(nullif(current_setting('verify.bi_role', true), ''), 'app_bi');
  a uuid := gen_random_uuid();
  b uuid := gen_random_uuid();
  tc uuid := gen_random_uuid();
  fails text[] := array[]::text[];
  notes text[] := array[]::text[];
  probe_roles text[];
  who text;
  t record;
  fk record;
  col record;
  p record;
  rel regclass;
  cols text[];
  exprs text[];
  froms text[];
  conds text[];
  fill_sql text;
  ready boolean;
  progress boolean;
  n bigint;
  tenant uuid;
  other uuid;
  nparent int;
  pass int := 0;
  visible bigint;
  -- What the generic probe row cannot guess, where a CHECK ties columns together (sql/0460):
  -- values for some columns (SQL expressions), and tables whose nullable references are
  -- followed too (an item of kind 'edit' names an operation and, here, a service).
  hints jsonb := jsonb_build_object(
    'app.catalog_change_set_items', jsonb_build_object('kind', $h$'edit'$h$),
    'app.catalog_versions', jsonb_build_object('kind', $h$'write'$h$),
    'app.catalog_version_changes', jsonb_build_object('entity', $h$'service'$h$, 'new', $h$'{}'::jsonb$h$));
  follow_every_reference text[] := array['app.catalog_change_set_items'];
begin
  perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  insert into app.tenants (id, slug, name) values
    (a, 'verify-rls-a-' || left(a::text, 8), 'verify_rls tenant A'),
    (b, 'verify-rls-b-' || left(b::text, 8), 'verify_rls tenant B'),
    (tc, 'verify-rls-c-' || left(tc::text, 8), 'verify_rls tenant C (empty)');
  -- A member per tenant, for tenant tables that reference memberships.
  with u as (insert into app.users (email) values ('verify-rls-' || left(a::text, 8) || '@a.invalid'), ('verify-rls-' || left(b::text, 8) || '@b.invalid') returning id, email)
  insert into app.memberships (tenant_id, user_id, role)
  select case when u.email like '%@a.invalid' then a else b end, u.id, 'owner' from u;

  -- Probe rows, parents first: a tenant table is filled once every tenant table it must
  -- reference (a foreign key with a NOT NULL column besides tenant_id) is filled. Foreign key
  -- columns take the parent's probe row of the same tenant; other required columns a value of
  -- their type (timestamps ascend in column order, so starts_at < ends_at holds; text named
  -- *email*, role or *_hash a value of that shape).
  create temp table verify_rls_fill (rel regclass primary key, fill_sql text, fill_cols text, filled boolean not null default false, probed boolean not null default false, seq int) on commit drop;
  insert into verify_rls_fill (rel) select x from app.tenant_tables() x;
  loop
    pass := pass + 1;
    progress := false;
    for t in select f.rel from verify_rls_fill f where not f.filled and f.fill_sql is null order by f.rel::text loop
      cols := array['tenant_id'];
      exprs := array['$1'];
      froms := array[]::text[];
      conds := array[]::text[];
      ready := true;
      nparent := 0;
      for fk in select k.oid, k.confrelid::regclass as parent,
                       array(select a1.attname from unnest(k.conkey) with ordinality x(n, i) join pg_catalog.pg_attribute a1 on a1.attrelid = k.conrelid and a1.attnum = x.n order by x.i) as ccols,
                       array(select a2.attname from unnest(k.confkey) with ordinality x(n, i) join pg_catalog.pg_attribute a2 on a2.attrelid = k.confrelid and a2.attnum = x.n order by x.i) as pcols,
                       exists (select 1 from unnest(k.conkey) x(n) join pg_catalog.pg_attribute a3 on a3.attrelid = k.conrelid and a3.attnum = x.n where a3.attnotnull and a3.attname <> 'tenant_id') as required
                  from pg_catalog.pg_constraint k where k.conrelid = t.rel and k.contype = 'f' order by k.conname
      loop
        continue when not fk.required and not (t.rel::text = any (follow_every_reference));
        if exists (select 1 from verify_rls_fill f where f.rel = fk.parent and not f.filled) then
          ready := false;
          exit;
        end if;
        nparent := nparent + 1;
        froms := froms || format('%s p%s', fk.parent, nparent);
        for i in 1 .. cardinality(fk.ccols) loop
          if fk.ccols[i] = 'tenant_id' then
            conds := conds || format('p%s.%I = $1', nparent, fk.pcols[i]);
          elsif fk.ccols[i] = any (cols) then
            conds := conds || format('p%s.%I = %s', nparent, fk.pcols[i], exprs[array_position(cols, fk.ccols[i])]);
          else
            cols := cols || fk.ccols[i]::text;
            exprs := exprs || format('p%s.%I', nparent, fk.pcols[i]);
          end if;
        end loop;
      end loop;
      continue when not ready;
      for col in select x.attname, x.attnum, ty.typcategory, x.atttypid, ty.typtype
                   from pg_catalog.pg_attribute x join pg_catalog.pg_type ty on ty.oid = x.atttypid
                  where x.attrelid = t.rel and x.attnum > 0 and not x.attisdropped and x.attnotnull
                    and not x.atthasdef and x.attidentity = '' and x.attgenerated = '' and x.attname <> all (cols)
                  order by x.attnum
      loop
        cols := cols || col.attname::text;
        exprs := exprs || case
          when hints -> t.rel::text ? col.attname then hints -> t.rel::text ->> col.attname
          when col.atttypid = 'uuid'::regtype then 'gen_random_uuid()'
          when col.typtype = 'e' then format('(select e.enumlabel::%s from pg_catalog.pg_enum e where e.enumtypid = %s order by e.enumsortorder limit 1)', col.atttypid::regtype, col.atttypid)
          -- Text columns whose CHECK a generic string cannot meet, by their conventional names.
          when col.typcategory = 'S' and col.attname ~ 'email' then $$'verify-rls-' || left(md5(random()::text), 8) || '@example.invalid'$$
          when col.typcategory = 'S' and col.attname = 'role' then $$'staff'$$
          when col.typcategory = 'S' and col.attname ~ '_hash$' then $$md5(random()::text) || md5(random()::text)$$
          when col.typcategory = 'S' then $$'verify_rls_' || left(md5(random()::text), 8)$$
          when col.typcategory = 'N' then format('1::%s', col.atttypid::regtype)
          when col.typcategory = 'B' then 'false'
          when col.typcategory = 'D' then format('(now() + interval ''%s hours'')::%s', col.attnum, col.atttypid::regtype)
          when col.atttypid in ('json'::regtype, 'jsonb'::regtype) then format('''{}''::%s', col.atttypid::regtype)
          else 'null' end;
      end loop;
      for col in select h.key, h.value from jsonb_each_text(coalesce(hints -> t.rel::text, '{}')) h where h.key <> all (cols) loop
        cols := cols || col.key;
        exprs := exprs || col.value;
      end loop;
      fill_sql := format('select %s%s%s limit 1',
        (select string_agg(format('%s as %I', e, k), ', ' order by i) from unnest(exprs, cols) with ordinality u(e, k, i)),
        case when cardinality(froms) > 0 then ' from ' || array_to_string(froms, ', ') else '' end,
        case when cardinality(conds) > 0 then ' where ' || array_to_string(conds, ' and ') else '' end);
      update verify_rls_fill f set fill_sql = fill_sql, fill_cols = (select string_agg(quote_ident(k), ', ') from unnest(cols) k) where f.rel = t.rel;
      begin
        foreach tenant in array array[a, b] loop
          execute format('insert into %s (%s) %s', t.rel, (select string_agg(quote_ident(k), ', ') from unnest(cols) k), fill_sql) using tenant;
          get diagnostics n = row_count;
          if n = 0 then raise exception 'its parents have no probe row'; end if;
        end loop;
        update verify_rls_fill f set probed = true where f.rel = t.rel;
      exception when others then
        notes := notes || format('%s: no probe row for a throwaway tenant (%s); its existing rows are probed', t.rel, sqlerrm);
      end;
      update verify_rls_fill f set filled = true, seq = pass * 10000 + (select count(*) from verify_rls_fill x where x.filled) where f.rel = t.rel;
      progress := true;
    end loop;
    exit when not progress or pass > 50;
  end loop;
  for t in select f.rel from verify_rls_fill f where not f.filled loop
    notes := notes || format('%s: no probe row (a required reference to a tenant table that cannot be filled); its existing rows are probed', t.rel);
  end loop;

  -- Rows for the write probes: for each tenant, a fresh row (new keys) whose references point
  -- at that tenant's probe rows. Built as the owner, offered to the probing roles.
  create temp table verify_rls_rows (rel regclass, tenant uuid, cols text, row_json jsonb) on commit drop;
  for t in select f.rel, f.fill_sql, f.fill_cols from verify_rls_fill f where f.probed loop
    foreach tenant in array array[a, b] loop
      execute format('insert into verify_rls_rows select $2, $1, $3, to_jsonb(x) from (%s) x', t.fill_sql) using tenant, t.rel, t.fill_cols;
    end loop;
  end loop;
  grant select on verify_rls_rows to public;

  -- What each role can reach: relations of every schema it may SELECT, and argument-less
  -- set-returning functions returning tenant_id that it may call.
  create temp table verify_rls_targets on commit drop as
    select g.rolname::text as who, c.oid::regclass as rel, c.oid::regclass::text as label, c.relkind,
           exists (select 1 from pg_catalog.pg_attribute x where x.attrelid = c.oid and x.attname = 'tenant_id' and not x.attisdropped) as has_tenant,
           c.oid in (select f.rel from verify_rls_fill f where f.probed) and has_table_privilege(g.oid, c.oid, 'INSERT') as can_insert,
           has_table_privilege(g.oid, c.oid, 'UPDATE') and c.relkind in ('r', 'p', 'f') as can_update,
           has_table_privilege(g.oid, c.oid, 'DELETE') and c.relkind in ('r', 'p', 'f') as can_delete,
           format('select count(*) from %s', c.oid::regclass) as count_sql,
           (select quote_ident(x.attname) from pg_catalog.pg_attribute x
             where x.attrelid = c.oid and x.attnum > 0 and not x.attisdropped and x.atthasdef and x.attgenerated = '' and x.attidentity = ''
               and x.attname <> 'tenant_id' and not exists (select 1 from pg_catalog.pg_index i where i.indrelid = c.oid and x.attnum = any (i.indkey))
             order by x.attnum limit 1) as touch_col,
           (select f.seq from verify_rls_fill f where f.rel = c.oid) as fill_seq,
           case c.relkind when 'v' then format('alter view %s set (security_invoker = true), or revoke select on it from %I', c.oid::regclass, g.rolname)
                          when 'm' then format('revoke select on %s from %I (RLS never applies to a materialized view)', c.oid::regclass, g.rolname)
                          else format('enable and force RLS with every policy keyed on (select app.current_tenant_id()), NULL-safe, or revoke %I''s privileges on %s; verify/catalog.sql names the cause; deploy/apply-policies.sh', g.rolname, c.oid::regclass) end as fix
      from pg_catalog.pg_class c
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      join pg_catalog.pg_roles g on g.rolname in (app_role, bi_role)
     where c.relkind in ('r', 'p', 'v', 'm', 'f')
       and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_toast%' and n.nspname not like 'pg\_temp\_%'
       and has_table_privilege(g.oid, c.oid, 'SELECT')
    union all
    select g.rolname::text, null, format('function %s', pp.oid::regprocedure), 'F', true, false, false, false,
           format('select count(*) from %s()', pp.oid::regproc),
           null, null,
           format('revoke execute on function %s from %I, public', pp.oid::regprocedure, g.rolname)
      from pg_catalog.pg_proc pp
      join pg_catalog.pg_namespace n on n.oid = pp.pronamespace
      join pg_catalog.pg_roles g on g.rolname in (app_role, bi_role)
     where n.nspname not in ('pg_catalog', 'information_schema') and pp.prokind = 'f' and pp.proretset
       and pp.pronargs = pp.pronargdefaults
       and has_function_privilege(g.oid, pp.oid, 'EXECUTE')
       and ('tenant_id' = any (coalesce(pp.proargnames, array[]::text[]))
            or exists (select 1 from pg_catalog.pg_type ty join pg_catalog.pg_attribute x on x.attrelid = ty.typrelid
                        where ty.oid = pp.prorettype and x.attname = 'tenant_id' and not x.attisdropped))
     order by 1, 3;
  grant select on verify_rls_targets to public;

  probe_roles := array(select distinct v.who from verify_rls_targets v order by 1);
  foreach who in array probe_roles loop
    if not pg_has_role(current_user, who, 'MEMBER') then
      fails := fails || format('role %s: %s cannot SET ROLE %s, so nothing it reaches can be probed. FIX: grant %I to %I (deploy/apply-policies.sh does, policies/roles.sql)', who, current_user, who, who, current_user);
      probe_roles := array_remove(probe_roles, who);
    end if;
  end loop;

  -- 1. Without tenant context (none has been opened in this transaction yet).
  foreach who in array probe_roles loop
    execute format('set local role %I', who);
    for p in select * from verify_rls_targets v where v.who = who loop
      begin
        execute p.count_sql into n;
        if n > 0 then
          fails := fails || format('LEAK %s: %s sees %s row(s) without tenant context. FIX: %s', p.label, who, n, p.fix);
        end if;
      exception when insufficient_privilege then null;
      end;
      if p.can_insert then
        for t in select r.row_json, r.cols from verify_rls_rows r where r.rel = p.rel and r.tenant = a loop
          begin
            execute format('insert into %s (%s) select %s from jsonb_populate_record(null::%s, $1)', p.rel, t.cols, t.cols, p.rel) using t.row_json;
            fails := fails || format('LEAK %s: %s inserted a row without tenant context. FIX: the INSERT policy needs WITH CHECK (tenant_id = (select app.current_tenant_id())); deploy/apply-policies.sh', p.label, who);
            raise sqlstate 'VR001';
          exception when insufficient_privilege or sqlstate 'VR001' then null;
            when others then notes := notes || format('%s: an insert without context was refused with %s (%s) before RLS could be observed', p.label, sqlstate, sqlerrm);
          end;
        end loop;
      end if;
      -- Blind writes (no column read, so only the UPDATE/DELETE policy's USING applies).
      if p.can_update and p.touch_col is not null then
        begin
          execute format('update %s set %s = default', p.rel, p.touch_col);
          get diagnostics n = row_count;
          if n > 0 then fails := fails || format('LEAK %s: %s updated %s row(s) without tenant context. FIX: the UPDATE policy must be keyed on (select app.current_tenant_id()), NULL-safe; deploy/apply-policies.sh', p.label, who, n); end if;
          raise sqlstate 'VR001';
        exception when insufficient_privilege or sqlstate 'VR001' then null;
          when others then notes := notes || format('%s: an update without context was refused with %s before RLS could be observed', p.label, sqlstate);
        end;
      end if;
      if p.can_delete then
        begin
          execute format('delete from %s', p.rel);
          get diagnostics n = row_count;
          if n > 0 then fails := fails || format('LEAK %s: %s deleted %s row(s) without tenant context. FIX: the DELETE policy must be keyed on (select app.current_tenant_id()), NULL-safe; deploy/apply-policies.sh', p.label, who, n); end if;
          raise sqlstate 'VR001';
        exception when insufficient_privilege or sqlstate 'VR001' then null;
          when foreign_key_violation then
            fails := fails || format('LEAK %s: %s reached rows to delete without tenant context (only a foreign key refused: %s). FIX: the DELETE policy must be keyed on (select app.current_tenant_id()), NULL-safe; deploy/apply-policies.sh', p.label, who, sqlerrm);
          when others then notes := notes || format('%s: a delete without context was refused with %s before RLS could be observed', p.label, sqlstate);
        end;
      end if;
    end loop;
    reset role;
  end loop;

  -- 1b. Settings written by hand are no context: with tenant A named in the first wave's
  -- settings and in an unsealed app.context, still nothing is visible. A policy or reader
  -- that trusts a plain setting shows here.
  foreach who in array probe_roles loop
    reset role;
    perform app.close_context();
    execute format('set local role %I', who);
    perform pg_catalog.set_config('app.tenant_id', a::text, true), pg_catalog.set_config('app.role', 'owner', true),
            pg_catalog.set_config('app.context', a::text || '||owner|verify', true), pg_catalog.set_config('app.context_seal', repeat('0', 64), true);
    for p in select * from verify_rls_targets v where v.who = who loop
      begin
        execute p.count_sql into n;
        if n > 0 then
          fails := fails || format('LEAK %s: %s sees %s row(s) with tenant %s named only in settings written by hand (app.tenant_id, app.context). FIX: read the context only through app.verified_context() (policies/context.sql); deploy/apply-policies.sh', p.label, who, n, a);
        end if;
      exception when insufficient_privilege then null;
      end;
    end loop;
    perform pg_catalog.set_config('app.tenant_id', '', true), pg_catalog.set_config('app.role', '', true);
    reset role;
    perform app.close_context();
  end loop;
  reset role;

  -- 2. With tenant A's, then B's context: nothing of the other tenant.
  foreach tenant in array array[a, b] loop
    other := case when tenant = a then b else a end;
    foreach who in array probe_roles loop
      reset role;
      perform app.open_operator_context(tenant, 'owner');
      execute format('set local role %I', who);
      for p in select * from verify_rls_targets v where v.who = who and v.has_tenant loop
        begin
          execute format('select count(*) from (%s) x where x.tenant_id is distinct from $1', replace(p.count_sql, 'select count(*) from', 'select * from')) into n using tenant;
          if n > 0 then
            fails := fails || format('LEAK %s: with tenant %s''s context %s sees %s row(s) of other tenants. FIX: %s', p.label, tenant, who, n, p.fix);
          end if;
        exception when insufficient_privilege then null;
        end;
        if p.can_insert then
          for t in select r.row_json, r.cols from verify_rls_rows r where r.rel = p.rel and r.tenant = other loop
            begin
              execute format('insert into %s (%s) select %s from jsonb_populate_record(null::%s, $1)', p.rel, t.cols, t.cols, p.rel) using t.row_json;
              fails := fails || format('LEAK %s: %s inserted a row into another tenant. FIX: the INSERT policy needs WITH CHECK (tenant_id = (select app.current_tenant_id())); deploy/apply-policies.sh', p.label, who);
              raise sqlstate 'VR001';
            exception when insufficient_privilege or sqlstate 'VR001' then null;
              when others then notes := notes || format('%s: an insert into another tenant was refused with %s (%s) before RLS could be observed', p.label, sqlstate, sqlerrm);
            end;
          end loop;
        end if;
        -- Blind writes: no column is read, so only the write policy decides which rows they
        -- reach (a WHERE on tenant_id would also apply the SELECT policy and hide a broken one).
        visible := null;
        begin
          execute p.count_sql into visible;
        exception when insufficient_privilege then null;
        end;
        if p.can_update then
          -- Move this tenant's rows onto the other tenant's fresh row (its references included,
          -- so composite foreign keys cannot mask a missing WITH CHECK).
          for t in select r.row_json, r.cols from verify_rls_rows r where r.rel = p.rel and r.tenant = other loop
            begin
              execute format('update %s set (%s) = (select %s from jsonb_populate_record(null::%s, $1))', p.rel, t.cols, t.cols, p.rel) using t.row_json;
              get diagnostics n = row_count;
              if n > 0 then fails := fails || format('LEAK %s: %s moved rows to another tenant (%s row(s)). FIX: the UPDATE policy needs WITH CHECK (tenant_id = (select app.current_tenant_id())); deploy/apply-policies.sh', p.label, who, n); end if;
              raise sqlstate 'VR001';
            exception when insufficient_privilege or sqlstate 'VR001' then null;
              when others then notes := notes || format('%s: moving a row to another tenant was refused with %s (%s) before RLS could be observed', p.label, sqlstate, sqlerrm);
            end;
          end loop;
          if p.touch_col is not null and visible is not null then
            begin
              execute format('update %s set %s = default', p.rel, p.touch_col);
              get diagnostics n = row_count;
              if n > visible then fails := fails || format('LEAK %s: %s updated %s row(s) of another tenant. FIX: the UPDATE policy needs USING and WITH CHECK (tenant_id = (select app.current_tenant_id())); deploy/apply-policies.sh', p.label, who, n - visible); end if;
              raise sqlstate 'VR001';
            exception when insufficient_privilege or sqlstate 'VR001' then null;
              when others then notes := notes || format('%s: updating every row in reach was refused with %s (%s) before RLS could be observed', p.label, sqlstate, sqlerrm);
            end;
          end if;
        end if;
      end loop;
      -- Blind deletes, children first, all in one undone subtransaction: with the policies
      -- right each removes exactly the rows in view, and no foreign key can object, since this
      -- tenant's children went first. More rows, or a foreign key refusal, means the DELETE
      -- policy reached another tenant's rows.
      begin
        ready := true;
        for p in select * from verify_rls_targets v where v.who = who and v.can_delete order by v.fill_seq desc nulls first, v.label loop
          begin
            execute p.count_sql into visible;
            execute format('delete from %s', p.rel);
            get diagnostics n = row_count;
            if n > visible then fails := fails || format('LEAK %s: %s deleted %s row(s) of another tenant. FIX: the DELETE policy needs USING (tenant_id = (select app.current_tenant_id())); deploy/apply-policies.sh', p.label, who, n - visible); end if;
          exception
            when foreign_key_violation then
              if ready then
                fails := fails || format('LEAK %s: %s reached another tenant''s rows to delete (only a foreign key refused: %s). FIX: the DELETE policy needs USING (tenant_id = (select app.current_tenant_id())); deploy/apply-policies.sh', p.label, who, sqlerrm);
              else
                notes := notes || format('%s: deleting every row in reach was refused with %s after a child table''s delete was refused', p.label, sqlstate);
              end if;
            when others then
              ready := false;
              notes := notes || format('%s: deleting every row in reach was refused with %s (%s) before RLS could be observed', p.label, sqlstate, sqlerrm);
          end;
        end loop;
        raise sqlstate 'VR001';
      exception when sqlstate 'VR001' then null;
      end;
    end loop;
  end loop;

  -- 3. With the empty tenant C's context: nothing at all, whatever the relation's columns.
  foreach who in array probe_roles loop
    reset role;
    perform app.open_operator_context(tc, 'owner');
    execute format('set local role %I', who);
    for p in select * from verify_rls_targets v where v.who = who loop
      begin
        execute p.count_sql into n;
        if n > 0 then
          fails := fails || format('LEAK %s: with the context of a tenant that has no rows, %s sees %s row(s). FIX: %s', p.label, who, n, p.fix);
        end if;
      exception when insufficient_privilege then null;
      end;
    end loop;
  end loop;

  reset role;
  foreach fill_sql in array notes loop
    raise notice 'note: %', fill_sql;
  end loop;
  if cardinality(fails) > 0 then
    raise exception E'verify_rls: % leak(s)\n%', cardinality(fails), array_to_string(array(select distinct f from unnest(fails) f order by 1), E'\n');
  end if;
  raise notice 'verify_rls: ok (% relations and functions probed as %, % tenant tables with probe rows, three throwaway tenants rolled back)',
    (select count(*) from verify_rls_targets), array_to_string(probe_roles, ' and '), (select count(*) from verify_rls_fill f where f.probed);
end
$verify$;

rollback;

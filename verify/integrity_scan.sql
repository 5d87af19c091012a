-- Cross-tenant data integrity scan, as the owner role (BYPASSRLS: it reads every tenant).
-- psql -v ON_ERROR_STOP=1 -f verify/integrity_scan.sql   (verify/integrity-scan wraps it with a log)
-- Read-only. Finds, for every table of schema app (discovered from the catalog):
--   * rows with a NULL tenant_id;
--   * rows whose tenant_id names no tenant;
--   * references (every foreign key) whose child row's tenant differs from its parent's;
--   * orphans: references to a parent row that does not exist (NOT VALID or disabled FKs).
-- Prints one FINDING line per problem with a FIX, and raises when there is any.
\set QUIET on
begin transaction read only;
set local row_security = off;

do $scan$
declare
  findings text[] := array[]::text[];
  r record;
  n bigint;
  child_cols text;
  parent_cols text;
  join_on text;
  not_null text;
  checked int := 0;
begin
  -- tenant_id: never NULL, always a tenant.
  for r in select c.oid::regclass as rel
             from pg_catalog.pg_class c join pg_catalog.pg_namespace ns on ns.oid = c.relnamespace
            where ns.nspname = 'app' and c.relkind in ('r', 'p') and not c.relispartition
              and exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
            order by 1::text
  loop
    checked := checked + 1;
    execute format('select count(*) from %s where tenant_id is null', r.rel) into n;
    if n > 0 then
      findings := findings || format('%s: %s row(s) with NULL tenant_id (invisible to every tenant). FIX: assign the owning tenant (update %s set tenant_id = ... where tenant_id is null), then alter column tenant_id set not null', r.rel, n, r.rel);
    end if;
    execute format('select count(*) from %s x where x.tenant_id is not null and not exists (select 1 from app.tenants t where t.id = x.tenant_id)', r.rel) into n;
    if n > 0 then
      findings := findings || format('%s: %s row(s) whose tenant_id names no tenant. FIX: delete them or restore the tenant; add foreign key (tenant_id) references app.tenants (id)', r.rel, n);
    end if;
  end loop;

  -- Every foreign key between tables of schema app.
  for r in
    select con.conname, con.conrelid::regclass as child, con.confrelid::regclass as parent,
           (select array_agg(a.attname order by k.i) from unnest(con.conkey) with ordinality k(attnum, i)
              join pg_catalog.pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum) as ccols,
           (select array_agg(a.attname order by k.i) from unnest(con.confkey) with ordinality k(attnum, i)
              join pg_catalog.pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum) as pcols,
           exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = con.conrelid and a.attname = 'tenant_id' and not a.attisdropped) as child_tenant,
           exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = con.confrelid and a.attname = 'tenant_id' and not a.attisdropped) as parent_tenant
      from pg_catalog.pg_constraint con
      join pg_catalog.pg_namespace ns on ns.oid = con.connamespace
     where ns.nspname = 'app' and con.contype = 'f'
       and (select relnamespace from pg_catalog.pg_class where oid = con.confrelid) = ns.oid
     order by 2::text, 1
  loop
    select string_agg(format('p.%I = c.%I', pc, cc), ' and '), string_agg(format('c.%I is not null', cc), ' and ')
      into join_on, not_null
      from unnest(r.ccols, r.pcols) as u(cc, pc);
    child_cols := array_to_string(r.ccols, ', ');
    parent_cols := array_to_string(r.pcols, ', ');

    execute format('select count(*) from %s c where %s and not exists (select 1 from %s p where %s)', r.child, not_null, r.parent, join_on) into n;
    if n > 0 then
      findings := findings || format('%s.%s: %s orphan row(s): (%s) references no row of %s (%s). FIX: delete or re-point them, then alter table %s validate constraint %I', r.child, r.conname, n, child_cols, r.parent, parent_cols, r.child, r.conname);
    end if;

    if r.child_tenant and r.parent_tenant and not ('tenant_id' = any (r.ccols)) then
      execute format('select count(*) from %s c join %s p on %s where p.tenant_id is distinct from c.tenant_id', r.child, r.parent, join_on) into n;
      if n > 0 then
        findings := findings || format('%s.%s: %s row(s) reference a parent in %s of another tenant. FIX: a cross-tenant reference; find them with select * from %s c join %s p on %s where p.tenant_id <> c.tenant_id, re-point or delete, then make the key composite: foreign key (tenant_id, %s) references %s (tenant_id, %s)', r.child, r.conname, n, r.parent, r.child, r.parent, join_on, child_cols, r.parent, parent_cols);
      else
        raise notice 'note %.%: single-column reference between tenant tables (no cross-tenant rows today). FIX: make it composite (tenant_id, %)', r.child, r.conname, child_cols;
      end if;
    end if;
  end loop;

  foreach join_on in array findings loop
    raise notice 'FINDING %', join_on;
  end loop;
  if cardinality(findings) > 0 then
    raise exception 'integrity-scan: % finding(s) in % tenant table(s) scanned', cardinality(findings), checked;
  end if;
  raise notice 'integrity-scan: ok (% tables with tenant_id scanned, no findings)', checked;
end
$scan$;

rollback;

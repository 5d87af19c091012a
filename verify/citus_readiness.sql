-- Scale-out readiness (psql -v ON_ERROR_STOP=1 -f verify/citus_readiness.sql, as the owner).
-- Read-only. Checks that the schema can be distributed by tenant_id as Citus does
-- (runbooks/scale-out.md): every tenant table is distributed by tenant_id and co-located,
-- every global table named in the registry (app.global_table_names()) is a reference table.
--   * every primary key, unique constraint and unique index of a tenant table includes tenant_id
--     (Citus enforces uniqueness only within a shard);
--   * every foreign key between tenant tables includes tenant_id on both sides, matched
--     (a co-located join stays on one shard);
--   * a tenant table references only tenant tables and reference (global) tables;
--   * a global table never references a tenant table (a reference table cannot point into
--     distributed data), and every name in the registry exists.
-- Raises with one line per failure (naming the object and a FIX); otherwise prints the plan.
\set QUIET on
do $verify$
declare
  globals text[] := coalesce((select app.global_table_names()), array[]::text[]);
  tenant_tables oid[] := coalesce((select array_agg(t::oid) from app.tenant_tables() t), array[]::oid[]);
  global_tables oid[];
  fails text[] := array[]::text[];
  r record;
  g text;
begin
  perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  foreach g in array globals loop
    if to_regclass(format('app.%I', g)) is null then
      fails := fails || format('registry: global table app.%s does not exist. FIX: remove it from app.global_table_names() (policies/registry.sql), or create it', g);
    end if;
  end loop;
  global_tables := coalesce(array(select to_regclass(format('app.%I', x.name))::oid from unnest(globals) x(name) where to_regclass(format('app.%I', x.name)) is not null), array[]::oid[]);

  -- Keys of tenant tables: primary key, unique constraints, unique indexes (partial ones too).
  for r in select t.oid::regclass as rel, i.indexrelid::regclass as idx, coalesce(k.conname, i.indexrelid::regclass::text) as keyname, i.indisprimary,
                  exists (select 1 from unnest(i.indkey) x(n) join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = x.n where a.attname = 'tenant_id') as has_tenant
             from unnest(tenant_tables) t(oid)
             join pg_catalog.pg_index i on i.indrelid = t.oid and i.indisunique
             left join pg_catalog.pg_constraint k on k.conindid = i.indexrelid and k.contype in ('p', 'u')
            order by 1::text, 3
  loop
    if not r.has_tenant then
      fails := fails || format('%s: %s %s does not include tenant_id; a distributed table enforces uniqueness only per shard. FIX: make it (tenant_id, ...) in a migration', r.rel, case when r.indisprimary then 'primary key' else 'unique key' end, r.keyname);
    end if;
  end loop;
  for r in select t.oid::regclass as rel from unnest(tenant_tables) t(oid)
            where not exists (select 1 from pg_catalog.pg_index i where i.indrelid = t.oid and i.indisprimary)
            order by 1::text
  loop
    fails := fails || format('%s: tenant table without a primary key. FIX: add primary key (tenant_id, id) in a migration', r.rel);
  end loop;

  -- Foreign keys touching tenant or global tables.
  for r in select k.conname, k.conrelid::regclass as child, k.confrelid::regclass as parent,
                  k.conrelid = any (tenant_tables) as child_tenant, k.confrelid = any (tenant_tables) as parent_tenant,
                  k.conrelid = any (global_tables) as child_global, k.confrelid = any (global_tables) as parent_global,
                  exists (select 1 from unnest(k.conkey, k.confkey) x(c, p)
                            join pg_catalog.pg_attribute ca on ca.attrelid = k.conrelid and ca.attnum = x.c
                            join pg_catalog.pg_attribute pa on pa.attrelid = k.confrelid and pa.attnum = x.p
                           where ca.attname = 'tenant_id' and pa.attname = 'tenant_id') as tenant_matched
             from pg_catalog.pg_constraint k
            where k.contype = 'f' and (k.conrelid = any (tenant_tables) or k.confrelid = any (tenant_tables) or k.conrelid = any (global_tables))
            order by 2::text, 1
  loop
    if r.child_tenant and r.parent_tenant and not r.tenant_matched then
      fails := fails || format('%s.%s: foreign key to %s does not match tenant_id with tenant_id; the join would cross shards (and tenants). FIX: reference (tenant_id, id) of the parent in a migration', r.child, r.conname, r.parent);
    elsif r.child_tenant and not r.parent_tenant and not r.parent_global then
      fails := fails || format('%s.%s: references %s, which is neither a tenant table nor named global in the registry. FIX: name it in app.global_table_names() (policies/registry.sql) so it becomes a reference table, or give it tenant_id', r.child, r.conname, r.parent);
    elsif r.child_global and r.parent_tenant then
      fails := fails || format('%s.%s: the global table references tenant table %s; a reference table cannot point into distributed data. FIX: move the reference to the tenant side', r.child, r.conname, r.parent);
    end if;
  end loop;

  if cardinality(fails) > 0 then
    raise exception E'citus_readiness: % failure(s)\n%', cardinality(fails), array_to_string(array(select distinct 'FAIL ' || f from unnest(fails) f order by 1), E'\n');
  end if;
  raise notice E'citus_readiness: ok (% tables distributed by tenant_id, co-located; % reference tables)\n  distributed: %\n  reference:   %',
    cardinality(tenant_tables), cardinality(global_tables),
    (select string_agg(t::regclass::text, ', ' order by t::regclass::text) from unnest(tenant_tables) t),
    (select string_agg(t::regclass::text, ', ' order by t::regclass::text) from unnest(global_tables) t);
end
$verify$;

-- updated_at is the database's: every tenant table with an updated_at column gets a BEFORE
-- UPDATE trigger that sets it, whatever the client sends. A new table gets it on apply.
-- Re-appliable: create or replace, each trigger too.

/* Trigger: keeps updated_at honest whatever the client sends. */
create or replace function app.touch_updated_at() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
revoke execute on function app.touch_updated_at() from public;

do $$
declare
  t regclass;
  v_name text;
begin
  for t, v_name in select x, c.relname from app.tenant_tables() x join pg_catalog.pg_class c on c.oid = x
                    where exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = x and a.attname = 'updated_at' and not a.attisdropped)
  loop
    execute format('create or replace trigger %I before update on %s for each row execute function app.touch_updated_at()', v_name || '_touch_updated_at', t);
  end loop;
end
$$;

-- Audit triggers. Every tenant table (app.tenant_tables()) the registry does not exempt
-- (app.unaudited_tables(), policies/registry.sql: the audit itself, caches, bookkeeping) gets
-- three statement-level triggers with transition tables writing app.audit_log through the
-- SECURITY DEFINER app.audit_statement(): one INSERT ... SELECT per statement, in the same
-- transaction as the change. A table added later is audited as soon as this file is applied,
-- listed in app.audited_table_names() or not yet listed at all (the catalog contract then fails
-- until it is classified); an exempted table loses any audit trigger it had.
-- Re-appliable: each trigger is created or replaced (dropped only from a table that no longer wants it).

do $$
declare
  t regclass;
  exempt boolean;
begin
  for t in select * from app.tenant_tables() loop
    -- An append-only table (the audit) is never audited, listed or not: its trigger would write to itself.
    exempt := exists (select 1 from pg_catalog.pg_class c where c.oid = t and c.relname = any (app.append_only_table_names()))
           or exists (select 1 from app.unaudited_tables() u join pg_catalog.pg_class c on c.relname = u.table_name where c.oid = t);
    -- Dropped only where present, and replaced rather than dropped and created: DROP TRIGGER locks
    -- the table ACCESS EXCLUSIVE (even a reader waits), CREATE OR REPLACE TRIGGER SHARE ROW
    -- EXCLUSIVE (writers wait, readers do not).
    if exempt then
      if exists (select 1 from pg_catalog.pg_trigger g where g.tgrelid = t and g.tgname in ('audit_insert', 'audit_update', 'audit_delete')) then
        execute format('drop trigger if exists audit_insert on %s', t);
        execute format('drop trigger if exists audit_update on %s', t);
        execute format('drop trigger if exists audit_delete on %s', t);
      end if;
      continue;
    end if;
    execute format('create or replace trigger audit_insert after insert on %s referencing new table as audit_new
                    for each statement execute function app.audit_statement()', t);
    execute format('create or replace trigger audit_update after update on %s referencing old table as audit_old new table as audit_new
                    for each statement execute function app.audit_statement()', t);
    execute format('create or replace trigger audit_delete after delete on %s referencing old table as audit_old
                    for each statement execute function app.audit_statement()', t);
  end loop;
end
$$;

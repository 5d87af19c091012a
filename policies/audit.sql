-- Audit triggers. Every tenant table (app.tenant_tables()) except the append-only ones gets
-- three statement-level triggers with transition tables writing app.audit_log through the
-- SECURITY DEFINER app.audit_statement(): one INSERT ... SELECT per statement, in the same
-- transaction as the change. A table added later is audited as soon as this file is applied.
-- Re-appliable: each trigger is dropped if it exists and created again.

do $$
declare
  t regclass;
begin
  for t in select * from app.tenant_tables() loop
    if (select c.relname from pg_catalog.pg_class c where c.oid = t) = any (app.append_only_table_names()) then
      continue;
    end if;
    execute format('drop trigger if exists audit_insert on %s', t);
    execute format('create trigger audit_insert after insert on %s referencing new table as audit_new
                    for each statement execute function app.audit_statement()', t);
    execute format('drop trigger if exists audit_update on %s', t);
    execute format('create trigger audit_update after update on %s referencing old table as audit_old new table as audit_new
                    for each statement execute function app.audit_statement()', t);
    execute format('drop trigger if exists audit_delete on %s', t);
    execute format('create trigger audit_delete after delete on %s referencing old table as audit_old
                    for each statement execute function app.audit_statement()', t);
  end loop;
end
$$;

-- Intent: the tenant-context readers exist before the first tenant table, whose tenant_id
-- column defaults to app.current_tenant_id().
-- Their definitions (and every other function, trigger and view) live in the re-appliable
-- files of policies/, applied after the migrations on every deploy: here they are stubs that
-- return NULL, so a database between migrating and applying policies has no context at all.
-- Rollback plan: forward fix.

-- Up Migration

create or replace function app.current_tenant_id() returns uuid language sql stable as $$ select null::uuid $$;
revoke execute on function app.current_tenant_id() from public;

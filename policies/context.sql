-- Operator entry into a tenant context (verify scripts, tests, seed, bench): the owner opens a
-- transaction-local context for one tenant, then may `set local role app_user` to probe as the
-- API's role. Not executable by app_user or app_bi.
-- Re-appliable: create or replace.

/* Opens the context of p_tenant_id for the current transaction, acting as p_role (and p_user_id). */
create or replace function app.open_operator_context(p_tenant_id uuid, p_role text default 'owner', p_user_id uuid default null)
returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  perform set_config('app.tenant_id', coalesce(p_tenant_id::text, ''), true);
  perform set_config('app.user_id', coalesce(p_user_id::text, ''), true);
  perform set_config('app.role', coalesce(p_role, ''), true);
end
$$;
revoke execute on function app.open_operator_context(uuid, text, uuid) from public;

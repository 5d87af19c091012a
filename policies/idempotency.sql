-- Idempotency-Key storage housekeeping. Re-appliable.

/* Removes expired idempotency keys across tenants (operator job). Returns rows removed. */
create or replace function app.idempotency_cleanup() returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_count bigint;
begin
  delete from app.idempotency_keys where expires_at < now();
  get diagnostics v_count = row_count;
  return v_count;
end
$$;
revoke execute on function app.idempotency_cleanup() from public;


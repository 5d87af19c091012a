-- Tenant isolation. For every tenant-owned table (app.tenant_tables()):
--   * RLS is enabled and forced, so even the table owner is bound unless it has BYPASSRLS;
--   * one policy per command, for app_user, keyed on the verified transaction-local tenant:
--     (select app.current_tenant_id()) is evaluated once per statement and is NULL without a
--     context opened by proof (policies/context.sql), so no context means zero rows and every
--     write rejected;
--   * SELECT for app_views, the owner of the views: the context's tenant or the BI login's
--     granted tenants (policies/bi.sql). BI logins hold no privilege on the tables themselves;
--   * WITH CHECK on INSERT and UPDATE, so a row can be neither created in nor moved to
--     another tenant.
-- Re-appliable: each policy is dropped if it exists and created again, in one transaction.

do $$
declare
  t regclass;
begin
  for t in select * from app.tenant_tables() loop
    execute format('alter table %s enable row level security', t);
    execute format('alter table %s force row level security', t);

    -- Rows are visible only to members of their tenant.
    execute format('drop policy if exists tenant_members_read_their_tenant_rows on %s', t);
    execute format($p$create policy tenant_members_read_their_tenant_rows on %s
      as permissive for select to app_user
      using (tenant_id = (select app.current_tenant_id()))$p$, t);

    -- Through the views (owned by app_views): the rows of the verified context's tenant, or of
    -- the tenants an operator granted the connected BI login.
    execute format('drop policy if exists views_show_context_or_granted_tenant_rows on %s', t);
    execute format($p$create policy views_show_context_or_granted_tenant_rows on %s
      as permissive for select to app_views
      using (tenant_id = (select app.current_tenant_id()) or tenant_id = any ((select app.bi_tenant_ids())::uuid[]))$p$, t);

    -- Append-only tables (the audit) are read-only for the application: no write policies.
    if (select c.relname from pg_catalog.pg_class c where c.oid = t) = any (app.append_only_table_names()) then
      execute format('drop policy if exists tenant_members_insert_into_their_tenant on %s', t);
      execute format('drop policy if exists tenant_members_update_their_tenant_rows on %s', t);
      execute format('drop policy if exists tenant_members_delete_their_tenant_rows on %s', t);
      continue;
    end if;

    -- Rows can be created only inside the caller's tenant.
    execute format('drop policy if exists tenant_members_insert_into_their_tenant on %s', t);
    execute format($p$create policy tenant_members_insert_into_their_tenant on %s
      as permissive for insert to app_user
      with check (tenant_id = (select app.current_tenant_id()))$p$, t);

    -- Rows can be changed only inside the caller's tenant and never moved out of it.
    execute format('drop policy if exists tenant_members_update_their_tenant_rows on %s', t);
    execute format($p$create policy tenant_members_update_their_tenant_rows on %s
      as permissive for update to app_user
      using (tenant_id = (select app.current_tenant_id()))
      with check (tenant_id = (select app.current_tenant_id()))$p$, t);

    -- Rows can be deleted only inside the caller's tenant.
    execute format('drop policy if exists tenant_members_delete_their_tenant_rows on %s', t);
    execute format($p$create policy tenant_members_delete_their_tenant_rows on %s
      as permissive for delete to app_user
      using (tenant_id = (select app.current_tenant_id()))$p$, t);
  end loop;
end
$$;

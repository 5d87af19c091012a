-- Privileges. Nothing is granted to PUBLIC; app_user holds only what the API needs;
-- app_bi (and so every BI login, a member of it) reads views only; app_views, the views' owner,
-- reads the tenant tables under RLS. Functions get EXECUTE one by one, by name.

revoke all on schema app from public;
grant usage on schema app to app_user, app_bi;

-- Global tables: no direct access for the application roles.
do $$
declare
  t text;
begin
  foreach t in array app.global_table_names() loop
    if to_regclass(format('app.%I', t)) is not null then
      execute format('revoke all on table app.%I from public, app_user, app_bi, app_views', t);
    end if;
  end loop;
end
$$;

-- Tenant tables: DML for app_user (RLS decides which rows), nothing for PUBLIC or app_bi.
-- TRUNCATE, REFERENCES and TRIGGER are never granted: RLS does not cover TRUNCATE.
do $$
declare
  t regclass;
begin
  for t in select * from app.tenant_tables() loop
    execute format('revoke all on table %s from public, app_bi', t);
    execute format('revoke truncate, references, trigger on table %s from app_user', t);
    if (select c.relname from pg_catalog.pg_class c where c.oid = t) = any (app.append_only_table_names()) then
      execute format('revoke insert, update, delete on table %s from app_user', t);
      execute format('grant select on table %s to app_user', t);
    else
      execute format('grant select, insert, update, delete on table %s to app_user', t);
    end if;
  end loop;
end
$$;

-- Views: readable by app_user and app_bi (owned by app_views, which RLS binds: the verified
-- context's tenant or the BI login's grants). app_views reads the tenant tables for them.
do $$
declare
  v record;
  t regclass;
begin
  for v in select c.oid::regclass as rel from pg_catalog.pg_class c
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'app' and c.relkind = 'v'
  loop
    execute format('revoke all on table %s from public', v.rel);
    execute format('grant select on table %s to app_user, app_bi', v.rel);
  end loop;
  for t in select * from app.tenant_tables() loop
    execute format('grant select on table %s to app_views', t);
  end loop;
end
$$;
grant usage on schema app to app_views;

-- Functions: EXECUTE is revoked from PUBLIC where each is defined; here each grant names its
-- role. Context readers for policies; the entry points the API calls. What opens a context
-- (app.open_tenant_context, app.open_user_context, app.open_platform_context, app.find_login,
-- app.record_login) takes the API's proof, used once (policies/proofs.sql);
-- app.open_operator_context, app.open_platform_operator_context, app.set_sealed_context,
-- app.grant_capability and the key functions are the owner's only.
-- What the policies call runs with the caller's EXECUTE rights, also through a view: the
-- readers, the BI grant lookup and the permission check are executable by every role that
-- reads (they return NULL, no tenants, false without a verified context or a grant).
grant execute on function app.verified_context() to app_user, app_bi, app_views;
grant execute on function app.current_tenant_id() to app_user, app_bi, app_views;
grant execute on function app.current_user_id() to app_user, app_bi, app_views;
grant execute on function app.current_member_role() to app_user, app_bi, app_views;
grant execute on function app.current_request_id() to app_user, app_bi, app_views;
grant execute on function app.current_permissions() to app_user, app_bi, app_views;
grant execute on function app.current_context_mode() to app_user, app_bi, app_views;
grant execute on function app.bi_tenant_ids() to app_user, app_bi, app_views;
grant execute on function app.has_permission(text) to app_user, app_bi, app_views;
grant execute on function app.verified_capabilities() to app_user;
grant execute on function app.has_capability(text) to app_user;
grant execute on function app.close_context() to app_user;
grant execute on function app.context_key_ids() to app_user;
grant execute on function app.open_tenant_context(uuid, text[], uuid, text, text, boolean, boolean, text, bigint, text, text, text) to app_user;
grant execute on function app.open_platform_context(uuid, text, boolean, text, bigint, text, text) to app_user;
grant execute on function app.open_user_context(uuid, text, text, bigint, text, text) to app_user;
grant execute on function app.bind_session() to app_user;
grant execute on function app.open_context_stream(bigint, text, text) to app_user;
grant execute on function app.require_permission(text) to app_user;
grant execute on function app.role_check_applies(oid, uuid) to app_user;
grant execute on function app.list_members() to app_user;
grant execute on function app.change_member_role(uuid, text) to app_user;
grant execute on function app.remove_member(uuid) to app_user;
grant execute on function app.update_tenant_settings(text, text, text, integer, text, integer, integer, boolean) to app_user;
-- Settings: the shop's own (a context of it), also what the domain triggers read as app_user.
grant execute on function app.current_settings() to app_user;
grant execute on function app.shop_settings(uuid, regclass) to app_user;
-- Features: the shop's own entitlements (features:read); the platform's functions refuse (PA403)
-- outside a platform context opened by proof for a platform admin (policies/platform.sql).
grant execute on function app.current_entitlements() to app_user;
grant execute on function app.platform_overview() to app_user;
grant execute on function app.platform_tenant_entitlements(text) to app_user;
grant execute on function app.platform_versions(bigint, integer) to app_user;
grant execute on function app.platform_set_plan_features(text, jsonb, text) to app_user;
grant execute on function app.platform_set_tenant_plan(text, text, text) to app_user;
grant execute on function app.platform_set_override(text, text, boolean, timestamptz, text) to app_user;
grant execute on function app.platform_set_kill_switch(text, boolean, text) to app_user;
grant execute on function app.platform_rollback(bigint, text) to app_user;
-- Tenant lifecycle (policies/tenant_lifecycle.sql): platform context only, like the above.
grant execute on function app.platform_create_tenant(text, text, text, text, text, interval, text) to app_user;
grant execute on function app.platform_set_tenant_status(text, text, text) to app_user;
-- A shop's export (policies/tenant_export.sql): in its context, tenant:export.
grant execute on function app.tenant_export_tables() to app_user;
grant execute on function app.tenant_archive_header() to app_user;
grant execute on function app.record_tenant_export(jsonb, boolean) to app_user;
-- Invitations (policies/invitations.sql): each only for an API proof, used once.
grant execute on function app.find_invitation(text, text, bigint, text, text) to app_user;
grant execute on function app.accept_invitation(text, text, text, text, bigint, text, text) to app_user;
grant execute on function app.record_login(uuid, boolean, text, text, bigint, text, text) to app_user;
grant execute on function app.find_login(text, text, bigint, text, text) to app_user;
grant execute on function app.login_gate(text, text, integer, integer, integer, text, bigint, text, text) to app_user;
grant execute on function app.login_outcome(text, text, boolean, integer, integer, integer, text, bigint, text, text) to app_user;
grant execute on function app.get_user() to app_user;
grant execute on function app.list_memberships() to app_user;
grant execute on function app.applied_migrations() to app_user;
grant execute on function app.deployed_policy_versions() to app_user;
-- The list of global tables is not secret: /ops/env-sanity reads it to tell tenant tables apart.
grant execute on function app.global_table_names() to app_user;
-- The permissions each tenant table's reads and writes need, the same for every shop (published in
-- runbooks/rbac-matrix.md): the access explainer reads them to know which context to open.
grant execute on function app.table_read_permissions() to app_user;
grant execute on function app.table_write_permissions() to app_user;
grant execute on function app.issue_invoice(uuid) to app_user;
-- Catalog change sets and versions (policies/catalog_versions.sql): the invoker functions run
-- under RLS and the catalog's role checks; app.catalog_begin_version (definer) needs catalog:approve.
grant execute on function app.catalog_begin_version(text, uuid, integer) to app_user;
grant execute on function app.catalog_approve_change_set(uuid) to app_user;
grant execute on function app.catalog_reject_change_set(uuid, text) to app_user;
grant execute on function app.catalog_apply_change_set(uuid) to app_user;
grant execute on function app.catalog_images_at(integer, integer) to app_user;
grant execute on function app.catalog_restore(integer) to app_user;
grant execute on function app.catalog_preview(uuid) to app_user;
grant execute on function app.catalog_dry_run(uuid) to app_user;
grant execute on function app.audit_event(text, text, text, jsonb) to app_user;

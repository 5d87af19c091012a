-- BI access by grant, never by settings. Each BI consumer logs in with its own role, a member
-- of app_bi; an operator grants it tenants (`npm run cli -- bi grant --role R --tenant SLUG`),
-- recorded in app.bi_grants and audited in the tenant's trail. The views (owned by app_views,
-- see policies/views.sql) return a BI login the rows of its granted tenants, whatever it sets:
-- the grant is looked up by session_user, which a login cannot change, and counts only while the
-- shop may use bi_access (policies/features.sql).
-- Re-appliable: create or replace.

/*
 * The tenants the connected BI login was granted and that may use bi_access now (their plan,
 * override and kill switch: app.feature_enabled), or an empty array (app_user, the owner and
 * any login without grants). Policies call it as (select ...), once per statement, so a shop
 * whose bi_access lapses disappears from its BI logins at their next statement.
 * session_user, not current_user: inside this SECURITY DEFINER function current_user is the
 * owner, and a BI login cannot change its session_user.
 */
create or replace function app.bi_tenant_ids() returns uuid[]
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return coalesce((select array_agg(g.tenant_id) from app.bi_grants g
                    where g.role_name = session_user and app.feature_enabled(g.tenant_id, 'bi_access')), '{}'::uuid[]);
end
$$;
revoke execute on function app.bi_tenant_ids() from public;

/* Refuses a role that is not a BI login: it must exist, log in, and be a member of app_bi and nothing stronger. */
create or replace function app.bi_check_login(p_role name) returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  r pg_catalog.pg_roles;
begin
  select * into r from pg_catalog.pg_roles where rolname = p_role;
  if not found then
    raise exception 'role % does not exist', p_role using errcode = '42704',
      hint = format('create role %I login password ''...'' in role app_bi', p_role);
  end if;
  if p_role in ('app_bi', 'app_user', 'app_views') or not pg_catalog.pg_has_role(p_role, 'app_bi', 'MEMBER')
     or r.rolsuper or r.rolbypassrls or pg_catalog.pg_has_role(p_role, 'app_user', 'MEMBER') then
    raise exception 'role % is not a BI login (a member of app_bi, not superuser, not BYPASSRLS, not app_user)', p_role
      using errcode = '42501', hint = format('grant app_bi to %I', p_role);
  end if;
end
$$;
revoke execute on function app.bi_check_login(name) from public;

/* Grants a BI login a tenant's rows through the views; audited in that tenant's trail. Owner only. Returns false when already granted. */
create or replace function app.bi_grant(p_role name, p_tenant_id uuid) returns boolean
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.bi_check_login(p_role);
  insert into app.bi_grants (role_name, tenant_id) values (p_role, p_tenant_id) on conflict do nothing;
  if not found then
    return false;
  end if;
  perform app.open_operator_context(p_tenant_id, 'operator');
  perform app.audit_event('bi.granted', 'bi_login', p_role::text, jsonb_build_object('role', p_role, 'by', session_user));
  perform app.close_context();
  return true;
end
$$;
revoke execute on function app.bi_grant(name, uuid) from public;

/* Revokes a BI login's grant of a tenant; audited. Owner only. Returns false when there was none. */
create or replace function app.bi_revoke(p_role name, p_tenant_id uuid) returns boolean
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  delete from app.bi_grants where role_name = p_role and tenant_id = p_tenant_id;
  if not found then
    return false;
  end if;
  perform app.open_operator_context(p_tenant_id, 'operator');
  perform app.audit_event('bi.revoked', 'bi_login', p_role::text, jsonb_build_object('role', p_role, 'by', session_user));
  perform app.close_context();
  return true;
end
$$;
revoke execute on function app.bi_revoke(name, uuid) from public;

-- Members: the owner rules (only an owner grants or removes the owner role; the last owner
-- stays) and the SECURITY DEFINER functions behind /members (/settings: policies/settings.sql).
-- Re-appliable: create or replace, the trigger too.

/*
 * Owner rules on app.memberships, for every writer:
 *   * inside a request context, only an owner grants or removes the owner role (SS403);
 *     operators (no context) may, which is how a tenant gets its first owner;
 *   * a tenant never loses its last owner, by demotion or removal (SS409), unless the tenant
 *     itself is being deleted. Owner changes of one tenant are serialised on the tenant row,
 *     so two concurrent demotions cannot both pass.
 */
create or replace function app.membership_owner_rules() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_grants boolean := tg_op <> 'DELETE' and new.role = 'owner' and (tg_op = 'INSERT' or old.role <> 'owner');
  v_removes boolean := tg_op <> 'INSERT' and old.role = 'owner' and (tg_op = 'DELETE' or new.role <> 'owner');
begin
  if (v_grants or v_removes) and app.current_member_role() is not null and app.current_member_role() <> 'owner' then
    raise exception 'only an owner grants or removes the owner role'
      using errcode = 'SS403', constraint = 'owner_only';
  end if;
  if v_removes then
    -- FOR NO KEY UPDATE: serialises owner changes without blocking the key-share locks of
    -- every tenant row insert (foreign keys to app.tenants).
    perform 1 from app.tenants t where t.id = old.tenant_id for no key update;
    if found and not exists (select 1 from app.memberships m
                              where m.tenant_id = old.tenant_id and m.role = 'owner' and m.user_id <> old.user_id) then
      raise exception 'tenant % would be left without an owner', old.tenant_id
        using errcode = 'SS409', constraint = 'last_owner';
    end if;
  end if;
  return coalesce(new, old);
end
$$;
revoke execute on function app.membership_owner_rules() from public;


create or replace trigger memberships_owner_rules
  before insert or update of role or delete on app.memberships
  for each row execute function app.membership_owner_rules();

/* The members of the caller's tenant (members:manage). */
create or replace function app.list_members()
returns table (user_id uuid, email text, role text, created_at timestamptz)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_permission('members:manage');
  return query
    select m.user_id, u.email, m.role, m.created_at
      from app.memberships m join app.users u on u.id = m.user_id
     where m.tenant_id = app.current_tenant_id()
     order by lower(u.email);
end
$$;
revoke execute on function app.list_members() from public;

/*
 * Changes a member's role (members:manage). A user who is not a member of the caller's
 * tenant raises SS404 (member) before the permission is checked, like any foreign row. Audited.
 */
create or replace function app.change_member_role(p_user_id uuid, p_role text)
returns table (user_id uuid, email text, role text, created_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old text;
begin
  select m.role into v_old from app.memberships m
   where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id for update;
  if not found then
    raise exception 'member not found' using errcode = 'SS404', constraint = 'member';
  end if;
  perform app.require_permission('members:manage');
  update app.memberships m set role = p_role where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id;
  if v_old <> p_role then
    perform app.audit_event('member.role_changed', 'membership', p_user_id::text, jsonb_build_object('old', v_old, 'new', p_role));
  end if;
  return query
    select m.user_id, u.email, m.role, m.created_at from app.memberships m join app.users u on u.id = m.user_id
     where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id;
end
$$;
revoke execute on function app.change_member_role(uuid, text) from public;

/* Removes a member (members:manage); SS404 for a user who is not one. Audited. */
create or replace function app.remove_member(p_user_id uuid) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old text;
begin
  select m.role into v_old from app.memberships m
   where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id for update;
  if not found then
    raise exception 'member not found' using errcode = 'SS404', constraint = 'member';
  end if;
  perform app.require_permission('members:manage');
  delete from app.memberships m where m.tenant_id = app.current_tenant_id() and m.user_id = p_user_id;
  perform app.audit_event('member.removed', 'membership', p_user_id::text, jsonb_build_object('role', v_old));
end
$$;
revoke execute on function app.remove_member(uuid) from public;

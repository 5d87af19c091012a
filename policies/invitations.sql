-- Invitations (sql/0470): who may invite whom, and how an invitation is accepted.
-- Re-appliable: create or replace; the trigger is dropped if it exists and created again.
--
-- For reviewers:
--   * A member invites with a plain INSERT into app.invitations under RLS: the registry's
--     _authorize_write trigger asks members:manage (policies/rbac.sql), and the trigger below
--     lets only an owner invite an owner. Nothing looks the email up, so the answer is the same
--     whether or not it has an account (issue 37).
--   * Only the SHA-256 of a token is stored. Accepting takes two API proofs, each used once
--     (policies/proofs.sql): app.find_invitation (kind 'invitation-lookup' over the hash) says
--     whether the invitation holds and hands back the invited account's password hash, if any,
--     so the API can check that an existing account's password was given; app.accept_invitation
--     (kind 'invitation-accept' over hash, new password hash, request id) creates or links the
--     account and the membership and marks the invitation used, in one transaction. Without the
--     context key app_user can do neither; an unknown, expired or used token raises before any
--     account is looked up, so no token answer depends on whether an email has an account.

-- Invitations replace adding an existing account by email (issue 37's app.add_member).
drop function if exists app.add_member(text, text);

/*
 * Only an owner invites someone as owner (SS403 owner_only), as only an owner grants the owner
 * role (app.membership_owner_rules); operators and the platform (no member role) may, which is
 * how a new shop gets its first owner. A member's invitation names its inviter.
 */
create or replace function app.invitation_rules() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.role = 'owner' and app.current_member_role() is not null and app.current_member_role() <> 'owner' then
    raise exception 'only an owner grants or removes the owner role' using errcode = 'SS403', constraint = 'owner_only';
  end if;
  if tg_op = 'INSERT' then
    new.invited_by := coalesce(new.invited_by, app.current_user_id());
  end if;
  return new;
end
$$;
revoke execute on function app.invitation_rules() from public;

drop trigger if exists invitations_rules on app.invitations;
create trigger invitations_rules before insert or update of role on app.invitations
  for each row execute function app.invitation_rules();

/*
 * The invitation a token's hash names, locked, if it can still be accepted; raises otherwise:
 * SS404 (invitation) unknown or malformed, SS410 (invitation_expired), SS409 (invitation_used).
 * Two invitations with one hash (never, for random tokens) count as unknown. Internal.
 */
create or replace function app.usable_invitation(p_token_hash text) returns app.invitations
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  i app.invitations;
  n integer;
begin
  select count(*) into n from app.invitations x where x.token_hash = p_token_hash;
  if n <> 1 then
    raise exception 'no such invitation' using errcode = 'SS404', constraint = 'invitation';
  end if;
  select * into i from app.invitations x where x.token_hash = p_token_hash for update;
  if i.accepted_at is not null then
    raise exception 'invitation already used' using errcode = 'SS409', constraint = 'invitation_used';
  end if;
  if i.expires_at <= clock_timestamp() then
    raise exception 'invitation expired' using errcode = 'SS410', constraint = 'invitation_expired';
  end if;
  return i;
end
$$;
revoke execute on function app.usable_invitation(text) from public;

/*
 * Step 1 of accepting, for an API proof of kind 'invitation-lookup' over (token hash), used once:
 * whether the invitation holds (raises as app.usable_invitation otherwise), and the invited
 * email's account: whether it exists and its password hash, which the API checks the given
 * password against (an existing account joins only with its own password). Answers the token's
 * holder only, who received the invitation at that email.
 */
create or replace function app.find_invitation(p_token_hash text, p_guard text, p_expires_at bigint, p_nonce text, p_proof text)
returns table (account_exists boolean, password_hash text)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  i app.invitations;
begin
  perform app.consume_proof('invitation-lookup', array[p_token_hash], true, p_guard, p_expires_at, p_nonce, p_proof);
  i := app.usable_invitation(p_token_hash);
  return query
    select true, u.password_hash from app.users u where lower(u.email) = lower(i.email)
    union all
    select false, null::text where not exists (select 1 from app.users u where lower(u.email) = lower(i.email));
end
$$;
revoke execute on function app.find_invitation(text, text, bigint, text, text) from public;

/*
 * Step 2, for an API proof of kind 'invitation-accept' over (token hash, password hash, request
 * id), used once: in one transaction, the invitation (still usable, locked) is marked accepted;
 * the invited email's account is created with p_password_hash, or given it when it has no
 * password yet, or linked as it is (p_password_hash NULL: the API checked its password); and it
 * becomes a member with the invited role (SS409 invitation_member when it already is one: the
 * invitation stays usable). Audited in the shop's chain as the new member (invitation.accepted,
 * and the invitation row's update). Returns the membership.
 */
create or replace function app.accept_invitation(p_token_hash text, p_password_hash text, p_request_id text,
                                                 p_guard text, p_expires_at bigint, p_nonce text, p_proof text)
returns table (tenant_id uuid, slug text, user_id uuid, email text, role text)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  i app.invitations;
  u app.users;
begin
  perform app.consume_proof('invitation-accept', array[p_token_hash, coalesce(p_password_hash, ''), p_request_id],
                            true, p_guard, p_expires_at, p_nonce, p_proof);
  i := app.usable_invitation(p_token_hash);
  select * into u from app.users x where lower(x.email) = lower(i.email) for update;
  if not found then
    if p_password_hash is null then
      raise exception 'a new account needs a password' using errcode = '22023';
    end if;
    insert into app.users (email, password_hash) values (i.email, p_password_hash) returning * into u;
  elsif u.password_hash is null and p_password_hash is not null then
    update app.users x set password_hash = p_password_hash where x.id = u.id;
  end if;
  if exists (select 1 from app.memberships m where m.tenant_id = i.tenant_id and m.user_id = u.id) then
    raise exception 'already a member' using errcode = 'SS409', constraint = 'invitation_member';
  end if;
  perform app.set_sealed_context(i.tenant_id, u.id, i.role, p_request_id);
  insert into app.memberships (tenant_id, user_id, role) values (i.tenant_id, u.id, i.role);
  update app.invitations x set accepted_at = clock_timestamp(), accepted_user_id = u.id
   where x.tenant_id = i.tenant_id and x.id = i.id;
  perform app.audit_event('invitation.accepted', 'invitation', i.id::text, jsonb_build_object('email', i.email, 'role', i.role, 'user_id', u.id));
  perform app.close_context();
  return query select t.id, t.slug, u.id, u.email, i.role from app.tenants t where t.id = i.tenant_id;
end
$$;
revoke execute on function app.accept_invitation(text, text, text, text, bigint, text, text) from public;

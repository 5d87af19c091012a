-- A shop's life on the platform (issue 34): created with an invitation for its first owner,
-- suspended and resumed with a reason, and each step recorded in the platform's own
-- append-only app.tenant_lifecycle_events (sql/0471) and in the shop's audit chain.
-- Export and purge: policies/tenant_purge.sql. Re-appliable: create or replace; triggers
-- dropped if they exist and created again.
--
-- For reviewers: every function here refuses (PA403) outside a platform context
-- (app.require_platform: a platform admin's, opened by proof, or the CLI operator's).

/* Who acts in the platform context: the admin's email (and id), or the CLI operator's label. Internal. */
create or replace function app.platform_actor(out actor text, out actor_user_id uuid)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ctx text := app.verified_context();
begin
  actor_user_id := nullif(split_part(v_ctx, '|', 2), '')::uuid;
  actor := left(coalesce((select u.email from app.users u where u.id = actor_user_id), nullif(split_part(v_ctx, '|', 4), ''), 'operator:' || session_user), 200);
end
$$;
revoke execute on function app.platform_actor() from public;

/* Appends one event to app.tenant_lifecycle_events as the platform's actor. Internal. */
create or replace function app.record_tenant_event(p_tenant_id uuid, p_slug text, p_action text, p_reason text, p_detail jsonb)
returns bigint
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  a record;
  v_id bigint;
begin
  select * into a from app.platform_actor();
  insert into app.tenant_lifecycle_events (tenant_id, slug, action, actor, actor_user_id, reason, detail)
  values (p_tenant_id, p_slug, p_action, a.actor, a.actor_user_id, p_reason, coalesce(p_detail, '{}'::jsonb))
  returning id into v_id;
  return v_id;
end
$$;
revoke execute on function app.record_tenant_event(uuid, text, text, text, jsonb) from public;

/* Append-only: no UPDATE, DELETE or TRUNCATE of the lifecycle events for any role. */
create or replace function app.tenant_lifecycle_events_append_only() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'app.tenant_lifecycle_events is append-only (% refused)', tg_op using errcode = 'SS409', constraint = 'audit_append_only';
end
$$;
revoke execute on function app.tenant_lifecycle_events_append_only() from public;

drop trigger if exists tenant_lifecycle_events_append_only on app.tenant_lifecycle_events;
create trigger tenant_lifecycle_events_append_only before update or delete on app.tenant_lifecycle_events
  for each row execute function app.tenant_lifecycle_events_append_only();
drop trigger if exists tenant_lifecycle_events_no_truncate on app.tenant_lifecycle_events;
create trigger tenant_lifecycle_events_no_truncate before truncate on app.tenant_lifecycle_events
  for each statement execute function app.tenant_lifecycle_events_append_only();

/*
 * Creates a shop (slug, name) on p_plan and invites its first owner (p_owner_email, whether or
 * not it has an account) with the token whose SHA-256 is p_token_hash, expiring after
 * p_valid_for. Recorded as tenant.created (with the plan and the invitation), the plan in an
 * entitlement version. A slug in use: 23505 tenants_slug_key (409 SLUG_TAKEN); an unknown plan:
 * SS404 (plan). Returns the shop and the invitation.
 */
create or replace function app.platform_create_tenant(p_slug text, p_name text, p_plan text, p_owner_email text,
                                                      p_token_hash text, p_valid_for interval, p_reason text)
returns table (tenant_id uuid, slug text, name text, status text, plan text, invitation_id uuid, invitation_email text, expires_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  t app.tenants;
  i app.invitations;
begin
  perform app.require_platform();
  perform app.platform_require_known('plan', p_plan);
  insert into app.tenants (slug, name) values (p_slug, p_name) returning * into t;
  perform app.platform_set_tenant_plan(t.id::text, p_plan, coalesce(p_reason, format('shop %s created on plan %s', t.slug, p_plan)));
  insert into app.invitations (tenant_id, email, role, token_hash, expires_at, invited_by)
  values (t.id, p_owner_email, 'owner', p_token_hash, now() + coalesce(p_valid_for, interval '7 days'), (app.platform_actor()).actor_user_id)
  returning * into i;
  perform app.record_tenant_event(t.id, t.slug, 'tenant.created', p_reason,
    jsonb_build_object('name', t.name, 'plan', p_plan, 'owner_email', p_owner_email, 'invitation_id', i.id));
  return query select t.id, t.slug, t.name, t.status, p_plan, i.id, i.email, i.expires_at;
end
$$;
revoke execute on function app.platform_create_tenant(text, text, text, text, text, interval, text) from public;

/*
 * Suspends (p_status 'suspended') or resumes ('active') a shop, with a reason: from then on its
 * members' requests are refused (TN403, 403 TENANT_SUSPENDED) or served again. Recorded as
 * tenant.suspended or tenant.resumed in the platform's events and in the shop's own audit chain.
 * SS409 (tenant_status) when the shop already has that status. Returns the shop's new state.
 */
create or replace function app.platform_set_tenant_status(p_tenant text, p_status text, p_reason text)
returns table (tenant_id uuid, slug text, status text, status_reason text, status_changed_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  t app.tenants;
  a record;
  v_action text := case p_status when 'suspended' then 'tenant.suspended' when 'active' then 'tenant.resumed' end;
  v_request text := split_part(app.verified_context(), '|', 4);
begin
  t := app.platform_tenant(p_tenant);
  select * into a from app.platform_actor();
  if v_action is null or p_reason is null or length(p_reason) not between 1 and 500 then
    raise exception 'a status (active or suspended) and a reason (1 to 500 characters)' using errcode = '22023';
  end if;
  if t.status = 'purged' then
    raise exception 'shop % was purged', t.slug using errcode = 'SS404', constraint = 'tenant';
  end if;
  if t.status = p_status then
    raise exception 'shop % is already %', t.slug, p_status using errcode = 'SS409', constraint = 'tenant_status';
  end if;
  update app.tenants x set status = p_status, status_reason = p_reason, status_changed_at = clock_timestamp()
   where x.id = t.id returning * into t;
  perform app.record_tenant_event(t.id, t.slug, v_action, p_reason, '{}'::jsonb);
  -- In the shop's own chain too, as the platform's actor; the platform context ends here.
  perform app.set_sealed_context(t.id, a.actor_user_id, null, v_request);
  perform app.audit_event(v_action, 'tenant', t.id::text, jsonb_build_object('reason', p_reason, 'actor', a.actor));
  perform app.close_context();
  return query select t.id, t.slug, t.status, t.status_reason, t.status_changed_at;
end
$$;
revoke execute on function app.platform_set_tenant_status(text, text, text) from public;

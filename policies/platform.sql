-- Platform administration: the context platform admins act in, and what they change in it (the
-- plan grid, shops' plans, overrides, kill switches, rollbacks: policies/features.sql).
-- Re-appliable: create or replace.
--
-- For reviewers:
--   * A platform context is opened only from an API proof of kind 'platform' over (user, request
--     id), used once like every proof (policies/proofs.sql), and only for a user whose
--     app.users.is_platform_admin is true (PA403 otherwise): checked in SQL, in the same call. It
--     names no tenant (every tenant table reads as empty), no role and no tenant permission; its
--     permissions field is 'platform'. A read's transaction is read-only.
--   * The CLI, as the owner, opens the same context with app.open_platform_operator_context(actor),
--     which no application role may execute.
--   * Every platform function below refuses (PA403) outside a platform context, and writes only
--     through a version (actor, reason), so nothing here changes an entitlement unrecorded.

/*
 * Opens a platform context for one transaction, for a platform admin, from the API's proof of
 * kind 'platform' over (user, request id). p_writes false: the transaction is read-only. Raises
 * TN401 as the other openers do, PA403 when the user is not a platform admin. Returns the user.
 */
create or replace function app.open_platform_context(p_user_id uuid, p_request_id text, p_writes boolean, p_guard text, p_expires_at bigint, p_nonce text, p_proof text)
returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ctx text;
begin
  perform app.consume_proof('platform', array[p_user_id::text, p_request_id], coalesce(p_writes, false), p_guard, p_expires_at, p_nonce, p_proof);
  if p_user_id is null or p_writes is null
     or not coalesce((select u.is_platform_admin from app.users u where u.id = p_user_id), false) then
    raise exception 'only platform administrators act on the platform' using errcode = 'PA403';
  end if;
  v_ctx := app.seal_context_value(app.context_value(null, p_user_id, null, p_request_id, 'platform', case when p_writes then 'w' else 'r' end), not p_writes);
  return p_user_id;
end
$$;
revoke execute on function app.open_platform_context(uuid, text, boolean, text, bigint, text, text) from public;

/*
 * The owner's platform context for the CLI (`npm run cli -- features ...`): no user, p_actor (at
 * most 128 characters) as the versions' actor. Never granted to an application role.
 */
create or replace function app.open_platform_operator_context(p_actor text) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ctx text;
begin
  if p_actor is null or length(p_actor) not between 1 and 128 then
    raise exception 'an operator names themself (1 to 128 characters)' using errcode = '22023';
  end if;
  v_ctx := app.seal_context_value(app.context_value(null, null, null, p_actor, 'platform', 'o'), false);
end
$$;
revoke execute on function app.open_platform_operator_context(text) from public;

/* Raises PA403 unless the transaction runs in a platform context (app.open_platform_context). */
create or replace function app.require_platform() returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ctx text := app.verified_context();
begin
  if v_ctx is null or split_part(v_ctx, '|', 1) <> '' or split_part(v_ctx, '|', 5) <> 'platform' then
    raise exception 'only platform administrators act on the platform' using errcode = 'PA403';
  end if;
end
$$;
revoke execute on function app.require_platform() from public;

/* In a platform context (PA403 otherwise, before anything is looked up), a shop by slug or id (any case), or SS404 (tenant). */
create or replace function app.platform_tenant(p_ref text) returns app.tenants
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  t app.tenants;
begin
  perform app.require_platform();
  if app.is_uuid_text(p_ref) then
    select * into t from app.tenants x where x.id = p_ref::uuid;
  else
    select * into t from app.tenants x where x.slug = lower(p_ref);
  end if;
  if t.id is null then
    raise exception 'no shop %', p_ref using errcode = 'SS404', constraint = 'tenant';
  end if;
  return t;
end
$$;
revoke execute on function app.platform_tenant(text) from public;

/* SS404 (feature or plan) unless the catalogue knows the name. */
create or replace function app.platform_require_known(p_kind text, p_name text) returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_kind = 'feature' and not exists (select 1 from app.features f where f.name = p_name)
     or p_kind = 'plan' and not exists (select 1 from app.plans p where p.name = p_name) then
    raise exception 'no % %', p_kind, p_name using errcode = 'SS404', constraint = p_kind;
  end if;
end
$$;
revoke execute on function app.platform_require_known(text, text) from public;

/*
 * The platform's view: the latest version, the plans with the features each grants, and the
 * features with their kill switch and the plans granting them, as JSON. Platform context only.
 */
create or replace function app.platform_overview() returns jsonb
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_platform();
  return jsonb_build_object(
    'version', (select max(v.version) from app.entitlement_versions v),
    'plans', coalesce((select jsonb_agg(jsonb_build_object('name', p.name, 'description', p.description, 'for_new_shops', p.for_new_shops,
                        'features', coalesce((select jsonb_agg(pf.feature order by pf.feature) from app.plan_features pf where pf.plan = p.name), '[]'))
                        order by p.name) from app.plans p), '[]'),
    'features', coalesce((select jsonb_agg(jsonb_build_object('name', f.name, 'description', f.description,
                           'killed', exists (select 1 from app.feature_kill_switches k where k.feature = f.name),
                           'plans', coalesce((select jsonb_agg(pf.plan order by pf.plan) from app.plan_features pf where pf.feature = f.name), '[]'))
                           order by f.name) from app.features f), '[]'));
end
$$;
revoke execute on function app.platform_overview() from public;

/* A shop's plan and entitlements (every feature: enabled or not, and why), as JSON. Platform context only. */
create or replace function app.platform_tenant_entitlements(p_tenant text) returns jsonb
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  t app.tenants;
begin
  t := app.platform_tenant(p_tenant);
  return jsonb_build_object(
    'tenant', jsonb_build_object('id', t.id, 'slug', t.slug, 'name', t.name),
    'plan', (select tp.plan from app.tenant_plans tp where tp.tenant_id = t.id),
    'features', coalesce((select jsonb_agg(to_jsonb(e) order by e.feature) from app.entitlements_of(t.id) e), '[]'));
end
$$;
revoke execute on function app.platform_tenant_entitlements(text) from public;

/* The versions, newest first, before p_before (NULL: from the latest), at most p_limit, each with its changes. Platform context only. */
create or replace function app.platform_versions(p_before bigint, p_limit integer)
returns table (version bigint, created_at timestamptz, actor text, actor_user_id uuid, action text, reason text, rolled_back_to bigint, changes jsonb)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_platform();
  return query
    select v.version, v.created_at, v.actor, v.actor_user_id, v.action, v.reason, v.rolled_back_to,
           coalesce((select jsonb_agg(jsonb_build_object('entity', c.entity, 'key', c.key, 'old', c.old, 'new', c.new) order by c.id)
                       from app.entitlement_changes c where c.version = v.version), '[]')
      from app.entitlement_versions v
     where p_before is null or v.version < p_before
     order by v.version desc
     limit least(greatest(coalesce(p_limit, 50), 1), 1000);
end
$$;
revoke execute on function app.platform_versions(bigint, integer) from public;

/*
 * Sets cells of a plan's row of the grid: p_features maps feature → granted (true) or not
 * (false). One version for all of them (action plan.features); NULL, and no version, when every
 * cell already says so.
 */
create or replace function app.platform_set_plan_features(p_plan text, p_features jsonb, p_reason text) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  f record;
  v bigint;
begin
  perform app.require_platform();
  perform app.platform_require_known('plan', p_plan);
  if jsonb_typeof(p_features) is distinct from 'object' then
    raise exception 'features: an object of feature → true or false' using errcode = '22023';
  end if;
  for f in select x.k, x.v from jsonb_each(p_features) x(k, v) loop
    perform app.platform_require_known('feature', f.k);
    if jsonb_typeof(f.v) <> 'boolean' then
      raise exception 'feature %: true or false', f.k using errcode = '22023';
    end if;
  end loop;
  if not exists (select 1 from jsonb_each(p_features) x(k, g)
                  where x.g::text::boolean <> exists (select 1 from app.plan_features pf where pf.plan = p_plan and pf.feature = x.k)) then
    return null;
  end if;
  v := app.entitlements_begin('plan.features', p_reason);
  insert into app.plan_features (plan, feature)
  select p_plan, x.k from jsonb_each(p_features) x(k, g) where x.g = 'true'::jsonb on conflict do nothing;
  delete from app.plan_features pf where pf.plan = p_plan and (p_features -> pf.feature) = 'false'::jsonb;
  perform app.entitlements_end(v);
  return v;
end
$$;
revoke execute on function app.platform_set_plan_features(text, jsonb, text) from public;

/* Puts a shop on a plan (action tenant.plan); NULL, and no version, when it already is. */
create or replace function app.platform_set_tenant_plan(p_tenant text, p_plan text, p_reason text) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  t app.tenants;
  v bigint;
begin
  t := app.platform_tenant(p_tenant);
  perform app.platform_require_known('plan', p_plan);
  if exists (select 1 from app.tenant_plans tp where tp.tenant_id = t.id and tp.plan = p_plan) then
    return null;
  end if;
  v := app.entitlements_begin('tenant.plan', p_reason);
  insert into app.tenant_plans as tp (tenant_id, plan) values (t.id, p_plan)
  on conflict (tenant_id) do update set plan = excluded.plan;
  perform app.entitlements_end(v);
  return v;
end
$$;
revoke execute on function app.platform_set_tenant_plan(text, text, text) from public;

/*
 * Sets a shop's override of a feature: p_enabled true (on) or false (off) whatever its plan says,
 * until p_expires_at (NULL: until removed; it must lie in the future); p_enabled NULL removes the
 * override. Action tenant.override; NULL, and no version, when it already is so.
 */
create or replace function app.platform_set_override(p_tenant text, p_feature text, p_enabled boolean, p_expires_at timestamptz, p_reason text) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  t app.tenants;
  v bigint;
begin
  t := app.platform_tenant(p_tenant);
  perform app.platform_require_known('feature', p_feature);
  if p_enabled is not null and p_expires_at is not null and p_expires_at <= now() then
    raise exception 'an override expires in the future' using errcode = 'SS422', constraint = 'override_expiry';
  end if;
  if ((select jsonb_build_array(o.enabled, o.expires_at) from app.feature_overrides o where o.tenant_id = t.id and o.feature = p_feature)
      is not distinct from (case when p_enabled is not null then jsonb_build_array(p_enabled, p_expires_at) end)) then
    return null;
  end if;
  v := app.entitlements_begin('tenant.override', p_reason);
  if p_enabled is null then
    delete from app.feature_overrides o where o.tenant_id = t.id and o.feature = p_feature;
  else
    insert into app.feature_overrides as o (tenant_id, feature, enabled, expires_at) values (t.id, p_feature, p_enabled, p_expires_at)
    on conflict (tenant_id, feature) do update set enabled = excluded.enabled, expires_at = excluded.expires_at;
  end if;
  perform app.entitlements_end(v);
  return v;
end
$$;
revoke execute on function app.platform_set_override(text, text, boolean, timestamptz, text) from public;

/* Switches a feature off for every shop (p_killed true) or back on (false). Action feature.kill_switch; NULL, and no version, when it already is. */
create or replace function app.platform_set_kill_switch(p_feature text, p_killed boolean, p_reason text) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v bigint;
begin
  perform app.require_platform();
  perform app.platform_require_known('feature', p_feature);
  if p_killed is null then
    raise exception 'killed: true or false' using errcode = '22023';
  end if;
  if p_killed = exists (select 1 from app.feature_kill_switches k where k.feature = p_feature) then
    return null;
  end if;
  v := app.entitlements_begin('feature.kill_switch', p_reason);
  if p_killed then
    insert into app.feature_kill_switches (feature) values (p_feature);
  else
    delete from app.feature_kill_switches k where k.feature = p_feature;
  end if;
  perform app.entitlements_end(v);
  return v;
end
$$;
revoke execute on function app.platform_set_kill_switch(text, boolean, text) from public;

/*
 * Restores the entitlements (grid, shops' plans, overrides, kill switches) as they were at
 * version p_to, as a new version (action rollback, rolled_back_to p_to) holding the net changes;
 * NULL, and no version, when the state already is that. SS404 (entitlement_version) for a
 * version that does not exist.
 */
create or replace function app.platform_rollback(p_to bigint, p_reason text) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v bigint;
begin
  perform app.require_platform();
  if not exists (select 1 from app.entitlement_versions x where x.version = p_to) then
    raise exception 'no entitlement version %', p_to using errcode = 'SS404', constraint = 'entitlement_version';
  end if;
  if not exists (select 1 from app.entitlements_to_restore(p_to)) then
    return null;
  end if;
  v := app.entitlements_begin('rollback', p_reason, p_to);
  perform app.entitlements_restore(p_to);
  perform app.entitlements_end(v);
  return v;
end
$$;
revoke execute on function app.platform_rollback(bigint, text) from public;

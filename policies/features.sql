-- Features and entitlements: what a shop may use, decided in SQL. The catalogue (features and
-- plans) is this file's; the plan → feature grid, each shop's plan, per-shop overrides and the
-- kill switches are data (sql/0431), changed only in a numbered version with its actor and reason
-- (npm run cli -- features ..., or the platform routes: policies/platform.sql). Re-appliable.
--
-- For reviewers:
--   * A feature is enabled for a shop when no kill switch is on for it, and its override (if any,
--     and unexpired) says so, or else its plan grants it. The kill switch wins over plan and
--     override; an expired override counts for nothing. app.entitlements_of() is the one
--     definition; app.feature_enabled() asks it.
--   * Enforced where the data is: app.open_tenant_context (policies/openers.sql) refuses a
--     context (FE403) when the feature the route names, or a feature its permission reads data
--     of (app.features_required_by), is not enabled; app.bi_tenant_ids (policies/bi.sql) gives a
--     BI login only the shops with bi_access.
--   * Versions: app.entitlements_begin() opens one (a row of app.entitlement_versions and a
--     sealed capability for the transaction); row triggers write each change's old and new image
--     into app.entitlement_changes and refuse any change made outside a version, by any role.
--     Both tables are append-only. app.entitlements_restore() puts every row changed after a
--     version back as it was then: a rollback, recorded as a version of its own.

/*
 * The permissions whose data a feature guards: a context opened for the permission needs the
 * feature, whatever the route names (the route names it too). One line per permission.
 */
create or replace function app.features_required_by(p_permission text) returns text[]
language sql immutable parallel safe
as $$
  select case p_permission
    when 'audit:export' then array['audit_export']
    when 'reports:read' then array['reports']
    when 'integrations:manage' then array['integrations']
    else '{}'::text[] end
$$;
revoke execute on function app.features_required_by(text) from public;

/*
 * Every feature of the catalogue for a shop (or only p_feature): enabled or not, and why
 * (source: kill_switch, override, plan or none), with its plan, whether the plan grants it, the
 * override in force and whether it is killed. The one definition of an entitlement. Plain SQL,
 * inlined where it is called; reads global tables, so only SECURITY DEFINER callers use it.
 */
create or replace function app.entitlements_of(p_tenant_id uuid, p_feature text default null)
returns table (feature text, description text, enabled boolean, source text, plan text, in_plan boolean,
               override_enabled boolean, override_expires_at timestamptz, killed boolean)
language sql stable
as $$
  select f.name, f.description,
         not k.killed and coalesce(o.enabled, g.in_plan),
         case when k.killed then 'kill_switch' when o.enabled is not null then 'override' when g.in_plan then 'plan' else 'none' end,
         tp.plan, g.in_plan, o.enabled, o.expires_at, k.killed
    from app.features f
    left join app.tenant_plans tp on tp.tenant_id = p_tenant_id
    cross join lateral (select exists (select 1 from app.plan_features pf where pf.plan = tp.plan and pf.feature = f.name) as in_plan) g
    left join lateral (select ov.enabled, ov.expires_at from app.feature_overrides ov
                        where ov.tenant_id = p_tenant_id and ov.feature = f.name
                          and (ov.expires_at is null or ov.expires_at > now())) o on true
    cross join lateral (select exists (select 1 from app.feature_kill_switches ks where ks.feature = f.name) as killed) k
   where p_feature is null or f.name = p_feature
   order by f.name
$$;
revoke execute on function app.entitlements_of(uuid, text) from public;

/* Whether a shop may use a feature now (false for a feature the catalogue does not know). Inlined. */
create or replace function app.feature_enabled(p_tenant_id uuid, p_feature text) returns boolean
language sql stable
as $$ select coalesce((select e.enabled from app.entitlements_of(p_tenant_id, p_feature) e), false) $$;
revoke execute on function app.feature_enabled(uuid, text) from public;

/* The version this transaction has open (app.entitlements_begin), or NULL. */
create or replace function app.entitlement_open_version() returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select max(substring(c from '^entitlement_version:([0-9]+)$')::bigint)
    from unnest(string_to_array(app.verified_capabilities(), ',')) c
$$;
revoke execute on function app.entitlement_open_version() from public;

/*
 * Opens a version for this transaction: its row (actor, action, reason) and a sealed capability
 * the change triggers read. The actor: the platform admin of a platform context (their email),
 * the label the CLI operator's platform context carries, else the session's login. Raises when a
 * version is already open. Internal: called by the platform functions and the triggers below.
 */
create or replace function app.entitlements_begin(p_action text, p_reason text, p_rolled_back_to bigint default null) returns bigint
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ctx text := app.verified_context();
  v_user uuid;
  v_actor text;
  v_version bigint;
begin
  if app.entitlement_open_version() is not null then
    raise exception 'an entitlement version is already open in this transaction' using errcode = 'SS409', constraint = 'entitlements_version_open';
  end if;
  if split_part(v_ctx, '|', 5) = 'platform' then
    v_user := nullif(split_part(v_ctx, '|', 2), '')::uuid;
    v_actor := coalesce((select u.email from app.users u where u.id = v_user), nullif(split_part(v_ctx, '|', 4), ''));
  end if;
  insert into app.entitlement_versions (actor, actor_user_id, action, reason, rolled_back_to)
  values (left(coalesce(v_actor, 'operator:' || session_user), 200), v_user, p_action, p_reason, p_rolled_back_to)
  returning version into v_version;
  perform app.grant_capability('entitlement_version:' || v_version);
  return v_version;
end
$$;
revoke execute on function app.entitlements_begin(text, text, bigint) from public;

/* Closes the version this transaction opened. */
create or replace function app.entitlements_end(p_version bigint) returns void
language sql volatile
set search_path = pg_catalog, pg_temp
as $$ select app.drop_capability('entitlement_version:' || p_version) $$;
revoke execute on function app.entitlements_end(bigint) from public;

/*
 * Trigger on the four entitlement tables: writes each changed row's key, old and new image into
 * app.entitlement_changes under the open version. Arguments: the entity, then its key columns
 * (comma-separated). A change outside a version is refused (SS409), by any role; only a shop's
 * own rows, deleted with the shop (ON DELETE CASCADE), go without one: nothing of it is left to
 * restore. A change that alters nothing is not recorded.
 */
create or replace function app.entitlement_record_change() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_version bigint := app.entitlement_open_version();
  o jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  n jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  r jsonb := coalesce(n, o);
begin
  if o is not distinct from n then
    return null;
  end if;
  if v_version is null then
    if tg_op = 'DELETE' and r ? 'tenant_id' and not exists (select 1 from app.tenants t where t.id = (r->>'tenant_id')::uuid) then
      return null;
    end if;
    raise exception 'app.% changes only in an entitlement version', tg_table_name
      using errcode = 'SS409', constraint = 'entitlements_unversioned',
            hint = 'Use npm run cli -- features ... (runbooks/features.md), which records who changed what and why.';
  end if;
  insert into app.entitlement_changes (version, entity, key, old, new)
  select v_version, tg_argv[0], jsonb_object_agg(k, r->k), o, n
    from unnest(string_to_array(tg_argv[1], ',')) k;
  return null;
end
$$;
revoke execute on function app.entitlement_record_change() from public;

/*
 * Append-only guard on the versions and their changes (rows and TRUNCATE), and TRUNCATE guard on
 * the versioned tables (a TRUNCATE fires no row trigger, so it would change them unrecorded).
 */
create or replace function app.entitlements_append_only() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'app.% is append-only or versioned (% refused)', tg_table_name, tg_op
    using errcode = 'SS409', constraint = 'entitlements_append_only';
end
$$;
revoke execute on function app.entitlements_append_only() from public;

/*
 * The versioned tables: each with the entity name its changes are recorded under and its key
 * columns. Their triggers are attached below; verify/catalog.sql fails on one without them.
 */
create or replace function app.versioned_tables() returns table (table_name text, entity text, key_columns text)
language sql immutable parallel safe
as $$
  values ('plan_features', 'plan_feature', 'plan,feature'), ('tenant_plans', 'tenant_plan', 'tenant_id'),
         ('feature_overrides', 'feature_override', 'tenant_id,feature'), ('feature_kill_switches', 'kill_switch', 'feature')
$$;
revoke execute on function app.versioned_tables() from public;

do $$
declare
  t record;
begin
  for t in select v.table_name as tbl, v.entity, v.key_columns from app.versioned_tables() v loop
    execute format('create or replace trigger %I after insert or update or delete on app.%I for each row execute function app.entitlement_record_change(%L, %L)',
                   t.tbl || '_versioned', t.tbl, t.entity, t.key_columns);
    execute format('create or replace trigger %I before truncate on app.%I for each statement execute function app.entitlements_append_only()',
                   t.tbl || '_no_truncate', t.tbl);
  end loop;
end
$$;

do $$
declare
  t text;
begin
  foreach t in array array['entitlement_versions', 'entitlement_changes'] loop
    execute format('create or replace trigger %I before update or delete on app.%I for each row execute function app.entitlements_append_only()', t || '_append_only', t);
    execute format('create or replace trigger %I before truncate on app.%I for each statement execute function app.entitlements_append_only()', t || '_no_truncate', t);
  end loop;
end
$$;

/* The current image of an entitlement row (as its change records hold it), or NULL when it is absent. */
create or replace function app.entitlement_image(p_entity text, p_key jsonb) returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select case p_entity
    when 'plan_feature' then (select to_jsonb(x) from app.plan_features x where x.plan = p_key->>'plan' and x.feature = p_key->>'feature')
    when 'tenant_plan' then (select to_jsonb(x) from app.tenant_plans x where x.tenant_id = (p_key->>'tenant_id')::uuid)
    when 'feature_override' then (select to_jsonb(x) from app.feature_overrides x where x.tenant_id = (p_key->>'tenant_id')::uuid and x.feature = p_key->>'feature')
    when 'kill_switch' then (select to_jsonb(x) from app.feature_kill_switches x where x.feature = p_key->>'feature')
  end
$$;
revoke execute on function app.entitlement_image(text, jsonb) from public;

/*
 * What a rollback to version p_to changes: every entitlement row changed after p_to whose image
 * now differs from its image at p_to (the old image of its first change after p_to; NULL:
 * absent). A shop deleted since is left out: nothing of it remains to restore.
 */
create or replace function app.entitlements_to_restore(p_to bigint) returns table (entity text, key jsonb, image jsonb)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select f.entity, f.key, f.old
    from (select distinct on (x.entity, x.key) x.entity, x.key, x.old
            from app.entitlement_changes x where x.version > p_to
           order by x.entity, x.key, x.id) f
   where (not f.key ? 'tenant_id' or exists (select 1 from app.tenants t where t.id = (f.key->>'tenant_id')::uuid))
     and app.entitlement_image(f.entity, f.key) is distinct from f.old
$$;
revoke execute on function app.entitlements_to_restore(bigint) from public;

/*
 * Puts each row of app.entitlements_to_restore(p_to) back as it was at p_to, in the version this
 * transaction has open, whose triggers record the changes: a rollback. Internal:
 * app.platform_rollback calls it.
 */
create or replace function app.entitlements_restore(p_to bigint) returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  c record;
begin
  for c in select * from app.entitlements_to_restore(p_to) loop
    case c.entity
      when 'plan_feature' then
        if c.image is null then
          delete from app.plan_features p where p.plan = c.key->>'plan' and p.feature = c.key->>'feature';
        else
          insert into app.plan_features (plan, feature) values (c.image->>'plan', c.image->>'feature');
        end if;
      when 'tenant_plan' then
        if c.image is null then
          delete from app.tenant_plans p where p.tenant_id = (c.key->>'tenant_id')::uuid;
        else
          insert into app.tenant_plans (tenant_id, plan) values ((c.image->>'tenant_id')::uuid, c.image->>'plan')
          on conflict (tenant_id) do update set plan = excluded.plan;
        end if;
      when 'feature_override' then
        if c.image is null then
          delete from app.feature_overrides o where o.tenant_id = (c.key->>'tenant_id')::uuid and o.feature = c.key->>'feature';
        else
          insert into app.feature_overrides (tenant_id, feature, enabled, expires_at)
          values ((c.image->>'tenant_id')::uuid, c.image->>'feature', (c.image->>'enabled')::boolean, (c.image->>'expires_at')::timestamptz)
          on conflict (tenant_id, feature) do update set enabled = excluded.enabled, expires_at = excluded.expires_at;
        end if;
      when 'kill_switch' then
        if c.image is null then
          delete from app.feature_kill_switches k where k.feature = c.key->>'feature';
        else
          insert into app.feature_kill_switches (feature) values (c.image->>'feature');
        end if;
    end case;
  end loop;
end
$$;
revoke execute on function app.entitlements_restore(bigint) from public;

/*
 * A new shop gets the plan marked for new shops, in a version of its own ('tenant.created'), or
 * in the version its creator has open. Without such a plan it has none: no feature but overrides.
 */
create or replace function app.tenant_default_plan() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_plan text := (select p.name from app.plans p where p.for_new_shops);
  v_version bigint := app.entitlement_open_version();
  v_own bigint;
begin
  if v_plan is null then
    return null;
  end if;
  if v_version is null then
    v_own := app.entitlements_begin('tenant.created', format('shop %s created: the plan for new shops', new.slug));
  end if;
  insert into app.tenant_plans (tenant_id, plan) values (new.id, v_plan) on conflict (tenant_id) do nothing;
  if v_own is not null then
    perform app.entitlements_end(v_own);
  end if;
  return null;
end
$$;
revoke execute on function app.tenant_default_plan() from public;

create or replace trigger tenants_default_plan after insert on app.tenants for each row execute function app.tenant_default_plan();

/*
 * The caller's shop's entitlements (features:read): every feature, enabled or not and why. None
 * without a context.
 */
create or replace function app.current_entitlements()
returns table (feature text, description text, enabled boolean, source text, plan text, in_plan boolean,
               override_enabled boolean, override_expires_at timestamptz, killed boolean)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_permission('features:read');
  return query select * from app.entitlements_of(app.current_tenant_id());
end
$$;
revoke execute on function app.current_entitlements() from public;

-- The catalogue: every feature a route or SQL may name, and the plans. initial_basic/initial_pro
-- are the plan → feature grid of the first version only (a new database, or the first deploy of
-- plans, where every existing shop goes on pro: it had every feature before plans existed); after
-- it, the grid changes only by versions (runbooks/features.md), never by this file.
create temporary table feature_catalogue (name text, description text, initial_basic boolean, initial_pro boolean) on commit drop;
insert into feature_catalogue values
  -- feature          description                                                          basic  pro
  ('online_booking', 'Customers book appointments online',                                true,  true),
  ('reports',        'Reports on revenue and bookings (/reports)',                        true,  true),
  ('audit_export',   'Export the audit trail as CSV (/audit/export.csv)',                 false, true),
  ('bi_access',      'BI logins read the shop''s reporting views',                         false, true),
  ('integrations',   'Connections to other systems (accounting, parts suppliers)',        false, true);

create temporary table plan_catalogue (name text, description text, for_new_shops boolean) on commit drop;
insert into plan_catalogue values
  ('basic', 'The essentials: bookings and reports', true),
  ('pro',   'Every feature',                        false);

insert into app.features (name, description)
select name, description from feature_catalogue
on conflict (name) do update set description = excluded.description
 where app.features.description is distinct from excluded.description;

update app.plans p set for_new_shops = false
 where p.for_new_shops and not exists (select 1 from plan_catalogue c where c.name = p.name and c.for_new_shops);
insert into app.plans (name, description, for_new_shops)
select name, description, for_new_shops from plan_catalogue
on conflict (name) do update set description = excluded.description, for_new_shops = excluded.for_new_shops
 where (app.plans.description, app.plans.for_new_shops) is distinct from (excluded.description, excluded.for_new_shops);

-- A feature or plan no longer in the catalogue goes, once nothing refers to it any more (a
-- foreign key refuses it before: take it out of the grid, plans, overrides and switches first).
delete from app.features f where not exists (select 1 from feature_catalogue c where c.name = f.name);
delete from app.plans p where not exists (select 1 from plan_catalogue c where c.name = p.name);

-- The first version: the initial grid, and every shop that exists on pro.
do $$
declare
  v bigint;
begin
  if exists (select 1 from app.entitlement_versions) then
    return;
  end if;
  v := app.entitlements_begin('bootstrap', 'the first plans (policies/features.sql); every existing shop on pro: it had every feature before plans existed');
  insert into app.plan_features (plan, feature)
  select 'basic', name from feature_catalogue where initial_basic
  union all
  select 'pro', name from feature_catalogue where initial_pro;
  insert into app.tenant_plans (tenant_id, plan) select t.id, 'pro' from app.tenants t on conflict (tenant_id) do nothing;
  perform app.entitlements_end(v);
end
$$;

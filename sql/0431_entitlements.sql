-- Intent: features and entitlements as data, all global (named in app.global_table_names(),
-- policies/registry.sql: no application role reads or writes them; the API reaches them through
-- SECURITY DEFINER functions, platform writes only in a platform context opened by proof):
--   * app.features, app.plans: the catalogue (content: policies/features.sql);
--   * app.plan_features: the plan → feature grid; app.tenant_plans: each shop's plan;
--     app.feature_overrides: per-shop overrides with an optional expiry; app.feature_kill_switches:
--     a feature switched off for every shop. Each has one place, here;
--   * app.entitlement_versions and app.entitlement_changes: every change to those four tables is
--     a numbered version with its actor and reason, holding each changed row's old and new image
--     (row triggers in policies/features.sql refuse a change made outside a version), so that
--     `features rollback --to VERSION` can restore any earlier state exactly. Append-only.
-- Rollback plan: forward fix; no Down section. This release's policies/ (the context opener,
-- BI access) read the tables, and the versions are the audit of entitlement changes.

-- Up Migration

create table app.features (
  name        text not null,
  description text not null,
  constraint features_pkey primary key (name),
  constraint features_name_check check (name ~ '^[a-z][a-z0-9_]{1,39}$'),
  constraint features_description_check check (length(description) between 1 and 300)
);
comment on table app.features is 'Global: the feature catalogue. Content: policies/features.sql.';

create table app.plans (
  name          text    not null,
  description   text    not null,
  for_new_shops boolean not null default false,
  constraint plans_pkey primary key (name),
  constraint plans_name_check check (name ~ '^[a-z][a-z0-9_]{1,39}$'),
  constraint plans_description_check check (length(description) between 1 and 300)
);
create unique index plans_for_new_shops_key on app.plans (for_new_shops) where for_new_shops;
comment on table app.plans is 'Global: the plans a shop can be on; the one marked for_new_shops is given to every new shop. Content: policies/features.sql.';

create table app.entitlement_versions (
  version        bigint      generated always as identity,
  created_at     timestamptz not null default clock_timestamp(),
  actor          text        not null,
  actor_user_id  uuid,
  action         text        not null,
  reason         text        not null,
  rolled_back_to bigint,
  constraint entitlement_versions_pkey primary key (version),
  constraint entitlement_versions_rolled_back_to_fkey foreign key (rolled_back_to) references app.entitlement_versions (version),
  constraint entitlement_versions_actor_check check (length(actor) between 1 and 200),
  constraint entitlement_versions_action_check check (action ~ '^[a-z][a-z_.]{1,63}$'),
  constraint entitlement_versions_reason_check check (length(reason) between 1 and 500)
);
comment on table app.entitlement_versions is 'Global, append-only: one row per change of the plan grid, a shop''s plan, an override or a kill switch, with who (actor, actor_user_id: a platform admin, or the operator at the CLI), why (reason) and what (action); the rows changed are in app.entitlement_changes.';

create table app.entitlement_changes (
  id      bigint generated always as identity,
  version bigint not null,
  entity  text   not null,
  key     jsonb  not null,
  old     jsonb,
  new     jsonb,
  constraint entitlement_changes_pkey primary key (id),
  constraint entitlement_changes_version_fkey foreign key (version) references app.entitlement_versions (version),
  constraint entitlement_changes_entity_check check (entity in ('plan_feature', 'tenant_plan', 'feature_override', 'kill_switch')),
  constraint entitlement_changes_image_check check (old is not null or new is not null)
);
create index entitlement_changes_version_idx on app.entitlement_changes (version);
comment on table app.entitlement_changes is 'Global, append-only: each row a version changed, as its key and its old and new image (NULL: absent). Written by the row triggers of policies/features.sql only.';

create table app.plan_features (
  plan    text not null,
  feature text not null,
  constraint plan_features_pkey primary key (plan, feature),
  constraint plan_features_plan_fkey foreign key (plan) references app.plans (name),
  constraint plan_features_feature_fkey foreign key (feature) references app.features (name)
);
create index plan_features_feature_idx on app.plan_features (feature);
comment on table app.plan_features is 'Global: the plan → feature grid (a row: the plan grants the feature). Changed only in a version (app.entitlement_versions).';

create table app.tenant_plans (
  tenant_id uuid not null,
  plan      text not null,
  constraint tenant_plans_pkey primary key (tenant_id),
  constraint tenant_plans_tenant_id_fkey foreign key (tenant_id) references app.tenants (id) on delete cascade,
  constraint tenant_plans_plan_fkey foreign key (plan) references app.plans (name)
);
create index tenant_plans_plan_idx on app.tenant_plans (plan);
comment on table app.tenant_plans is 'Global: each shop''s plan (a shop without a row has no plan: no feature but its overrides). Changed only in a version.';

create table app.feature_overrides (
  tenant_id  uuid        not null,
  feature    text        not null,
  enabled    boolean     not null,
  expires_at timestamptz,
  constraint feature_overrides_pkey primary key (tenant_id, feature),
  constraint feature_overrides_tenant_id_fkey foreign key (tenant_id) references app.tenants (id) on delete cascade,
  constraint feature_overrides_feature_fkey foreign key (feature) references app.features (name)
);
create index feature_overrides_feature_idx on app.feature_overrides (feature);
comment on table app.feature_overrides is 'Global: a shop''s feature switched on (enabled) or off whatever its plan says, until expires_at (NULL: until removed); an expired override counts for nothing. Changed only in a version.';

create table app.feature_kill_switches (
  feature text not null,
  constraint feature_kill_switches_pkey primary key (feature),
  constraint feature_kill_switches_feature_fkey foreign key (feature) references app.features (name)
);
comment on table app.feature_kill_switches is 'Global: features switched off for every shop (a row: off), over plan and override. Changed only in a version.';

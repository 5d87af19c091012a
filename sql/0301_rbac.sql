-- Intent: role-based access control inside a tenant, enforced in SQL next to RLS:
--   * app.permissions and app.role_permissions: the permission catalogue and the role →
--     permission matrix (tables here; their content is policies/permissions.sql);
--   * app.has_permission / app.require_permission: the one check triggers, functions and
--     the API share;
--   * the write-check triggers' functions (attached by policies/rbac.sql);
--   * app.open_tenant_context learns which permission a request needs;
--   * member management (owner rules, the last owner) and tenant settings;
--   * login events in the audit.
-- Expand only: the 4-argument app.open_tenant_context stays (now a wrapper) for the previous
-- release during a rolling deploy; a later migration drops it.
-- Rollback plan: forward fix. In an emergency, disable enforcement without a schema change:
-- `drop trigger _authorize_write on <table>` per table (verify/catalog.sql then reports each
-- one) and redeploy the previous release, which calls the 4-argument context function.

-- Up Migration

create table app.permissions (
  name        text not null,
  description text not null,
  constraint permissions_pkey primary key (name),
  constraint permissions_name_check check (name ~ '^[a-z]+:[a-z]+$')
);
comment on table app.permissions is 'Global: the permissions a tenant role can hold. Content: policies/permissions.sql.';

create table app.role_permissions (
  role       text not null,
  permission text not null,
  constraint role_permissions_pkey primary key (role, permission),
  constraint role_permissions_permission_fkey foreign key (permission) references app.permissions (name) on delete cascade,
  constraint role_permissions_role_check check (role in ('owner', 'admin', 'manager', 'staff', 'accountant'))
);
comment on table app.role_permissions is 'Global: the RBAC matrix, role → permission. Content: policies/permissions.sql; runbooks/rbac-matrix.md is generated from it.';


-- The RBAC matrix: what each tenant role may do inside its own tenant. The one place to change
-- it. Read it as a grid: one permission per line, a column per role. Applying this file makes
-- app.permissions and app.role_permissions equal to the grid (rows not in it are removed).
-- After a change: deploy/apply-policies.sh, then `npm run cli -- rbac matrix --write` to
-- regenerate runbooks/rbac-matrix.md (a test fails while the two disagree).
--
-- Enforcement, for reviewers: writes are refused in SQL by the _authorize_write triggers
-- (policies/rbac.sql) and the member/settings functions; reads by the API asking
-- app.open_tenant_context for the route's permission. Rules beyond the grid, all in SQL:
--   * without appointments:all, appointments:read and appointments:write cover only the
--     appointments assigned to oneself (policies/rbac.sql);
--   * only an owner grants or removes the owner role, and the last owner stays
--     (app.membership_owner_rules, sql/0301_rbac.sql).

create temporary table rbac_grid (permission text, description text, owner boolean, admin boolean, manager boolean, staff boolean, accountant boolean) on commit drop;
insert into rbac_grid values
  -- permission           description                                                                   owner  admin  manager staff  accountant
  ('customers:read',     'Read customers and their vehicles',                                          true,  true,  true,  true,  true),
  ('customers:write',    'Create, change and delete customers and vehicles',                           true,  true,  true,  false, false),
  ('catalog:read',       'Read services and service operations',                                       true,  true,  true,  true,  true),
  ('catalog:write',      'Create, change and delete services and service operations; draft catalog change sets', true,  true,  true,  false, false),
  ('catalog:approve',    'Approve, reject and apply catalog change sets; restore an earlier catalog version', true,  true,  false, false, false),
  ('appointments:read',  'Read appointments (only those assigned to oneself without appointments:all)', true,  true,  true,  true,  false),
  ('appointments:write', 'Book, change and delete appointments (likewise)',                            true,  true,  true,  true,  false),
  ('appointments:all',   'Every appointment of the shop, not only those assigned to oneself',         true,  true,  true,  false, false),
  ('invoices:read',      'Read invoices and their lines',                                              true,  true,  true,  false, true),
  ('invoices:write',     'Create, change and delete draft invoices and their lines',                   true,  true,  true,  false, false),
  ('invoices:issue',     'Issue a draft invoice (gives it its number)',                                true,  true,  true,  false, false),
  ('invoices:pay',       'Record the payment of an issued invoice',                                    true,  true,  true,  false, true),
  ('invoices:void',      'Void an issued or paid invoice',                                             true,  true,  true,  false, false),
  ('reports:read',       'Read the reports (revenue)',                                                 true,  true,  true,  false, true),
  ('audit:read',         'Read the audit trail',                                                       true,  true,  false, false, false),
  ('audit:export',       'Export the audit trail as CSV',                                              true,  true,  false, false, false),
  ('members:manage',     'List, add, change and remove members (the owner role: owners only)',         true,  true,  false, false, false),
  ('settings:read',      'Read the shop''s settings (timezone, currency, tax, numbering, terms, slots)', true,  true,  true,  true,  true),
  ('settings:write',     'Change the shop''s name and settings',                                       true,  false, false, false, false),
  ('features:read',      'Read the shop''s plan and which features it may use',                        true,  true,  false, false, false),
  ('integrations:manage', 'Store, list, test and remove third-party credentials (never read back)',   true,  true,  false, false, false),
  ('tenant:export',      'Export every row of the shop as one archive (also while it is suspended)',   true,  false, false, false, false);

-- The grid as (role, permission) pairs.
create temporary table rbac_pairs on commit drop as
select r.role, g.permission
  from rbac_grid g
 cross join lateral (values ('owner', g.owner), ('admin', g.admin), ('manager', g.manager),
                            ('staff', g.staff), ('accountant', g.accountant)) r(role, granted)
 where r.granted;

insert into app.permissions (name, description)
select permission, description from rbac_grid
on conflict (name) do update set description = excluded.description
 where app.permissions.description is distinct from excluded.description;
delete from app.permissions p where not exists (select 1 from rbac_grid g where g.permission = p.name);

insert into app.role_permissions (role, permission) select role, permission from rbac_pairs on conflict do nothing;
delete from app.role_permissions rp where not exists (select 1 from rbac_pairs x where x.role = rp.role and x.permission = rp.permission);

/*
 * What a transaction opened for a route's permission may use: the permission itself and those
 * it opens, each as far as the member's role holds it (app.open_tenant_context intersects them
 * with the role when it opens the context; app.has_permission then answers from that list). A
 * proof for customers:read so writes nothing, and one for customers:write adds no member,
 * renames no shop and writes no invoice, whatever the role. A write opens its resource's read
 * (an UPDATE reads the rows it changes); appointments:all only widens what appointments:read
 * and appointments:write already reach. One line per permission that opens more; the rest open
 * only themselves.
 */
-- One CASE, so PostgreSQL inlines it (a subquery would keep it from being inlined, and a SQL
-- function that is not is parsed again on every call).
create or replace function app.permissions_opened_by(p_permission text) returns text[]
language sql immutable parallel safe
as $$
  select array[p_permission] || case p_permission
    when 'appointments:read'  then array['appointments:all']
    when 'appointments:write' then array['appointments:read', 'appointments:all']
    when 'customers:write'    then array['customers:read']
    when 'catalog:write'      then array['catalog:read']
    when 'catalog:approve'    then array['catalog:write', 'catalog:read']
    when 'invoices:write'     then array['invoices:read']
    when 'invoices:issue'     then array['invoices:read']
    when 'invoices:pay'       then array['invoices:read']
    when 'invoices:void'      then array['invoices:read']
    when 'audit:export'       then array['audit:read']
    -- every row of the shop: what each read permission reaches (policies/tenant_export.sql)
    when 'tenant:export'      then array['customers:read', 'catalog:read', 'appointments:read', 'appointments:all', 'invoices:read',
                                         'reports:read', 'audit:read', 'settings:read', 'features:read']
    else '{}'::text[]
  end
$$;
revoke execute on function app.permissions_opened_by(text) from public;

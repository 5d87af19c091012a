-- Onboard a tenant (workshop) and its first owner, as the owner role. Idempotent: running it
-- again with the same slug and email changes nothing. The owner sets a password by login
-- flow / support (password_hash stays NULL: no login until then).
-- psql "$DATABASE_OWNER_URL" -X -v ON_ERROR_STOP=1 -v slug=acme -v name='Acme Motors' \
--      -v owner_email=owner@acme.example -f deploy/onboard-tenant.sql
\set QUIET on
select set_config('onboard.slug', :'slug', false), set_config('onboard.name', :'name', false),
       set_config('onboard.owner_email', :'owner_email', false) \g /dev/null
\set QUIET off
begin;
insert into app.tenants (slug, name)
values (lower(current_setting('onboard.slug')), current_setting('onboard.name'))
on conflict (slug) do nothing;

insert into app.users (email)
select current_setting('onboard.owner_email')
 where not exists (select 1 from app.users where lower(email) = lower(current_setting('onboard.owner_email')));

insert into app.memberships (tenant_id, user_id, role)
select t.id, u.id, 'owner'
  from app.tenants t, app.users u
 where t.slug = lower(current_setting('onboard.slug')) and lower(u.email) = lower(current_setting('onboard.owner_email'))
on conflict (tenant_id, user_id) do nothing;

select t.id as tenant_id, t.slug, t.status, u.email as owner_email, m.role
  from app.tenants t
  join app.memberships m on m.tenant_id = t.id
  join app.users u on u.id = m.user_id
 where t.slug = lower(current_setting('onboard.slug')) and lower(u.email) = lower(current_setting('onboard.owner_email'));
commit;

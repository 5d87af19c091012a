-- Remove one person from one shop, as the owner role: for someone a shop added without asking
-- (runbooks/tenant-onboarding.md). The shop's audit trail records member.removed, by no member;
-- a shop's last owner cannot be removed this way either (SS409), and a person who is not a member
-- of the shop is SS404 (member).
-- psql "$DATABASE_OWNER_URL" -X -v ON_ERROR_STOP=1 -v slug=acme -v email=person@example.test -f deploy/remove-member.sql
begin;
select app.open_operator_context((select id from app.tenants where slug = lower(:'slug')), 'owner') \g /dev/null
select app.remove_member((select id from app.users where lower(email) = lower(:'email'))) \g /dev/null
select t.slug, u.email, 'removed' as membership
  from app.tenants t, app.users u
 where t.slug = lower(:'slug') and lower(u.email) = lower(:'email');
commit;

-- Intent: a purged shop keeps its row as a tombstone with status 'purged' (issue 34): its id and
-- slug stay taken (the anchors, the audit retention records and the platform's lifecycle events
-- name them), while every row of it in every tenant table, and its memberships, are gone. No
-- context opens for it (app.open_tenant_context admits 'active', and 'suspended' for an export).
-- Rollback plan: forward fix; a new migration may restore the old check once no row is 'purged'
-- (a purged shop's tombstone can then be deleted or re-imported first).

-- Up Migration

alter table app.tenants drop constraint tenants_status_check;
alter table app.tenants add constraint tenants_status_check check (status in ('active', 'suspended', 'purged'));

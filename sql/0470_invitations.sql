-- Intent: invitations, the one way into a shop (issue 34): a platform admin's new shop invites
-- its first owner, and a member with members:manage invites others, by email, whether or not the
-- email has an account. Tenant-owned (RLS, policies, grants, role check and audit triggers come
-- from the registry): a shop's admins see their own shop's invitations only. Only the SHA-256 of
-- the token is stored (the token is shown once, to whoever created the invitation); it expires
-- (expires_at) and is used once (accepted_at). Accepting (app.accept_invitation,
-- policies/invitations.sql) looks the hash up across shops as the owner, from an API proof.
-- Rollback plan: forward fix; a new migration may drop app.invitations (pending invitations are
-- lost: their invitees are invited again; accepted ones already became memberships).

-- Up Migration

create table app.invitations (
  tenant_id        uuid        not null default app.current_tenant_id(),
  id               uuid        not null default gen_random_uuid(),
  email            text        not null,
  role             text        not null,
  token_hash       text        not null,
  invited_by       uuid,
  created_at       timestamptz not null default now(),
  expires_at       timestamptz not null default now() + interval '7 days',
  accepted_at      timestamptz,
  accepted_user_id uuid,
  constraint invitations_pkey primary key (tenant_id, id),
  constraint invitations_tenant_id_fkey foreign key (tenant_id) references app.tenants (id),
  constraint invitations_email_check check (email ~ '^[^@\s]+@[^@\s]+$' and length(email) <= 320),
  constraint invitations_role_check check (role in ('owner', 'admin', 'manager', 'staff', 'accountant')),
  constraint invitations_token_hash_check check (token_hash ~ '^[0-9a-f]{64}$'),
  constraint invitations_expiry_check check (expires_at > created_at),
  constraint invitations_accepted_check check ((accepted_at is null) = (accepted_user_id is null))
);
-- Not unique: a unique key without tenant_id is per shard once distributed (verify/citus_readiness.sql);
-- 256-bit random tokens do not collide, and app.accept_invitation refuses a hash found twice.
create index invitations_token_hash_idx on app.invitations (token_hash);
comment on table app.invitations is 'Tenant-owned: an invitation to join the shop with a role, by email. Only the SHA-256 of its token is kept; single-use (accepted_at) and expiring (expires_at). Accepted through app.accept_invitation (policies/invitations.sql).';

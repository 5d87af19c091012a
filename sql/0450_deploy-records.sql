-- Intent: what deploys recorded (server/setup/deploy.ts, `npm run cli -- deploy`), next to
-- node-pg-migrate's own public.pgmigrations: the checksum of every applied migration, so a deploy
-- whose sql/ files differ from what the database ran stops and names the file (applied migrations
-- are immutable); the hash each policy file was applied with, so a deploy skips what is already
-- applied and one that changes nothing takes no lock; and the policy versions deployed, which the
-- API compares with its own at start and in /readyz (SCHEMA_BEHIND).
-- Bookkeeping of the deploy tool, owner only: no application role holds a privilege on them; the
-- API reads the versions through app.deployed_policy_versions() (policies/entry_points.sql).
-- Rollback plan: forward fix; no Down section. Dropping the tables loses only the records: the
-- next deploy re-applies every policy file and records the migrations' checksums as they are.

-- Up Migration

create table public.migration_checksums (
  name        text        not null,
  sha256      text        not null,
  recorded_at timestamptz not null default now(),
  baseline    boolean     not null default false,
  constraint migration_checksums_pkey primary key (name),
  constraint migration_checksums_sha256_check check (sha256 ~ '^[0-9a-f]{64}$')
);
comment on table public.migration_checksums is 'Deploy records: the sha256 of each applied migration file (line endings as LF). baseline: recorded by the first deploy that kept checksums, for a migration that ran before it.';

create table public.policy_files (
  file         text        not null,
  input_sha256 text        not null,
  applied_at   timestamptz not null default now(),
  constraint policy_files_pkey primary key (file),
  constraint policy_files_input_sha256_check check (input_sha256 ~ '^[0-9a-f]{64}$')
);
comment on table public.policy_files is 'Deploy records: each policy file with the hash of what it was last applied on (the applied migrations, the files before it in policies/ORDER, its own text); a file whose hash is unchanged is skipped.';

create table public.policy_deploys (
  id             bigint      generated always as identity,
  policy_version text        not null,
  files_applied  text[]      not null,
  deployed_at    timestamptz not null default now(),
  constraint policy_deploys_pkey primary key (id),
  constraint policy_deploys_version_check check (policy_version ~ '^[0-9a-f]{64}$')
);
comment on table public.policy_deploys is 'Deploy records: each deploy that applied policy files, with the policy version (sha256 of policies/ORDER and the files it names) it left in place. The newest row is the version in force.';

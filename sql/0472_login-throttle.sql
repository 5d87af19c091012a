-- Intent: login throttling kept in the database, so that it holds across API processes (issue 34):
-- one row per throttled key, an account ('account:' and the SHA-256 of its lower-cased email, so
-- no attempted email is kept in clear, whether or not it has an account) or a client address
-- ('address:' and the address), with its failures in the current window, the last failure and,
-- once refused, until when. Written and read only by app.login_gate and app.login_outcome
-- (policies/login_throttle.sql), each for an API proof. Global (app.global_table_names()).
-- Rollback plan: forward fix; a new migration may drop the table (throttling state is
-- transient: at worst a locked-out account may try again at once).

-- Up Migration

create table app.login_throttle (
  key               text        not null,
  failures          integer     not null default 0,
  window_started_at timestamptz not null default clock_timestamp(),
  last_failed_at    timestamptz not null default clock_timestamp(),
  locked_until      timestamptz,
  constraint login_throttle_pkey primary key (key),
  constraint login_throttle_key_check check (key ~ '^(account:[0-9a-f]{64}|address:\S{1,64})$'),
  constraint login_throttle_failures_check check (failures >= 0)
);
create index login_throttle_last_failed_idx on app.login_throttle (last_failed_at);
comment on table app.login_throttle is 'Global: failed logins per account (hash of the email) and per client address in the current window, and until when each is refused. Written only by app.login_outcome; read by app.login_gate (policies/login_throttle.sql).';

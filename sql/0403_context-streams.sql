-- Intent: a used proof is recorded so that no rollback undoes it. app.context_nonces was a
-- table: the nonce row rolled back with a transaction that failed (a 422, a ROLLBACK), and the
-- proof opened a context again. Sequences are the one durable, non-transactional write
-- PostgreSQL offers: setval() survives a rollback. So each API connection registers a stream,
-- a sequence of its own (app.context_stream_<id>, owned by the owner role, no privilege for any
-- app role), and a proof that records its use names its stream: the proof's expiry (epoch ms,
-- strictly increasing per stream) must be above the sequence's last value, which it then
-- becomes. app.context_streams lists the streams with their creation time, so stale ones can be
-- dropped (policies/proofs.sql).
-- Rollback plan: forward fix (as sql/0401). The tables hold no business data: to go back,
-- restore the pre-deploy snapshot (deploy/rollback.sh --snapshot), which has app.context_nonces.

-- Up Migration

create table app.context_streams (
  id         bigint      generated always as identity,
  created_at timestamptz not null default now(),
  constraint context_streams_pkey primary key (id)
);
comment on table app.context_streams is 'Global: proof streams, one per API connection; each has a sequence app.context_stream_<id> holding the last expiry used. Owner only; registered by app.open_context_stream().';

drop table if exists app.context_nonces;

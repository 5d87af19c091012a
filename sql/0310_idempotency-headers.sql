-- Intent: an Idempotency-Key replay answers the original headers (Location, ...) as well as status and body.
-- Rollback plan: forward fix preferred; the column holds only 24 h of replay data, so a new
-- migration may drop it without loss of record.

-- Up Migration

alter table app.idempotency_keys add column if not exists response_headers jsonb;
comment on column app.idempotency_keys.response_headers is 'Headers of the first answer that a replay repeats (e.g. Location), as a JSON object.';

-- API proofs: how the database checks that a proof is the API's, unexpired, and used once.
-- Re-appliable: create or replace.
--
-- For reviewers. A proof is '<key id>.<HMAC-SHA256>', the MAC under the context key the API
-- holds (CONTEXT_KEY; app.context_keys holds the database's copies by key id, owner only: more
-- than one while a rotation overlaps), over its kind, its mode (r: read,
-- w: write), its replay guard, its fields, an expiry (epoch ms) and a random nonce, joined by
-- U+001F. The expiry is judged by clock_timestamp(): the time at the check, not at the arrival
-- of the message, which a message that sleeps first could outwait. A proof is refused in a
-- client message of more than one statement: two transactions share a start time only there,
-- and the seal (policies/context.sql) must not survive into a second one.
--
-- The replay guard says how the database knows the proof was not used before; every guard
-- survives a rollback:
--   s:<stream>   a stream: one per API connection, a sequence of its own
--                (app.context_stream_<id>, owner only). The proof's expiry must exceed the
--                sequence's last value, which then becomes the expiry: setval() is not undone by
--                a rollback, and the API's expiries increase on each connection. Refused after
--                its use on any connection, committed or rolled back. Writes always use it; it
--                takes a transaction id and cannot run on a hot standby.
--   c:<session>:<n>  connection-bound, reads only: <session> is the id app.bind_session() gave
--                this backend (kept in session settings with a seal over pg_backend_pid(), so no
--                other connection can claim it), <n> the n-th proof on it. This backend must
--                hold the session advisory lock (pid, n-1), which is released and (pid, n)
--                taken: a lock change is not undone by a rollback either, so a proof opens
--                once on its connection and never on another. Writes nothing, takes no
--                transaction id, runs on a hot standby.
--   e            expiry alone, reads only, for PgBouncer's transaction mode where no connection
--                identity exists: a captured proof can be replayed until it expires (at most
--                30 s, CONTEXT_READ_PROOF_TTL_SECONDS), read-only, for its one permission.
--                runbooks/pgbouncer.md says when an operator chooses it over s.

/* What a proof signs: its kind, mode and guard, its fields, its expiry (epoch ms) and nonce, joined by U+001F. Inlined. */
create or replace function app.proof_message(p_kind text, p_writes boolean, p_guard text, p_fields text[], p_expires_at bigint, p_nonce text)
returns text
language sql stable parallel safe
as $$ select array_to_string(array[p_kind, case when p_writes then 'w' else 'r' end, p_guard] || p_fields || array[p_expires_at::text, p_nonce], chr(31), '') $$;
revoke execute on function app.proof_message(text, boolean, text, text[], bigint, text) from public;

-- The first forms signed no mode or guard and judged the expiry at the message's arrival.
drop function if exists app.proof_message(text, text[], bigint, text);
drop function if exists app.proof_bounds_ok(bigint, text);
drop function if exists app.proof_is_valid(text, text[], bigint, text, text);
drop function if exists app.purge_context_nonces();

/*
 * A proof's expiry is in the future by the clock (clock_timestamp(), not the message's arrival)
 * and at most p_max_ahead after it; its nonce has 16 to 64 characters. Inlined (VOLATILE like
 * clock_timestamp(), for the same reason as app.statement_is_alone()).
 */
create or replace function app.proof_bounds_ok(p_expires_at bigint, p_nonce text, p_max_ahead interval) returns boolean
language sql volatile
as $$ select coalesce(to_timestamp(p_expires_at / 1000.0) between clock_timestamp() and clock_timestamp() + p_max_ahead
                      and length(p_nonce) between 16 and 64, false) $$;
revoke execute on function app.proof_bounds_ok(bigint, text, interval) from public;

/*
 * Whether the client message running this statement holds it alone: no ';' followed by more
 * text in the message (the API sends each statement by itself, with bind parameters). A ';'
 * inside a literal makes a single statement look like two: refused, which fails closed.
 */
-- VOLATILE like current_query(): a STABLE function around a volatile call is not inlined, and
-- a SQL function that is not inlined is parsed again on every call.
create or replace function app.statement_is_alone() returns boolean
language sql volatile
as $$ select strpos(rtrim(current_query(), e' \t\r\n;'), ';') = 0 $$;
revoke execute on function app.statement_is_alone() from public;

/*
 * Binds this connection for connection-bound read proofs (guard c): a fresh random session id,
 * kept in session settings with a seal over pg_backend_pid() that only the database can make,
 * and the advisory lock (pid, 0) the first proof's chain starts from. Any lock the session held
 * is released first, so a rebind leaves no chain behind. Returns the id the API names in its
 * proofs. Anyone may bind their own connection: the id is the database's, and proofs naming it
 * come only from the API.
 */
create or replace function app.bind_session() returns text
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  s app.context_seal_key;
  v_id text := replace(gen_random_uuid()::text, '-', '');
  v_set text;
begin
  select * into s from app.context_seal_key where id = 1;
  perform pg_advisory_unlock_all();
  if not pg_try_advisory_lock_shared(pg_backend_pid(), 0) then
    raise exception 'this connection cannot take its proof chain lock' using errcode = 'TN401', constraint = 'context_session';
  end if;
  v_set := set_config('app.session', v_id, false)
           || set_config('app.session_seal', app.hmac_sha256_hex(s.ipad, s.opad, 'session|' || pg_backend_pid()::text || '|' || v_id), false);
  return v_id;
end
$$;
revoke execute on function app.bind_session() from public;

/*
 * The session id app.bind_session() gave this backend, or NULL when its seal does not match this
 * backend (a setting written by hand, or copied from another connection). p_sipad/p_sopad: the
 * seal key, which its callers have already read. Like app.verified_context(), the one reader of
 * its settings. Inlined (plain SQL without SET). Internal: called by app.consume_proof_guard only.
 */
-- Its first form was plpgsql; an inlined expression costs a read proof less.
drop function if exists app.verified_session(bytea, bytea);
create or replace function app.verified_session(p_sipad bytea, p_sopad bytea) returns text
language sql stable
as $$
  select case when current_setting('app.session_seal', true)
                   = app.hmac_sha256_hex(p_sipad, p_sopad, 'session|' || pg_backend_pid()::text || '|' || current_setting('app.session', true))
              then nullif(current_setting('app.session', true), '') end
$$;
revoke execute on function app.verified_session(bytea, bytea) from public;

/*
 * Registers a proof stream for one API connection (a proof of kind 'stream' with no fields,
 * mode w, guard ''): a sequence app.context_stream_<id> the owner owns and no app role may use.
 * Drops streams created over a day ago and unused for a day (their proofs all expired long
 * ago; a connection idle that long registers again when told its stream is gone). Returns the id.
 */
create or replace function app.open_context_stream(p_expires_at bigint, p_nonce text, p_proof text) returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_valid boolean;
  v_id bigint;
  v_stale record;
begin
  select app.hmac_sha256_hex(k.ipad, k.opad, app.proof_message('stream', true, '', '{}', p_expires_at, p_nonce)) = split_part(p_proof, '.', 2)
    into v_valid from app.context_keys k where k.key_id = split_part(p_proof, '.', 1);
  if not coalesce(v_valid, false) or not app.proof_bounds_ok(p_expires_at, p_nonce, interval '5 minutes') or not app.statement_is_alone() then
    raise exception 'stream proof refused' using errcode = 'TN401';
  end if;
  -- One registration at a time cleans up; the others skip it rather than wait (a registration
  -- inside a longer transaction would hold the lock until it ends).
  for v_stale in
    select s.id from app.context_streams s
     where pg_try_advisory_xact_lock(hashtextextended('app.context_streams', 0))
       and s.created_at < now() - interval '1 day'
       and coalesce(pg_sequence_last_value(to_regclass('app.context_stream_' || s.id)), 0)
           < (extract(epoch from now() - interval '1 day') * 1000)::bigint
  loop
    execute format('drop sequence if exists app.%I', 'context_stream_' || v_stale.id);
    delete from app.context_streams where id = v_stale.id;
  end loop;
  insert into app.context_streams default values returning id into v_id;
  execute format('create sequence app.%I as bigint minvalue 0 start with 0', 'context_stream_' || v_id);
  execute format('revoke all on sequence app.%I from public', 'context_stream_' || v_id);
  return v_id;
end
$$;
revoke execute on function app.open_context_stream(bigint, text, text) from public;

/*
 * Uses a proof's replay guard once (see the header) and returns true, or raises TN401. p_writes: the proof is a
 * write's, which only a stream may guard. p_sipad/p_sopad: the seal key, which the caller has
 * already read. A refusal by the guard leaves it as it was; after it returns the proof is spent,
 * whatever happens to the transaction. Internal: called by the SECURITY DEFINER openers only.
 */
-- Its first form returned void; it returns true now, so callers assign it (an expression) rather
-- than PERFORM it (a query).
do $$
begin
  if exists (select 1 from pg_catalog.pg_proc
              where oid = to_regprocedure('app.consume_proof_guard(boolean, text, bigint, bytea, bytea)') and prorettype = 'void'::regtype) then
    drop function app.consume_proof_guard(boolean, text, bigint, bytea, bytea);
  end if;
end
$$;
create or replace function app.consume_proof_guard(p_writes boolean, p_guard text, p_expires_at bigint, p_sipad bytea, p_sopad bytea)
returns boolean
language plpgsql volatile
as $$
declare
  v_stream regclass;
  v_last bigint;
begin
  -- A read bound to its connection (the common case): one expression, each step only after the
  -- one before held (CASE evaluates its branches in order).
  if left(p_guard, 2) = 'c:' then
    if (case when p_writes or p_guard !~ '^c:[0-9a-f]{32}:[1-9][0-9]{0,8}$' then false
             when app.verified_session(p_sipad, p_sopad) is distinct from split_part(p_guard, ':', 2) then false
             when not pg_advisory_unlock_shared(pg_backend_pid(), split_part(p_guard, ':', 3)::integer - 1) then false
             else pg_try_advisory_lock_shared(pg_backend_pid(), split_part(p_guard, ':', 3)::integer) end) then
      return true;
    end if;
    raise exception 'tenant context proof refused' using errcode = 'TN401', constraint = 'context_session';
  elsif p_guard ~ '^s:[1-9][0-9]{0,8}$' then
    v_stream := to_regclass('app.context_stream_' || substr(p_guard, 3));
    if v_stream is null then
      raise exception 'proof stream % is unknown', substr(p_guard, 3) using errcode = 'TN401', constraint = 'context_stream';
    end if;
    -- Two transactions using proofs of one stream at once: one at a time.
    perform pg_advisory_xact_lock(1398035013, substr(p_guard, 3)::integer);
    v_last := pg_sequence_last_value(v_stream);
    if v_last is not null and v_last >= p_expires_at then
      raise exception 'tenant context proof refused' using errcode = 'TN401';
    end if;
    perform setval(v_stream, p_expires_at);
    return true;
  elsif p_guard = 'e' and not p_writes and to_timestamp(p_expires_at / 1000.0) <= clock_timestamp() + interval '30 seconds' then
    return true;
  end if;
  raise exception 'tenant context proof refused' using errcode = 'TN401';
end
$$;
revoke execute on function app.consume_proof_guard(boolean, text, bigint, bytea, bytea) from public;

/*
 * Checks a proof of p_kind over p_fields (MAC, expiry by the clock, a statement alone) and uses
 * its guard once; raises TN401 otherwise. For the openers other than the tenant context's,
 * which inlines the same steps beside its membership query.
 */
create or replace function app.consume_proof(p_kind text, p_fields text[], p_writes boolean, p_guard text, p_expires_at bigint, p_nonce text, p_proof text)
returns void
language plpgsql volatile
as $$
declare
  v_valid boolean;
  s app.context_seal_key;
begin
  select app.hmac_sha256_hex(k.ipad, k.opad, app.proof_message(p_kind, p_writes, p_guard, p_fields, p_expires_at, p_nonce)) = split_part(p_proof, '.', 2)
    into v_valid from app.context_keys k where k.key_id = split_part(p_proof, '.', 1);
  if not coalesce(v_valid, false) or not app.proof_bounds_ok(p_expires_at, p_nonce, interval '5 minutes') or not app.statement_is_alone() then
    raise exception '% proof refused', p_kind using errcode = 'TN401';
  end if;
  select * into s from app.context_seal_key where id = 1;
  v_valid := app.consume_proof_guard(p_writes, p_guard, p_expires_at, s.ipad, s.opad);
end
$$;
revoke execute on function app.consume_proof(text, text[], boolean, text, bigint, text, text) from public;

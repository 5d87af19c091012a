-- Login throttling (sql/0472): repeated failed logins for an account or from an address are
-- slowed, then refused for a window, by state in the database that every API process shares.
-- Re-appliable: create or replace.
--
-- For reviewers. The rule, per key (an account's email hash, a client address), over a window of
-- p_window_seconds from its first failure:
--   * an account's 3rd and later failures are slowed: the next attempt waits 1, 2, 4, ... seconds
--     (at most 60) after the last failure;
--   * at p_account_failures failures (an account) or p_address_failures (an address; 0: never),
--     the key is refused until the window's length after that failure.
-- A refused attempt is answered 429 with Retry-After by the API before any password is checked
-- and counts for nothing; a success clears the account's key (not the address's). The limits are
-- the API's configuration (LOGIN_THROTTLE_*), signed into each proof with the email and address,
-- so app_user cannot choose its own; without a proof nothing is read or written, and the answer
-- never depends on whether the email has an account.

/* The throttle key of an account, by its email (lower-cased, hashed). Internal. */
create or replace function app.login_account_key(p_email text) returns text
language sql immutable parallel safe
as $$ select 'account:' || encode(sha256(convert_to(lower(p_email), 'UTF8')), 'hex') $$;
revoke execute on function app.login_account_key(text) from public;

/*
 * Seconds until an attempt for this email from this address may be made (0: now), for an API
 * proof of kind 'login-gate' over (email, address, limits), used once.
 */
create or replace function app.login_gate(p_email text, p_address text, p_account_failures integer, p_address_failures integer, p_window_seconds integer,
                                          p_guard text, p_expires_at bigint, p_nonce text, p_proof text)
returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_until timestamptz;
begin
  perform app.consume_proof('login-gate', array[p_email, p_address, p_account_failures::text, p_address_failures::text, p_window_seconds::text],
                            true, p_guard, p_expires_at, p_nonce, p_proof);
  -- GREATEST and MAX skip NULLs: a key neither locked nor slowed adds nothing.
  select max(greatest(
           t.locked_until,
           case when t.key like 'account:%' and t.failures >= 3 and t.window_started_at > v_now - make_interval(secs => p_window_seconds)
                then t.last_failed_at + make_interval(secs => least(power(2, t.failures - 3), 60)) end))
    into v_until
    from app.login_throttle t
   where t.key in (app.login_account_key(p_email), 'address:' || coalesce(p_address, ''));
  return greatest(ceil(extract(epoch from coalesce(v_until, v_now) - v_now)), 0)::integer;
end
$$;
revoke execute on function app.login_gate(text, text, integer, integer, integer, text, bigint, text, text) from public;

/*
 * Records an attempt's outcome, for an API proof of kind 'login-outcome' over (email, address,
 * outcome, limits), used once: a failure counts against the account's and the address's keys
 * (a new window once the last one has passed), refusing a key that reached its limit; a success
 * clears the account's key. Keys idle for a day are removed on the way. Returns nothing.
 */
create or replace function app.login_outcome(p_email text, p_address text, p_succeeded boolean, p_account_failures integer, p_address_failures integer,
                                             p_window_seconds integer, p_guard text, p_expires_at bigint, p_nonce text, p_proof text)
returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_window interval := make_interval(secs => p_window_seconds);
  k record;
begin
  perform app.consume_proof('login-outcome',
                            array[p_email, p_address, case when p_succeeded then '1' else '0' end, p_account_failures::text, p_address_failures::text, p_window_seconds::text],
                            true, p_guard, p_expires_at, p_nonce, p_proof);
  if p_succeeded then
    delete from app.login_throttle t where t.key = app.login_account_key(p_email);
  else
    for k in select * from (values (app.login_account_key(p_email), p_account_failures), ('address:' || p_address, p_address_failures)) x(key, lim)
              where x.key is not null and x.key <> 'address:' loop
      insert into app.login_throttle as t (key, failures) values (k.key, 1)
      on conflict (key) do update
        set failures = case when t.window_started_at <= clock_timestamp() - v_window then 1 else t.failures + 1 end,
            window_started_at = case when t.window_started_at <= clock_timestamp() - v_window then clock_timestamp() else t.window_started_at end,
            last_failed_at = clock_timestamp();
      update app.login_throttle t set locked_until = clock_timestamp() + v_window
       where t.key = k.key and k.lim > 0 and t.failures >= k.lim;
    end loop;
  end if;
  delete from app.login_throttle t
   where t.ctid = any (array(select x.ctid from app.login_throttle x
                              where x.last_failed_at < clock_timestamp() - interval '1 day'
                                and (x.locked_until is null or x.locked_until < clock_timestamp()) limit 100));
end
$$;
revoke execute on function app.login_outcome(text, text, boolean, integer, integer, integer, text, bigint, text, text) from public;

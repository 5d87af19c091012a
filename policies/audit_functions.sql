-- The audit trail's functions: the statement-level writer (attached by policies/audit.sql),
-- explicit events, the per-tenant hash chain (seal, verify, anchor head), the append-only guard
-- and retention. Re-appliable: create or replace, triggers too.

/* Drops secrets (password hashes, tokens, credentials) from a row image before it is audited. */
create or replace function app.audit_redact(p_row jsonb) returns jsonb
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(jsonb_object_agg(k, v), '{}'::jsonb)
    from jsonb_each(p_row) as e(k, v)
   where k !~* '(password|secret|token|credential|api_key)'
$$;
revoke execute on function app.audit_redact(jsonb) from public;

/*
 * Statement-level audit writer, attached AFTER INSERT/UPDATE/DELETE with transition tables:
 * one INSERT ... SELECT per statement, whatever its row count. Actor, role and request come
 * from the transaction-local context (never session_user: behind a pool every request shares
 * one login). Inserts: the new row; updates: the changed columns, old → new; deletes: the old row.
 * SECURITY DEFINER (owned by the owner role) so app_user needs no INSERT on the audit.
 */
create or replace function app.audit_statement() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_entity text := tg_table_name;
begin
  if tg_op = 'INSERT' then
    insert into app.audit_log (tenant_id, actor_user_id, actor_role, request_id, action, entity, entity_id, change)
    select (r->>'tenant_id')::uuid, app.current_user_id(), app.current_member_role(), app.current_request_id(),
           'insert', v_entity, r->>'id', jsonb_build_object('new', app.audit_redact(r))
      from (select to_jsonb(n) as r from audit_new n) s;
  elsif tg_op = 'UPDATE' then
    insert into app.audit_log (tenant_id, actor_user_id, actor_role, request_id, action, entity, entity_id, change)
    select (n.r->>'tenant_id')::uuid, app.current_user_id(), app.current_member_role(), app.current_request_id(),
           'update', v_entity, n.r->>'id',
           jsonb_build_object('changed', coalesce((
             select jsonb_object_agg(k, jsonb_build_object('old', o.r->k, 'new', v))
               from jsonb_each(app.audit_redact(n.r)) as e(k, v)
              where o.r->k is distinct from v), '{}'::jsonb))
      from (select to_jsonb(x) as r, row_number() over () as i from audit_new x) n
      join (select to_jsonb(x) as r, row_number() over () as i from audit_old x) o
        on o.r->>'tenant_id' = n.r->>'tenant_id' and coalesce(o.r->>'id', o.i::text) = coalesce(n.r->>'id', n.i::text);
  else
    insert into app.audit_log (tenant_id, actor_user_id, actor_role, request_id, action, entity, entity_id, change)
    select (r->>'tenant_id')::uuid, app.current_user_id(), app.current_member_role(), app.current_request_id(),
           'delete', v_entity, r->>'id', jsonb_build_object('old', app.audit_redact(r))
      from (select to_jsonb(o) as r from audit_old o) s;
  end if;
  return null;
end
$$;
revoke execute on function app.audit_statement() from public;

/*
 * The actions app.audit_event records: the one list (the statement triggers write insert,
 * update and delete themselves). A new explicit event is added here first.
 */
create or replace function app.audit_actions() returns text[]
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$ select array['audit.export', 'audit.purged', 'auth.login', 'auth.login_failed', 'bi.granted', 'bi.revoked',
                    'catalog.change_set_applied', 'catalog.change_set_dry_run', 'catalog.version_restored',
                    'credentials.key_rotation', 'invitation.accepted', 'member.added', 'member.removed', 'member.role_changed', 'settings.changed',
                    'tenant.exported', 'tenant.resumed', 'tenant.suspended']::text[] $$;
revoke execute on function app.audit_actions() from public;

/*
 * Explicit events the triggers cannot see (export, member and role changes, logins, BI grants,
 * retention), in the caller's tenant context. Only actions of app.audit_actions(): another is a
 * programming error of the caller, refused with SS500 (constraint audit_action; the API answers
 * 500). Returns the audit row id.
 */
create or replace function app.audit_event(p_action text, p_entity text, p_entity_id text, p_detail jsonb)
returns bigint
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id bigint;
begin
  if app.current_tenant_id() is null then
    raise exception 'audit events need a tenant context' using errcode = '42501';
  end if;
  if p_action is null or not (p_action = any (app.audit_actions())) then
    raise exception 'unknown audit action %', coalesce(p_action, 'NULL')
      using errcode = 'SS500', constraint = 'audit_action',
            hint = 'name it in app.audit_actions() (policies/audit_functions.sql)';
  end if;
  insert into app.audit_log (tenant_id, actor_user_id, actor_role, request_id, action, entity, entity_id, change)
  values (app.current_tenant_id(), app.current_user_id(), app.current_member_role(), app.current_request_id(),
          p_action, p_entity, p_entity_id, jsonb_build_object('event', app.audit_redact(coalesce(p_detail, '{}'::jsonb))))
  returning id into v_id;
  return v_id;
end
$$;
revoke execute on function app.audit_event(text, text, text, jsonb) from public;

/* The hash of one audit row: its content and the previous row's hash. */
create or replace function app.audit_row_hash(p_prev text, a app.audit_log) returns text
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select encode(sha256(convert_to(concat_ws('|',
    coalesce(p_prev, ''), a.tenant_id::text, a.id::text, a.seq::text,
    to_char(a.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
    coalesce(a.actor_user_id::text, ''), coalesce(a.actor_role, ''), coalesce(a.request_id, ''),
    a.action, a.entity, coalesce(a.entity_id, ''), a.change::text), 'UTF8')), 'hex')
$$;
revoke execute on function app.audit_row_hash(text, app.audit_log) from public;

/*
 * Seals a tenant's unsealed audit rows into its chain, in id order. Runs off the write path
 * (CLI or a scheduler), one tenant at a time under an advisory lock, so writers never wait on
 * a chain head. Returns the number of rows sealed.
 */
create or replace function app.audit_seal(p_tenant_id uuid) returns integer
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_prev text;
  v_seq bigint;
  r app.audit_log;
  n integer := 0;
begin
  perform pg_advisory_xact_lock(hashtextextended('audit_seal:' || p_tenant_id::text, 0));
  select a.hash, a.seq into v_prev, v_seq from app.audit_log a
   where a.tenant_id = p_tenant_id and a.seq is not null order by a.seq desc limit 1;
  v_seq := coalesce(v_seq, 0);
  perform app.grant_capability('audit_sealing');
  for r in select * from app.audit_log a where a.tenant_id = p_tenant_id and a.seq is null order by a.id loop
    v_seq := v_seq + 1;
    r.seq := v_seq;
    r.prev_hash := v_prev;
    r.hash := app.audit_row_hash(v_prev, r);
    update app.audit_log a set seq = r.seq, prev_hash = r.prev_hash, hash = r.hash
     where a.tenant_id = r.tenant_id and a.id = r.id;
    v_prev := r.hash;
    n := n + 1;
  end loop;
  perform app.drop_capability('audit_sealing');
  return n;
end
$$;
revoke execute on function app.audit_seal(uuid) from public;

/*
 * Walks a tenant's sealed chain and returns the first broken link (NULL row when intact):
 * a row whose content no longer matches its hash (changed), a missing position (deleted), a
 * row whose prev_hash is not its predecessor's hash (inserted or reordered out of band). The
 * chain starts at position 1, or right after the latest purge recorded by app.audit_purge,
 * whose first remaining row must carry the purged row's hash; that purge's own audit.purged
 * event must be in the chain (a purge record written by hand has none). Missing positions no
 * recorded purge covers are deleted history.
 */
create or replace function app.audit_verify(p_tenant_id uuid)
returns table (broken_seq bigint, audit_id bigint, problem text, sealed bigint, unsealed bigint)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  r app.audit_log;
  p app.audit_purges;
  v_prev text;
  v_expect bigint := 1;
  v_sealed bigint := 0;
  v_unsealed bigint;
begin
  select count(*) into v_unsealed from app.audit_log a where a.tenant_id = p_tenant_id and a.seq is null;
  select * into p from app.audit_purges x where x.tenant_id = p_tenant_id order by x.purged_through_seq desc limit 1;
  if found then
    if not exists (select 1 from app.audit_log a
                    where a.tenant_id = p_tenant_id and a.id = p.audit_id and a.action = 'audit.purged'
                      and a.change->'event'->>'purged_through_seq' = p.purged_through_seq::text) then
      return query select p.purged_through_seq, p.audit_id,
        format('the purge through position %s recorded at %s (app.audit_purges id %s) has no audit.purged event in the chain (a record written by hand, or its event deleted)',
               p.purged_through_seq, p.purged_at, p.id), v_sealed, v_unsealed;
      return;
    end if;
    v_expect := p.purged_through_seq + 1;
    v_prev := p.through_hash;
  end if;
  for r in select * from app.audit_log a where a.tenant_id = p_tenant_id and a.seq is not null order by a.seq loop
    if r.seq < v_expect then
      return query select r.seq, r.id, format('row at position %s is present although the purge recorded through position %s removed it (restored or inserted out of band)', r.seq, v_expect - 1), v_sealed, v_unsealed;
      return;
    end if;
    if r.seq <> v_expect then
      return query select v_expect, null::bigint,
        case when r.seq = v_expect + 1 then format('row at position %s is missing (deleted)', v_expect)
             else format('rows at positions %s to %s are missing (deleted)', v_expect, r.seq - 1) end
        || case when v_sealed = 0 then ', and no purge recorded by app.audit_purge covers ' || case when r.seq = v_expect + 1 then 'it' else 'them' end else '' end,
        v_sealed, v_unsealed;
      return;
    end if;
    if r.prev_hash is distinct from v_prev then
      return query select r.seq, r.id, 'prev_hash does not match the previous row (inserted or reordered out of band)', v_sealed, v_unsealed;
      return;
    end if;
    if r.hash is distinct from app.audit_row_hash(v_prev, r) then
      return query select r.seq, r.id, 'content does not match its hash (changed)', v_sealed, v_unsealed;
      return;
    end if;
    v_prev := r.hash;
    v_expect := v_expect + 1;
    v_sealed := v_sealed + 1;
  end loop;
  return query select null::bigint, null::bigint, null::text, v_sealed, v_unsealed;
end
$$;
revoke execute on function app.audit_verify(uuid) from public;

/*
 * The latest purge recorded for a tenant's chain (positions 1 to purged_through_seq are gone by
 * design), or no row: what an anchor check asks before it calls a missing anchored position
 * deleted. Owner only.
 */
create or replace function app.audit_purged_through(p_tenant_id uuid)
returns table (purged_through_seq bigint, purged_at timestamptz, actor text, note text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select x.purged_through_seq, x.purged_at, x.actor, x.note from app.audit_purges x
   where x.tenant_id = p_tenant_id order by x.purged_through_seq desc limit 1
$$;
revoke execute on function app.audit_purged_through(uuid) from public;

/*
 * Append-only guard, on the audit table and on its purge records (app.audit_purges): no UPDATE,
 * DELETE or TRUNCATE for any role, except, on app.audit_log, the chain columns being filled once
 * by app.audit_seal and deletions by app.audit_purge, each holding its capability
 * (app.grant_capability, sealed to the transaction: a setting written by hand opens nothing).
 * The purge records have no exception; someone with the owner's powers could switch the guard
 * off, as on the audit itself, but each record must match an audit.purged event in the tenant's
 * chain, under its anchors.
 */
create or replace function app.audit_append_only() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_table_name = 'audit_log' then
    if tg_op = 'UPDATE' and app.has_capability('audit_sealing')
       and old.seq is null and old.hash is null
       and (new.tenant_id, new.id, new.occurred_at, new.actor_user_id, new.actor_role, new.request_id, new.action, new.entity, new.entity_id, new.change)
           is not distinct from
           (old.tenant_id, old.id, old.occurred_at, old.actor_user_id, old.actor_role, old.request_id, old.action, old.entity, old.entity_id, old.change) then
      return new;
    end if;
    if tg_op = 'DELETE' and app.has_capability('audit_purging') then
      return old;
    end if;
  end if;
  raise exception 'app.% is append-only (% refused)', tg_table_name, tg_op using errcode = 'SS409', constraint = 'audit_append_only';
end
$$;
revoke execute on function app.audit_append_only() from public;

-- On both tables: <table>_append_only for rows, <table>_no_truncate for TRUNCATE.
do $$
declare
  t text;
begin
  foreach t in array array['audit_log', 'audit_purges'] loop
    execute format('create or replace trigger %I before update or delete on app.%I for each row execute function app.audit_append_only()', t || '_append_only', t);
    execute format('create or replace trigger %I before truncate on app.%I for each statement execute function app.audit_append_only()', t || '_no_truncate', t);
  end loop;
end
$$;

/*
 * Retention: the only way audit rows leave. Deletes the oldest part of a tenant's sealed chain,
 * a prefix: every position before the first row that occurred at or after p_before, always
 * keeping the newest sealed row (sealing goes on from it). Records the purge in app.audit_purges
 * (position purged through and its hash, cutoff, time, actor = session_user, p_note) and as an
 * audit.purged event in the tenant's own chain, so `audit verify` accepts exactly those missing
 * positions. Owner only. Returns the number of rows removed (0: nothing old enough, nothing
 * recorded).
 */
drop function if exists app.audit_purge(uuid, timestamptz);
create or replace function app.audit_purge(p_tenant_id uuid, p_before timestamptz, p_note text default null) returns integer
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_first bigint;
  v_last bigint;
  v_through bigint;
  v_hash text;
  v_event bigint;
  n integer;
begin
  -- The same lock as app.audit_seal: no sealing between reading the chain and cutting it.
  perform pg_advisory_xact_lock(hashtextextended('audit_seal:' || p_tenant_id::text, 0));
  select min(a.seq), max(a.seq) into v_first, v_last from app.audit_log a where a.tenant_id = p_tenant_id and a.seq is not null;
  select coalesce(min(a.seq) - 1, v_last) into v_through
    from app.audit_log a where a.tenant_id = p_tenant_id and a.seq is not null and a.occurred_at >= p_before;
  v_through := least(v_through, v_last - 1);
  if v_through is null or v_through < v_first then
    return 0;
  end if;
  select a.hash into v_hash from app.audit_log a where a.tenant_id = p_tenant_id and a.seq = v_through;
  perform app.grant_capability('audit_purging');
  delete from app.audit_log a where a.tenant_id = p_tenant_id and a.seq <= v_through;
  get diagnostics n = row_count;
  perform app.drop_capability('audit_purging');
  perform app.open_operator_context(p_tenant_id, 'operator');
  v_event := app.audit_event('audit.purged', 'audit_log', v_through::text,
    jsonb_build_object('purged_through_seq', v_through, 'rows', n, 'cutoff', p_before, 'actor', session_user, 'note', p_note));
  perform app.close_context();
  insert into app.audit_purges (tenant_id, purged_through_seq, through_hash, rows_purged, cutoff, note, audit_id)
  values (p_tenant_id, v_through, v_hash, n, p_before, p_note, v_event);
  return n;
end
$$;
revoke execute on function app.audit_purge(uuid, timestamptz, text) from public;


-- The previous form's proof had no guard: its nonce was a row a rollback took back.
drop function if exists app.record_login(uuid, boolean, text, bigint, text, text);

/*
 * Records a login attempt in the audit of every tenant the account belongs to (a login has no
 * tenant of its own; each tenant's admins see their members' logins in their own chain). Only
 * for an API proof of kind 'login' over (user, outcome, request id), used once
 * (policies/proofs.sql): app_user cannot write login events of its own invention. A failed
 * attempt has no known actor: the account is the entity. An unknown account records nothing
 * (the API logs it). Returns the number of tenants recorded in.
 */
create or replace function app.record_login(
  p_user_id uuid, p_succeeded boolean, p_request_id text, p_guard text, p_expires_at bigint, p_nonce text, p_proof text
) returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v record;
  v_count integer := 0;
begin
  perform app.consume_proof('login', array[p_user_id::text, case when p_succeeded then '1' else '0' end, p_request_id],
                            true, p_guard, p_expires_at, p_nonce, p_proof);
  for v in select m.tenant_id, m.role from app.memberships m where m.user_id = p_user_id order by m.tenant_id loop
    perform app.set_sealed_context(v.tenant_id, case when p_succeeded then p_user_id end,
                                   case when p_succeeded then v.role end, p_request_id);
    perform app.audit_event(case when p_succeeded then 'auth.login' else 'auth.login_failed' end, 'user', p_user_id::text, '{}'::jsonb);
    v_count := v_count + 1;
  end loop;
  perform app.close_context();
  return v_count;
end
$$;
revoke execute on function app.record_login(uuid, boolean, text, text, bigint, text, text) from public;

/*
 * Each tenant's chain head (the newest sealed row): what `npm run cli -- audit anchor` signs and
 * keeps outside the database, so that deleting the newest rows or re-sealing a suffix is caught
 * by `audit verify` against the anchor. Owner only.
 */
create or replace function app.audit_heads()
returns table (tenant_id uuid, slug text, seq bigint, hash text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select t.id, t.slug, h.seq, h.hash
    from app.tenants t
    join lateral (select a.seq, a.hash from app.audit_log a
                   where a.tenant_id = t.id and a.seq is not null order by a.seq desc limit 1) h on true
   order by t.slug
$$;
revoke execute on function app.audit_heads() from public;

/* The sealed row at one position of a tenant's chain (for anchor checks), or none. Owner only. */
create or replace function app.audit_chain_at(p_tenant_id uuid, p_seq bigint)
returns table (seq bigint, hash text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select a.seq, a.hash from app.audit_log a where a.tenant_id = p_tenant_id and a.seq = p_seq
$$;
revoke execute on function app.audit_chain_at(uuid, bigint) from public;

-- The openers app_user may call: each opens a context for one transaction only from an API
-- proof over exactly its arguments, used once (policies/proofs.sql), and opens no more than the
-- proof names. Re-appliable: create or replace.

-- The previous forms took no mode or guard (a proof opened the member's whole role, and its
-- nonce was a row that a rollback took back), then no feature.
drop function if exists app.open_tenant_context(uuid, text[], uuid, text, text, boolean, bigint, text, text);
drop function if exists app.open_tenant_context(uuid, text[], uuid, text, text, boolean, boolean, text, bigint, text, text);

/*
 * Opens the request context for one transaction, from the API's proof over exactly these
 * arguments. p_tenant_refs are the tenant names the request carried (uuid or slug; header,
 * subdomain, path; a one-dimensional array from index 1, at most three), p_scope the tenant a
 * scoped token is limited to (or NULL). Every ref must name the same tenant among the user's
 * memberships. p_permission is the route's; the transaction may use it and what it opens
 * (app.permissions_opened_by), as far as the role holds them, and nothing else. p_writes false:
 * the transaction is made read-only, so PostgreSQL itself refuses every write in it. In the
 * same call it checks the permission the route needs:
 *   * p_for_row false (a collection: list, create, export): raises SS403 at once;
 *   * p_for_row true (a route naming one row): returns permitted = false and lets the queries
 *     run, so the API answers 404 for a row the caller cannot see and 403 for one it can.
 * p_feature is the feature the route names (NULL: none); it, and every feature whose data the
 * permission reads (app.features_required_by), must be enabled for the shop
 * (app.feature_enabled: kill switch, override, plan), or it raises FE403 naming the first that
 * is not. A proof without a feature signs no feature field, as proofs did before features.
 * Raises (and so opens nothing):
 *   TN401 the proof is missing, tampered with, expired, already used, sent with other
 *         statements in one message, or its guard does not hold (policies/proofs.sql)
 *   TN404 not a member, unknown tenant, or outside the token's scope (one answer for all)
 *   TN403 the tenant is suspended (only members learn this), unless the permission is
 *         tenant:export: a suspended shop's owner may still export its data
 *   TN400 the refs name different tenants the user belongs to
 *   FE403 a feature it needs is not enabled for the shop (members only learn this)
 * The proof is spent once its guard is used: before the membership checks, so a proof that
 * met a 404 does not open later either.
 */
create or replace function app.open_tenant_context(
  p_user_id uuid, p_tenant_refs text[], p_scope uuid, p_request_id text, p_permission text, p_for_row boolean,
  p_writes boolean, p_guard text, p_expires_at bigint, p_nonce text, p_proof text, p_feature text default null,
  out tenant_id uuid, out member_role text, out permitted boolean
)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
-- Few statements, by design: plpgsql sets up each expression of a function again in every
-- transaction, and one call per transaction is what a request pays (bench/contextCost.ts). So
-- the checks that need no order are columns of the one query, and each outcome one IF.
declare
  r record;
  v_ref text;
  v_other uuid;
  v_ctx text;
  v_features text[];
  v_missing text;
begin
  -- The proof (MAC, expiry by the clock, a statement alone in its message, the arguments' shape:
  -- refs signed as text, so an array with another lower bound such as '[0:1]={beta,acme}' would
  -- sign like {beta,acme} while only some of it is checked), both keys, and the membership with
  -- tenant status and the permissions the transaction may use (the route's and what it opens, as
  -- far as the role holds them), in one indexed query. One query per kind of ref: a single one
  -- with CASE in its WHERE has no good generic plan, and PostgreSQL would plan it again on every
  -- call; for the same reason the permissions it opens are computed outside the query's plan
  -- (a parameter), not folded into it.
  if app.is_uuid_text(p_tenant_refs[1]) then
    select coalesce(app.hmac_sha256_hex(k.ipad, k.opad, app.proof_message('ctx', p_writes, p_guard,
             array[p_user_id::text, array_to_string(p_tenant_refs, chr(30), ''), p_scope::text, p_request_id, p_permission,
                   case when p_for_row then '1' else '0' end] || case when p_feature is null then '{}'::text[] else array[p_feature] end,
             p_expires_at, p_nonce)) = split_part(p_proof, '.', 2), false)
             and app.proof_bounds_ok(p_expires_at, p_nonce, interval '5 minutes') and app.statement_is_alone()
             and p_permission is not null and p_writes is not null and p_for_row is not null
             and array_ndims(p_tenant_refs) = 1 and array_lower(p_tenant_refs, 1) = 1
             and array_length(p_tenant_refs, 1) <= 3 and array_position(p_tenant_refs, null) is null as proof_ok,
           s.ipad, s.opad, x.id, x.status, x.role, x.permissions
      into r
      from app.context_keys k cross join app.context_seal_key s
      left join lateral (
        select t.id, t.status, m.role,
               (select string_agg(rp.permission, ',') from app.role_permissions rp
                 where rp.role = m.role and rp.permission = any (app.permissions_opened_by(p_permission)::text[])) as permissions
          from app.memberships m join app.tenants t on t.id = m.tenant_id
         where m.tenant_id = p_tenant_refs[1]::uuid and m.user_id = p_user_id) x on true
     where k.key_id = split_part(p_proof, '.', 1) and s.id = 1;
  else
    select coalesce(app.hmac_sha256_hex(k.ipad, k.opad, app.proof_message('ctx', p_writes, p_guard,
             array[p_user_id::text, array_to_string(p_tenant_refs, chr(30), ''), p_scope::text, p_request_id, p_permission,
                   case when p_for_row then '1' else '0' end] || case when p_feature is null then '{}'::text[] else array[p_feature] end,
             p_expires_at, p_nonce)) = split_part(p_proof, '.', 2), false)
             and app.proof_bounds_ok(p_expires_at, p_nonce, interval '5 minutes') and app.statement_is_alone()
             and p_permission is not null and p_writes is not null and p_for_row is not null
             and array_ndims(p_tenant_refs) = 1 and array_lower(p_tenant_refs, 1) = 1
             and array_length(p_tenant_refs, 1) <= 3 and array_position(p_tenant_refs, null) is null as proof_ok,
           s.ipad, s.opad, x.id, x.status, x.role, x.permissions
      into r
      from app.context_keys k cross join app.context_seal_key s
      left join lateral (
        select t.id, t.status, m.role,
               (select string_agg(rp.permission, ',') from app.role_permissions rp
                 where rp.role = m.role and rp.permission = any (app.permissions_opened_by(p_permission)::text[])) as permissions
          from app.tenants t join app.memberships m on m.tenant_id = t.id and m.user_id = p_user_id
         where t.slug = lower(p_tenant_refs[1])) x on true
     where k.key_id = split_part(p_proof, '.', 1) and s.id = 1;
  end if;
  -- The guard is used only for a proof that holds, and before any membership check: a proof
  -- that met a 404 is spent too.
  if (case when not coalesce(r.proof_ok, false) then true else not app.consume_proof_guard(p_writes, p_guard, p_expires_at, r.ipad, r.opad) end) then
    raise exception 'tenant context proof refused' using errcode = 'TN401';
  end if;

  if p_user_id is null or r.id is null or (p_scope is not null and p_scope <> r.id) then
    raise exception 'tenant not found' using errcode = 'TN404';
  end if;
  -- Further refs (header and path both given): each must be a membership, and the same tenant.
  if array_length(p_tenant_refs, 1) > 1 then
    foreach v_ref in array p_tenant_refs[2:] loop
      if app.is_uuid_text(v_ref) then
        select m.tenant_id into v_other from app.memberships m where m.tenant_id = v_ref::uuid and m.user_id = p_user_id;
      else
        select t.id into v_other from app.tenants t join app.memberships m on m.tenant_id = t.id and m.user_id = p_user_id
         where t.slug = lower(v_ref);
      end if;
      if v_other is null then
        raise exception 'tenant not found' using errcode = 'TN404';
      end if;
      if v_other <> r.id then
        raise exception 'tenant sources disagree' using errcode = 'TN400';
      end if;
    end loop;
  end if;
  -- A suspended shop's owner may still take its data out (tenant:export, issue 34).
  if r.status <> 'active' and not (r.status = 'suspended' and p_permission = 'tenant:export') then
    raise exception 'tenant suspended' using errcode = 'TN403';
  end if;
  -- The features, only for a route that needs one: a statement of its own, which plpgsql plans
  -- only when a connection first reaches it (planned inside the membership query it added about
  -- 5 ms to every fresh connection's first request, measured with 15 connections, median).
  v_features := array_remove(array[p_feature], null) || app.features_required_by(p_permission);
  if cardinality(v_features) > 0 then
    select f into v_missing from unnest(v_features) f where not app.feature_enabled(r.id, f) limit 1;
    if v_missing is not null then
      raise exception 'feature % is not enabled for this shop', v_missing
        using errcode = 'FE403', constraint = 'feature', detail = v_missing,
              hint = 'its plan, an override or a kill switch says so (npm run cli -- features show --tenant ...)';
    end if;
  end if;

  -- The context, sealed to this backend and transaction, in one expression; a read's
  -- transaction made read-only in the same one: from here on PostgreSQL refuses its writes, and
  -- no statement can make it read-write again ("must be set before any query").
  v_ctx := set_config('app.context_seal', app.hmac_sha256_hex(r.ipad, r.opad, app.seal_input(
             set_config('app.context', app.context_value(r.id, p_user_id, r.role, p_request_id, coalesce(r.permissions, ''),
                                                         case when p_writes then 'w' else 'r' end), true))), true)
           || case when p_writes then '' else set_config('transaction_read_only', 'on', true) end;
  permitted := coalesce(p_permission = any (string_to_array(r.permissions, ',')), false);
  if not permitted and not p_for_row then
    raise exception 'permission % required', p_permission
      using errcode = 'SS403', constraint = 'permission', detail = p_permission,
            hint = format('role %s does not hold it (policies/permissions.sql)', r.role);
  end if;
  tenant_id := r.id;
  member_role := r.role;
end
$$;
revoke execute on function app.open_tenant_context(uuid, text[], uuid, text, text, boolean, boolean, text, bigint, text, text, text) from public;

/*
 * Opens a user context for one read-only transaction: the acting user and no tenant (so every
 * tenant table reads as empty), for what a person may know of themself (app.get_user(),
 * app.list_memberships()). From the API's proof of kind 'user' over (user, request id); a read
 * proof only. Raises TN401 as app.open_tenant_context does. Returns the user id.
 */
create or replace function app.open_user_context(p_user_id uuid, p_request_id text, p_guard text, p_expires_at bigint, p_nonce text, p_proof text)
returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ctx text;
begin
  perform app.consume_proof('user', array[p_user_id::text, p_request_id], false, p_guard, p_expires_at, p_nonce, p_proof);
  if p_user_id is null then
    raise exception 'user context proof refused' using errcode = 'TN401';
  end if;
  v_ctx := app.seal_context_value(app.context_value(null, p_user_id, null, p_request_id, '', 'r'), true);
  return p_user_id;
end
$$;
revoke execute on function app.open_user_context(uuid, text, text, bigint, text, text) from public;

-- Purging a shop (issue 34): every row of it leaves every tenant table, in one transaction, in
-- dependency order, and the transaction proves that none remains before it commits; the record
-- stays in the platform's app.tenant_lifecycle_events (tenant.purged, with the counts), since the
-- shop's own audit is gone. Owner only (`npm run cli -- tenant purge`): nothing here is granted to
-- an application role. Re-appliable: create or replace.
--
-- The steps, for reviewers (server/ops/tenantPurge.ts runs them):
--   1. app.purge_tenant_close: status 'purged', committed: from then on no context opens for the
--      shop, so nothing new is written to it;
--   2. the CLI waits until every transaction that began before the close has ended;
--   3. the CLI seals the shop's audit chain and anchors its head outside the database;
--   4. app.purge_tenant: deletes, proves, records, in one transaction.

/* Step 1: closes a shop for its purge (p_slug must be its slug: the typed confirmation). Returns when. */
create or replace function app.purge_tenant_close(p_tenant_id uuid, p_slug text, p_reason text) returns timestamptz
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  t app.tenants;
begin
  select * into t from app.tenants x where x.id = p_tenant_id for update;
  if t.id is null or t.slug is distinct from p_slug then
    raise exception 'the confirmation % is not the slug of shop %', p_slug, p_tenant_id using errcode = '22023';
  end if;
  update app.tenants x set status = 'purged', status_reason = coalesce(p_reason, 'purged'), status_changed_at = clock_timestamp()
   where x.id = t.id;
  return clock_timestamp();
end
$$;
revoke execute on function app.purge_tenant_close(uuid, text, text) from public;

/*
 * Step 4: deletes every row of a closed shop (status 'purged') from every tenant table in the
 * reverse of app.tenant_export_tables()'s order (children first), the audit included (under the
 * audit_purging capability, the append-only guard's one exception), then its memberships and its
 * pending rows elsewhere, with triggers off (session_replication_role replica); counts what is left in each table for that tenant_id and raises
 * (rolling everything back) unless every count is 0; records tenant.purged with the counts and
 * the anchored chain head (p_anchor) in app.tenant_lifecycle_events. Returns each table with the
 * rows deleted and remaining.
 */
create or replace function app.purge_tenant(p_tenant_id uuid, p_slug text, p_anchor jsonb, p_actor text)
returns table (table_name text, deleted bigint, remaining bigint)
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  t app.tenants;
  r record;
  n bigint;
  v_counts jsonb := '{}'::jsonb;
  v_left jsonb := '{}'::jsonb;
begin
  select * into t from app.tenants x where x.id = p_tenant_id for update;
  if t.id is null or t.slug is distinct from p_slug then
    raise exception 'the confirmation % is not the slug of shop %', p_slug, p_tenant_id using errcode = '22023';
  end if;
  if t.status <> 'purged' then
    raise exception 'shop % is not closed for its purge (app.purge_tenant_close first)', t.slug using errcode = '55000';
  end if;
  -- The table list needs the shop's context; the deletes run as the owner (BYPASSRLS), by tenant_id.
  perform app.open_operator_context(t.id, 'owner');
  perform app.grant_capability('audit_purging');
  -- Triggers off for the deletes (the owner may set this: server/setup/provision.ts): the rows go
  -- as they are, whatever state their business rules guard (an issued invoice's lines), and the
  -- audit triggers write no rows about rows of a shop whose audit goes too.
  perform set_config('session_replication_role', 'replica', true);
  for r in select e.table_name from app.tenant_export_tables() e order by e.ord desc loop
    execute format('delete from app.%I x where x.tenant_id = $1', r.table_name) using t.id;
    get diagnostics n = row_count;
    v_counts := v_counts || jsonb_build_object(r.table_name, n);
  end loop;
  delete from app.memberships m where m.tenant_id = t.id;
  get diagnostics n = row_count;
  v_counts := v_counts || jsonb_build_object('memberships', n);
  -- The tombstone keeps id and slug; the name goes with the data (no settings.changed event for it).
  update app.tenants x set name = t.slug where x.id = t.id;
  perform set_config('session_replication_role', 'origin', true);
  perform app.drop_capability('audit_purging');
  -- The proof, in the same transaction: nothing of the shop is left in any tenant table.
  for r in select e.table_name from app.tenant_export_tables() e order by e.ord loop
    execute format('select count(*) from app.%I x where x.tenant_id = $1', r.table_name) using t.id into n;
    v_left := v_left || jsonb_build_object(r.table_name, n);
  end loop;
  v_left := v_left || jsonb_build_object('memberships', (select count(*) from app.memberships m where m.tenant_id = t.id));
  perform app.close_context();
  if exists (select 1 from jsonb_each_text(v_left) x where x.value::bigint <> 0) then
    raise exception 'shop % still has rows after its purge: %', t.slug, v_left using errcode = 'P0001';
  end if;
  perform app.open_platform_operator_context(p_actor);
  perform app.record_tenant_event(t.id, t.slug, 'tenant.purged', t.status_reason,
    jsonb_build_object('deleted', v_counts, 'remaining', v_left, 'anchor', p_anchor));
  perform app.close_context();
  return query select x.key, x.value::bigint, (v_left ->> x.key)::bigint from jsonb_each_text(v_counts) x order by x.key;
end
$$;
revoke execute on function app.purge_tenant(uuid, text, jsonb, text) from public;

-- Versioned catalog changes (sql/0460): every change to app.services and app.service_operations
-- is recorded in a numbered catalog version; change sets are drafted, dry-run, approved or
-- rejected, and applied as one version; any earlier version can be restored as a new one.
-- Re-appliable: create or replace, triggers included (replaced, never dropped: see below).

/*
 * A new catalog version of a shop: the head moves to N+1 under its row lock (held to the end of
 * the transaction, so versions of one shop are built one at a time) and the version row records
 * who (the context's user, role and request), how and from what. Internal: callers below only.
 */
create or replace function app.catalog_new_version(p_tenant_id uuid, p_kind text, p_change_set_id uuid, p_restored_from integer)
returns integer
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_version integer;
begin
  insert into app.catalog_heads as h (tenant_id, version) values (p_tenant_id, 1)
  on conflict (tenant_id) do update set version = h.version + 1
  returning h.version into v_version;
  insert into app.catalog_versions (tenant_id, version, actor_user_id, actor_role, request_id, kind, change_set_id, restored_from)
  values (p_tenant_id, v_version, app.current_user_id(), app.current_member_role(), app.current_request_id(), p_kind, p_change_set_id, p_restored_from);
  return v_version;
end
$$;
revoke execute on function app.catalog_new_version(uuid, text, uuid, integer) from public;

/*
 * The version this transaction's catalog changes belong to: the one it began (an applied change
 * set, a restore), or a new 'write' version for plain writes through the catalog routes (one per
 * transaction, found again by its transaction id, which no session can choose).
 */
create or replace function app.catalog_version_of_transaction(p_tenant_id uuid) returns integer
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_version integer;
begin
  select v.version into v_version from app.catalog_versions v where v.tenant_id = p_tenant_id and v.xact = pg_current_xact_id();
  if found then
    return v_version;
  end if;
  return app.catalog_new_version(p_tenant_id, 'write', null, null);
end
$$;
revoke execute on function app.catalog_version_of_transaction(uuid) from public;

/*
 * Begins the version an applied change set or a restore writes, in the caller's tenant, before
 * any catalog row changes; needs catalog:approve. It takes the head's row lock first and then
 * judges against the head it holds, so of two change sets approved against the same base, the
 * second to arrive waits for the first and is then refused as stale (SS409 change_set_stale):
 * they cannot both apply. A restore names a version before the head (SS404 catalog_version for
 * one after it, SS409 catalog_version_current for the head itself). SECURITY DEFINER: the
 * version tables are append-only to app_user.
 */
create or replace function app.catalog_begin_version(p_kind text, p_change_set_id uuid, p_restored_from integer) returns integer
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant uuid := app.current_tenant_id();
  v_head integer;
  v_set record;
begin
  if v_tenant is null then
    raise exception 'a catalog version needs a tenant context' using errcode = '42501';
  end if;
  perform app.require_permission('catalog:approve');
  if exists (select 1 from app.catalog_versions v where v.tenant_id = v_tenant and v.xact = pg_current_xact_id()) then
    raise exception 'this transaction already began a catalog version' using errcode = 'SS500', constraint = 'catalog_version_begun';
  end if;
  insert into app.catalog_heads (tenant_id, version) values (v_tenant, 0) on conflict (tenant_id) do nothing;
  select h.version into v_head from app.catalog_heads h where h.tenant_id = v_tenant for update;
  if p_kind = 'change_set' then
    select s.status, s.base_version into v_set from app.catalog_change_sets s where s.tenant_id = v_tenant and s.id = p_change_set_id;
    if not found then
      raise exception 'change set not found' using errcode = 'SS404', constraint = 'change_set';
    end if;
    if v_set.status <> 'approved' then
      raise exception 'change set is %, only an approved one applies', v_set.status using errcode = 'SS409', constraint = 'change_set_status';
    end if;
    if v_set.base_version <> v_head then
      raise exception 'change set was drafted against version %, the catalog is at version %', v_set.base_version, v_head
        using errcode = 'SS409', constraint = 'change_set_stale', detail = format('{"base_version": %s, "current_version": %s}', v_set.base_version, v_head);
    end if;
    return app.catalog_new_version(v_tenant, 'change_set', p_change_set_id, null);
  elsif p_kind = 'restore' then
    if p_restored_from is null or p_restored_from < 0 or p_restored_from > v_head then
      raise exception 'catalog version % does not exist', p_restored_from using errcode = 'SS404', constraint = 'catalog_version';
    end if;
    if p_restored_from = v_head then
      raise exception 'catalog version % is the current one', p_restored_from using errcode = 'SS409', constraint = 'catalog_version_current';
    end if;
    return app.catalog_new_version(v_tenant, 'restore', null, p_restored_from);
  end if;
  raise exception 'unknown catalog version kind %', p_kind using errcode = 'SS500', constraint = 'catalog_version_kind';
end
$$;
revoke execute on function app.catalog_begin_version(text, uuid, integer) from public;

/*
 * Statement-level recorder on app.services and app.service_operations (entity name as its
 * argument): each row the statement changed, as its old and new image, under the version of
 * this transaction. A row whose only change is updated_at is no change; a statement that changed
 * nothing makes no version. Written by its owner (SECURITY DEFINER): the version tables are
 * append-only to app_user, so no session writes history of its own.
 */
create or replace function app.catalog_record_changes() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_entity text := tg_argv[0];
  v_rows jsonb;
  v_tenant uuid;
  v_version integer;
begin
  -- The statement's changed rows as (tenant, id, old image, new image).
  if tg_op = 'INSERT' then
    select jsonb_agg(jsonb_build_object('tenant', n.tenant_id, 'id', n.id, 'new', to_jsonb(n))) into v_rows from catalog_new n;
  elsif tg_op = 'DELETE' then
    select jsonb_agg(jsonb_build_object('tenant', o.tenant_id, 'id', o.id, 'old', to_jsonb(o))) into v_rows from catalog_old o;
  else
    select jsonb_agg(jsonb_build_object('tenant', n.tenant_id, 'id', n.id, 'old', to_jsonb(o), 'new', to_jsonb(n))) into v_rows
      from catalog_new n join catalog_old o on o.tenant_id = n.tenant_id and o.id = n.id
     where to_jsonb(o) - 'updated_at' is distinct from to_jsonb(n) - 'updated_at';
  end if;
  for v_tenant in select distinct (r ->> 'tenant')::uuid from jsonb_array_elements(coalesce(v_rows, '[]')) r loop
    v_version := app.catalog_version_of_transaction(v_tenant);
    insert into app.catalog_version_changes (tenant_id, version, entity, entity_id, old, new)
    select v_tenant, v_version, v_entity, (r ->> 'id')::uuid, r -> 'old', r -> 'new'
      from jsonb_array_elements(v_rows) r where (r ->> 'tenant')::uuid = v_tenant;
  end loop;
  return null;
end
$$;
revoke execute on function app.catalog_record_changes() from public;

/*
 * Takes the shop's catalog head row lock before a write to a versioned table changes any row: the
 * order an applied change set or a restore keeps (the head, then the rows), so a plain write and
 * an apply never each hold one lock while waiting for the other's (a deadlock, which PostgreSQL
 * would end by aborting one of them). A plain write took the head at its statement's end anyway
 * (app.catalog_version_of_transaction); it takes it at the start now, and waits there for an
 * apply in progress. It takes none without a tenant context (the owner's own maintenance) or
 * without catalog:write, whose writes the tables' policies refuse anyway: a refused member (or the
 * access explainer asking on one's behalf) never waits for another's write.
 */
create or replace function app.catalog_lock_head() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant uuid := app.current_tenant_id();
begin
  if v_tenant is not null and app.has_permission('catalog:write') then
    insert into app.catalog_heads (tenant_id, version) values (v_tenant, 0) on conflict (tenant_id) do nothing;
    perform 1 from app.catalog_heads h where h.tenant_id = v_tenant for update;
  end if;
  return null;
end
$$;
revoke execute on function app.catalog_lock_head() from public;

comment on table app.catalog_heads is 'Tenant-owned, written only by the SECURITY DEFINER functions of policies/catalog_versions.sql (app.catalog_new_version, app.catalog_begin_version, app.catalog_lock_head): the shop''s current catalog version (0 or no row: the catalog before its first version). Its row lock serialises versions and catalog writes.';

/* The versioned catalog tables and the entity name their changes are recorded under. */
create or replace function app.catalog_versioned_tables() returns table (table_name text, entity text)
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$ values ('services', 'service'), ('service_operations', 'service_operation') $$;
revoke execute on function app.catalog_versioned_tables() from public;

-- Triggers are replaced, never dropped and created: DROP TRIGGER locks the table ACCESS EXCLUSIVE
-- (every reader of the catalog would wait on a deploy), CREATE OR REPLACE TRIGGER only against writers.
do $$
declare
  t record;
begin
  for t in select v.table_name as tbl, v.entity from app.catalog_versioned_tables() v loop
    execute format('create or replace trigger catalog_versioned_lock_head before insert or update or delete on app.%I
                    for each statement execute function app.catalog_lock_head()', t.tbl);
    execute format('create or replace trigger catalog_versioned_insert after insert on app.%I referencing new table as catalog_new
                    for each statement execute function app.catalog_record_changes(%L)', t.tbl, t.entity);
    execute format('create or replace trigger catalog_versioned_update after update on app.%I referencing old table as catalog_old new table as catalog_new
                    for each statement execute function app.catalog_record_changes(%L)', t.tbl, t.entity);
    execute format('create or replace trigger catalog_versioned_delete after delete on app.%I referencing old table as catalog_old
                    for each statement execute function app.catalog_record_changes(%L)', t.tbl, t.entity);
  end loop;
end
$$;

/* Append-only guard on the versions and their changes: history is never rewritten, by any role. */
create or replace function app.catalog_history_append_only() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'app.% is append-only (% refused)', tg_table_name, tg_op
    using errcode = 'SS409', constraint = 'catalog_history_append_only';
end
$$;
revoke execute on function app.catalog_history_append_only() from public;

do $$
declare
  t text;
begin
  foreach t in array array['catalog_versions', 'catalog_version_changes'] loop
    execute format('create or replace trigger %I before update or delete on app.%I for each row execute function app.catalog_history_append_only()', t || '_append_only', t);
    execute format('create or replace trigger %I before truncate on app.%I for each statement execute function app.catalog_history_append_only()', t || '_no_truncate', t);
  end loop;
end
$$;

/*
 * Change sets: only a draft changes (its title; its items, app.catalog_change_set_item_guard) or
 * is deleted. The transitions: draft → approved (by whom and when: the context's user, now; not
 * by its author unless an owner), draft | approved → rejected (by whom, when and why), approved →
 * applied (only with the version app.catalog_begin_version began for it in this transaction).
 * Anything else raises SS409. The author and base version never change (kept, whatever is written).
 */
create or replace function app.catalog_change_set_guard() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'DELETE' then
    if old.status <> 'draft' then
      raise exception 'change set is %, only drafts can be deleted', old.status using errcode = 'SS409', constraint = 'change_set_not_draft';
    end if;
    return old;
  end if;
  if tg_op = 'INSERT' then
    if new.status <> 'draft' or num_nonnulls(new.approved_by, new.rejected_by, new.applied_version) > 0 then
      raise exception 'a new change set is a draft' using errcode = 'SS409', constraint = 'change_set_status';
    end if;
    -- Through the API the author is the one who drafts it, whatever the statement wrote.
    if row_security_active(tg_relid) then
      new.author_user_id := app.current_user_id();
    end if;
    return new;
  end if;
  -- The author, base version and creation time are the draft's, whatever the statement wrote
  -- (the tenant is RLS's to hold: WITH CHECK refuses a row moved out of it).
  new.author_user_id := old.author_user_id;
  new.base_version := old.base_version;
  new.created_at := old.created_at;
  if new.status = old.status then
    if old.status <> 'draft' or (new.approved_by, new.rejected_by, new.applied_version) is distinct from (old.approved_by, old.rejected_by, old.applied_version) then
      raise exception 'change set is %, only drafts can change', old.status using errcode = 'SS409', constraint = 'change_set_not_draft';
    end if;
    return new;
  end if;
  if new.title is distinct from old.title then
    raise exception 'change set is changing status, its title stays' using errcode = 'SS409', constraint = 'change_set_not_draft';
  end if;
  if (old.status, new.status) = ('draft', 'approved') then
    if row_security_active(tg_relid) and old.author_user_id = app.current_user_id() and app.current_member_role() is distinct from 'owner' then
      raise exception 'the author of a change set cannot approve it unless an owner' using errcode = 'SS403', constraint = 'change_set_self_approval';
    end if;
    new.approved_by := coalesce(app.current_user_id(), new.approved_by);
    new.approved_at := now();
  elsif (old.status, new.status) in (('draft', 'rejected'), ('approved', 'rejected')) then
    new.rejected_by := coalesce(app.current_user_id(), new.rejected_by);
    new.rejected_at := now();
  elsif (old.status, new.status) = ('approved', 'applied') then
    if not exists (select 1 from app.catalog_versions v
                    where v.tenant_id = new.tenant_id and v.version = new.applied_version and v.change_set_id = new.id
                      and v.xact = pg_current_xact_id()) then
      raise exception 'a change set is applied only with the version begun for it' using errcode = 'SS409', constraint = 'change_set_status';
    end if;
    new.applied_at := now();
  else
    raise exception 'change set cannot go from % to %', old.status, new.status using errcode = 'SS409', constraint = 'change_set_status';
  end if;
  return new;
end
$$;
revoke execute on function app.catalog_change_set_guard() from public;

create or replace trigger catalog_change_sets_guard
  before insert or update or delete on app.catalog_change_sets
  for each row execute function app.catalog_change_set_guard();

/* Items change only while their change set is a draft (SS409 CHANGE_SET_NOT_DRAFT otherwise). */
create or replace function app.catalog_change_set_item_guard() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_status text;
begin
  -- FOR SHARE: waits for an approval in flight and then sees the set's new status.
  select s.status into v_status from app.catalog_change_sets s
   where s.tenant_id = coalesce(new.tenant_id, old.tenant_id) and s.id = coalesce(new.change_set_id, old.change_set_id)
     for share;
  -- A missing set is the foreign key's to report; a cascade from a draft's deletion finds none.
  if v_status is not null and v_status <> 'draft' then
    raise exception 'change set is %, its items can no longer change', v_status using errcode = 'SS409', constraint = 'change_set_not_draft';
  end if;
  return coalesce(new, old);
end
$$;
revoke execute on function app.catalog_change_set_item_guard() from public;

create or replace trigger catalog_change_set_items_guard
  before insert or update or delete on app.catalog_change_set_items
  for each row execute function app.catalog_change_set_item_guard();

/*
 * Approves a draft in the caller's tenant. Checks in the order the API promises: SS404 (not
 * found, also another tenant's), SS403 (catalog:approve; then the author's own set unless an
 * owner, by the guard), SS409 (not a draft; drafted against a version that is no longer
 * current), SS422 (no items). SECURITY INVOKER: RLS applies.
 */
create or replace function app.catalog_approve_change_set(p_id uuid) returns setof app.catalog_change_sets
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_set record;
  v_head integer;
begin
  select s.status, s.base_version into v_set from app.catalog_change_sets s where s.id = p_id for update;
  if not found then
    raise exception 'change set not found' using errcode = 'SS404', constraint = 'change_set';
  end if;
  perform app.require_permission('catalog:approve');
  if v_set.status <> 'draft' then
    raise exception 'change set is %, only a draft is approved', v_set.status using errcode = 'SS409', constraint = 'change_set_status';
  end if;
  select coalesce(max(h.version), 0) into v_head from app.catalog_heads h;
  if v_set.base_version <> v_head then
    raise exception 'change set was drafted against version %, the catalog is at version %', v_set.base_version, v_head
      using errcode = 'SS409', constraint = 'change_set_stale', detail = format('{"base_version": %s, "current_version": %s}', v_set.base_version, v_head);
  end if;
  if not exists (select 1 from app.catalog_change_set_items i where i.change_set_id = p_id) then
    raise exception 'a change set without items cannot be approved' using errcode = 'SS422', constraint = 'change_set_empty';
  end if;
  return query update app.catalog_change_sets s set status = 'approved' where s.id = p_id returning s.*;
end
$$;
revoke execute on function app.catalog_approve_change_set(uuid) from public;

/* Rejects a draft or an approved set, recording who, when and why. Checks as app.catalog_approve_change_set. */
create or replace function app.catalog_reject_change_set(p_id uuid, p_reason text) returns setof app.catalog_change_sets
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_status text;
begin
  select s.status into v_status from app.catalog_change_sets s where s.id = p_id for update;
  if not found then
    raise exception 'change set not found' using errcode = 'SS404', constraint = 'change_set';
  end if;
  perform app.require_permission('catalog:approve');
  if v_status not in ('draft', 'approved') then
    raise exception 'change set is %, it can no longer be rejected', v_status using errcode = 'SS409', constraint = 'change_set_status';
  end if;
  return query update app.catalog_change_sets s set status = 'rejected', rejection_reason = p_reason where s.id = p_id returning s.*;
end
$$;
revoke execute on function app.catalog_reject_change_set(uuid, text) from public;

/*
 * Applies an approved change set as catalog version N+1, every item in position order, in the
 * caller's transaction: an item that fails (a code another operation holds, a bound) fails the
 * whole statement and nothing of it stays. Stale sets are refused by app.catalog_begin_version
 * under the head's lock. SECURITY INVOKER: RLS and the catalog's role checks apply to each write.
 * Returns the new version.
 */
create or replace function app.catalog_apply_change_set(p_id uuid) returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_status text;
  v_version integer;
  i record;
begin
  select s.status into v_status from app.catalog_change_sets s where s.id = p_id for update;
  if not found then
    raise exception 'change set not found' using errcode = 'SS404', constraint = 'change_set';
  end if;
  v_version := app.catalog_begin_version('change_set', p_id, null);
  for i in select * from app.catalog_change_set_items x where x.change_set_id = p_id order by x.position loop
    case i.kind
      when 'price' then
        update app.service_operations o set price_cents = i.price_cents where o.id = i.operation_id;
      when 'move' then
        update app.service_operations o set display_order = i.display_order where o.id = i.operation_id;
      when 'deactivate' then
        update app.service_operations o set active = false where o.id = i.operation_id;
      when 'edit' then
        update app.service_operations o
           set service_id = coalesce(i.service_id, o.service_id), internal_code = coalesce(i.internal_code, o.internal_code),
               name = coalesce(i.name, o.name), subcategory = coalesce(i.subcategory, o.subcategory),
               duration_minutes = coalesce(i.duration_minutes, o.duration_minutes)
         where o.id = i.operation_id;
      when 'new_operation' then
        insert into app.service_operations (service_id, internal_code, name, subcategory, display_order, price_cents, duration_minutes)
        values (i.service_id, i.internal_code, i.name, i.subcategory, i.display_order, i.price_cents, i.duration_minutes);
    end case;
  end loop;
  update app.catalog_change_sets s set status = 'applied', applied_version = v_version where s.id = p_id;
  perform app.audit_event('catalog.change_set_applied', 'catalog_change_sets', p_id::text, jsonb_build_object('version', v_version));
  return v_version;
end
$$;
revoke execute on function app.catalog_apply_change_set(uuid) from public;

/*
 * The catalog as of version p_version, for the entities changed since: each one's image before
 * the first change after p_version and before p_before (NULL: it did not exist then). Entities
 * unchanged since are as they are now. RLS applies (SECURITY INVOKER).
 */
create or replace function app.catalog_images_at(p_version integer, p_before integer)
returns table (entity text, entity_id uuid, image jsonb)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select distinct on (c.entity, c.entity_id) c.entity, c.entity_id, c.old
    from app.catalog_version_changes c
   where c.version > p_version and c.version < p_before
   order by c.entity, c.entity_id, c.version, c.id
$$;
revoke execute on function app.catalog_images_at(integer, integer) from public;

/*
 * Restores the caller's catalog as of version p_version, as a new version (history is never
 * rewritten; invoice lines keep the prices they copied). Operations and services that did not
 * exist then are deleted, or, while invoice lines or change sets still reference them, kept
 * and deactivated (an operation) or kept (a service): their ids are returned as kept. Then the
 * services and operations changed since are written back as they were. Needs catalog:approve.
 */
create or replace function app.catalog_restore(p_version integer)
returns table (version integer, restored_from integer, changed integer, kept_operations uuid[], kept_services uuid[])
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_version integer;
  v_changed integer;
  v_kept_ops uuid[];
  v_kept_services uuid[];
begin
  -- Not found before forbidden, as every row route answers.
  if p_version is null or p_version < 0 or p_version > (select coalesce(max(h.version), 0) from app.catalog_heads h) then
    raise exception 'catalog version % does not exist', p_version using errcode = 'SS404', constraint = 'catalog_version';
  end if;
  v_version := app.catalog_begin_version('restore', null, p_version);
  -- Absent then: delete what nothing references; deactivate (operations) or keep (services) the rest.
  select coalesce(array_agg(o.id), '{}') into v_kept_ops
    from app.service_operations o join app.catalog_images_at(p_version, v_version) r on r.entity = 'service_operation' and r.entity_id = o.id and r.image is null
   where exists (select 1 from app.invoice_lines l where l.service_operation_id = o.id)
      or exists (select 1 from app.catalog_change_set_items x where x.operation_id = o.id);
  delete from app.service_operations o using app.catalog_images_at(p_version, v_version) r
   where r.entity = 'service_operation' and r.entity_id = o.id and r.image is null and o.id <> all (v_kept_ops);
  update app.service_operations o set active = false where o.id = any (v_kept_ops) and o.active;
  select coalesce(array_agg(s.id), '{}') into v_kept_services
    from app.services s join app.catalog_images_at(p_version, v_version) r on r.entity = 'service' and r.entity_id = s.id and r.image is null
   where exists (select 1 from app.service_operations o where o.service_id = s.id)
      or exists (select 1 from app.catalog_change_set_items x where x.service_id = s.id);
  delete from app.services s using app.catalog_images_at(p_version, v_version) r
   where r.entity = 'service' and r.entity_id = s.id and r.image is null and s.id <> all (v_kept_services);
  -- Present then: written back as they were (an insert when deleted since).
  insert into app.services as s (tenant_id, id, name, display_order, created_at)
  select x.tenant_id, x.id, x.name, x.display_order, x.created_at
    from app.catalog_images_at(p_version, v_version) r cross join lateral jsonb_populate_record(null::app.services, r.image) x
   where r.entity = 'service' and r.image is not null
  on conflict (tenant_id, id) do update set name = excluded.name, display_order = excluded.display_order
   where (s.name, s.display_order) is distinct from (excluded.name, excluded.display_order);
  insert into app.service_operations as o (tenant_id, id, service_id, internal_code, name, subcategory, display_order, price_cents, duration_minutes, active, created_at)
  select x.tenant_id, x.id, x.service_id, x.internal_code, x.name, x.subcategory, x.display_order, x.price_cents, x.duration_minutes, x.active, x.created_at
    from app.catalog_images_at(p_version, v_version) r cross join lateral jsonb_populate_record(null::app.service_operations, r.image) x
   where r.entity = 'service_operation' and r.image is not null
  on conflict (tenant_id, id) do update
     set service_id = excluded.service_id, internal_code = excluded.internal_code, name = excluded.name, subcategory = excluded.subcategory,
         display_order = excluded.display_order, price_cents = excluded.price_cents, duration_minutes = excluded.duration_minutes, active = excluded.active
   where (o.service_id, o.internal_code, o.name, o.subcategory, o.display_order, o.price_cents, o.duration_minutes, o.active)
         is distinct from (excluded.service_id, excluded.internal_code, excluded.name, excluded.subcategory, excluded.display_order,
                           excluded.price_cents, excluded.duration_minutes, excluded.active);
  select count(*)::int into v_changed from app.catalog_version_changes c where c.version = v_version;
  perform app.audit_event('catalog.version_restored', 'catalog_versions', v_version::text,
                          jsonb_build_object('version', v_version, 'restored_from', p_version, 'changed', v_changed,
                                             'kept_operations', to_jsonb(v_kept_ops), 'kept_services', to_jsonb(v_kept_services)));
  return query select v_version, p_version, v_changed, v_kept_ops, v_kept_services;
end
$$;
revoke execute on function app.catalog_restore(integer) from public;

/*
 * The catalog's operations as they would be after applying change set p_id to the catalog as
 * it is now: each item in position order, the last item to set a value winning (as
 * app.catalog_apply_change_set writes them). A new operation carries its item's id (is_new).
 * old_price_cents is the price now (NULL for a new one). Reads only; RLS applies.
 */
create or replace function app.catalog_preview(p_id uuid)
returns table (id uuid, is_new boolean, touched boolean, service_id uuid, internal_code text, name text, subcategory text,
               display_order integer, price_cents integer, duration_minutes integer, active boolean, old_price_cents integer)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with items as (select * from app.catalog_change_set_items i where i.change_set_id = p_id)
  select o.id, false, e.n > 0 or p.price_cents is not null or m.display_order is not null or d.off,
         coalesce(e.service_id, o.service_id), coalesce(e.internal_code, o.internal_code), coalesce(e.name, o.name),
         coalesce(e.subcategory, o.subcategory), coalesce(m.display_order, o.display_order), coalesce(p.price_cents, o.price_cents),
         coalesce(e.duration_minutes, o.duration_minutes), o.active and not d.off, o.price_cents
    from app.service_operations o
    left join lateral (select i.price_cents from items i where i.operation_id = o.id and i.kind = 'price' order by i.position desc limit 1) p on true
    left join lateral (select i.display_order from items i where i.operation_id = o.id and i.kind = 'move' order by i.position desc limit 1) m on true
    cross join lateral (select exists (select 1 from items i where i.operation_id = o.id and i.kind = 'deactivate') as off) d
    cross join lateral (
      select count(*) as n,
             (array_agg(i.service_id order by i.position desc) filter (where i.service_id is not null))[1] as service_id,
             (array_agg(i.internal_code order by i.position desc) filter (where i.internal_code is not null))[1] as internal_code,
             (array_agg(i.name order by i.position desc) filter (where i.name is not null))[1] as name,
             (array_agg(i.subcategory order by i.position desc) filter (where i.subcategory is not null))[1] as subcategory,
             (array_agg(i.duration_minutes order by i.position desc) filter (where i.duration_minutes is not null))[1] as duration_minutes
        from items i where i.operation_id = o.id and i.kind = 'edit') e
  union all
  select i.id, true, true, i.service_id, i.internal_code, i.name, i.subcategory, i.display_order, i.price_cents, i.duration_minutes, true, null
    from items i where i.kind = 'new_operation'
$$;
revoke execute on function app.catalog_preview(uuid) from public;

/*
 * The dry-run of change set p_id: what applying it now would do, computed without writing
 * anything (the API runs it in a read-only transaction):
 *   operations: per operation the set touches, its price now and after, and the delta;
 *   draft_invoices: the draft invoices with lines of an operation whose price changes, each line
 *     with its price and total now and if it were re-priced;
 *   revenue_90_days: issued and paid invoices of the last 90 days, at their copied prices and
 *     with the lines of re-priced operations at the new prices;
 *   ordering: the operations as GET /api/v1/service-operations would list them after it
 *     (display_order ascending with nulls last, name, id);
 *   conflicts: internal codes more than one operation would hold (applying would fail).
 * NULL when the change set is not visible (another tenant's, or none). RLS applies.
 */
create or replace function app.catalog_dry_run(p_id uuid) returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with s as (select * from app.catalog_change_sets x where x.id = p_id),
  head as (select coalesce(max(h.version), 0) as version from app.catalog_heads h),
  pv as (select * from app.catalog_preview(p_id)),
  repriced as (select pv.id, pv.price_cents from pv where not pv.is_new and pv.price_cents <> pv.old_price_cents),
  draft_lines as (
    select l.invoice_id, l.id, l.service_operation_id, l.quantity, l.unit_price_cents, l.line_total_cents, r.price_cents as new_price,
           round(l.quantity * r.price_cents)::bigint as new_total
      from app.invoice_lines l
      join app.invoices i on i.tenant_id = l.tenant_id and i.id = l.invoice_id and i.status = 'draft'
      join repriced r on r.id = l.service_operation_id),
  recent as (
    select l.line_total_cents, coalesce(round(l.quantity * r.price_cents)::bigint, l.line_total_cents) as new_total
      from app.invoices i
      join app.invoice_lines l on l.tenant_id = i.tenant_id and l.invoice_id = i.id
      left join repriced r on r.id = l.service_operation_id
     where i.status in ('issued', 'paid') and i.issued_at >= now() - interval '90 days')
  select jsonb_build_object(
    'change_set_id', s.id,
    'status', s.status,
    'base_version', s.base_version,
    'current_version', (select version from head),
    'stale', s.base_version <> (select version from head),
    'operations', coalesce((
      select jsonb_agg(jsonb_build_object('operation_id', case when pv.is_new then null else pv.id end, 'item_id', case when pv.is_new then pv.id end,
                                          'internal_code', pv.internal_code, 'name', pv.name, 'old_price_cents', pv.old_price_cents,
                                          'new_price_cents', pv.price_cents, 'delta_cents', pv.price_cents - pv.old_price_cents, 'active', pv.active)
                       order by pv.internal_code, pv.id)
        from pv where pv.touched), '[]'::jsonb),
    'draft_invoices', coalesce((
      select jsonb_agg(jsonb_build_object('invoice_id', d.invoice_id, 'lines', d.lines, 'total_delta_cents', d.delta) order by d.invoice_id)
        from (select dl.invoice_id, sum(dl.new_total - dl.line_total_cents)::bigint as delta,
                     jsonb_agg(jsonb_build_object('line_id', dl.id, 'operation_id', dl.service_operation_id, 'quantity', dl.quantity::float8,
                                                  'unit_price_cents', dl.unit_price_cents, 'new_unit_price_cents', dl.new_price,
                                                  'line_total_cents', dl.line_total_cents, 'new_line_total_cents', dl.new_total) order by dl.id) as lines
                from draft_lines dl group by dl.invoice_id) d), '[]'::jsonb),
    'revenue_90_days', (
      select jsonb_build_object('from', to_char((now() - interval '90 days') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                'old_cents', coalesce(sum(r.line_total_cents), 0), 'new_cents', coalesce(sum(r.new_total), 0),
                                'delta_cents', coalesce(sum(r.new_total - r.line_total_cents), 0))
        from recent r),
    'ordering', coalesce((
      select jsonb_agg(jsonb_build_object('id', pv.id, 'new', pv.is_new, 'internal_code', pv.internal_code, 'name', pv.name,
                                          'display_order', pv.display_order, 'price_cents', pv.price_cents, 'active', pv.active)
                       order by pv.display_order is null, pv.display_order, pv.name, pv.id)
        from pv), '[]'::jsonb),
    'conflicts', coalesce((
      select jsonb_agg(c.internal_code order by c.internal_code)
        from (select pv.internal_code from pv group by pv.internal_code having count(*) > 1) c), '[]'::jsonb))
  from s
$$;
revoke execute on function app.catalog_dry_run(uuid) from public;

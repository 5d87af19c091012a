-- Export of a whole shop (issue 34): what the archive holds and in which order, its header (the
-- shop's own row, plan and members: global rows no COPY as app_user reaches), and the record of
-- each export. The rows themselves are COPYed table by table by server/db/tenantArchive.ts, as
-- app_user under RLS (GET /api/v1/export) or as the owner in an operator context
-- (`npm run cli -- tenant export`), both filtered by the context's tenant.
-- Re-appliable: create or replace.

/*
 * The tenant tables in dependency order (a table after every tenant table it references; purge
 * deletes in the reverse order), each with its columns and primary key in order. Answers only in
 * a context with a tenant (nothing otherwise): it names tables, not rows.
 */
create or replace function app.tenant_export_tables()
returns table (ord integer, table_name text, columns text[], key_columns text[])
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  with recursive t as (
    select x as rel from app.tenant_tables() x where app.current_tenant_id() is not null
  ), deps as (
    select distinct c.conrelid as child, c.confrelid as parent
      from pg_catalog.pg_constraint c join t a on a.rel = c.conrelid join t b on b.rel = c.confrelid
     where c.contype = 'f' and c.conrelid <> c.confrelid
  ), depth (rel, d) as (
    select rel, 0 from t
    union all
    select deps.child, depth.d + 1 from depth join deps on deps.parent = depth.rel where depth.d < 32
  ), ordered as (
    select rel, max(d) as d from depth group by rel
  )
  select (row_number() over (order by o.d, c.relname))::integer, c.relname::text,
         array(select a.attname::text from pg_catalog.pg_attribute a
                where a.attrelid = o.rel and a.attnum > 0 and not a.attisdropped and a.attgenerated = '' order by a.attnum),
         array(select a.attname::text from pg_catalog.pg_index i cross join lateral unnest(i.indkey) with ordinality k(attnum, n)
                 join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                where i.indrelid = o.rel and i.indisprimary order by k.n)
    from ordered o join pg_catalog.pg_class c on c.oid = o.rel
   order by 1
$$;
revoke execute on function app.tenant_export_tables() from public;

/*
 * The archive's header: the shop's row (name, status, settings), its plan, and its members with
 * their emails (never a password hash), as JSON. tenant:export only (SS403 otherwise).
 */
create or replace function app.tenant_archive_header() returns jsonb
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_permission('tenant:export');
  return jsonb_build_object(
    'tenant', (select to_jsonb(t) from app.tenants t where t.id = app.current_tenant_id()),
    'plan', (select tp.plan from app.tenant_plans tp where tp.tenant_id = app.current_tenant_id()),
    'members', coalesce((select jsonb_agg(jsonb_build_object('user_id', m.user_id, 'email', u.email, 'role', m.role, 'created_at', m.created_at) order by m.user_id)
                           from app.memberships m join app.users u on u.id = m.user_id
                          where m.tenant_id = app.current_tenant_id()), '[]'));
end
$$;
revoke execute on function app.tenant_archive_header() from public;

/*
 * Records an export once its rows are written: tenant.exported in the shop's audit chain and in
 * the platform's lifecycle events, with the manifest (rows and checksum per table) and whether
 * the client read it to the end. tenant:export only. Written after the rows were copied, so an
 * export never holds its own record and a second export of unchanged data equals the first.
 */
create or replace function app.record_tenant_export(p_manifest jsonb, p_complete boolean) returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_slug text;
  v_id bigint;
begin
  perform app.require_permission('tenant:export');
  select t.slug into v_slug from app.tenants t where t.id = app.current_tenant_id();
  v_id := app.audit_event('tenant.exported', 'tenant', app.current_tenant_id()::text, jsonb_build_object('complete', p_complete, 'manifest', p_manifest));
  v_id := app.record_tenant_event(app.current_tenant_id(), v_slug, 'tenant.exported', null,
                                  jsonb_build_object('complete', p_complete, 'manifest', p_manifest, 'by_member', app.current_user_id()));
end
$$;
revoke execute on function app.record_tenant_export(jsonb, boolean) from public;

// Bench data: TENANTS tenants × CUSTOMERS customers, one owner per tenant, a catalog,
// appointments and invoices with lines, and a key table
// (public.bench_keys) that pgbench and the direct-SQL loops sample from. Idempotent.
import type { Sql } from "../server/db/connections.ts";

export type BenchKeys = {
  tenants: { id: string; userId: string; invoiceId: string; operationIds: string[] }[];
  customers: { tenantId: string; id: string }[];
};

export async function seedBench(owner: Sql, tenants: number, customers: number): Promise<BenchKeys> {
  const [{ n }] = await owner`select count(*)::int as n from app.tenants where slug like 'bench-%'`;
  if (n < tenants) {
    await owner.begin(async (tx) => {
      await tx`insert into app.tenants (slug, name) select 'bench-' || g, 'Bench shop ' || g from generate_series(1, ${tenants}::int) g on conflict (slug) do nothing`;
      await tx`insert into app.users (email) select 'bench-owner-' || g || '@bench.test' from generate_series(1, ${tenants}::int) g
               on conflict do nothing`;
      await tx`insert into app.memberships (tenant_id, user_id, role)
               select t.id, u.id, 'owner' from app.tenants t join app.users u on u.email = 'bench-owner-' || substr(t.slug, 7) || '@bench.test'
                where t.slug like 'bench-%' on conflict do nothing`;
      await tx`insert into app.customers (tenant_id, name, email, phone)
               select t.id, 'Customer ' || lpad(g::text, 5, '0'), 'c' || g || '@' || t.slug || '.test', '+1-555-' || lpad(g::text, 4, '0')
                 from app.tenants t cross join generate_series(1, ${customers}::int) g
                where t.slug like 'bench-%'
                  and not exists (select 1 from app.customers c where c.tenant_id = t.id)`;
      // A small catalog and one draft invoice per tenant, for the 304 and add-a-line loads.
      await tx`insert into app.services (tenant_id, name) select t.id, 'Bench services' from app.tenants t
               where t.slug like 'bench-%' on conflict do nothing`;
      await tx`insert into app.service_operations (tenant_id, service_id, internal_code, name, price_cents, duration_minutes, display_order)
               select s.tenant_id, s.id, 'B-' || g, 'Operation ' || g, 1000 + g, 30, case when g % 3 = 0 then null else g end
                 from app.services s cross join generate_series(1, 20) g where s.name = 'Bench services'
               on conflict do nothing`;
      await tx`insert into app.invoices (tenant_id, customer_id)
               select t.id, (select c.id from app.customers c where c.tenant_id = t.id order by c.id limit 1)
                 from app.tenants t where t.slug like 'bench-%' and not exists (select 1 from app.invoices i where i.tenant_id = t.id)`;
      // Bookings and billing, as a shop has them: 50 appointments (unassigned, so none overlap)
      // and 20 invoices with two catalog lines each, half of them issued with numbers 1..10.
      await tx`insert into app.appointments (tenant_id, customer_id, starts_at, ends_at)
               select t.id, (select c.id from app.customers c where c.tenant_id = t.id order by c.id offset g % ${customers}::int limit 1),
                      date_trunc('hour', now()) + g * interval '2 hours', date_trunc('hour', now()) + g * interval '2 hours' + interval '1 hour'
                 from app.tenants t cross join generate_series(1, 50) g where t.slug like 'bench-%'`;
      await tx`insert into app.invoices (tenant_id, customer_id, notes)
               select t.id, (select c.id from app.customers c where c.tenant_id = t.id order by c.id offset g % ${customers}::int limit 1), 'Bench invoice ' || g
                 from app.tenants t cross join generate_series(1, 20) g where t.slug like 'bench-%'`;
      await tx`insert into app.invoice_lines (tenant_id, invoice_id, service_operation_id, description, quantity, unit_price_cents)
               select i.tenant_id, i.id, o.id, o.name, 1, o.price_cents
                 from app.invoices i
                 join lateral (select o.id, o.name, o.price_cents from app.service_operations o where o.tenant_id = i.tenant_id order by o.internal_code limit 2) o on true
                where i.notes like 'Bench invoice %'`;
      await tx`update app.invoices i set status = 'issued', number = n.n, issued_at = now()
                 from (select id, row_number() over (partition by tenant_id order by notes, id)::int as n from app.invoices
                        where notes like 'Bench invoice %' and right(notes, 1) in ('1', '3', '5', '7', '9')) n
                where i.id = n.id`;
      await tx`insert into app.invoice_counters (tenant_id, last_number)
               select tenant_id, max(number) from app.invoices where number is not null group by tenant_id
               on conflict (tenant_id) do update set last_number = excluded.last_number`;
      await tx`drop table if exists public.bench_keys`;
      await tx`create table public.bench_keys as
               select row_number() over ()::int as n, c.tenant_id, c.id
                 from app.customers c join app.tenants t on t.id = c.tenant_id where t.slug like 'bench-%'`;
      await tx`alter table public.bench_keys add primary key (n)`;
    });
    await owner`analyze`;
  }
  const t = await owner`
    select t.id, m.user_id,
           (select i.id from app.invoices i where i.tenant_id = t.id and i.status = 'draft' order by i.created_at limit 1) as invoice_id,
           (select array_agg(o.id) from app.service_operations o where o.tenant_id = t.id) as operation_ids
      from app.tenants t join app.memberships m on m.tenant_id = t.id and m.role = 'owner'
     where t.slug like 'bench-%' order by t.slug`;
  const c = await owner`select tenant_id, id from public.bench_keys order by n`;
  return {
    tenants: t.map((r) => ({ id: r.id as string, userId: r.user_id as string, invoiceId: r.invoice_id as string, operationIds: r.operation_ids as string[] })),
    customers: c.map((r) => ({ tenantId: r.tenant_id as string, id: r.id as string })),
  };
}

// Demo data for development (never in production): tenants acme, beta and gamma (acme and gamma
// on plan pro, beta on basic), a member of each role in each (owner@, admin@, manager@, staff@,
// accountant@<slug>.test), a platform admin, some customers, and the BI login bi_acme granted acme. Runs once: a database that
// already has the tenant `acme` is left alone.
import { connectOnce, type Sql } from "../db/connections.ts";
import { hashPassword } from "../auth/passwords.ts";
import { ROLES } from "../core/roles.ts";

export const DEMO_PASSWORD = "shop-demo-password";
export const DEMO_TENANTS = ["acme", "beta", "gamma"] as const;

const first = ["Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivo", "Jana", "Karim", "Lena"];
const last = ["Moreau", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka"];

export const DEMO_BI_LOGIN = "bi_acme";

/**
 * Seeds the demo into an empty database. With `biPassword`, also the BI login bi_acme (a member
 * of app_bi) granted acme, so the psql session of docs/audit-and-bi.md works.
 */
export async function seedDemo(ownerUrl: string, options: { customersPerTenant?: number; biPassword?: string } = {}): Promise<boolean> {
  const customersPerTenant = options.customersPerTenant ?? 24;
  const sql = connectOnce(ownerUrl);
  try {
    const [seeded] = await sql`select 1 from app.tenants where slug = 'acme'`;
    if (seeded) return false;
    const hash = await hashPassword(DEMO_PASSWORD);
    await sql.begin(async (tx) => {
      const [admin] = await tx`
        insert into app.users (email, password_hash, is_platform_admin)
        values ('admin@platform.test', ${hash}, true) returning id`;
      void admin;
      for (const slug of DEMO_TENANTS) {
        const name = `${slug[0].toUpperCase()}${slug.slice(1)} Motors`;
        const [tenant] = await tx`insert into app.tenants (slug, name) values (${slug}, ${name}) returning id`;
        for (const role of ROLES) {
          const [user] = await tx`
            insert into app.users (email, password_hash) values (${`${role}@${slug}.test`}, ${hash}) returning id`;
          await tx`insert into app.memberships (tenant_id, user_id, role) values (${tenant.id}, ${user.id}, ${role})`;
        }
        const customers = Array.from({ length: customersPerTenant }, (_, i) => {
          const person = `${first[i % first.length]} ${last[(i * 7 + slug.length) % last.length]}`;
          return {
            tenant_id: tenant.id,
            name: person,
            email: `${person.toLowerCase().replace(/ /g, ".")}.${i}@${slug}-customer.test`,
            phone: `+1-555-${String(1000 + i).padStart(4, "0")}`,
            notes: i % 5 === 0 ? `Regular at ${name}.` : null,
          };
        });
        await tx`insert into app.customers ${tx(customers, "tenant_id", "name", "email", "phone", "notes")}`;
        await seedShop(tx as unknown as Sql, tenant.id);
        await seedBookings(tx as unknown as Sql, tenant.id);
      }
      // Plans: acme and gamma on pro (every feature; bi_acme reads acme), beta on basic, where
      // the audit export and BI answer 403 FEATURE_NOT_ENABLED (runbooks/features.md).
      await tx`select app.open_platform_operator_context('demo seed')`;
      for (const slug of ["acme", "gamma"]) {
        await tx`select app.platform_set_tenant_plan(${slug}, 'pro', 'demo: a shop with every feature')`;
      }
      await tx`select app.close_context()`;
      if (options.biPassword) {
        await tx`select app.close_context()`;
        const [exists] = await tx`select 1 from pg_roles where rolname = ${DEMO_BI_LOGIN}`;
        const verb = exists ? "alter" : "create";
        await tx.unsafe(`${verb} role ${DEMO_BI_LOGIN} login password '${options.biPassword.replace(/'/g, "''")}'`);
        if (!exists) await tx.unsafe(`grant app_bi to ${DEMO_BI_LOGIN}`);
        await tx`select app.bi_grant(${DEMO_BI_LOGIN}, (select id from app.tenants where slug = 'acme'))`;
      }
    });
    return true;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const catalog: [string, [string, string, number, number][]][] = [
  ["Maintenance", [["OIL", "Oil and filter change", 8900, 45], ["INSP", "Annual inspection", 12000, 90], ["WIPE", "Wiper blades", 2500, 10]]],
  ["Brakes", [["BRK-PADS-F", "Front brake pads", 14900, 60], ["BRK-PADS-R", "Rear brake pads", 13900, 60], ["BRK-FLUID", "Brake fluid flush", 7900, 40]]],
  ["Tyres", [["TYR-SWAP", "Seasonal tyre swap", 6000, 40], ["TYR-BAL", "Wheel balancing", 4000, 30], ["TYR-ALIGN", "Wheel alignment", 9000, 60]]],
  ["Electrical", [["BAT", "Battery replacement", 4500, 20], ["DIAG", "Diagnostics scan", 5500, 30]]],
];
const makes: [string, string][] = [["Toyota", "Corolla"], ["Volkswagen", "Golf"], ["Ford", "Focus"], ["Renault", "Clio"], ["Skoda", "Octavia"]];

/** Catalog and one vehicle per customer for a demo tenant (called inside the seed transaction). */
async function seedShop(tx: Sql, tenantId: string): Promise<void> {
  for (const [order, [group, operations]] of catalog.entries()) {
    const [service] = await tx`insert into app.services (tenant_id, name, display_order) values (${tenantId}, ${group}, ${order}) returning id`;
    const rows = operations.map(([code, name, price, minutes], i) => ({
      tenant_id: tenantId, service_id: service.id, internal_code: code, name, price_cents: price, duration_minutes: minutes,
      display_order: i === operations.length - 1 ? null : i,
    }));
    await tx`insert into app.service_operations ${tx(rows, "tenant_id", "service_id", "internal_code", "name", "price_cents", "duration_minutes", "display_order")}`;
  }
  await tx`
    insert into app.vehicles (tenant_id, customer_id, plate, make, model, year)
    select c.tenant_id, c.id, 'DEMO-' || lpad((row_number() over (order by c.name, c.id))::text, 3, '0'),
           (${makes.map((m) => m[0])}::text[])[1 + (row_number() over (order by c.id)) % ${makes.length}],
           (${makes.map((m) => m[1])}::text[])[1 + (row_number() over (order by c.id)) % ${makes.length}],
           2010 + ((row_number() over (order by c.id)) % 14)::int
      from app.customers c where c.tenant_id = ${tenantId}`;
}

/**
 * A living shop: ~200 appointments over the past and coming weeks (the staff member's never
 * overlap), and ~120 invoices with catalog lines, issued through app.issue_invoice (numbers
 * 1..n), most paid. Runs as the owner inside the seed transaction, with the tenant's context
 * set so the SQL functions behave exactly as for the API.
 */
async function seedBookings(tx: Sql, tenantId: string): Promise<void> {
  await tx`select app.open_operator_context(${tenantId}::uuid)`;
  await tx`
    insert into app.appointments (tenant_id, customer_id, vehicle_id, assigned_user_id, starts_at, ends_at, notes)
    select ${tenantId}, v.customer_id, v.id,
           case when g % 2 = 0 then (select m.user_id from app.memberships m where m.tenant_id = ${tenantId} and m.role = 'staff' limit 1) end,
           date_trunc('day', now()) + ((g - 100) * interval '4 hours') + interval '8 hours',
           date_trunc('day', now()) + ((g - 100) * interval '4 hours') + interval '9 hours 30 minutes',
           case when g % 9 = 0 then 'Customer waits on site.' end
      from generate_series(1, 200) g
      join lateral (select id, customer_id from app.vehicles where tenant_id = ${tenantId} order by id offset (g % 24) limit 1) v on true`;
  await tx`update app.appointments set status = 'in_progress' where tenant_id = ${tenantId} and starts_at < now()`;
  await tx`update app.appointments set status = case when ends_at::time = '17:30' then 'cancelled' else 'done' end
            where tenant_id = ${tenantId} and starts_at < now() - interval '1 day'`;
  await tx`
    insert into app.invoices (tenant_id, customer_id, appointment_id)
    select tenant_id, customer_id, id from app.appointments
     where tenant_id = ${tenantId} and status = 'done' order by starts_at limit 120`;
  await tx`
    insert into app.invoice_lines (tenant_id, invoice_id, service_operation_id, description, quantity, unit_price_cents)
    select i.tenant_id, i.id, o.id, o.name, 1 + (abs(hashtext(i.id::text || o.id::text)) % 2), o.price_cents
      from app.invoices i
      join lateral (select * from app.service_operations o where o.tenant_id = i.tenant_id
                     order by hashtext(o.id::text || i.id::text) limit 2) o on true
     where i.tenant_id = ${tenantId}`;
  await tx`select app.issue_invoice(id) from (select id from app.invoices where tenant_id = ${tenantId} order by created_at, id limit 100) i`;
  await tx`update app.invoices set status = 'paid', paid_at = now() where tenant_id = ${tenantId} and status = 'issued' and number % 4 <> 0`;
}

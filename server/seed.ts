// Demo data for development (never in production): tenants acme, beta and gamma, an owner
// and a staff member in each, a platform admin, and some customers. Runs once: a database
// that already has the tenant `acme` is left alone.
import { connectOnce } from "./db.ts";
import { hashPassword } from "./passwords.ts";

export const DEMO_PASSWORD = "shop-demo-password";
export const DEMO_TENANTS = ["acme", "beta", "gamma"] as const;

const first = ["Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivo", "Jana", "Karim", "Lena"];
const last = ["Moreau", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka"];

export async function seedDemo(ownerUrl: string, customersPerTenant = 24): Promise<boolean> {
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
        for (const role of ["owner", "staff"] as const) {
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
      }
    });
    return true;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

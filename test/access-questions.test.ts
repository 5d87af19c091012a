// runbooks/access-questions.md shows the access explainer's real output on three support
// questions. This builds the same situations (a manager and an issued invoice, a staff member and
// an appointment assigned to them, the owner of another shop) and requires the CLI's output now to
// be the page's, ids and shop names aside: a change to the explainer or to what it reports (a
// policy, a trigger, an error code) shows here until the page is regenerated with the commands it
// shows, on npm start's demo data.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { explainAsOperator, renderExplanation, type ExplainOptions } from "../server/ops/accessExplain.ts";
import { db, makeTenant, useDatabase, type Tenant } from "./fixtures.ts";
import { root } from "./scratch.ts";

const { owner } = useDatabase();
const page = readFileSync(join(root, "runbooks", "access-questions.md"), "utf8");
const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

let acme: Tenant;
let beta: Tenant;
let invoice: string;
let appointment: string;

/** The block of the page after `<!-- explain: name -->`, ids as <id>. */
function block(name: string): string {
  const m = page.match(new RegExp(`<!-- explain: ${name} -->\\n\`\`\`text\\n([\\s\\S]*?)\`\`\``));
  if (!m) throw new Error(`runbooks/access-questions.md has no block ${name}`);
  return m[1].replace(uuid, "<id>");
}

async function output(o: ExplainOptions): Promise<string> {
  const text = renderExplanation(await explainAsOperator(owner, db.contextKey, o));
  return text.replaceAll(`@${acme.slug}.test`, "@acme.test").replaceAll(`@${beta.slug}.test`, "@beta.test").replace(uuid, "<id>");
}

async function user(tenant: Tenant, role: string): Promise<string> {
  const [u] = await owner`insert into app.users (email) values (${`${role}@${tenant.slug}.test`}) returning id`;
  await owner`insert into app.memberships (tenant_id, user_id, role) values (${tenant.id}, ${u.id}, ${role})`;
  return u.id;
}

beforeAll(async () => {
  acme = await makeTenant(owner, { prefix: "acme" });
  beta = await makeTenant(owner, { prefix: "beta" });
  await user(acme, "manager");
  const staff = await user(acme, "staff");
  await user(beta, "owner");
  const [c] = await owner`insert into app.customers (tenant_id, name) values (${acme.id}, 'Questions') returning id`;
  const [i] = await owner`insert into app.invoices (tenant_id, customer_id) values (${acme.id}, ${c.id}) returning id`;
  await owner`insert into app.invoice_lines (tenant_id, invoice_id, description, quantity, unit_price_cents) values (${acme.id}, ${i.id}, 'Labour', 1, 5000)`;
  await owner.begin(async (tx) => {
    await tx`select app.open_operator_context(${acme.id}::uuid)`;
    await tx`select app.issue_invoice(${i.id}::uuid)`;
  });
  invoice = i.id;
  const [a] = await owner`insert into app.appointments (tenant_id, customer_id, assigned_user_id, starts_at, ends_at)
                          values (${acme.id}, ${c.id}, ${staff}, '2034-01-02T09:00:00Z', '2034-01-02T10:00:00Z') returning id`;
  appointment = a.id;
});

describe("runbooks/access-questions.md is the explainer's current output", () => {
  it("why can't Maria (a manager) edit this invoice: it is issued", async () => {
    expect(await output({ tenant: acme.slug, user: `manager@${acme.slug}.test`, table: "invoices", id: invoice, action: "update" })).toBe(block("issued-invoice"));
  });

  it("why did this staff member see that appointment: it is assigned to them", async () => {
    expect(await output({ tenant: acme.slug, user: `staff@${acme.slug}.test`, table: "appointments", id: appointment, action: "select" })).toBe(block("own-appointment"));
  });

  it("why does another shop's owner get 404 on our customers: not a member", async () => {
    expect(await output({ tenant: acme.slug, user: `owner@${beta.slug}.test`, table: "customers", action: "select" })).toBe(block("other-shop"));
  });
});

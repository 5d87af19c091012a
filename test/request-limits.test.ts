// Request schemas carry every limit the database enforces on what a client writes, so the API
// document tells a client before the database refuses: for each column a request body may set,
// every bound of its CHECK constraints (length, range, pattern, allowed values) and of its type
// (integer range, numeric scale) is in the body's schema. The limits are read from the catalog,
// not restated here; the schemas from /openapi.json's components.
import { describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { openApiDocument } from "../server/http/openApi.ts";
import { keys, useApi } from "./fixtures.ts";

const { owner, api } = useApi();

/** The request bodies that write each table's columns (component names in the document). */
const bodies: Record<string, string[]> = {
  customers: ["CustomerCreate", "CustomerChanges"],
  vehicles: ["VehicleCreate", "VehicleChanges"],
  services: ["ServiceCreate", "ServiceChanges"],
  service_operations: ["ServiceOperationCreate", "ServiceOperationChanges"],
  appointments: ["AppointmentCreate", "AppointmentChanges"],
  invoices: ["InvoiceCreate", "InvoiceChanges"],
  invoice_lines: ["InvoiceLineCreate"],
  memberships: ["MemberCreate", "MemberRoleChange"],
  users: ["MemberCreate"],
  tenants: ["SettingsChange"],
};

type Limit = { column: string; kind: "min" | "exclusiveMin" | "max" | "minLength" | "maxLength" | "pattern" | "enum" | "multipleOf"; value: number | string | string[]; source: string };
type Schema = { $ref?: string; oneOf?: Schema[]; properties?: Record<string, Prop> };
type Prop = Schema & { minimum?: number; exclusiveMinimum?: number; maximum?: number; minLength?: number; maxLength?: number; pattern?: string; format?: string; enum?: unknown[]; multipleOf?: number };

/** The single-column bounds of a CHECK constraint's definition, as pg_get_constraintdef prints it. */
function checkLimits(def: string, source: string): Limit[] {
  const out: Limit[] = [];
  for (const [, column, op, n] of def.matchAll(/\(length\((\w+)\) (>=|<=) (\d+)\)/g)) {
    out.push({ column, kind: op === ">=" ? "minLength" : "maxLength", value: Number(n), source });
  }
  for (const [, column, op, n] of def.matchAll(/\((\w+) (>=|<=|>) \(?(-?\d+)\)?(?:::numeric)?\)/g)) {
    out.push({ column, kind: op === ">=" ? "min" : op === ">" ? "exclusiveMin" : "max", value: Number(n), source });
  }
  for (const [, column, regex] of def.matchAll(/\((\w+) ~ '((?:[^']|'')*)'::text\)/g)) out.push({ column, kind: "pattern", value: regex.replace(/''/g, "'"), source });
  for (const [, column, list] of def.matchAll(/\((\w+) = ANY \(ARRAY\[([^\]]*)\]\)\)/g)) {
    out.push({ column, kind: "enum", value: [...list.matchAll(/'([^']*)'::text/g)].map((m) => m[1]), source });
  }
  return out;
}

// What a schema may say instead of the database's own pattern: the email format is stricter.
const strongerFormats: Record<string, string> = { "^[^@\\s]+@[^@\\s]+$": "email" };

function carried(p: Prop, limit: Limit): boolean {
  const v = limit.value as number;
  switch (limit.kind) {
    case "min": return (p.minimum ?? -Infinity) >= v || (p.exclusiveMinimum ?? -Infinity) >= v;
    case "exclusiveMin": return (p.exclusiveMinimum ?? -Infinity) >= v || (p.minimum ?? -Infinity) > v;
    case "max": return (p.maximum ?? Infinity) <= v;
    case "minLength": return (p.minLength ?? 0) >= v;
    case "maxLength": return (p.maxLength ?? Infinity) <= v;
    case "pattern": return p.pattern === limit.value || (p.format !== undefined && strongerFormats[limit.value as string] === p.format);
    case "enum": return Array.isArray(p.enum) && p.enum.every((x) => (limit.value as string[]).includes(x as string));
    case "multipleOf": return p.multipleOf !== undefined && Math.abs(p.multipleOf - v) < 1e-12;
  }
}

async function databaseLimits(): Promise<Map<string, Limit[]>> {
  const byTable = new Map<string, Limit[]>();
  const add = (table: string, limits: Limit[]) => byTable.set(table, [...(byTable.get(table) ?? []), ...limits]);
  const checks = await owner`
    select c.relname as tbl, k.conname, pg_get_constraintdef(k.oid) as def
      from pg_catalog.pg_constraint k join pg_catalog.pg_class c on c.oid = k.conrelid
     where k.contype = 'c' and c.relnamespace = 'app'::regnamespace`;
  for (const k of checks) add(k.tbl, checkLimits(k.def, k.conname));
  const columns = await owner`
    select table_name as tbl, column_name as col, data_type, numeric_precision as p, numeric_scale as s
      from information_schema.columns where table_schema = 'app' and data_type in ('integer', 'numeric')`;
  for (const c of columns) {
    const source = `${c.tbl}.${c.col} ${c.data_type}`;
    if (c.data_type === "integer") add(c.tbl, [{ column: c.col, kind: "min", value: -(2 ** 31), source }, { column: c.col, kind: "max", value: 2 ** 31 - 1, source }]);
    else if (c.s !== null) add(c.tbl, [{ column: c.col, kind: "multipleOf", value: 10 ** -c.s, source }, { column: c.col, kind: "max", value: 10 ** (c.p - c.s), source }]);
  }
  return byTable;
}

/** Every (schema, property, limit) the database holds a body's property to, that its schema does not carry; and how many were checked. */
function missingLimits(document: { components: { schemas: Record<string, Schema> } }, limits: Map<string, Limit[]>): { missing: string[]; checked: number } {
  const resolve = (s: Schema): Schema => (s.$ref ? resolve(document.components.schemas[s.$ref.split("/").pop()!]) : s);
  const missing: string[] = [];
  let checked = 0;
  for (const [table, names] of Object.entries(bodies)) {
    for (const name of names) {
      const schema = document.components.schemas[name];
      if (!schema) throw new Error(`no schema ${name} in the document`);
      const branches = schema.oneOf?.map(resolve) ?? [schema];
      for (const branch of branches) {
        for (const limit of limits.get(table) ?? []) {
          const prop = branch.properties?.[limit.column];
          if (!prop) continue;
          checked++;
          if (!carried(resolve(prop) as Prop, limit)) {
            missing.push(`${name}.${limit.column}: the database holds it to ${limit.kind} ${JSON.stringify(limit.value)} (${limit.source}); the schema does not say so`);
          }
        }
      }
    }
  }
  return { missing, checked };
}

describe("request schemas and the database's limits", () => {
  it("every limit of a column a body writes is in the body's schema (CHECK constraints, integer range, numeric scale)", async () => {
    const document = (await api.request("GET", "/openapi.json")).body;
    const { missing, checked } = missingLimits(document, await databaseLimits());
    expect(missing).toEqual([]);
    expect(checked).toBeGreaterThan(60);
  });

  it("canary: a schema without the price's minimum is named", async () => {
    const document = structuredClone(openApiDocument(createApp({ keys, bodyLimit: "1kb" }))) as never as { components: { schemas: Record<string, Schema> } };
    delete (document.components.schemas.ServiceOperationCreate.properties!.price_cents as Prop).minimum;
    const { missing } = missingLimits(document, await databaseLimits());
    expect(missing).toContainEqual(expect.stringMatching(/^ServiceOperationCreate\.price_cents: the database holds it to min 0 \(service_operations_price_check\)/));
    expect(missing.every((m) => m.startsWith("ServiceOperationCreate.price_cents: "))).toBe(true);
  });
});

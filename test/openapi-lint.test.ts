// The API document as client tooling meets it: Redocly CLI and Spectral (spectral:oas) find no
// error and no warning in it, both from node_modules with no network; and TypeScript types
// generated from it (openapi-typescript) type a small client that compiles and talks to the API.
// Each part has a canary: a broken document, and a client that misuses a generated type.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { openApiDocument } from "../server/http/openApi.ts";
import { keys, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";
import { root, run } from "./scratch.ts";

const { owner, api } = useApi();
const document = openApiDocument(createApp({ keys, bodyLimit: "100kb", deployment: { commit_sha: "test", deployed_at: "now" } }));
let dir: string;
let shop: Tenant;
let alice: User;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "rls-shop-openapi-"));
  shop = await makeTenant(owner);
  alice = await makeUser(owner, shop, "owner");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bin = (name: string) => join(root, "node_modules", ".bin", name);
// Offline: no usage data sent, no version check.
const offline = { REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" };

async function write(name: string, value: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, typeof value === "string" ? value : JSON.stringify(value, null, 2));
  return file;
}

async function redocly(file: string) {
  const r = await run(bin("redocly"), ["lint", file, "--config", join(root, "redocly.yaml"), "--format=json"], offline);
  const report = JSON.parse(r.output.slice(r.output.indexOf("{"), r.output.lastIndexOf("}") + 1)) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; message: string }[] };
  return { errors: report.totals.errors, warnings: report.totals.warnings, problems: report.problems.map((p) => `${p.ruleId}: ${p.message}`) };
}

async function spectral(file: string) {
  const r = await run(bin("spectral"), ["lint", file, "--ruleset", join(root, ".spectral.yaml"), "--format", "json", "--quiet"]);
  const results = JSON.parse(r.output.slice(r.output.indexOf("["), r.output.lastIndexOf("]") + 1)) as { code: string; message: string; path: string[] }[];
  return results.map((x) => `${x.code}: ${x.message} (${x.path.join(".")})`);
}

/** The document with one operation's description and tag broken: both linters must say so. */
function broken(): Record<string, unknown> {
  const copy = structuredClone(document) as { paths: Record<string, Record<string, Record<string, unknown>>> };
  const op = copy.paths["/api/v1/customers"].get;
  delete op.description;
  delete op.summary;
  op.tags = ["Nowhere"];
  return copy;
}

describe("the API document, linted", () => {
  it("Redocly CLI (recommended rules): 0 errors, 0 warnings", async () => {
    expect(await redocly(await write("openapi.json", document))).toEqual({ errors: 0, warnings: 0, problems: [] });
  }, 60_000);

  it("Spectral (spectral:oas): 0 errors, 0 warnings", async () => {
    expect(await spectral(await write("openapi.json", document))).toEqual([]);
  }, 60_000);

  it("canary: both refuse an operation without summary, description or a known tag", async () => {
    const file = await write("broken.json", broken());
    const r = await redocly(file);
    expect(r.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^operation-summary/)]));
    expect(await spectral(file)).toEqual(expect.arrayContaining([expect.stringMatching(/^operation-description/), expect.stringMatching(/^operation-tag-defined/)]));
  }, 60_000);
});

const client = `
import type { components, paths } from "./api.js";

type Customer = components["schemas"]["Customer"];
type CustomerCreate = components["schemas"]["CustomerCreate"];
type CustomerPage = paths["/api/v1/customers"]["get"]["responses"]["200"]["content"]["application/json"];
type Failure = components["schemas"]["Error"];

export type Shop = { base: string; token: string; tenant: string };

async function call<T>(shop: Shop, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(shop.base + path, {
    method,
    headers: { authorization: "Bearer " + shop.token, "x-tenant-id": shop.tenant, ...(body ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer: unknown = await res.json();
  if (!res.ok) throw new Error((answer as Failure).error.code);
  return answer as T;
}

export const createCustomer = (shop: Shop, input: CustomerCreate) => call<Customer>(shop, "POST", "/api/v1/customers", input);
export const customerNames = async (shop: Shop) => (await call<CustomerPage>(shop, "GET", "/api/v1/customers")).data.map((c) => c.name);
export const staffRole: components["schemas"]["Role"] = "staff";
export const line: components["schemas"]["InvoiceLineCreate"] = { description: "Labour", quantity: 1.5, unit_price_cents: 3000 };
`;

async function compile(source: string): Promise<{ code: number; output: string }> {
  await write("client.ts", source);
  return run(bin("tsc"), ["--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "--lib", "es2022,dom", "--skipLibCheck", "--outDir", join(dir, "out"), join(dir, "client.ts")]);
}

describe("a client generated from the document (openapi-typescript)", () => {
  beforeAll(async () => {
    await write("package.json", { type: "module" });
    await write("api.d.ts", astToString(await openapiTS(document as never)));
  });

  it("gets named types, compiles with tsc --strict, and works against the API", async () => {
    const r = await compile(client);
    expect(r.output).toBe("");
    expect(r.code).toBe(0);
    const generated = (await import(pathToFileURL(join(dir, "out", "client.js")).href)) as {
      createCustomer: (shop: unknown, input: unknown) => Promise<{ id: string; name: string }>;
      customerNames: (shop: unknown) => Promise<string[]>;
    };
    const target = { base: api.url, token: tokenFor(alice), tenant: shop.slug };
    const created = await generated.createCustomer(target, { name: "Generated Client" });
    expect(created.name).toBe("Generated Client");
    expect(await generated.customerNames(target)).toContain("Generated Client");
  }, 60_000);

  it("canary: a client that breaks a generated type does not compile", async () => {
    const r = await compile(`${client}\nexport const wrong: components["schemas"]["Role"] = "intern";\nexport const bad: components["schemas"]["CustomerCreate"] = { name: 5 };\n`);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/"intern"/);
    expect(r.output).toMatch(/Type 'number' is not assignable to type 'string'/);
  }, 60_000);
});

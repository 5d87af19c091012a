// The OpenAPI document: served at /openapi.json, generated from the routes' own contract marks
// (the schemas their validators compile), covering exactly the mounted routes; /docs renders it
// with Swagger UI served from node_modules. Responses are checked against it in every suite
// (test/contractValidation.ts, wired into the fixtures' request helper).
import SwaggerParser from "@apidevtools/swagger-parser";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { openApiDocument } from "../server/http/openApi.ts";
import { routeInventory } from "../server/http/routeInventory.ts";
import { tenantRoutesAt } from "./routeProbes.ts";
import { responseValidator } from "./contractValidation.ts";
import { keys, useApi } from "./fixtures.ts";

const { api } = useApi();

const newApp = () => createApp({ keys, bodyLimit: "100kb", deployment: { commit_sha: "test", deployed_at: "now" } });
type Doc = { openapi: string; paths: Record<string, Record<string, { parameters: { name: string; in: string }[]; security: unknown[]; responses: Record<string, unknown> }>> };
const toTemplate = (path: string) => path.replace(/:([A-Za-z_]+)/g, "{$1}");

function undocumented(app: ReturnType<typeof newApp>, doc: Doc): string[] {
  return routeInventory(app)
    .filter((r) => !doc.paths[toTemplate(r.path)]?.[r.method.toLowerCase()])
    .map((r) => `${r.method} ${r.path}: mounted but not in the OpenAPI document. FIX: add documented({...}) with its schemas before its handler`);
}

describe("the OpenAPI document", () => {
  it("is served at /openapi.json as OpenAPI 3.1", async () => {
    const res = await api.request("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    expect(res.body.components.schemas.Error).toBeDefined();
    expect(res.body.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
  });

  it("is a valid OpenAPI 3.1 document (swagger-parser validates it against the specification's schema)", async () => {
    const doc = (await api.request("GET", "/openapi.json")).body;
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toBeDefined();
    // The validator can fail: an operation whose responses is not an object is refused.
    const broken = structuredClone(doc);
    broken.paths["/api/v1/customers"].get.responses = "none";
    await expect(SwaggerParser.validate(broken)).rejects.toThrow();
  });

  it("documents every mounted route, and every documented route is mounted", async () => {
    const app = newApp();
    const doc = (await api.request("GET", "/openapi.json")).body as Doc;
    expect(undocumented(app, doc)).toEqual([]);
    const mounted = new Set(routeInventory(app).map((r) => `${r.method.toLowerCase()} ${toTemplate(r.path)}`));
    const documentedRoutes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path.replace("/api/v1/t/{tenant}/", "/api/v1/")}`));
    expect(documentedRoutes.filter((r) => !mounted.has(r))).toEqual([]);
    expect(mounted.size).toBeGreaterThan(40);
  });

  it("canary: a route mounted without documented(...) is caught by name", () => {
    const app = newApp();
    tenantRoutesAt(app, "/customers").get("/:id/secrets", (_req, res) => void res.json({}));
    expect(undocumented(app, openApiDocument(app) as Doc)).toEqual([expect.stringMatching(/^GET \/api\/v1\/customers\/:id\/secrets: mounted but not in the OpenAPI document/)]);
  });

  it("names the tenant both ways (X-Tenant-Id header and /api/v1/t/{tenant}/ path), the bearer security and Idempotency-Key on tenant POSTs", () => {
    const doc = openApiDocument(newApp()) as Doc;
    const list = doc.paths["/api/v1/customers"].get;
    expect(list.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(expect.arrayContaining(["header:X-Tenant-Id", "query:limit", "query:cursor", "query:q"]));
    expect(list.security).toEqual([{ bearer: [] }]);
    expect(doc.paths["/api/v1/t/{tenant}/customers"].get.parameters.map((p) => `${p.in}:${p.name}`)).toContain("path:tenant");
    expect(doc.paths["/api/v1/members"].post.parameters.map((p) => p.name)).toContain("Idempotency-Key");
    expect(doc.paths["/api/v1/auth/login"].post.security).toEqual([]);
    expect(doc.paths["/api/v1/customers/{id}"].get.responses["4XX"]).toBeDefined();
  });

  it("every schema in it compiles (strict JSON Schema, the same dialect ajv validates requests with)", () => {
    const doc = openApiDocument(newApp()) as Doc;
    const ajv = new Ajv({ strict: false });
    addFormats.default(ajv);
    ajv.addSchema(doc, "openapi");
    let compiled = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const status of Object.keys(op.responses)) {
          const content = (op.responses[status] as { content?: Record<string, unknown> }).content ?? {};
          for (const media of Object.keys(content)) {
            const ref = ["paths", path, method, "responses", status, "content", media, "schema"].map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
            ajv.compile({ $ref: `openapi#/${ref}` });
            compiled++;
          }
        }
      }
    }
    for (const group of ["schemas", "responses"]) {
      for (const name of Object.keys((doc as unknown as { components: Record<string, object> }).components[group])) {
        ajv.compile({ $ref: `openapi#/components/${group}/${name}${group === "responses" ? "/content/application~1json/schema" : ""}` });
        compiled++;
      }
    }
    expect(compiled).toBeGreaterThan(100);
  });

  it("names its schemas (components referenced by $ref), so a generated client gets a type for each", () => {
    const doc = openApiDocument(newApp()) as unknown as { paths: Record<string, Record<string, any>>; components: { schemas: Record<string, unknown>; responses: Record<string, any> } };
    const json = (op: any, status: string) => op.responses[status].content["application/json"].schema;
    expect(json(doc.paths["/api/v1/customers/{id}"].get, "200")).toEqual({ $ref: "#/components/schemas/Customer" });
    expect(json(doc.paths["/api/v1/customers"].get, "200")).toEqual({ $ref: "#/components/schemas/CustomerPage" });
    expect(doc.paths["/api/v1/customers"].post.requestBody.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/CustomerCreate" });
    expect(json(doc.paths["/api/v1/invoices/{id}/issue"].post, "200")).toEqual({ $ref: "#/components/schemas/Invoice" });
    expect(json(doc.paths["/api/v1/vehicles/{id}"].get, "200")).toEqual({ $ref: "#/components/schemas/Vehicle" });
    expect(doc.paths["/api/v1/customers"].get.responses["4XX"]).toEqual({ $ref: "#/components/responses/ClientError" });
    expect(doc.components.responses.ClientError.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/Error" });
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(["Customer", "Vehicle", "Service", "ServiceOperation", "Appointment", "Invoice", "InvoiceLine", "Member", "AuditEntry", "Error"]));
  });

  it("has a described tag for every operation's tag, and a description on every operation", () => {
    const doc = openApiDocument(newApp()) as unknown as { tags: { name: string; description: string }[]; paths: Record<string, Record<string, { tags: string[]; description?: string }>> };
    const described = new Map(doc.tags.map((t) => [t.name, t.description]));
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(described.get(op.tags[0]), `${method} ${path}: tag ${op.tags[0]}`).toMatch(/\S/);
        expect(op.description, `${method} ${path}`).toMatch(/\S/);
      }
    }
  });

  it("states the tenant's pattern, what a header naming another shop than a scoped token's gets, the text rule and the 405", () => {
    const doc = openApiDocument(newApp()) as unknown as { info: { description: string }; paths: Record<string, Record<string, { parameters: { name: string; in: string; description?: string; schema: { pattern?: string } }[]; requestBody?: { description: string } }>> };
    const tenant = doc.paths["/api/v1/t/{tenant}/customers"].get.parameters.find((p) => p.name === "tenant")!;
    expect(new RegExp(tenant.schema.pattern!).test("acme-motors")).toBe(true);
    expect(new RegExp(tenant.schema.pattern!).test("a b;drop")).toBe(false);
    const header = doc.paths["/api/v1/customers"].get.parameters.find((p) => p.name === "X-Tenant-Id")!;
    expect(header.description).toMatch(/token scoped to another shop.*404 TENANT_NOT_FOUND/);
    expect(doc.paths["/api/v1/customers"].post.requestBody!.description).toMatch(/NUL.*lone UTF-16 surrogate.*422 VALIDATION_FAILED/);
    expect(doc.info.description).toMatch(/405 METHOD_NOT_ALLOWED with an Allow header/);
  });

  it("the response hook refuses an answer that breaks the documented schema, an undocumented status and an undocumented route", () => {
    const check = responseValidator(openApiDocument(newApp()) as never);
    const customer = { id: "8d1e5a8c-0000-4000-8000-000000000000", name: "A", email: null, phone: null, notes: null, created_at: "2030-01-01T00:00:00.000Z", updated_at: "2030-01-01T00:00:00.000Z" };
    expect(() => check("GET", `/api/v1/customers/${customer.id}`, 200, "application/json", customer)).not.toThrow();
    expect(() => check("GET", `/api/v1/customers/${customer.id}`, 200, "application/json", { ...customer, tenant_id: "x" })).toThrow(/response contract/);
    expect(() => check("GET", `/api/v1/customers/${customer.id}`, 200, "application/json", { ...customer, created_at: 5 })).toThrow(/response contract/);
    expect(() => check("GET", `/api/v1/customers/${customer.id}`, 302, "application/json", customer)).toThrow(/not documented/);
    expect(() => check("GET", "/api/v1/nowhere", 200, "application/json", {})).toThrow(/not in the OpenAPI document/);
    expect(() => check("GET", `/api/v1/customers/${customer.id}`, 404, "application/json", { message: "no" })).toThrow(/response contract/);
  });
});

// Where DATABASE_READ_URLS is set (test/read-replicas.test.ts runs it against a real standby), the
// document says which server answers each operation and why, and carries the consistency token both ways.
describe("x-consistency: which server answers, where replicas serve reads", () => {
  type Op = { parameters: { name: string; in: string }[]; security: unknown[]; responses: Record<string, { headers?: Record<string, unknown> }>; "x-consistency"?: { "served-by": string; reason: string } };
  const operations = async () => {
    const doc = (await api.request("GET", "/openapi.json")).body as { paths: Record<string, Record<string, Op>> };
    return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ name: `${method.toUpperCase()} ${path}`, method, path, op })));
  };
  const sends = (op: Op) => op.parameters.some((p) => p.in === "header" && p.name === "X-Consistency-Token");

  it("every authenticated operation says primary or replica, with its reason; every write is the primary's", async () => {
    const ops = await operations();
    const missing = ops.filter(({ op }) => op.security.length > 0 && !(op["x-consistency"]?.reason && ["primary", "replica"].includes(op["x-consistency"]["served-by"])));
    expect(missing.map((o) => o.name)).toEqual([]);
    expect(ops.filter(({ method, op }) => method !== "get" && op["x-consistency"]?.["served-by"] !== "primary").map((o) => o.name)).toEqual([]);
    const servedBy = (name: string) => ops.find((o) => o.name === name)?.op["x-consistency"]?.["served-by"];
    expect(servedBy("GET /api/v1/customers")).toBe("replica");
    expect(servedBy("GET /api/v1/me")).toBe("replica");
    // Reads that need the primary: their transaction writes (the audited export), or they say why.
    expect(servedBy("GET /api/v1/audit/export.csv")).toBe("primary");
    expect(servedBy("GET /ops/current-commit")).toBe("primary");
    expect(servedBy("GET /api/v1/platform/features")).toBe("primary");
    expect(servedBy("GET /readyz")).toBe("primary");
  });

  it("a read a replica answers takes X-Consistency-Token, and a tenant write's success answers one", async () => {
    const ops = await operations();
    const replicaReads = ops.filter(({ op }) => op["x-consistency"]?.["served-by"] === "replica");
    expect(replicaReads.length).toBeGreaterThan(15);
    expect(replicaReads.filter(({ op }) => !sends(op)).map((o) => o.name)).toEqual([]);
    // What each route's requires() says its transaction does (by default every method but GET writes).
    const reads = new Set(routeInventory(newApp()).filter((r) => r.writes === false).map((r) => `${r.method.toLowerCase()} ${toTemplate(r.path)}`));
    const tenantWrites = ops.filter(({ method, path, op }) => method !== "get" && !reads.has(`${method} ${path.replace("/api/v1/t/{tenant}/", "/api/v1/")}`) &&
      (path.startsWith("/api/v1/t/{tenant}/") || op.parameters.some((p) => p.name === "X-Tenant-Id")));
    expect(tenantWrites.length).toBeGreaterThan(15);
    const unstamped = tenantWrites.filter(({ op }) => Object.entries(op.responses).some(([status, r]) => status.startsWith("2") && !r.headers?.["X-Consistency-Token"]));
    expect(unstamped.map((o) => o.name)).toEqual([]);
  });
});

describe("/docs", () => {
  it("renders the document with Swagger UI from this server, no CDN", async () => {
    const page = await api.request("GET", "/docs");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.body).not.toMatch(/https?:\/\//);
    const assets = [...String(page.body).matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(assets).toEqual(expect.arrayContaining(["/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/init.js"]));
    for (const asset of assets) {
      const res = await fetch(api.url + asset);
      expect(res.status, asset).toBe(200);
      expect((await res.text()).length, asset).toBeGreaterThan(10);
    }
    const init = await fetch(`${api.url}/docs/init.js`);
    expect(await init.text()).toContain('url: "/openapi.json"');
  });
});

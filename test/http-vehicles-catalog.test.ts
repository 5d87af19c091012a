// Vehicles and the service catalog over HTTP: the cross-tenant matrix (404 on foreign ids,
// 422 REFERENCE_NOT_FOUND on foreign references, the same answer as for an id that exists
// nowhere), each SQL rule broken once, and the catalog's ordering, root array and ETags.
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import express from "express";
import { toAppError } from "../server/core/errors.ts";
import { strongEtag } from "../server/http/etag.ts";
import { makeCustomers, makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi();
let a: Tenant, b: Tenant;
let alice: User;
let aCustomer: string, bCustomer: string;
let bVehicle: string, bService: string, bOperation: string;
let aService: string;

const vin = () => Array.from({ length: 17 }, () => "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"[Math.floor(Math.random() * 33)]).join("");

beforeAll(async () => {
  a = await makeTenant(owner);
  b = await makeTenant(owner);
  alice = await makeUser(owner, a, "owner");
  [aCustomer] = await makeCustomers(owner, a, 2);
  [bCustomer] = await makeCustomers(owner, b, 2);
  [{ id: bVehicle }] = await owner`insert into app.vehicles (tenant_id, customer_id, plate) values (${b.id}, ${bCustomer}, 'B-1') returning id`;
  [{ id: bService }] = await owner`insert into app.services (tenant_id, name) values (${b.id}, 'Brakes') returning id`;
  [{ id: bOperation }] = await owner`
    insert into app.service_operations (tenant_id, service_id, internal_code, name, price_cents, duration_minutes)
    values (${b.id}, ${bService}, 'BRK-1', 'Pads', 9000, 60) returning id`;
  [{ id: aService }] = await owner`insert into app.services (tenant_id, name, display_order) values (${a.id}, 'Tyres', 1) returning id`;
});

const call = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  api.request(method, path, { token: tokenFor(alice), tenant: a.slug, body, headers });

describe("tenant A's token on tenant B's vehicles and catalog", () => {
  const cases: [string, () => string, string, unknown?][] = [
    ["/api/v1/vehicles/{id}", () => bVehicle, "VEHICLE_NOT_FOUND", { plate: "X" }],
    ["/api/v1/services/{id}", () => bService, "SERVICE_NOT_FOUND", { name: "Stolen" }],
    ["/api/v1/service-operations/{id}", () => bOperation, "SERVICE_OPERATION_NOT_FOUND", { price_cents: 1 }],
  ];
  for (const [path, id, code, patch] of cases) {
    for (const method of ["GET", "PATCH", "DELETE"]) {
      it(`${method} ${path} answers 404 ${code}`, async () => {
        const res = await call(method, path.replace("{id}", id()), method === "PATCH" ? patch : undefined);
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe(code);
      });
    }
  }

  it("left B's rows untouched", async () => {
    const [v] = await owner`select plate from app.vehicles where id = ${bVehicle}`;
    const [o] = await owner`select price_cents from app.service_operations where id = ${bOperation}`;
    expect([v.plate, o.price_cents]).toEqual(["B-1", 9000]);
  });

  it("never lists B's rows", async () => {
    const vehicles = await call("GET", "/api/v1/vehicles");
    const ops = await call("GET", "/api/v1/service-operations");
    const services = await call("GET", "/api/v1/services");
    expect(vehicles.body.data.some((v: { id: string }) => v.id === bVehicle)).toBe(false);
    expect(ops.body.some((o: { id: string }) => o.id === bOperation)).toBe(false);
    expect(services.body.data.some((s: { id: string }) => s.id === bService)).toBe(false);
  });

  const references: [string, string, () => unknown][] = [
    ["POST", "/api/v1/vehicles", () => ({ customer_id: bCustomer })],
    ["POST", "/api/v1/service-operations", () => ({ service_id: bService, internal_code: `X-${randomUUID().slice(0, 6)}`, name: "X", price_cents: 1, duration_minutes: 1 })],
  ];
  for (const [method, path, body] of references) {
    it(`${method} ${path} with B's id in the body answers 422 REFERENCE_NOT_FOUND, as for an id that exists nowhere`, async () => {
      const foreign = await call(method, path, body());
      const nowhere = await call(method, path, JSON.parse(JSON.stringify(body()).replace(/"(customer_id|service_id)":"[^"]+"/, `"$1":"${randomUUID()}"`)));
      expect(foreign.status).toBe(422);
      expect(foreign.body.error.code).toBe("REFERENCE_NOT_FOUND");
      expect({ ...foreign.body.error, request_id: "" }).toEqual({ ...nowhere.body.error, request_id: "" });
    });
  }

  it("PATCH moving a vehicle to B's customer answers 422 REFERENCE_NOT_FOUND", async () => {
    const created = await call("POST", "/api/v1/vehicles", { customer_id: aCustomer });
    const res = await call("PATCH", `/api/v1/vehicles/${created.body.id}`, { customer_id: bCustomer });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("REFERENCE_NOT_FOUND");
  });
});

describe("business rules enforced by the database, seen through the API", () => {
  it("a duplicate VIN in one tenant → 409 VIN_TAKEN; the same VIN in another tenant is fine", async () => {
    const v = vin();
    expect((await call("POST", "/api/v1/vehicles", { customer_id: aCustomer, vin: v })).status).toBe(201);
    const dup = await call("POST", "/api/v1/vehicles", { customer_id: aCustomer, vin: v });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe("VIN_TAKEN");
    await owner`insert into app.vehicles (tenant_id, customer_id, vin) values (${b.id}, ${bCustomer}, ${v})`;
  });

  it("a negative price or a zero duration → 422 VALIDATION_FAILED naming the field, before the database is asked", async () => {
    const base = { service_id: aService, name: "Bad", duration_minutes: 30, price_cents: 100 };
    const price = await call("POST", "/api/v1/service-operations", { ...base, internal_code: "NEG-1", price_cents: -1 });
    expect([price.status, price.body.error.code, price.body.error.details]).toEqual([422, "VALIDATION_FAILED", [{ field: "/price_cents", message: "must be >= 0" }]]);
    const created = await call("POST", "/api/v1/service-operations", { ...base, internal_code: "DUR-0" });
    expect(created.status).toBe(201);
    const duration = await call("PATCH", `/api/v1/service-operations/${created.body.id}`, { duration_minutes: 0 });
    expect([duration.status, duration.body.error.code, duration.body.error.details]).toEqual([422, "VALIDATION_FAILED", [{ field: "/duration_minutes", message: "must be >= 1" }]]);
  });

  it("the database still refuses them itself (422 INVALID_PRICE, INVALID_DURATION through the one SQLSTATE table)", async () => {
    const base = { tenant_id: a.id, service_id: aService, name: "Bad", duration_minutes: 30, price_cents: 100 };
    for (const [row, code] of [[{ ...base, internal_code: "NEG-2", price_cents: -1 }, "INVALID_PRICE"], [{ ...base, internal_code: "DUR-1", duration_minutes: 0 }, "INVALID_DURATION"]] as const) {
      const error = await owner`insert into app.service_operations ${owner(row)}`.catch((e: unknown) => e);
      expect(toAppError(error)).toMatchObject({ status: 422, code });
    }
  });

  it("a duplicate internal_code → 409 INTERNAL_CODE_TAKEN", async () => {
    const body = { service_id: aService, name: "Rotate", internal_code: "ROT-1", price_cents: 2500, duration_minutes: 20 };
    expect((await call("POST", "/api/v1/service-operations", body)).status).toBe(201);
    const dup = await call("POST", "/api/v1/service-operations", { ...body, name: "Rotate again" });
    expect([dup.status, dup.body.error.code]).toEqual([409, "INTERNAL_CODE_TAKEN"]);
  });

  it("deleting a customer who still has vehicles → 409 REFERENCE_IN_USE, nothing deleted", async () => {
    const [c] = await makeCustomers(owner, a, 1);
    await call("POST", "/api/v1/vehicles", { customer_id: c });
    const res = await call("DELETE", `/api/v1/customers/${c}`);
    expect([res.status, res.body.error.code]).toEqual([409, "REFERENCE_IN_USE"]);
    expect((await call("GET", `/api/v1/customers/${c}`)).status).toBe(200);
  });

  it("a malformed VIN is refused before the database (422 VALIDATION_FAILED)", async () => {
    const res = await call("POST", "/api/v1/vehicles", { customer_id: aCustomer, vin: "SHORT" });
    expect([res.status, res.body.error.code]).toEqual([422, "VALIDATION_FAILED"]);
  });
});

describe("the catalog", () => {
  let catalogTenant: Tenant;
  let member: User;
  let serviceId: string;
  const get = (path: string, headers?: Record<string, string>) => api.request("GET", path, { token: tokenFor(member), tenant: catalogTenant.slug, headers });

  beforeAll(async () => {
    catalogTenant = await makeTenant(owner);
    member = await makeUser(owner, catalogTenant, "manager");
    [{ id: serviceId }] = await owner`insert into app.services (tenant_id, name) values (${catalogTenant.id}, 'General') returning id`;
    const ops: [string, number | null][] = [["Zeta", 1], ["Alpha", null], ["Beta", 2], ["Gamma", 1], ["Aardvark", null]];
    for (const [name, order] of ops) {
      await owner`insert into app.service_operations (tenant_id, service_id, internal_code, name, display_order, price_cents, duration_minutes, active)
                  values (${catalogTenant.id}, ${serviceId}, ${name.toUpperCase()}, ${name}, ${order}, 1000, 30, ${name !== "Beta"})`;
    }
  });

  it("lists operations as a root JSON array, display_order ASC NULLS LAST, then name", async () => {
    const res = await get("/api/v1/service-operations");
    expect(res.status).toBe(200);
    expect(Array.isArray(res.body)).toBe(true);
    expect(res.body.map((o: { name: string }) => o.name)).toEqual(["Gamma", "Zeta", "Beta", "Aardvark", "Alpha"]);
  });

  it("filters by active and service_id", async () => {
    expect((await get("/api/v1/service-operations?active=false")).body.map((o: { name: string }) => o.name)).toEqual(["Beta"]);
    expect((await get(`/api/v1/service-operations?service_id=${serviceId}`)).body).toHaveLength(5);
    expect((await get(`/api/v1/service-operations?service_id=${randomUUID()}`)).body).toEqual([]);
  });

  it("answers 304 with no body to a matching If-None-Match, on lists and items", async () => {
    const list = await get("/api/v1/service-operations");
    const tag = list.headers.get("etag")!;
    expect(tag).toMatch(/^"[^"]+"$/);
    const again = await get("/api/v1/service-operations", { "if-none-match": tag });
    expect(again.status).toBe(304);
    expect(again.body).toBeUndefined();
    const item = await get(`/api/v1/service-operations/${list.body[0].id}`);
    const itemAgain = await get(`/api/v1/service-operations/${list.body[0].id}`, { "if-none-match": item.headers.get("etag")! });
    expect(itemAgain.status).toBe(304);
    const services = await get("/api/v1/services");
    expect((await get("/api/v1/services", { "if-none-match": services.headers.get("etag")! })).status).toBe(304);
  });

  it("writes Express's own strong ETag, byte for byte, for any body (server/http/etag.ts)", async () => {
    const expressEtag = express().set("etag", "strong").get("etag fn") as (body: string | Buffer, encoding?: BufferEncoding) => string;
    for (const body of ["", "{}", JSON.stringify({ name: "Ünïcødé ☃ \u0000", notes: "x".repeat(5000) }), Buffer.from([0, 1, 2, 255])]) {
      expect(strongEtag(body)).toBe(expressEtag(typeof body === "string" ? Buffer.from(body) : body));
    }
    // Over HTTP: the header is the ETag of the exact bytes answered; a catalog list's, of the
    // catalog version it was read at and those bytes (policies/catalog_versions.sql).
    const headers = { authorization: `Bearer ${tokenFor(member)}`, "x-tenant-id": catalogTenant.slug };
    const list = await fetch(`${api.url}/api/v1/service-operations`, { headers });
    expect(list.status).toBe(200);
    const bytes = Buffer.from(await list.arrayBuffer());
    expect(list.headers.get("etag")).toBe(strongEtag(`${list.headers.get("catalog-version")}\n${bytes.toString("utf8")}`));
    const [first] = JSON.parse(bytes.toString("utf8"));
    const item = await fetch(`${api.url}/api/v1/service-operations/${first.id}`, { headers });
    expect(item.status).toBe(200);
    expect(item.headers.get("etag")).toBe(expressEtag(Buffer.from(await item.arrayBuffer())));
  });

  it("changes a list's ETag with every catalog version, also one that leaves the list's bytes as they were", async () => {
    const before = await get("/api/v1/service-operations");
    // A version that changes only a service: the operations' bytes stay, their version moves.
    const [{ id }] = await owner`insert into app.services (tenant_id, name) values (${catalogTenant.id}, ${`Other ${randomUUID()}`}) returning id`;
    const after = await get("/api/v1/service-operations", { "if-none-match": before.headers.get("etag")! });
    expect(after.status).toBe(200);
    expect(JSON.stringify(after.body)).toBe(JSON.stringify(before.body));
    expect(Number(after.headers.get("catalog-version"))).toBe(Number(before.headers.get("catalog-version")) + 1);
    expect(after.headers.get("etag")).not.toBe(before.headers.get("etag"));
    await owner`delete from app.services where id = ${id}`;
  });

  it("compares If-None-Match weakly (W/ ignored, * matches), as Express's req.fresh does, with its cache policy", async () => {
    const list = await get("/api/v1/service-operations");
    expect(list.headers.get("cache-control")).toBe("private, no-cache");
    expect((await get("/api/v1/service-operations", { "if-none-match": `W/${list.headers.get("etag")}` })).status).toBe(304);
    expect((await get("/api/v1/service-operations", { "if-none-match": `"nope", ${list.headers.get("etag")}` })).status).toBe(304);
    expect((await get("/api/v1/service-operations", { "if-none-match": "*" })).status).toBe(304);
    expect((await get("/api/v1/service-operations", { "if-none-match": '"nope"' })).status).toBe(200);
  });

  it("changes the ETag after any catalog write", async () => {
    const before = (await get("/api/v1/service-operations")).headers.get("etag")!;
    const first = (await get("/api/v1/service-operations")).body[0];
    const patched = await api.request("PATCH", `/api/v1/service-operations/${first.id}`, { token: tokenFor(member), tenant: catalogTenant.slug, body: { price_cents: 1001 } });
    expect(patched.status).toBe(200);
    const after = await get("/api/v1/service-operations", { "if-none-match": before });
    expect(after.status).toBe(200);
    expect(after.headers.get("etag")).not.toBe(before);
  });
});

// Bad input gets a clear 4xx with a stable code and the standard error body; never a 500.
import { connect } from "node:net";
import { beforeAll, describe, expect, it } from "vitest";
import { makeTenant, makeUser, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi();
let tenant: Tenant;
let user: User;

beforeAll(async () => {
  tenant = await makeTenant(owner);
  user = await makeUser(owner, tenant, "owner");
});

const call = (method: string, path: string, o: { body?: unknown; headers?: Record<string, string> } = {}) =>
  api.request(method, path, { token: tokenFor(user), tenant: tenant.slug, ...o });

describe("malformed and invalid input", () => {
  const cases: [string, () => ReturnType<typeof call>, number, string][] = [
    ["a path id that is not a uuid", () => call("GET", "/api/v1/customers/123"), 400, "INVALID_ID"],
    ["a PATCH path id that is not a uuid", () => call("PATCH", "/api/v1/customers/x'--", { body: { name: "a" } }), 400, "INVALID_ID"],
    ["limit out of range", () => call("GET", "/api/v1/customers?limit=500"), 400, "INVALID_PARAMETER"],
    ["limit not a number", () => call("GET", "/api/v1/customers?limit=ten"), 400, "INVALID_PARAMETER"],
    ["an unknown query parameter", () => call("GET", "/api/v1/customers?tenant_id=x"), 400, "INVALID_PARAMETER"],
    ["a forged cursor", () => call("GET", "/api/v1/customers?cursor=bm9wZQ"), 400, "INVALID_CURSOR"],
    ["malformed JSON", () => call("POST", "/api/v1/customers", { body: "{name:" }), 400, "MALFORMED_JSON"],
    ["no body on create", () => call("POST", "/api/v1/customers"), 400, "BODY_REQUIRED"],
    ["a JSON array body", () => call("POST", "/api/v1/customers", { body: [] }), 422, "VALIDATION_FAILED"],
    ["a missing name", () => call("POST", "/api/v1/customers", { body: { email: "a@b.test" } }), 422, "VALIDATION_FAILED"],
    ["a blank name", () => call("POST", "/api/v1/customers", { body: { name: "   " } }), 422, "VALIDATION_FAILED"],
    ["a bad email", () => call("POST", "/api/v1/customers", { body: { name: "A", email: "not-an-email" } }), 422, "VALIDATION_FAILED"],
    ["a wrong type", () => call("POST", "/api/v1/customers", { body: { name: 42 } }), 422, "VALIDATION_FAILED"],
    ["an empty PATCH", () => call("PATCH", "/api/v1/customers/8d1e5a8c-0000-4000-8000-000000000000", { body: {} }), 422, "VALIDATION_FAILED"],
    ["a body that is not JSON", () => call("POST", "/api/v1/customers", { body: "name=a", headers: { "content-type": "application/x-www-form-urlencoded" } }), 415, "UNSUPPORTED_MEDIA_TYPE"],
    ["a text/plain body", () => call("POST", "/api/v1/customers", { body: '{"name":"a"}', headers: { "content-type": "text/plain" } }), 415, "UNSUPPORTED_MEDIA_TYPE"],
    ["a body over the limit", () => call("POST", "/api/v1/customers", { body: { name: "a", notes: "x".repeat(200_000) } }), 413, "PAYLOAD_TOO_LARGE"],
    ["a NUL byte in q", () => call("GET", "/api/v1/customers?q=a%00b"), 400, "INVALID_PARAMETER"],
    ["a NUL byte in a body string", () => call("POST", "/api/v1/customers", { body: { name: "a\u0000b" } }), 422, "VALIDATION_FAILED"],
    ["a NUL byte in a property name", () => call("POST", "/api/v1/customers", { body: '{"name":"a","x\\u0000":1}' }), 422, "VALIDATION_FAILED"],
    ["a lone surrogate in a body string", () => call("POST", "/api/v1/customers", { body: '{"name":"a\\ud800"}' }), 422, "VALIDATION_FAILED"],
    ["a malformed percent-escape in a path id", () => call("GET", "/api/v1/customers/%E0"), 400, "MALFORMED_URI"],
    ["a malformed percent-escape in the tenant path", () => call("GET", "/api/v1/t/%E0/customers"), 400, "MALFORMED_URI"],
    ["JSON nested 10,000 deep", () => call("POST", "/api/v1/customers", { body: "[".repeat(10_000) + "]".repeat(10_000) }), 400, "BODY_TOO_DEEP"],
    ["an unknown route", () => call("GET", "/api/v1/nothing-here"), 404, "ROUTE_NOT_FOUND"],
  ];
  for (const [label, send, status, code] of cases) {
    it(`${label} → ${status} ${code}`, async () => {
      const res = await send();
      expect(res.status).toBe(status);
      expect(res.body).toEqual({ error: expect.objectContaining({ code, message: expect.any(String), request_id: expect.any(String) }) });
      expect(JSON.stringify(res.body)).not.toMatch(/select |insert |stack|at .*\.ts/i);
    });
  }

  it("loses nothing: none of the rejected bodies created a row", async () => {
    const [{ n }] = await owner`select count(*)::int as n from app.customers where tenant_id = ${tenant.id}`;
    expect(n).toBe(0);
  });
});

it("a malformed percent-escape in the path is 400 before authentication", async () => {
  const res = await api.request("GET", "/api/v1/t/%E0/customers");
  expect(res.status).toBe(400);
  expect(res.body.error).toMatchObject({ code: "MALFORMED_URI", request_id: expect.any(String) });
});

describe("requests Node's HTTP parser refuses", () => {
  it("a request line over 16 KiB is 431 HEADERS_TOO_LARGE with the error body", async () => {
    const res = await call("GET", `/api/v1/customers?q=${"x".repeat(20_000)}`);
    expect(res.status).toBe(431);
    expect(res.body.error).toMatchObject({ code: "HEADERS_TOO_LARGE", request_id: expect.any(String) });
  });

  it("malformed HTTP is 400 MALFORMED_REQUEST with the error body", async () => {
    const { port } = new URL(api.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1", () => socket.write("GARBAGE\r\n\r\n"));
      let text = "";
      socket.on("data", (c) => (text += c.toString()));
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)).error).toMatchObject({ code: "MALFORMED_REQUEST", request_id: expect.any(String) });
  });
});

describe("request ids", () => {
  it("echoes a sane X-Request-Id and puts it in the error body", async () => {
    const res = await call("GET", "/api/v1/customers/nope", { headers: { "x-request-id": "trace-123" } });
    expect(res.headers.get("x-request-id")).toBe("trace-123");
    expect(res.body.error.request_id).toBe("trace-123");
  });

  it("replaces an unreasonable one with a generated id", async () => {
    const res = await call("GET", "/api/v1/customers", { headers: { "x-request-id": "bad id with spaces" } });
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("health", () => {
  it("/healthz answers 200 and /readyz says the database is at head", async () => {
    expect((await api.request("GET", "/healthz")).status).toBe(200);
    const ready = await api.request("GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe("ready");
  });
});

// One request, one network round trip: on a warm connection the API writes BEGIN, the
// context, the query and COMMIT in one flight and reads the answers back. Proved at the
// protocol level with a TCP proxy between the pool and PostgreSQL that counts client
// flights (a client write that follows a server answer starts a new round trip).
import { createConnection, createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { db, makeCustomers, makeTenant, makeUser, startApi, tokenFor, useDatabase, type Api, type Tenant, type User } from "./fixtures.ts";

const { owner } = useDatabase();
let api: Api;
let proxy: Server;
let tenant: Tenant;
let user: User;
let ids: string[];
let flights = 0;

beforeAll(async () => {
  const target = new URL(db.appUrl);
  proxy = createServer((client) => {
    const server = createConnection({ host: target.hostname, port: Number(target.port) });
    let serverSpoke = true;
    client.on("data", (chunk) => {
      if (serverSpoke) flights++;
      serverSpoke = false;
      server.write(chunk);
    });
    server.on("data", (chunk) => {
      serverSpoke = true;
      client.write(chunk);
    });
    client.on("close", () => server.destroy());
    server.on("close", () => client.destroy());
    client.on("error", () => server.destroy());
    server.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", () => resolve()));
  const viaProxy = new URL(db.appUrl);
  viaProxy.port = String((proxy.address() as { port: number }).port);

  api = await startApi({ poolMax: 1, databaseUrl: viaProxy.toString() });
  tenant = await makeTenant(owner);
  user = await makeUser(owner, tenant, "owner");
  ids = await makeCustomers(owner, tenant, 10);
});

afterAll(async () => {
  await api.close();
  proxy.close();
});

/** Round trips of one request, after two warm-up requests have prepared its statements. */
async function roundTrips(send: () => Promise<{ status: number }>): Promise<number> {
  await send();
  await send();
  flights = 0;
  const res = await send();
  expect(res.status).toBeLessThan(300);
  return flights;
}

describe("database round trips per request on a warm connection", () => {
  const call = (method: string, path: string, body?: unknown) => () =>
    api.request(method, path, { token: tokenFor(user), tenant: tenant.slug, body });

  it("GET a customer by id costs one round trip", async () => {
    expect(await roundTrips(call("GET", `/api/v1/customers/${ids[0]}`))).toBe(1);
  });

  it("GET a page of customers costs one round trip", async () => {
    expect(await roundTrips(call("GET", "/api/v1/customers?limit=5"))).toBe(1);
  });

  it("POST a customer costs one round trip", async () => {
    expect(await roundTrips(call("POST", "/api/v1/customers", { name: "Pipelined" }))).toBe(1);
  });

  it("PATCH a customer costs one round trip", async () => {
    expect(await roundTrips(call("PATCH", `/api/v1/customers/${ids[1]}`, { notes: "warm" }))).toBe(1);
  });

  it("a refused tenant costs one round trip too", async () => {
    const other = await makeTenant(owner);
    const send = () => api.request("GET", "/api/v1/customers", { token: tokenFor(user), tenant: other.slug });
    await send();
    flights = 0;
    expect((await send()).status).toBe(404);
    expect(flights).toBe(1);
  });
});

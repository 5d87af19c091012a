// GET /api/v1/audit/export.csv: 100,000 rows streamed from a COPY of the query, content and CSV
// quoting checked, rows arriving before the query has finished, the export audited, a client
// leaving half way.
import { request as httpRequest } from "node:http";
import { beforeAll, describe, expect, it } from "vitest";
import { makeTenant, makeUser, startApi, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";

const { owner, api } = useApi();
let big: Tenant;
let bigOwner: User;

beforeAll(async () => {
  big = await makeTenant(owner);
  bigOwner = await makeUser(owner, big, "owner");
  // One statement, 100,000 rows: the statement-level trigger writes 100,000 audit rows.
  await owner`insert into app.customers (tenant_id, name)
              select ${big.id}, case when g = 1 then 'Quote "me", please' else 'bulk ' || g end from generate_series(1, 100000) g`;
}, 120_000);

const exportsOf = async () => (await owner`select count(*)::int as n from app.audit_log where tenant_id = ${big.id} and action = 'audit.export'`)[0].n;

describe("audit export", () => {
  it("streams 100,000 rows with correct CSV quoting, before the query has finished, and audits the export", async () => {
    let exportsAtFirstChunk = -1;
    const { status, headers, text } = await new Promise<{ status: number; headers: Record<string, unknown>; text: string }>((resolve, reject) => {
      const req = httpRequest(`${api.url}/api/v1/audit/export.csv?entity=customers`, { headers: { authorization: `Bearer ${tokenFor(bigOwner)}`, "x-tenant-id": big.slug } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => {
          chunks.push(c);
          if (chunks.length === 1) {
            // The export's own audit row commits with its transaction: invisible now means the
            // rows are arriving while the query still runs (streaming, not buffering).
            res.pause();
            exportsOf().then((n) => {
              exportsAtFirstChunk = n;
              res.resume();
            }, reject);
          }
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(200);
    expect(headers["content-type"]).toMatch(/^text\/csv/);
    expect(headers["content-disposition"]).toMatch(/^attachment; filename="?audit-\d{4}-\d{2}-\d{2}\.csv"?$/);
    expect(exportsAtFirstChunk).toBe(0);
    const lines = text.trimEnd().split("\n");
    expect(lines[0]).toBe("id,occurred_at,actor_user_id,actor_role,request_id,action,entity,entity_id,change,seq");
    expect(lines).toHaveLength(100_001);
    expect(lines.slice(1).every((l) => /^\d+,\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z,.*,insert,customers,/.test(l))).toBe(true);
    // The change column is JSON with quotes and commas: quoted, inner quotes doubled.
    expect(text).toContain('"{""new"": {""id"": ');
    expect(text).toContain('""name"": ""Quote \\""me\\"", please""');
    expect(await exportsOf()).toBe(1);
  }, 120_000);

  it("outlives the statement timeout: a slow reader still gets every row", async () => {
    // The COPY is one statement to PostgreSQL; with the pool's 300 ms timeout and a reader
    // that stalls for a second, the export must still complete.
    const slow = await startApi({ statementTimeoutMs: 300 });
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const req = httpRequest(`${slow.url}/api/v1/audit/export.csv?entity=customers`, { headers: { authorization: `Bearer ${tokenFor(bigOwner)}`, "x-tenant-id": big.slug } }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => {
            chunks.push(c);
            if (chunks.length === 1) {
              res.pause();
              setTimeout(() => res.resume(), 1000);
            }
          });
          res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end();
      });
      expect(text.trimEnd().split("\n")).toHaveLength(100_001);
    } finally {
      await slow.close();
    }
  }, 60_000);

  it("a client leaving half way still leaves the export audited and gives the connection back", async () => {
    // One export connection: if the abandoned COPY held it, the next export would be refused.
    const single = await startApi({ poolMax: 1, exportMax: 1 });
    try {
      const before = await exportsOf();
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${single.url}/api/v1/audit/export.csv?entity=customers`, { headers: { authorization: `Bearer ${tokenFor(bigOwner)}`, "x-tenant-id": big.slug } }, (res) => {
          res.once("data", () => (req.destroy(), resolve()));
          res.on("error", () => {});
        });
        req.on("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNRESET" ? undefined : reject(e)));
        req.end();
      });
      // The abandoned export cancels its COPY and commits its audit row, then frees its
      // connection: a second export gets it (EXPORTS_BUSY until then; polled, with a deadline that
      // holds on a busy 2-core machine).
      const started = performance.now();
      let next = await single.request("GET", "/api/v1/audit/export.csv?entity=no_such_table", { token: tokenFor(bigOwner), tenant: big.slug });
      while (next.status === 503 && next.body.error.code === "EXPORTS_BUSY" && performance.now() - started < 10_000) {
        await new Promise((r) => setTimeout(r, 20));
        next = await single.request("GET", "/api/v1/audit/export.csv?entity=no_such_table", { token: tokenFor(bigOwner), tenant: big.slug });
      }
      expect(next.status, JSON.stringify(next.body)).toBe(200);
      expect(String(next.body).trimEnd().split("\n")).toHaveLength(1);
      expect(await exportsOf()).toBe(before + 2);
    } finally {
      await single.close();
    }
  }, 60_000);

  it("applies the same filters as the list, and another tenant's export holds none of these rows", async () => {
    const other = await makeTenant(owner);
    const otherOwner = await makeUser(owner, other, "owner");
    const res = await api.request("GET", "/api/v1/audit/export.csv?entity=customers", { token: tokenFor(otherOwner), tenant: other.slug });
    expect(res.status).toBe(200);
    expect(String(res.body).trimEnd().split("\n")).toHaveLength(1);
    const bad = await api.request("GET", "/api/v1/audit/export.csv?entity=Not-A-Table", { token: tokenFor(bigOwner), tenant: big.slug });
    expect([bad.status, bad.body.error.code]).toEqual([400, "INVALID_PARAMETER"]);
  });
});

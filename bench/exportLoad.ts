// The streaming export measured: N audit rows of one tenant as CSV through the API
// (GET /api/v1/audit/export.csv), with the API process's resident memory sampled while it
// streams, against psql's \copy of the same query where psql exists. Both are read as streams
// and only counted, so neither side buffers the export.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import type { Sql } from "../server/db/connections.ts";

export type ExportResult = {
  rows: number;
  bytes: number;
  seconds: number;
  rows_per_second: number;
  mb_per_second: number;
  status?: number;
  rss_baseline_mb?: number;
  rss_peak_mb?: number;
  rss_growth_mb?: number;
};

const MB = 1024 * 1024;

/** Tenant `slug` holding at least `rows` audit rows (seeded set-based as the owner), with an owner member. */
export async function seedAuditTenant(owner: Sql, slug: string, rows: number): Promise<{ tenantId: string; userId: string }> {
  const email = `owner@${slug}.test`;
  await owner`insert into app.tenants (slug, name) values (${slug}, ${slug}) on conflict (slug) do nothing`;
  await owner`insert into app.users (email) values (${email}) on conflict do nothing`;
  const [t] = await owner`
    select t.id as tenant_id, u.id as user_id from app.tenants t, app.users u
     where t.slug = ${slug} and lower(u.email) = ${email}`;
  await owner`insert into app.memberships (tenant_id, user_id, role) values (${t.tenant_id}, ${t.user_id}, 'owner') on conflict do nothing`;
  const [{ n }] = await owner`select count(*)::int as n from app.audit_log where tenant_id = ${t.tenant_id}`;
  if (n < rows) await auditRows(owner, t.tenant_id, t.user_id, rows - n);
  return { tenantId: t.tenant_id, userId: t.user_id };
}

/** Appends `count` realistic audit rows (a customer rename each, with a quote and a comma to escape). */
export async function auditRows(owner: Sql, tenantId: string, userId: string, count: number): Promise<void> {
  await owner`
    insert into app.audit_log (tenant_id, actor_user_id, actor_role, request_id, action, entity, entity_id, change)
    select ${tenantId}, ${userId}, 'owner', 'bench-' || g, 'update', 'customers', gen_random_uuid()::text,
           jsonb_build_object('changed', jsonb_build_object('name', jsonb_build_object(
             'old', 'Customer ' || g, 'new', 'Customer ' || g || ', "renamed"')))
      from generate_series(1, ${count}::int) g`;
  await owner`analyze app.audit_log`;
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

/** Streams the export from the API, counting rows and bytes, sampling the API's RSS every 50 ms. */
export async function exportThroughApi(url: string, headers: Record<string, string>, apiPid: number): Promise<ExportResult> {
  const baseline = rssMb(apiPid);
  let peak = baseline;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssMb(apiPid));
    } catch {
      // the process is gone; the request will fail on its own
    }
  }, 50);
  const started = performance.now();
  try {
    const { status, bytes, lines } = await new Promise<{ status: number; bytes: number; lines: number }>((resolve, reject) => {
      const req = request(`${url}/api/v1/audit/export.csv`, { headers }, (res) => {
        let bytes = 0;
        let lines = 0;
        res.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, lines }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
    peak = Math.max(peak, rssMb(apiPid));
    const seconds = (performance.now() - started) / 1000;
    const rows = Math.max(0, lines - 1); // the header line
    return {
      rows, bytes, seconds, status, rows_per_second: rows / seconds, mb_per_second: bytes / MB / seconds,
      rss_baseline_mb: baseline, rss_peak_mb: peak, rss_growth_mb: peak - baseline,
    };
  } finally {
    clearInterval(sampler);
  }
}

/** psql's \copy of the same query (as the owner, with the tenant as an explicit filter), counted as it streams. */
export async function exportThroughPsql(ownerUrl: string, tenantId: string): Promise<ExportResult | string> {
  if (spawnSync("sh", ["-c", "command -v psql"]).status !== 0) return "psql not installed (Debian: apt-get install postgresql-client)";
  const query = `select id::text, occurred_at, actor_user_id, actor_role, request_id, action, entity, entity_id, change::text, seq::text
                   from app.audit_log where tenant_id = '${tenantId}' order by id`.replace(/\s+/g, " ");
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn("psql", ["-X", "-q", ownerUrl, "-c", `\\copy (${query}) to stdout with (format csv, header)`], { stdio: ["ignore", "pipe", "pipe"] });
    let bytes = 0;
    let lines = 0;
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
    });
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => {
      if (code !== 0) return resolve(`psql failed: ${stderr.split("\n")[0]}`);
      const seconds = (performance.now() - started) / 1000;
      const rows = Math.max(0, lines - 1);
      resolve({ rows, bytes, seconds, rows_per_second: rows / seconds, mb_per_second: bytes / MB / seconds });
    });
  });
}

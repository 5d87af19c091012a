// deploy/monitoring/: the alert rules, their promtool unit tests and the Grafana dashboard.
// - promtool (Debian's `prometheus` package) checks the rules, runs alerts.test.yml, and parses
//   every panel's PromQL (as recording rules of a generated file); each alert made to never fire,
//   and to always fire, must fail its unit tests. Without promtool these are skipped with a
//   message, except under .ci/run, which installs it and sets REQUIRE_PROMTOOL=1.
// - Every metric the rules and the dashboard name has a sample in a scrape of the running API
//   (after requests that produce each series) or in the audit job's textfiles; every error code
//   and route they match is one the server has; every runbook link leads to a section.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { parser } from "@prometheus-io/lezer-promql";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { createApp } from "../server/app.ts";
import { routeInventory } from "../server/http/routeInventory.ts";
import { keys, makeCustomers, makeTenant, makeUser, startApi, tokenFor, useApi, type Tenant, type User } from "./fixtures.ts";
import { brokenTarget } from "./markdown.ts";
import { root, run, superuserUrlFor, useGolden } from "./scratch.ts";
import { freePort } from "./testDatabase.ts";

const dir = join(root, "deploy/monitoring");
// A scratch database for the audit job's commands: other test files break chains in the shared one.
const golden = useGolden("monitoring");
const promtool = [...(process.env.PATH ?? "").split(delimiter), "/usr/bin"].map((d) => join(d, "promtool")).find((p) => existsSync(p));
// .ci/run sets REQUIRE_PROMTOOL=1 where it can install Debian's prometheus package: there a missing
// promtool fails these tests instead of skipping them, so CI never passes without having run them.
const required = process.env.REQUIRE_PROMTOOL === "1";
if (!promtool && !required) {
  console.warn("test/monitoring.test.ts: the promtool checks are skipped: promtool is not installed. Install it with " +
    "`apt-get install -y prometheus` (Debian/Ubuntu; .ci/run does this), then run `npx vitest run test/monitoring.test.ts`.");
}

type Rule = { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
type RuleFile = { groups: { name: string; rules: Rule[] }[] };
type AlertTest = { eval_time: string; alertname: string; exp_alerts: unknown[] };
type TestFile = { rule_files: string[]; tests: { name: string; alert_rule_test?: AlertTest[] }[] } & Record<string, unknown>;
type Panel = { title: string; type: string; panels?: Panel[]; targets?: { refId: string; expr: string }[] };

const rulesText = readFileSync(join(dir, "alerts.yml"), "utf8");
const rules = parse(rulesText) as RuleFile;
const allRules = rules.groups.flatMap((g) => g.rules);
const alerts = allRules.filter((r) => r.alert);
const unitTests = parse(readFileSync(join(dir, "alerts.test.yml"), "utf8")) as TestFile;
const dashboard = JSON.parse(readFileSync(join(dir, "dashboard.json"), "utf8")) as { panels: Panel[]; templating: { list: { name: string; definition?: string }[] } };

/** promtool with `args`, from `cwd`; its exit code and output. */
function promtoolRun(args: string[], cwd = root): Promise<{ code: number; output: string }> {
  if (!promtool) throw new Error("REQUIRE_PROMTOOL=1 but promtool is not installed (apt-get install -y prometheus)");
  return new Promise((resolve) => {
    execFile(promtool, args, { cwd, timeout: 120_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, output: stdout + stderr }));
  });
}

/** Every panel with its queries, rows' panels included. */
function panelsOf(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
}
const queries = panelsOf(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));

/** A panel's query as Prometheus receives it: Grafana's variables filled in. Any other variable is an error. */
function concrete(expr: string): string {
  const filled = expr.replaceAll("$__rate_interval", "5m").replace(/\$\{?job\}?/g, "rls-service-shop");
  if (filled.includes("$")) throw new Error(`a dashboard query uses a variable the check does not know: ${expr}`);
  return filled;
}

/** A rules file holding `exprs` as recording rules: promtool check rules then parses each one. */
function recordingRules(exprs: { name: string; expr: string }[]): string {
  return stringify({ groups: [{ name: "dashboard", rules: exprs.map((e) => ({ record: e.name, expr: e.expr })) }] });
}

type Selector = { metric: string; matchers: { label: string; op: string; value: string }[] };

/** The series selectors of a PromQL expression, read by Prometheus's own grammar (lezer-promql). */
function selectors(expr: string): Selector[] {
  const found: Selector[] = [];
  const cursor = parser.parse(expr).cursor();
  do {
    if (cursor.type.isError) throw new Error(`not PromQL: ${expr}`);
    if (cursor.name !== "VectorSelector") continue;
    const node = cursor.node;
    const selector: Selector = { metric: "", matchers: [] };
    const identifier = node.getChild("Identifier");
    if (identifier) selector.metric = expr.slice(identifier.from, identifier.to);
    for (const m of node.getChild("LabelMatchers")?.getChildren("UnquotedLabelMatcher") ?? []) {
      const text = (n: typeof m | null) => (n ? expr.slice(n.from, n.to) : "");
      selector.matchers.push({ label: text(m.getChild("LabelName")), op: text(m.getChild("MatchOp")), value: JSON.parse(text(m.getChild("StringLiteral"))) as string });
    }
    const byName = selector.matchers.find((m) => m.label === "__name__");
    if (byName) selector.metric = byName.value;
    found.push(selector);
  } while (cursor.next());
  return found;
}

const everyExpr = [
  ...allRules.map((r) => ({ where: `alerts.yml ${r.alert ?? r.record}`, expr: r.expr })),
  ...queries.map((q) => ({ where: `dashboard.json "${q.panel}" ${q.refId}`, expr: concrete(q.expr) })),
];
// Names the rules record themselves, and Prometheus's own series for each target.
const recorded = new Set(allRules.flatMap((r) => (r.record ? [r.record] : [])));
const fromPrometheus = new Set(["up"]);

/** Metric names `exprs` use that none of `exported` has a sample of. */
function missingNames(exprs: typeof everyExpr, exported: Set<string>): string[] {
  return exprs.flatMap(({ where, expr }) => selectors(expr)
    .filter((s) => !recorded.has(s.metric) && !fromPrometheus.has(s.metric) && !exported.has(s.metric))
    .map((s) => `${where}: ${s.metric}`));
}

/** Sample names in Prometheus text (a histogram's _bucket, _sum and _count each). */
function sampleNames(text: string): Set<string> {
  return new Set(text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/)![0]));
}

const sample = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

/** Every error code the server can answer: the UPPER_SNAKE string literals of server/. */
function serverCodes(): string[] {
  const files = (d: string): string[] => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? files(join(d, f)) : f.endsWith(".ts") ? [join(d, f)] : []));
  return [...new Set(files(join(root, "server")).flatMap((f) => [...readFileSync(f, "utf8").matchAll(/"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,})"/g)].map((m) => m[1])))];
}

/** Matchers on `code` and `route` whose value names nothing the server has (a typo silences an alert). */
function unknownValues(exprs: typeof everyExpr, values: { code: string[]; route: string[] }): string[] {
  return exprs.flatMap(({ where, expr }) => selectors(expr).flatMap((s) => s.matchers.flatMap((m) => {
    const known = m.label === "code" ? values.code : m.label === "route" ? values.route : undefined;
    if (!known) return [];
    const matches = m.op.endsWith("~") ? (v: string) => new RegExp(`^(?:${m.value})$`).test(v) : (v: string) => v === m.value;
    return known.some(matches) ? [] : [`${where}: ${m.label}${m.op}"${m.value}"`];
  })));
}

describe("alert rules (deploy/monitoring/alerts.yml)", () => {
  it("each alert has a severity, a summary, a description and a runbook link to a runbook's section", () => {
    expect(alerts.length).toBeGreaterThanOrEqual(15);
    for (const a of alerts) {
      expect(["critical", "warning"], `${a.alert}: severity`).toContain(a.labels?.severity);
      expect(a.annotations?.summary, `${a.alert}: summary`).toBeTruthy();
      expect(a.annotations?.description, `${a.alert}: description`).toBeTruthy();
      const link = a.annotations?.runbook_url ?? "";
      expect(link, `${a.alert}: runbook_url names a section of a runbook`).toMatch(/^runbooks\/[\w.-]+\.md#.+/);
      expect(brokenTarget("README.md", link), `${a.alert}: runbook_url`).toBeUndefined();
    }
  });

  it("each alert has a unit test where it fires and one where it stays silent on normal series", () => {
    for (const a of alerts) {
      const groups = unitTests.tests.filter((t) => t.alert_rule_test?.some((x) => x.alertname === a.alert));
      const own = (g: (typeof groups)[number]) => g.alert_rule_test!.filter((x) => x.alertname === a.alert);
      expect(groups.some((g) => own(g).some((x) => x.exp_alerts.length > 0)), `${a.alert} has no test where it fires`).toBe(true);
      expect(groups.some((g) => own(g).every((x) => x.exp_alerts.length === 0)), `${a.alert} has no test where it stays silent`).toBe(true);
    }
  });
});

describe.skipIf(!promtool && !required)("promtool", () => {
  let scratch: string;
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), "rls-shop-promtool-"));
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("promtool check rules accepts alerts.yml", async () => {
    const r = await promtoolRun(["check", "rules", "deploy/monitoring/alerts.yml"]);
    expect(r.output).toContain(`SUCCESS: ${allRules.length} rules found`);
    expect(r.code).toBe(0);
  });

  it("promtool test rules: every alert fires on its series and stays silent on the normal ones", async () => {
    const r = await promtoolRun(["test", "rules", "alerts.test.yml"], dir);
    expect(r.output).toContain("SUCCESS");
    expect(r.code, r.output).toBe(0);
  });

  it("canary: each alert made to never fire, or to always fire, fails its unit tests", async () => {
    // One alert changed at a time, run against its own tests only (two at once: 2 cores).
    const cases = alerts.flatMap((a) => [["never", "vector(1) < 0"], ["always", "vector(1)"]].map(([kind, expr]) => ({ alert: a.alert!, kind, expr })));
    const failures: string[] = [];
    const check = async ({ alert, kind, expr }: (typeof cases)[number]) => {
      const d = mkdtempSync(join(scratch, `${alert}-${kind}-`));
      const mutated = { groups: rules.groups.map((g) => ({ ...g, rules: g.rules.map((r) => (r.alert === alert ? { ...r, expr } : r)) })) };
      writeFileSync(join(d, "alerts.yml"), stringify(mutated));
      const own = unitTests.tests.filter((t) => t.alert_rule_test?.some((x) => x.alertname === alert));
      writeFileSync(join(d, "alerts.test.yml"), stringify({ ...unitTests, tests: own }));
      const r = await promtoolRun(["test", "rules", "alerts.test.yml"], d);
      if (r.code === 0 || !r.output.includes(`alertname: ${alert}`)) failures.push(`${alert} made to ${kind} fire still passes its tests`);
    };
    const queue = [...cases];
    await Promise.all([0, 1].map(async () => {
      for (let c = queue.shift(); c; c = queue.shift()) await check(c);
    }));
    expect(cases.length).toBe(alerts.length * 2);
    expect(failures).toEqual([]);
  }, 240_000);

  it("promtool parses every panel's PromQL in dashboard.json (as recording rules)", async () => {
    expect(queries.length).toBeGreaterThanOrEqual(20);
    const file = join(scratch, "dashboard-rules.yml");
    writeFileSync(file, recordingRules(queries.map((q, i) => ({ name: `dashboard:query_${i}`, expr: concrete(q.expr) }))));
    const r = await promtoolRun(["check", "rules", file]);
    expect(r.output, r.output).toContain(`SUCCESS: ${queries.length} rules found`);
    expect(r.code).toBe(0);
  });

  it("canary: a panel query that is not PromQL fails the check", async () => {
    const file = join(scratch, "broken-rules.yml");
    writeFileSync(file, recordingRules([{ name: "dashboard:broken", expr: concrete(queries[1].expr).replace(/\)$/, "") }]));
    const r = await promtoolRun(["check", "rules", file]);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/parse error|unclosed|unexpected/i);
  });
});

describe("every name the rules and the dashboard use is exported", () => {
  const { owner, api } = useApi();
  let tenant: Tenant;
  let other: Tenant;
  let owner1: User;
  let staff: User;
  let scrape: string;
  let replicaScrape: string;
  let textfiles: string;
  let textDir: string;

  const audit = (command: string, url: string, ...args: string[]) =>
    run(process.execPath, ["--import", "tsx", "server/cli.ts", "audit", command, "--url", url, ...args]);

  beforeAll(async () => {
    [tenant, other] = [await makeTenant(owner), await makeTenant(owner)];
    [owner1, staff] = [await makeUser(owner, tenant, "owner"), await makeUser(owner, tenant, "staff")];
    const [service] = await owner`insert into app.services (tenant_id, name) values (${tenant.id}, 'Brakes') returning id`;
    await owner`insert into app.service_operations (tenant_id, service_id, internal_code, name, price_cents, duration_minutes)
                values (${tenant.id}, ${service.id}, 'OP-1', 'Pads', 1000, 30)`;
    await makeCustomers(owner, tenant, 2);
    const as = (user: User, path: string, o: { method?: string; body?: unknown; tenantRef?: string; headers?: Record<string, string> } = {}) =>
      api.request(o.method ?? "GET", path, { token: tokenFor(user), tenant: o.tenantRef ?? tenant.slug, body: o.body, headers: o.headers });
    // A request of each kind the rules and panels count: 2xx, 304, 404 for another shop and for a row, 403, an export, /readyz.
    const list = await as(owner1, "/api/v1/service-operations");
    expect(list.status).toBe(200);
    expect((await as(owner1, "/api/v1/service-operations", { headers: { "if-none-match": list.headers.get("etag")! } })).status).toBe(304);
    expect((await as(owner1, "/api/v1/customers", { tenantRef: other.slug })).body.error.code).toBe("TENANT_NOT_FOUND");
    expect((await as(owner1, "/api/v1/customers/00000000-0000-4000-8000-000000000000")).body.error.code).toBe("CUSTOMER_NOT_FOUND");
    expect((await as(staff, "/api/v1/customers", { method: "POST", body: { name: "x" } })).status).toBe(403);
    expect((await as(owner1, "/api/v1/audit/export.csv")).status).toBe(200);
    expect((await api.request("GET", "/readyz")).status).toBe(200);
    // A 503: an API whose database refuses connections (its own pool; the first API's comes back after).
    const down = await startApi({ databaseUrl: `postgres://app_user:x@127.0.0.1:${await freePort()}/shop` });
    try {
      expect((await down.request("GET", "/api/v1/customers", { token: tokenFor(owner1), tenant: tenant.slug })).body.error.code).toBe("DATABASE_UNAVAILABLE");
    } finally {
      await down.close();
    }
    // The read-replica series: an API whose one replica cannot be reached (its reads go to the primary).
    const unreachable = await startApi({ readUrls: [`postgres://app_user:x@127.0.0.1:${await freePort()}/shop`] });
    try {
      expect((await unreachable.request("GET", "/api/v1/customers", { token: tokenFor(owner1), tenant: tenant.slug })).status).toBe(200);
      replicaScrape = (await unreachable.request("GET", "/metrics")).body as string;
    } finally {
      await unreachable.close();
    }
    scrape = (await api.request("GET", "/metrics")).body as string;
    // The audit job's textfiles.
    textDir = mkdtempSync(join(tmpdir(), "rls-shop-textfiles-"));
    for (const command of ["seal", "verify"]) {
      const r = await audit(command, golden.ownerUrl, "--metrics-dir", textDir);
      expect(r.code, r.output).toBe(0);
    }
    textfiles = ["audit_seal.prom", "audit_verify.prom"].map((f) => readFileSync(join(textDir, f), "utf8")).join("\n");
  });
  afterAll(() => textDir && rmSync(textDir, { recursive: true, force: true }));

  it("each metric an alert or a panel names has a sample in the API's scrape or the audit job's textfiles", () => {
    const exported = new Set([...sampleNames(scrape), ...sampleNames(replicaScrape), ...sampleNames(textfiles)]);
    expect(everyExpr.length).toBeGreaterThan(35);
    expect(missingNames(everyExpr, exported)).toEqual([]);
    // The dashboard's job variable lists the jobs of a metric too.
    for (const v of dashboard.templating.list) {
      const metric = v.definition?.match(/^label_values\((\w+),/)?.[1];
      if (metric) expect(exported.has(metric), `dashboard variable ${v.name}: ${metric}`).toBe(true);
    }
  });

  it("canary: a name the API does not export is named", () => {
    const exported = new Set([...sampleNames(scrape), ...sampleNames(textfiles)]);
    const wrong = [{ where: "test", expr: 'sum(rate(http_request_total{job="rls-service-shop"}[5m])) / on() group_left max(audit_verify_broken)' }];
    expect(missingNames(wrong, exported)).toEqual(["test: http_request_total"]);
    const lacking = new Set([...exported].filter((n) => n !== "http_errors_total"));
    expect(missingNames(everyExpr, lacking).length).toBeGreaterThan(2);
  });

  it("each error code and route they match is one the server has", () => {
    const routes = routeInventory(createApp({ keys, bodyLimit: "1kb" })).map((r) => r.path);
    const values = { code: serverCodes(), route: routes };
    expect(values.code).toEqual(expect.arrayContaining(["TENANT_NOT_FOUND", "CONTEXT_PROOF_REFUSED", "CONTEXT_KEY_MISMATCH", "ROLE_DEFAULTS_CHANGED", "OVERLOADED"]));
    expect(unknownValues(everyExpr, values)).toEqual([]);
    const typos = [{ where: "test", expr: 'http_unavailable_total{code="CONTEXT_PROOF_REFUSE"} + http_requests_total{route=~"/api/v1/service(/:id)?"}' }];
    expect(unknownValues(typos, values)).toEqual(['test: code="CONTEXT_PROOF_REFUSE"', 'test: route=~"/api/v1/service(/:id)?"']);
  });

  it("the new series count what happened: 404s by code, export bytes, the 503's code", async () => {
    expect(sample(scrape, 'http_errors_total{status="404",code="TENANT_NOT_FOUND"}')).toBe(1);
    expect(sample(scrape, 'http_errors_total{status="404",code="CUSTOMER_NOT_FOUND"}')).toBe(1);
    expect(sample(scrape, 'http_errors_total{status="403",code="FORBIDDEN"}')).toBe(1);
    expect(sample(scrape, 'http_errors_total{status="503",code="DATABASE_UNAVAILABLE"}')).toBe(1);
    expect(scrape).not.toMatch(/^http_errors_total\{status="(200|304)"/m);
    // Export bytes: exactly the bytes of the body an export wrote.
    const before = sample(scrape, "audit_export_bytes_total")!;
    expect(before).toBeGreaterThan(0);
    const csv = await api.request("GET", "/api/v1/audit/export.csv", { token: tokenFor(owner1), tenant: tenant.slug });
    const after = sample((await api.request("GET", "/metrics")).body as string, "audit_export_bytes_total")!;
    expect(after - before).toBe(Buffer.byteLength(csv.body as string));
  });

  it("db_pool_requests_waiting counts requests waiting for a connection", async () => {
    const one = await startApi({ poolMax: 1 });
    const [customer] = await owner`select id from app.customers where tenant_id = ${tenant.id} limit 1`;
    const request = (method: string, path: string, body?: unknown) => one.request(method, path, { token: tokenFor(owner1), tenant: tenant.slug, body });
    const metric = async (name: string) => sample((await one.request("GET", "/metrics")).body as string, name);
    const until = async (name: string, value: number) => {
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) if ((await metric(name)) === value) return;
      throw new Error(`${name} did not reach ${value}`);
    };
    try {
      expect(await metric("db_pool_requests_waiting")).toBe(0);
      // The pool's one connection waits on a row lock held here; the next request waits for the connection.
      const answers = await owner.begin(async (tx) => {
        await tx`select 1 from app.customers where tenant_id = ${tenant.id} and id = ${customer.id} for update`;
        const patch = request("PATCH", `/api/v1/customers/${customer.id}`, { name: "locked" });
        await until("db_pool_connections_in_use", 1);
        const list = request("GET", "/api/v1/customers");
        await until("db_pool_requests_waiting", 1);
        // Not an array: postgres.js would await an array's elements before COMMIT.
        return { patch, list };
      });
      expect((await Promise.all([answers.patch, answers.list])).map((r) => r.status)).toEqual([200, 200]);
      expect(await metric("db_pool_requests_waiting")).toBe(0);
    } finally {
      await one.close();
    }
  });

  it.skipIf(!promtool && !required)("promtool check metrics: the textfiles are clean; the scrape parses, its only lint is prom-client's own nodejs_ names", async () => {
    for (const f of ["audit_seal.prom", "audit_verify.prom"]) {
      const r = await run("bash", ["-c", `${promtool} check metrics < ${join(textDir, f)}`]);
      expect(r.output.trim(), f).toBe("");
      expect(r.code).toBe(0);
    }
    const file = join(textDir, "scrape.txt");
    writeFileSync(file, scrape);
    const r = await run("bash", ["-c", `${promtool} check metrics < ${file}`]);
    expect(r.code, r.output).not.toBe(1);
    const problems = r.output.trim().split("\n").filter(Boolean);
    expect(problems.filter((p) => !p.startsWith("nodejs_"))).toEqual([]);
  });
});

describe("the audit job's textfiles (`audit seal|verify --metrics-dir`)", () => {
  it("verify reports 0 broken, then 1 once a sealed row is changed (and exits 1); with --tenant it writes nothing", async () =>
    golden.withClone(async (s) => {
      const d = mkdtempSync(join(tmpdir(), "rls-shop-textfile-"));
      const verify = (...args: string[]) => run(process.execPath, ["--import", "tsx", "server/cli.ts", "audit", "verify", "--url", s.ownerUrl, ...args]);
      const file = join(d, "audit_verify.prom");
      const su = postgres(superuserUrlFor(s.name), { max: 1, onnotice: () => {} });
      try {
        const started = Date.now() / 1000;
        const ok = await verify("--metrics-dir", d);
        expect(ok.code, ok.output).toBe(0);
        const first = readFileSync(file, "utf8");
        expect(sample(first, "audit_verify_broken")).toBe(0);
        expect(sample(first, "audit_verify_tenants")).toBe(golden.tenants.length);
        expect(sample(first, "audit_verify_last_run_timestamp_seconds")).toBeGreaterThanOrEqual(Math.floor(started));
        expect(readdirSync(d)).toEqual(["audit_verify.prom"]);

        await su.begin(async (tx) => {
          await tx`alter table app.audit_log disable trigger user`;
          await tx`update app.audit_log set actor_role = 'admin' where id = (select min(id) from app.audit_log where tenant_id = ${golden.tenants[0].id} and seq is not null)`;
          await tx`alter table app.audit_log enable trigger user`;
        });
        const broken = await verify("--metrics-dir", d);
        expect(broken.code).toBe(1);
        expect(broken.output).toContain(`BROKEN ${golden.tenants[0].slug}`);
        expect(sample(readFileSync(file, "utf8"), "audit_verify_broken")).toBe(1);

        const one = await verify("--metrics-dir", d, "--tenant", golden.tenants[1].slug);
        expect(one.code).toBe(1);
        expect(one.output).toContain("--metrics-dir reports on every tenant: leave out --tenant");
        expect(sample(readFileSync(file, "utf8"), "audit_verify_broken")).toBe(1);
      } finally {
        await su.end({ timeout: 5 });
        rmSync(d, { recursive: true, force: true });
      }
    }));
});

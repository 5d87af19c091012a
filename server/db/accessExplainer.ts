// The access explainer: whether a member may act on a tenant table, and why, answered by what
// enforces and not beside it. In one transaction that always ends in ROLLBACK, each step in a
// savepoint of its own, it opens the member's context exactly as the API opens it for that
// permission (app.open_tenant_context, from a proof: db/tenantContext.ts), runs the real
// statement as app_user and reads the refusal PostgreSQL raises, mapped by the one SQLSTATE table
// (core/errors.ts). No rule is written again here: the membership, tenant status, feature and
// permission verdicts are the opener's; the row verdict is RLS's; the write verdict is the
// triggers' and the constraints'. Only the per-policy USING / WITH CHECK verdicts are evaluated
// rather than enforced: each policy's expression, as pg_policies holds it, computed on the row in
// the member's context (RLS says only that some policy failed, never which).
//
// What survives the rollback: nothing written (rows, audit rows, counters), except sequence
// steps, which PostgreSQL never takes back: app.audit_log_id_seq when a write probe reached the
// audit trigger, the proof stream of the connection (its last expiry, as every API write moves
// it) and, from the CLI, app.context_streams_id_seq (its stream is registered inside the
// transaction and so dropped with it). Row locks taken by an UPDATE or DELETE probe are held
// until the rollback, under a lock_timeout (409 ROW_LOCKED when another transaction holds it).
import type { Sql } from "./connections.ts";
import { tenantContextProof, type TenantContextArgs } from "./contextProof.ts";
import { expiryGuard, type Guard } from "./proofGuards.ts";
import { AppError, BadRequestError, ConflictError, ValidationError, toAppError } from "../core/errors.ts";

export const EXPLAIN_ACTIONS = ["select", "insert", "update", "delete"] as const;
export type ExplainAction = (typeof EXPLAIN_ACTIONS)[number];

/** What is asked: may this user (null: no account of this shop) do `action` on `table` (its row `id`) in this shop? */
export type ExplainQuestion = { tenantId: string; userId: string | null; email: string; table: string; id?: string; action: ExplainAction; requestId: string };

/** The table as the catalog and the permission registries describe it. */
export type TablePlan = {
  table: string; readPermission: string; writePermission: string | null; appendOnly: boolean;
  key: { column: string; type: string } | null; copyColumns: string[];
};

/** Where the explainer's transaction runs: one connection, and how its proofs and its row are had. */
export type ExplainerConnection = {
  sql: Sql;
  /** A write proof's guard: the connection's stream (db/proofGuards.ts). */
  writeGuard: () => Promise<Guard>;
  /**
   * The row named (or, with no id, the shop's first), as the operator (the owner role) or the API's
   * caller (their own context, for the table's read permission) reads it, or null. Runs inside the
   * transaction before `prepare`; leaves no context behind.
   */
  readRow: (sql: Sql, plan: TablePlan, tenantId: string, id: string | undefined) => Promise<Record<string, unknown> | null>;
  /** After readRow, before the member's steps: the CLI acts as app_user from here (rolled back with the rest). */
  prepare?: (sql: Sql) => Promise<void>;
};

export type StepName = "membership" | "feature" | "permission" | "policies" | "statement" | "triggers";
export type Step = { step: StepName; outcome: "passed" | "refused" | "not_reached" | "not_applicable"; says: string; sqlstate: string | null; code: string | null };
export type PolicyVerdict = {
  name: string; kind: "permissive" | "restrictive"; command: string; applies_because: string;
  using: string | null; with_check: string | null; using_held: boolean | null; with_check_held: boolean | null;
};
/** ran: it fires for this statement; reached: the write got to it (PostgreSQL fires them in name order and stops at a refusal). */
export type TriggerVerdict = { name: string; function: string; fires: string; ran: boolean; reached: boolean; refused: boolean; sqlstate: string | null; code: string | null };
export type Verdict = "allowed" | "denied" | "not_found" | "refused" | "unknown";
export type Explanation = {
  table: string; id: string | null; action: ExplainAction; user: string; role: string | null; permission: string;
  verdict: Verdict; answer: { status: number | null; code: string | null }; statement: string | null;
  steps: Step[]; policies: PolicyVerdict[]; triggers: TriggerVerdict[]; policy_rows: string; rolled_back: true;
};

type DbError = Error & { code: string; detail?: string; where?: string; constraint_name?: string };
type Outcome<T> = { ok: true; value: T } | { ok: false; error: DbError };

export const unknownTable = (table: string) =>
  new ValidationError("UNKNOWN_TABLE", `${table} is not a tenant table (app.table_read_permissions() lists them).`, { details: { table }, help: "runbooks/access-questions.md" });
export const tableNotExplained = (table: string) =>
  new ValidationError("TABLE_NOT_EXPLAINED", `${table} has no permission of its own: it is read and written only beside a route's own effect, in that route's context.`, {
    details: { table }, help: "runbooks/access-questions.md",
  });
const rowLocked = (cause: unknown) =>
  new ConflictError("ROW_LOCKED", "Another transaction holds the row; ask again once it ends.", { cause, help: "runbooks/access-questions.md" });

/** The user id asked for when the email is no member of the shop: the opener answers it as it answers a stranger. */
const NO_ACCOUNT = "00000000-0000-0000-0000-000000000000";

const WHY_404 = "The API answers 404 TENANT_NOT_FOUND, not 403: to someone outside a shop, a shop they do not belong to must look " +
  "the same as one that does not exist (a 403 would confirm it exists, and that this account is known). app.open_tenant_context " +
  "gives one answer for an unknown shop, a shop the user is not a member of, and a token scoped to another shop.";

/** The plan of `table`: its registry permissions, key and the columns an insert probe copies; 422 when it is no tenant table or has no permission of its own. */
export async function tablePlan(sql: Sql, table: string): Promise<TablePlan> {
  const [entry] = await sql`
    select r.permission as read_permission, w.permission as write_permission, w.table_name is null as append_only
      from app.table_read_permissions() r left join app.table_write_permissions() w on w.table_name = r.table_name
     where r.table_name = ${table}`;
  if (!entry || !/^[a-z_][a-z0-9_]*$/.test(table)) throw unknownTable(table);
  if (!entry.read_permission) throw tableNotExplained(table);
  const relation = `app.${table}`;
  const key = await sql`
    select a.attname as column, format_type(a.atttypid, a.atttypmod) as type
      from pg_catalog.pg_index i join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
     where i.indrelid = ${relation}::regclass and i.indisprimary and a.attname <> 'tenant_id'`;
  // An insert probe copies what a new row must carry (NOT NULL without a default) and what it
  // references (foreign-key columns: the same customer, the same assignee); every other column
  // takes its default (a fresh id, a draft's status, no number) or NULL.
  const copy = await sql`
    select a.attname from pg_catalog.pg_attribute a
     where a.attrelid = ${relation}::regclass and a.attnum > 0 and not a.attisdropped and not a.atthasdef and a.attgenerated = '' and a.attidentity = ''
       and (a.attnotnull or exists (select 1 from pg_catalog.pg_constraint c where c.conrelid = a.attrelid and c.contype = 'f' and a.attnum = any (c.conkey)))
     order by a.attnum`;
  if (key.length > 1) throw new AppError(500, "INTERNAL", `${relation} has a composite key the explainer cannot name.`, { operational: false });
  return {
    table, readPermission: entry.read_permission, writePermission: entry.write_permission, appendOnly: entry.append_only,
    key: key[0] ? { column: key[0].column, type: key[0].type } : null, copyColumns: copy.map((c) => c.attname as string),
  };
}

/** Opens a context as the API does for `args` (the one statement tenantContext.ts sends, without its timeouts). */
export async function openContext(sql: Sql, args: TenantContextArgs, guard: Guard): Promise<{ member_role: string; permitted: boolean }> {
  const p = tenantContextProof(args, guard.guard, guard.expiresAt);
  const [row] = await sql`
    select member_role, permitted
      from app.open_tenant_context(${args.userId}::uuid, ${args.tenantRefs as string[]}::text[], ${args.scope}::uuid, ${args.requestId},
                                   ${args.permission}::text, ${args.forRow}::boolean, ${args.writes}::boolean, ${guard.guard},
                                   ${p.expiresAt}::int8, ${p.nonce}, ${p.proof}, ${args.feature ?? null}::text)`;
  return row as { member_role: string; permitted: boolean };
}

/** A read proof's guard: its short expiry (10 s), which the database accepts for reads anywhere. */
export const readGuard = (): Guard => expiryGuard(10);

function isDbError(e: unknown): e is DbError {
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof Error && typeof code === "string" && code.length === 5;
}

/** Runs `fn` in a savepoint; rolled back after unless `keep`, and always after a database refusal, which it returns. */
export async function inSavepoint<T>(sql: Sql, name: string, fn: () => Promise<T>, keep = false): Promise<Outcome<T>> {
  await sql.unsafe(`savepoint ${name}`);
  try {
    const value = await fn();
    if (!keep) await sql.unsafe(`rollback to savepoint ${name}`);
    return { ok: true, value };
  } catch (error) {
    if (!isDbError(error)) throw error;
    await sql.unsafe(`rollback to savepoint ${name}`);
    // Not an answer about access: a refused proof (the key), a lock or a timeout, or a fault of
    // the explainer's own SQL (a 500 by the SQLSTATE table). Raised, never reported as a verdict.
    if (error.code === "55P03") throw rowLocked(error);
    if (error.code === "TN401" || toAppError(error).status >= 500) throw error;
    return { ok: false, error };
  }
}

/** Answers `q` on `conn`: every step in a savepoint, the whole transaction rolled back. */
export async function explainAccess(conn: ExplainerConnection, q: ExplainQuestion): Promise<Explanation> {
  const { sql } = conn;
  await sql`begin`;
  try {
    await sql`select set_config('statement_timeout', '5s', true), set_config('lock_timeout', '2s', true)`;
    const plan = await tablePlan(sql, q.table);
    if (plan.key && q.id === undefined && (q.action === "update" || q.action === "delete")) {
      throw new ValidationError("ID_REQUIRED", `${q.action === "update" ? "An update" : "A delete"} names the row it changes: give its ${plan.key.column}.`, { help: "runbooks/access-questions.md" });
    }
    if (plan.key && q.id !== undefined) {
      const cast = await inSavepoint(sql, "explain_id", () => sql.unsafe(`select $1::${plan.key!.type}`, [q.id as never]));
      if (!cast.ok) throw new BadRequestError("INVALID_ID", `The id is not a ${plan.key.type} (the key ${plan.key.column} of ${plan.table}).`);
    }
    // The row the question names (a keyless table's is the shop's only one); an insert copies one
    // (named, else the shop's first); a list names none.
    const row = plan.key && q.id === undefined && q.action !== "insert" ? null : await conn.readRow(sql, plan, q.tenantId, plan.key ? q.id : undefined);
    await conn.prepare?.(sql);
    return await steps(conn, plan, q, row);
  } finally {
    await sql`rollback`;
  }
}

async function steps(conn: ExplainerConnection, plan: TablePlan, q: ExplainQuestion, row: Record<string, unknown> | null): Promise<Explanation> {
  const { sql } = conn;
  const writes = q.action !== "select";
  // A write to an append-only table needs no permission of its own (app_user holds no privilege
  // to write it): the context is opened for its read permission and the database refuses.
  const permission = writes && plan.writePermission ? plan.writePermission : plan.readPermission;
  const id = plan.key ? q.id ?? null : null;
  const forRow = q.action !== "insert" && (id !== null || (!plan.key && writes));
  const base: TenantContextArgs = { userId: q.userId ?? NO_ACCOUNT, tenantRefs: [q.tenantId], scope: null, requestId: q.requestId, permission, forRow: true, writes, feature: null };
  const open = (args: TenantContextArgs) => async () => openContext(sql, args, writes ? await conn.writeGuard() : readGuard());
  const out: Explanation = {
    table: plan.table, id, action: q.action, user: q.email, role: null, permission, verdict: "unknown", answer: { status: null, code: null },
    statement: null, steps: [], policies: [], triggers: [], policy_rows: "", rolled_back: true,
  };
  const say = (step: StepName, outcome: Step["outcome"], says: string, error?: DbError) =>
    out.steps.push({ step, outcome, says, sqlstate: error?.code ?? null, code: error ? toAppError(error).code : null });
  const refuse = (verdict: Verdict, error: DbError) => {
    const mapped = toAppError(error);
    out.verdict = verdict;
    out.answer = { status: mapped.status, code: mapped.code };
  };
  const notReached = (...names: StepName[]) => names.forEach((n) => say(n, "not_reached", "not reached: an earlier step refused"));
  const policies = await applicablePolicies(sql, plan, q.action);
  const triggers = await writeTriggers(sql, plan, q.action);
  out.policies = policies;

  // 1. Membership and role: the opener, asked as for a row (it then answers the role and whether it holds the permission instead of refusing).
  const member = await inSavepoint(sql, "explain_membership", open(base));
  if (!member.ok) {
    const e = member.error;
    if (e.code === "FE403") {
      say("membership", "passed", "A member of this shop (its role is not told once a feature refuses: the opener checks the feature first).");
      say("feature", "refused", `The shop may not use the feature ${e.detail} (its plan, an override or a kill switch: npm run cli -- features show --tenant ...).`, e);
      notReached("permission", "policies", "statement", "triggers");
      refuse("denied", e);
    } else if (e.code === "TN404") {
      say("membership", "refused", `Not a member of this shop (or no such account). ${WHY_404}`, e);
      notReached("feature", "permission", "policies", "statement", "triggers");
      refuse("not_found", e);
    } else {
      say("membership", "refused", e.code === "TN403" ? "A member, but the shop is suspended: members learn it (403 TENANT_SUSPENDED), strangers still get 404." : e.message, e);
      notReached("feature", "permission", "policies", "statement", "triggers");
      refuse("denied", e);
    }
    out.triggers = triggers;
    return out;
  }
  out.role = member.value.member_role;
  const permitted = member.value.permitted;
  say("membership", "passed", `A member of this shop with the role ${out.role}.`);
  say("feature", "passed", `No feature refused: the opener checked every feature ${permission} needs (app.features_required_by) and found them enabled for this shop.`);

  // 2. The context the route opens: a collection's (list, create) refuses a missing permission at once; a row's lets its query run first.
  const route = await inSavepoint(sql, "explain_route", open({ ...base, forRow }), true);
  const matrix = `runbooks/rbac-matrix.md: ${out.role} × ${permission} is ${permitted ? "granted" : "refused"} (policies/permissions.sql)`;
  if (!route.ok) {
    say("permission", "refused", `${matrix}. The route's context refuses it before any statement runs.`, route.error);
    notReached("policies", "statement", "triggers");
    refuse("denied", route.error);
    out.triggers = triggers;
    return out;
  }
  say("permission", permitted ? "passed" : "refused", permitted ? `${matrix}.` : forRow
    ? `${matrix}. A route naming one row runs its statement first: a row this member cannot see is 404, one it can see 403.`
    : `${matrix}.`);

  // 3. The statement, as that member.
  const probe = probeStatement(plan, q.action, id);
  out.statement = probe.text;
  if (q.action === "insert" && !row) {
    out.policy_rows = "No row to evaluate the policies on: an insert probe copies a row of the shop (give --id; the shop has none, or not that one).";
    say("policies", "not_reached", out.policy_rows);
    say("statement", "not_reached", "No row to copy, so no insert was tried: name one with --id (the steps above stand).");
    say("triggers", "not_reached", "The statement did not run.");
    out.triggers = triggers;
    return out;
  }
  const ran = await inSavepoint(sql, "explain_statement", () => sql.unsafe(probe.text, probe.params(row)) as Promise<Record<string, unknown>[]>);
  const evaluatedRow = ran.ok && q.action === "insert" && ran.value[0] ? (ran.value[0].row as Record<string, unknown>) : row;

  // 4. Each policy's expression on the row, in the member's context (evaluated, not enforced).
  await evaluatePolicies(sql, plan, policies, evaluatedRow);
  out.policy_rows = evaluatedRow === null
    ? (id === null ? "No row named: the policies are listed, not evaluated (give --id)." : "No row of this shop has that key: nothing to evaluate the policies on.")
    : `Each expression was evaluated on the ${q.action !== "insert" ? "named" : ran.ok ? "inserted" : "copied"} row inside the member's context, as pg_policies holds it: what RLS computed, told apart per policy.`;

  // 5. The verdict: what the database raised, or what the rows say.
  const where = ran.ok ? "" : ran.error.where ?? "";
  let stopped = false;
  out.triggers = triggers.map((t) => {
    const refused = !ran.ok && t.ran && !stopped && where.includes(`${t.function}(`);
    const reached = t.ran && !stopped;
    stopped ||= refused;
    return { ...t, reached, refused, sqlstate: refused ? ran.error.code : null, code: refused ? toAppError(ran.error).code : null };
  });
  if (!ran.ok) {
    const e = ran.error;
    const mapped = toAppError(e);
    const byTrigger = out.triggers.find((t) => t.refused);
    const rls = e.code === "42501" && /row-level security/.test(e.message);
    const privilege = e.code === "42501" && !rls;
    const dataRule = e.code.startsWith("23") || e.code.startsWith("22");
    if (privilege) say("policies", "not_reached", "The table's privileges refused the statement before any policy: app_user holds no such privilege on it.", e);
    else say("policies", rls ? "refused" : "passed", rls ? `RLS refused the row: ${e.message}.` : "RLS let the statement reach the row.", rls ? e : undefined);
    say("statement", "refused", `${e.message} (SQLSTATE ${e.code} → ${mapped.status} ${mapped.code}).`, e);
    say("triggers", byTrigger ? "refused" : "passed", byTrigger ? `The trigger ${byTrigger.name} (${byTrigger.function}) refused it.` : "No trigger refused it.", byTrigger ? e : undefined);
    if (dataRule && q.action === "insert") {
      // Constraints are checked after the role triggers and RLS's WITH CHECK: access was granted;
      // the copied values met a data rule a request's own values need not meet.
      out.verdict = "allowed";
      out.answer = { status: 201, code: null };
      out.steps[out.steps.length - 2].says += " The role check and RLS had passed (PostgreSQL checks constraints after them): access is granted; the probe's copied values broke a data rule.";
    } else {
      refuse(mapped.status === 403 ? "denied" : mapped.status === 404 ? "not_found" : "refused", e);
    }
    return out;
  }
  const rows = ran.value;
  // A list (a select naming no row) answers whatever it sees; anything naming a row needs it found.
  const found = q.action === "insert" || (q.action === "select" && id === null) || rows.length > 0;
  say("policies", found ? "passed" : "refused", found
    ? "RLS let the statement reach the row."
    : "RLS hid the row from this member (or the shop has no such row: RLS answers both alike), so the statement found nothing.");
  say("statement", found ? "passed" : "refused", found ? `The database ran it${q.action === "select" && id === null ? `: ${rows[0]?.visible ?? 0} rows visible` : ""}.` : "No row: the route answers 404.");
  say("triggers", writes ? "passed" : "not_applicable", writes ? "No trigger refused it." : "A read fires no trigger.");
  if (!found) {
    out.verdict = "not_found";
    out.answer = { status: 404, code: null };
  } else if (!permitted && (q.action === "select" || q.action === "update" || q.action === "delete")) {
    // What withTenant answers for a row route whose row the member sees without the permission.
    out.verdict = "denied";
    out.answer = { status: 403, code: "FORBIDDEN" };
  } else {
    out.verdict = "allowed";
    out.answer = { status: q.action === "insert" ? 201 : q.action === "delete" ? 204 : 200, code: null };
  }
  return out;
}

/** The statement run as the member, with the parameters it takes from the id or the row. */
function probeStatement(plan: TablePlan, action: ExplainAction, id: string | null): { text: string; params: (row: Record<string, unknown> | null) => never[] } {
  const rel = `app.${plan.table}`;
  const byKey = plan.key && id !== null ? ` where t.${plan.key.column} = $1::${plan.key.type}` : "";
  const keyParam = () => (plan.key && id !== null ? [id] : []) as never[];
  switch (action) {
    case "select":
      return byKey
        ? { text: `select 1 from ${rel} t${byKey}`, params: keyParam }
        : { text: `select count(*)::int as visible from ${rel} t`, params: keyParam };
    case "update":
      // Sets a column to itself: every row trigger and policy of an UPDATE runs, nothing changes.
      return { text: `update ${rel} t set tenant_id = t.tenant_id${byKey} returning 1`, params: keyParam };
    case "delete":
      return { text: `delete from ${rel} t${byKey} returning 1`, params: keyParam };
    case "insert": {
      const cols = plan.copyColumns.join(", ");
      if (!cols) return { text: `insert into ${rel} as t default values returning to_jsonb(t) as row`, params: () => [] };
      return {
        text: `insert into ${rel} as t (${cols}) select ${cols} from jsonb_populate_record(null::${rel}, $1::jsonb) returning to_jsonb(t) as row`,
        params: (row) => [row ?? {}] as never[],
      };
    }
  }
}

async function applicablePolicies(sql: Sql, plan: TablePlan, action: ExplainAction): Promise<PolicyVerdict[]> {
  const rows = await sql`
    select policyname, permissive, cmd, qual, with_check from pg_catalog.pg_policies
     where schemaname = 'app' and tablename = ${plan.table} and ('app_user' = any (roles) or 'public' = any (roles))
     order by permissive desc, policyname`;
  const command = action.toUpperCase();
  return rows.flatMap((p) => {
    const why = p.cmd === command ? `${/^[IU]/.test(p.cmd) ? "an" : "a"} ${p.cmd} policy`
      : p.cmd === "ALL" ? "a policy FOR ALL commands"
      : p.cmd === "SELECT" && action !== "select" ? (action === "insert" ? "RETURNING reads the new row" : `the ${command} reads the rows it names`)
      : null;
    if (!why) return [];
    return [{
      name: p.policyname as string, kind: (p.permissive as string).toLowerCase() as PolicyVerdict["kind"], command: p.cmd as string, applies_because: why,
      using: action === "insert" && p.cmd !== "SELECT" ? null : (p.qual as string | null),
      with_check: action === "select" || action === "delete" || p.cmd === "SELECT" ? null : ((p.with_check ?? (p.cmd === "ALL" || p.cmd === "UPDATE" ? p.qual : null)) as string | null),
      using_held: null, with_check_held: null,
    }];
  });
}

/** Each policy's USING and WITH CHECK on `row` (jsonb), in the current (member's) context, in a savepoint. */
async function evaluatePolicies(sql: Sql, plan: TablePlan, policies: PolicyVerdict[], row: Record<string, unknown> | null): Promise<void> {
  if (!row || policies.length === 0) return;
  // NULL counts as false, as RLS counts it.
  const columns = policies.flatMap((p, i) => [
    p.using ? `coalesce((${p.using}), false) as u${i}` : `null::boolean as u${i}`, p.with_check ? `coalesce((${p.with_check}), false) as c${i}` : `null::boolean as c${i}`,
  ]);
  const evaluated = await inSavepoint(sql, "explain_policies", () =>
    sql.unsafe(`select ${columns.join(", ")} from jsonb_populate_record(null::app.${plan.table}, $1::jsonb) as ${plan.table}`, [row as never]));
  if (!evaluated.ok) throw evaluated.error;
  const [r] = evaluated.value;
  policies.forEach((p, i) => {
    p.using_held = r[`u${i}`] as boolean | null;
    p.with_check_held = r[`c${i}`] as boolean | null;
  });
}

const EVENTS: [number, ExplainAction][] = [[4, "insert"], [8, "delete"], [16, "update"]];

/** The BEFORE row triggers a write of `action` fires (those that can refuse it before it happens), in the order PostgreSQL fires them. */
async function writeTriggers(sql: Sql, plan: TablePlan, action: ExplainAction): Promise<TriggerVerdict[]> {
  if (action === "select") return [];
  const rows = await sql`
    select t.tgname, t.tgfoid::regproc::text as function, t.tgtype::int as type,
           (select string_agg(a.attname, ', ') from pg_catalog.pg_attribute a where a.attrelid = t.tgrelid and a.attnum = any (t.tgattr)) as columns
      from pg_catalog.pg_trigger t
     where t.tgrelid = ${`app.${plan.table}`}::regclass and not t.tgisinternal
     order by t.tgname`;
  const bit = EVENTS.find(([, a]) => a === action)![0];
  return rows
    .filter((t) => (t.type & 1) === 1 && (t.type & 2) === 2 && (t.type & bit) === bit)
    .map((t) => ({
      name: t.tgname as string, function: t.function as string,
      fires: `BEFORE ${action.toUpperCase()}${t.columns && action === "update" ? ` OF ${t.columns}` : ""} FOR EACH ROW`,
      // The update probe sets tenant_id only: a trigger on other columns does not fire.
      ran: !(action === "update" && t.columns && !(t.columns as string).split(", ").includes("tenant_id")),
      reached: false, refused: false, sqlstate: null, code: null,
    }));
}

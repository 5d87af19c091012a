// GET /api/v1/access/explain: why a member of the caller's shop may or may not act on a tenant
// table, step by step (db/accessExplainer.ts). For a shop's admins (members:manage), in their own
// shop only: the account asked about is looked up among the shop's members, and anyone else (a
// member of another shop, an unknown email) is asked about as an account of no shop, so the
// answer is the one a stranger gets and tells nothing about accounts outside the shop. The
// member's context is opened with the API's proof in a transaction that is rolled back; the
// caller's own context (for the table's read permission) reads the row the policies are
// evaluated on, so the caller learns nothing of rows it could not read itself.
import { requires } from "../auth/authorize.ts";
import { documented, named, nullable, row } from "../http/contract.ts";
import { queryValidator } from "../http/validate.ts";
import { requestState } from "../core/requestContext.ts";
import { withLeasedConnection, withTenant } from "../db/tenantContext.ts";
import { EXPLAIN_ACTIONS, explainAccess, inSavepoint, openContext, readGuard, type ExplainAction, type TablePlan } from "../db/accessExplainer.ts";
import type { Sql } from "../db/connections.ts";
import type { Routes } from "./mount.ts";

const tag = "Access";
const querySchema = {
  type: "object", additionalProperties: false, required: ["user", "table", "action"],
  properties: {
    user: { type: "string", format: "email", maxLength: 320, description: "The account asked about (a member of the caller's shop; anyone else is answered as a stranger)." },
    table: { type: "string", pattern: "^[a-z_][a-z0-9_]{0,62}$", description: "A tenant table (runbooks/rbac-matrix.md lists them)." },
    id: { type: "string", maxLength: 64, description: "The row's key. An update or delete needs it; an insert copies that row (else the shop's first)." },
    action: { type: "string", enum: [...EXPLAIN_ACTIONS] },
  },
};
const validateQuery = queryValidator<{ user: string; table: string; id?: string; action: ExplainAction }>(querySchema);

const text = { type: "string" };
const nullableText = nullable(text);
const step = named("AccessStep", row({
  step: { type: "string", enum: ["membership", "feature", "permission", "policies", "statement", "triggers"] },
  outcome: { type: "string", enum: ["passed", "refused", "not_reached", "not_applicable"] },
  says: text, sqlstate: nullableText, code: nullableText,
}));
const policy = named("AccessPolicyVerdict", row({
  name: text, kind: { type: "string", enum: ["permissive", "restrictive"] }, command: text, applies_because: text,
  using: nullableText, with_check: nullableText, using_held: nullable({ type: "boolean" }), with_check_held: nullable({ type: "boolean" }),
}));
const trigger = named("AccessTriggerVerdict", row({
  name: text, function: text, fires: text, ran: { type: "boolean" }, reached: { type: "boolean" }, refused: { type: "boolean" }, sqlstate: nullableText, code: nullableText,
}));
const explanation = named("AccessExplanation", row({
  table: text, id: nullableText, action: { type: "string", enum: [...EXPLAIN_ACTIONS] }, user: text, role: nullableText, permission: text,
  verdict: { type: "string", enum: ["allowed", "denied", "not_found", "refused", "unknown"] },
  answer: row({ status: nullable({ type: "integer" }), code: nullableText }),
  statement: nullableText, steps: { type: "array", items: step }, policies: { type: "array", items: policy }, triggers: { type: "array", items: trigger },
  policy_rows: text, rolled_back: { type: "boolean", const: true },
}));

export function accessRoutes(router: Routes): void {

  router.get("/explain", documented({
    summary: "Explain why a member may or may not act on a table", tag, query: querySchema,
    description: "Runs the real statement as that member (their real context, opened as the API opens it for the action's permission) in a " +
      "transaction that is always rolled back, a savepoint per step, and reports each step: membership and role (none: the 404 a stranger gets), " +
      "the feature, the permission and its matrix entry, each RLS policy with whether its USING / WITH CHECK held for the row (evaluated from " +
      "pg_policies in the member's context), the statement and the trigger that refused it, with their SQLSTATE and the API's error code. " +
      "Nothing it runs is kept but sequence steps (runbooks/access-questions.md). An account that is not a member of the caller's shop is " +
      "answered as a stranger. 422 UNKNOWN_TABLE, TABLE_NOT_EXPLAINED, ID_REQUIRED; 400 INVALID_ID; 409 ROW_LOCKED.",
    responses: { 200: { description: "The explanation", schema: explanation } },
  }), requires("members:manage", { feature: "none" }), async (req, res) => {
    const q = validateQuery(req.query);
    // The account, among this shop's members only (the caller's own context checks members:manage).
    const [member] = await withTenant(req, (sql) => sql`select user_id from app.list_members() where lower(email) = lower(${q.user})`);
    const state = requestState(req)!;
    const tenantId = state.tenantId!;
    const answer = await withLeasedConnection(async (sql, stream) => {
      // Registered (when new) outside the transaction, which rolls back: as any write's stream.
      await stream();
      return explainAccess({ sql, writeGuard: stream, readRow: callerRow(state.userId!, state.tokenTenantId ?? null, state.requestId) }, {
        tenantId, userId: (member?.user_id as string | undefined) ?? null, email: q.user, table: q.table, id: q.id, action: q.action, requestId: state.requestId,
      });
    });
    res.json(answer);
  });

}

/** The row as the caller reads it: their own context for the table's read permission, in a savepoint rolled back; null where they could not read it. */
function callerRow(userId: string, scope: string | null, requestId: string) {
  return async (sql: Sql, plan: TablePlan, tenantId: string, id: string | undefined): Promise<Record<string, unknown> | null> => {
    const read = await inSavepoint(sql, "explain_caller_row", async () => {
      const { permitted } = await openContext(sql, {
        userId, tenantRefs: [tenantId], scope, requestId, permission: plan.readPermission, forRow: true, writes: false, feature: null,
      }, readGuard());
      if (!permitted) return null;
      const rel = `app.${plan.table}`;
      const [r] = plan.key && id !== undefined
        ? await sql.unsafe(`select to_jsonb(t) as row from ${rel} t where t.${plan.key.column} = $1::${plan.key.type}`, [id])
        : await sql.unsafe(`select to_jsonb(t) as row from ${rel} t order by 1 limit 1`);
      return (r?.row as Record<string, unknown> | undefined) ?? null;
    });
    return read.ok ? read.value : null;
  };
}

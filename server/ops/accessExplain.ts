// `npm run cli -- explain`: the access explainer (db/accessExplainer.ts) for an operator, on an
// owner connection. The owner names the shop and the account, reads the row (it bypasses RLS, so
// a row the member cannot see is still evaluated against each policy), then acts as app_user and
// opens the member's context with the API's proof (CONTEXT_KEY), exactly as a request would.
// Everything happens in one transaction that is rolled back, the proof stream it registers too.
import { randomUUID } from "node:crypto";
import type { Sql } from "../db/connections.ts";
import { useContextKey } from "../db/contextProof.ts";
import { streamGuard, type ProofState } from "../db/proofGuards.ts";
import { explainAccess, type ExplainAction, type Explanation, type TablePlan } from "../db/accessExplainer.ts";

export type ExplainOptions = { tenant: string; user: string; table: string; id?: string; action: ExplainAction };

/** The explanation for an operator's question, on the owner connection `owner`, signed with `contextKey`. */
export async function explainAsOperator(owner: Sql, contextKey: string, o: ExplainOptions): Promise<Explanation> {
  useContextKey(contextKey);
  const [tenant] = await owner`select id from app.tenants where slug = lower(${o.tenant}) or id::text = lower(${o.tenant})`;
  if (!tenant) throw new Error(`no tenant ${o.tenant}`);
  const [account] = await owner`select id from app.users where lower(email) = lower(${o.user})`;
  const reserved = await owner.reserve();
  const proofs: ProofState = {};
  try {
    return await explainAccess({
      sql: reserved as unknown as Sql,
      writeGuard: () => streamGuard(reserved as unknown as Sql, proofs),
      readRow: ownerRow,
      prepare: async (sql) => {
        await sql`set local role app_user`;
        // Registered inside the transaction: the stream's sequence is dropped by its rollback.
        await streamGuard(sql, proofs);
      },
    }, { tenantId: tenant.id, userId: account?.id ?? null, email: o.user, table: o.table, id: o.id, action: o.action, requestId: `cli-explain-${randomUUID()}` });
  } finally {
    reserved.release();
  }
}

/** The row as the owner reads it (RLS bypassed), within the shop: its key's, or the shop's first. */
async function ownerRow(sql: Sql, plan: TablePlan, tenantId: string, id: string | undefined): Promise<Record<string, unknown> | null> {
  const rel = `app.${plan.table}`;
  const [r] = plan.key && id !== undefined
    ? await sql.unsafe(`select to_jsonb(t) as row from ${rel} t where t.tenant_id = $1 and t.${plan.key.column} = $2::${plan.key.type}`, [tenantId, id])
    : await sql.unsafe(`select to_jsonb(t) as row from ${rel} t where t.tenant_id = $1 order by 1 limit 1`, [tenantId]);
  return (r?.row as Record<string, unknown> | undefined) ?? null;
}

const held = (v: boolean | null) => (v === null ? "not evaluated" : v ? "held" : "did NOT hold");

/** The explanation as the CLI prints it: the question and verdict, then each step. */
export function renderExplanation(e: Explanation): string {
  const answer = e.answer.status === null ? "no answer" : `${e.answer.status}${e.answer.code ? ` ${e.answer.code}` : ""}`;
  const lines = [
    `may ${e.user} ${e.action} ${e.table}${e.id ? ` ${e.id}` : ""}? ${e.verdict.toUpperCase()}: the API answers ${answer}`,
    `role: ${e.role ?? "none"}; permission needed: ${e.permission}; run in one transaction, rolled back, each step in a savepoint`,
    "",
  ];
  e.steps.forEach((s, i) => {
    lines.push(`${i + 1}. ${s.step.padEnd(10)} ${s.outcome.padEnd(14)} ${s.says}`);
    if (s.step === "policies") {
      if (e.policies.length > 0 && e.policy_rows) lines.push(`   ${e.policy_rows}`);
      for (const p of e.policies) {
        lines.push(`   - ${p.kind} ${p.name} (${p.command}: ${p.applies_because})`);
        if (p.using) lines.push(`       USING ${p.using} → ${held(p.using_held)}`);
        if (p.with_check) lines.push(`       WITH CHECK ${p.with_check} → ${held(p.with_check_held)}`);
      }
    }
    if (s.step === "statement" && e.statement) lines.push(`   ${e.statement}`);
    if (s.step === "triggers") {
      for (const t of e.triggers) {
        const verdict = !t.ran ? "does not fire for this statement" : t.refused ? `REFUSED: ${t.sqlstate} → ${t.code}` : t.reached ? "let it pass" : "not reached";
        lines.push(`   - ${t.name} (${t.function}, ${t.fires}): ${verdict}`);
      }
    }
  });
  return `${lines.join("\n")}\n`;
}

// Idempotency-Key for POST. The middleware fingerprints the request; `withTenantOnce` runs the
// effect and stores its status and body in the same transaction, so either both exist or
// neither. A concurrent duplicate finds the key's advisory lock held (409 IN_PROGRESS); a
// later retry replays the stored answer (status, body and headers such as Location); the same key with another body is refused (422).
import { createHash } from "node:crypto";
import type { NextFunction, Request, Response } from "express";
import { BadRequestError, ConflictError, ValidationError } from "../core/errors.ts";
import type { Sql } from "../db/connections.ts";
import { requestState } from "../core/requestContext.ts";
import { withTenant } from "../db/tenantContext.ts";

type Idem = { key: string; fingerprint: string };
const pending = new WeakMap<Request, Idem>();

/** Reads Idempotency-Key on POST and remembers the request's fingerprint. */
export function idempotencyKey(req: Request, _res: Response, next: NextFunction): void {
  const key = req.method === "POST" ? req.get("idempotency-key") : undefined;
  if (key !== undefined) {
    if (!/^[\x21-\x7e]{1,255}$/.test(key)) throw new BadRequestError("INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1-255 visible ASCII characters.");
    // The path after tenant resolution (/t/{slug}/ already removed): the tenant is part of the
    // key's scope, not of the fingerprint, so /t/{slug} and X-Tenant-Id are the same request.
    const fingerprint = createHash("sha256").update(`${req.method}\n${req.baseUrl}${req.url}\n${JSON.stringify(req.body ?? null)}`).digest("hex");
    pending.set(req, { key, fingerprint });
  }
  next();
}

export type Reply = { status: number; body: unknown; headers?: Record<string, string> };

/** The request's Idempotency-Key, if it carries one. */
export function idempotencyKeyOf(req: Request): string | undefined {
  return pending.get(req)?.key;
}

/**
 * Runs a POST's effect in the tenant and answers; with an Idempotency-Key, exactly once.
 * `unstored`: fields added to the answer's body, first and replayed, but never stored (a secret
 * the route can give again from the key itself), asked for once the transaction is done.
 */
export async function withTenantOnce<T>(req: Request, res: Response, effect: (sql: Sql) => Promise<T>, reply: (result: T) => Reply, unstored?: () => Record<string, unknown>): Promise<void> {
  const idem = pending.get(req);
  const answered = (body: unknown) => (unstored ? { ...(body as object), ...unstored() } : body);
  if (!idem) {
    const r = reply(await withTenant(req, (sql) => effect(sql)));
    res.status(r.status).set(r.headers ?? {}).json(answered(r.body));
    return;
  }
  const userId = requestState(req)?.userId;
  const answer = await withTenant(req, async (sql): Promise<Reply & { replayed: boolean }> => {
    const [{ locked }] = await sql`select pg_try_advisory_xact_lock(hashtextextended(app.current_tenant_id()::text || ':' || ${idem.key}, 0)) as locked`;
    if (!locked) throw new ConflictError("IDEMPOTENCY_IN_PROGRESS", "A request with this Idempotency-Key is still running; retry later.");
    const [seen] = await sql`
      select user_id, fingerprint, response_status, response_body, response_headers from app.idempotency_keys
       where key = ${idem.key} and expires_at > now()`;
    if (seen) {
      if (seen.fingerprint !== idem.fingerprint || seen.user_id !== userId) {
        throw new ValidationError("IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used with another request.");
      }
      return { status: seen.response_status, body: seen.response_body, headers: seen.response_headers ?? undefined, replayed: true };
    }
    const r = reply(await effect(sql));
    await sql`
      insert into app.idempotency_keys (key, user_id, fingerprint, response_status, response_body, response_headers)
      values (${idem.key}, ${userId ?? null}::uuid, ${idem.fingerprint}, ${r.status}, ${sql.json(r.body as never)}, ${r.headers ? sql.json(r.headers) : null})
      on conflict (tenant_id, key) do update
        set user_id = excluded.user_id, fingerprint = excluded.fingerprint, response_status = excluded.response_status,
            response_body = excluded.response_body, response_headers = excluded.response_headers,
            created_at = now(), expires_at = now() + interval '24 hours'`;
    return { ...r, replayed: false };
  });
  if (answer.replayed) res.set("Idempotent-Replayed", "true");
  res.status(answer.status).set(answer.headers ?? {}).json(answered(answer.body));
}

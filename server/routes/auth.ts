// POST /api/v1/auth/login {email, password} → a bearer token. A wrong password and an
// unknown email get the same answer, after the same scrypt work. Attempts are audited, and
// throttled by state in the database (policies/login_throttle.sql): an account slowed, then an
// account or an address refused for a window, 429 with Retry-After before any password is checked.
import type { Row } from "postgres";
import { loginGateProof, loginLookupProof, loginOutcomeProof, loginProof } from "../db/contextProof.ts";
import type { LoginThrottle } from "../core/config.ts";
import { documented, named, row } from "../http/contract.ts";
import { AppError, loginThrottled, UnauthorizedError } from "../core/errors.ts";
import { verifyPassword } from "../auth/passwords.ts";
import { requestState } from "../core/requestContext.ts";
import { withoutTenant } from "../db/tenantContext.ts";
import { signAccessToken, type TokenKeys } from "../auth/tokens.ts";
import { bodyValidator } from "../http/validate.ts";
import type { Routes } from "./mount.ts";

type Login = { email: string; password: string };
const loginSchema = named("Login", {
  type: "object",
  additionalProperties: false,
  required: ["email", "password"],
  properties: { email: { type: "string", minLength: 3, maxLength: 320 }, password: { type: "string", minLength: 1, maxLength: 1024 } },
});
const accessToken = named("AccessToken", row({ access_token: { type: "string" }, token_type: { const: "Bearer" }, expires_in: { type: "integer", description: "Seconds until it expires." } }));
const validateLogin = bodyValidator<Login>(loginSchema);

export function authRoutes(router: Routes, keys: TokenKeys, throttle: LoginThrottle): void {
  router.post("/login", documented({
    summary: "Log in: a bearer token", tag: "Caller", auth: "public", body: loginSchema,
    description: "An access token for every shop the account belongs to (name the shop on each request). A wrong password and an unknown email get the same 401 INVALID_CREDENTIALS after the same work; attempts are audited in the account's shops. Repeated failures are slowed, then refused for a window (429 LOGIN_THROTTLED with Retry-After), per account and per client address, across every API process. A deployment that verifies tokens from an identity provider issues none: 501 LOGIN_DISABLED.",
    responses: { 200: { description: "An access token", schema: accessToken } },
  }), async (req, res) => {
    if (!keys.signingKey) {
      throw new AppError(501, "LOGIN_DISABLED", "This deployment verifies tokens from an identity provider and issues none.");
    }
    const { email, password } = validateLogin(req.body);
    const address = req.socket.remoteAddress ?? null;
    const [gate] = await withoutTenant(async (sql, stream): Promise<Row[]> => {
      const g = await stream();
      const p = loginGateProof(email, address, throttle, g.guard, g.expiresAt);
      return sql`select app.login_gate(${email}, ${address}, ${throttle.accountFailures}::int, ${throttle.addressFailures}::int, ${throttle.windowSeconds}::int,
                                       ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof}) as retry_after`;
    });
    if (gate.retry_after > 0) throw loginThrottled(gate.retry_after);
    // The hash comes only with a proof of this lookup, used once (policies/entry_points.sql).
    const [found] = await withoutTenant(async (sql, stream): Promise<Row[]> => {
      const g = await stream();
      const p = loginLookupProof(email, g.guard, g.expiresAt);
      return sql`select user_id, password_hash from app.find_login(${email}, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
    });
    const ok = (await verifyPassword(password, found?.password_hash)) && !!found;
    // Recorded in the audit of each of the account's shops; an unknown email records nothing
    // there but costs the same round trip, so timing tells nothing either.
    if (found) {
      const requestId = requestState(req)?.requestId ?? null;
      await withoutTenant(async (sql, stream): Promise<Row[]> => {
        const g = await stream();
        const p = loginProof(found.user_id, ok, requestId, g.guard, g.expiresAt);
        return sql`select app.record_login(${found.user_id}::uuid, ${ok}, ${requestId}, ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
      });
    } else {
      await withoutTenant((sql) => sql`select 1`);
    }
    // Counted whether or not the email has an account: the throttle tells nothing either.
    await withoutTenant(async (sql, stream): Promise<Row[]> => {
      const g = await stream();
      const p = loginOutcomeProof(email, address, ok, throttle, g.guard, g.expiresAt);
      return sql`select app.login_outcome(${email}, ${address}, ${ok}, ${throttle.accountFailures}::int, ${throttle.addressFailures}::int, ${throttle.windowSeconds}::int,
                                          ${g.guard}, ${p.expiresAt}::int8, ${p.nonce}, ${p.proof})`;
    });
    if (!ok) throw new UnauthorizedError("INVALID_CREDENTIALS", "Email or password is incorrect.");
    res.json({ access_token: signAccessToken(keys, { userId: found.user_id }), token_type: "Bearer", expires_in: keys.ttlSeconds });
  });
}

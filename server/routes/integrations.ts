// The shop's third-party credentials: PUT|DELETE /api/v1/integrations/:provider, GET
// /api/v1/integrations, POST /api/v1/integrations/:provider/test. The API encrypts a secret before
// it reaches the database (core/credentialCipher.ts, under CREDENTIALS_KEYS, bound to the tenant
// and the provider) and never answers, logs or audits it: reads answer metadata only, and the
// test decrypts on the server and answers what proves it (the last four characters).
import { requires } from "../auth/authorize.ts";
import { CredentialDecryptError, decryptCredential, encryptCredential } from "../core/credentialCipher.ts";
import { AppError, BadRequestError, NotFoundError, UnavailableError } from "../core/errors.ts";
import type { KeyRing } from "../core/keyRing.ts";
import { logger } from "../core/log.ts";
import { logBindings } from "../core/requestContext.ts";
import { documented, named, nullable, page as pageSchema, row, timestamp } from "../http/contract.ts";
import { after, keyColumns, orderBy, page, pageQuerySchema, type Keyset } from "../db/keyset.ts";
import { withTenant } from "../db/tenantContext.ts";
import { bodyValidator, queryValidator } from "../http/validate.ts";
import type { Request } from "express";
import type { Routes } from "./mount.ts";

const providerPattern = "^[a-z][a-z0-9_-]{0,62}$";
const provider = named("Provider", {
  type: "string", pattern: providerPattern, maxLength: 63,
  description: "The service the credential is for, as the shop names it: a-z, digits, _ and -, starting with a letter (e.g. stripe, parts-hub, sms_gateway).",
});
const storeSchema = named("CredentialStore", {
  type: "object", additionalProperties: false, required: ["secret"],
  properties: {
    secret: {
      type: "string", minLength: 8, maxLength: 4096, pattern: "\\S", writeOnly: true,
      description: "The credential (API key, token, password), 8 to 4096 characters. Encrypted before it is stored; no answer, log line or audit row ever holds it.",
    },
  },
});
const validateStore = bodyValidator<{ secret: string }>(storeSchema);
const integration = named("Integration", row({
  provider,
  key_id: { type: "string", description: "The id of the CREDENTIALS_KEYS key the stored credential is encrypted under." },
  last4: { type: "string", description: "The credential's last four characters, to recognise it." },
  created_at: timestamp,
  changed_at: { ...timestamp, description: "When the credential was last stored (PUT)." },
  rotated_at: nullable({ ...timestamp, description: "When it was last re-encrypted under another key (key rotation); null: never." }),
}));
const testResult = named("IntegrationTest", row({
  provider,
  status: { const: "ok", description: "The credential decrypted on the server." },
  key_id: { type: "string", description: "The key it was decrypted with." },
  last4: { type: "string", description: "The last four characters of the decrypted credential." },
}));
const listSchema = { type: "object", additionalProperties: false, properties: pageQuerySchema(100, 500) };
const validateList = queryValidator<{ limit: number; cursor?: string }>(listSchema);
const byProvider: Keyset = { keys: [{ expr: "provider", type: "text" }] };
const columns = "provider, key_id, last4, created_at, changed_at, rotated_at";
const tag = "Integrations";
const params = { provider };

const notFound = () => new NotFoundError("INTEGRATION_NOT_FOUND", "No credential is stored for this provider.");
const lastFour = (secret: string) => Array.from(secret).slice(-4).join("");

function parseProvider(value: unknown): string {
  if (typeof value !== "string" || !new RegExp(providerPattern).test(value)) {
    throw new BadRequestError("INVALID_PROVIDER", "The provider in the path must be a-z, digits, _ and -, starting with a letter, at most 63 characters.");
  }
  return value;
}

/** A stored credential that did not decrypt: the key is missing from this instance's ring (mid-rollout: retry), or the envelope is damaged. */
function unreadable(req: Request, error: CredentialDecryptError, providerName: string): AppError {
  const where = { ...logBindings(req), provider: providerName, key_id: error.keyId, reason: error.reason };
  if (error.reason === "unknown-key") {
    logger.warn(where, "credential encrypted under a key this instance's CREDENTIALS_KEYS does not hold");
    return new UnavailableError("CREDENTIALS_KEY_UNAVAILABLE", "This instance does not hold the key the credential is encrypted with; retry shortly.", { help: "runbooks/key-rotation.md" });
  }
  logger.error(where, "stored credential failed to decrypt");
  return new AppError(500, "CREDENTIAL_UNREADABLE", "The stored credential cannot be decrypted; store it again.", { operational: false, help: "runbooks/key-rotation.md" });
}

/**
 * The routes, with the key ring they encrypt and decrypt with. One permission guards them all,
 * named once here: `manage` is where a route gains further conditions (a feature entitlement).
 */
export function integrationRoutes(router: Routes, keys: KeyRing<Buffer> | undefined): void {
  const manage = (options: { writes?: boolean } = {}) => requires("integrations:manage", { ...options, feature: "integrations" });
  const ring = (): KeyRing<Buffer> => {
    if (!keys) throw new AppError(500, "CREDENTIALS_KEYS_MISSING", "No credentials key ring is configured.", { operational: false, help: "runbooks/key-rotation.md" });
    return keys;
  };

  router.get("/", documented({
    summary: "List the shop's stored credentials (metadata only)", tag, query: listSchema,
    description: "Ordered by provider. Keyset paginated: pass next_cursor back as cursor. Never the secret: its last four characters, the key id it is encrypted under, and when it was stored and re-encrypted.",
    responses: { 200: { description: "A page of credentials' metadata", schema: pageSchema(integration) } },
  }), manage(), async (req, res) => {
    const { limit, cursor } = validateList(req.query);
    const rows = await withTenant(req, (sql) => sql`
      select ${sql.unsafe(columns)} ${keyColumns(sql, byProvider)} from app.integration_credentials
       where true ${after(sql, byProvider, cursor)}
       order by ${orderBy(sql, byProvider)}
       limit ${limit + 1}`);
    res.json(page(byProvider, rows, limit));
  });

  router.put("/:provider", documented({
    summary: "Store a provider's credential", tag, body: storeSchema, params,
    description: "Encrypts the secret on the server (AES-256-GCM under the primary key of CREDENTIALS_KEYS, bound to this shop and provider) and stores it, replacing the one before. Answers its metadata, never the secret.",
    responses: {
      200: { description: "Replaced: the credential's metadata", schema: integration },
      201: { description: "Stored: the credential's metadata", schema: integration, headers: { Location: { description: "The provider's URL", schema: { type: "string" } } } },
    },
  }), manage(), async (req, res) => {
    const name = parseProvider(req.params.provider);
    const { secret } = validateStore(req.body);
    const keys = ring();
    const [stored] = await withTenant(req, async (sql) => {
      // The envelope binds the tenant's id, which the request may have named by its slug.
      const [{ tenant_id }] = await sql`select app.current_tenant_id() as tenant_id`;
      const envelope = encryptCredential(keys, { tenantId: tenant_id, provider: name }, secret);
      return sql`
        insert into app.integration_credentials (provider, credential_envelope, last4) values (${name}, ${envelope}, ${lastFour(secret)})
        on conflict (tenant_id, provider) do update
          set credential_envelope = excluded.credential_envelope, last4 = excluded.last4, changed_at = now()
        returning ${sql.unsafe(columns)}, (xmax = 0) as created`;
    });
    const { created, ...answer } = stored;
    if (created) res.status(201).set("Location", `${router.base}/${name}`);
    res.json(answer);
  });

  router.delete("/:provider", documented({
    summary: "Remove a provider's credential", tag, params,
    description: "Deletes the stored credential. None stored for this provider: 404 INTEGRATION_NOT_FOUND.",
    responses: { 204: { description: "Removed" } },
  }), manage(), async (req, res) => {
    const name = parseProvider(req.params.provider);
    const deleted = await withTenant(req, (sql) => sql`delete from app.integration_credentials where provider = ${name} returning id`);
    if (deleted.length === 0) throw notFound();
    res.status(204).end();
  });

  router.post("/:provider/test", documented({
    summary: "Test a stored credential: decrypt it on the server", tag, params,
    description: "Decrypts the stored credential on the server and answers its last four characters and the key it was decrypted with; calls nothing outside and returns nothing secret. A credential under a key this instance lacks: 503 CREDENTIALS_KEY_UNAVAILABLE (retry); a damaged one: 500 CREDENTIAL_UNREADABLE.",
    responses: { 200: { description: "It decrypts", schema: testResult } },
  }), manage({ writes: false }), async (req, res) => {
    const name = parseProvider(req.params.provider);
    const keys = ring();
    const [stored] = await withTenant(req, (sql) => sql`select tenant_id, credential_envelope, key_id from app.integration_credentials where provider = ${name}`);
    if (!stored) throw notFound();
    let secret: string;
    try {
      secret = decryptCredential(keys, { tenantId: stored.tenant_id, provider: name }, stored.credential_envelope);
    } catch (error) {
      if (error instanceof CredentialDecryptError) throw unreadable(req, error, name);
      throw error;
    }
    res.json({ provider: name, status: "ok", key_id: stored.key_id, last4: lastFour(secret) });
  });
}

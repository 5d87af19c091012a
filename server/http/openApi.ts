// The OpenAPI 3.1 document of an app: openApiDocument(app) walks the mounted router stack
// (routeInventory.ts) and writes an operation for every route carrying a `documented({...})` mark
// (contract.ts). Schemas named there (named(...)) become components referenced by $ref; the
// tags below are the only ones an operation may carry. test/openapi-lint.test.ts lints the result
// with Redocly CLI and Spectral and compiles a client generated from it.
import type express from "express";
import { tenantRefPattern } from "../core/ids.ts";
import { errorSchema, nameOf, uuid, type Doc, type JsonSchema } from "./contract.ts";
import { routeInventory } from "./routeInventory.ts";

/** Every tag an operation may carry, with what it groups, in the order the document lists them. */
const tags: Record<string, string> = {
  Customers: "The shop's customers. One that vehicles still reference cannot be deleted (409 REFERENCE_IN_USE).",
  Vehicles: "Customers' vehicles. The customer must be one of the same shop (422 REFERENCE_NOT_FOUND otherwise); a VIN is unique per shop.",
  Services: "The groups of the service catalog; a name is unique per shop.",
  "Service operations": "The catalog's operations with their price and duration. Lists answer a root JSON array, the next page named by X-Next-Cursor and Link.",
  "Catalog changes": "Versioned catalog changes: change sets drafted against a catalog version, dry-run without changing anything, approved or rejected, applied as the next version; every version with its diff, and restore of an earlier one as a new version.",
  Appointments: "Bookings of a customer (and vehicle), optionally assigned to a member. The database refuses overlapping live bookings of one assignee and status changes the status machine does not allow.",
  Invoices: "Draft invoices and their lines. Issuing numbers an invoice without gaps per shop; after that only pay and void change it.",
  Reports: "Figures read from the shop's reporting views.",
  Audit: "The shop's append-only audit trail: pages of JSON, or a CSV export.",
  Members: "Who belongs to the shop and with which role, and invitations to join it. Only an owner grants or removes the owner role; the last owner stays.",
  Export: "The shop's whole data as one archive, for its owner, also while the shop is suspended.",
  Settings: "The shop's own settings: name, timezone, currency, tax rate, invoice numbering, payment terms, appointment slots, reminders.",
  Integrations: "The shop's third-party credentials (payment provider, parts supplier, SMS gateway): stored encrypted, tested on the server, never answered back.",
  Features: "What the shop's plan, its overrides and the platform's kill switches let it use. A route that needs a feature the shop may not use answers 403 FEATURE_NOT_ENABLED naming it.",
  Access: "Why a member of the shop may or may not act on a table, step by step, from what the database enforces (the shop's admins: members:manage).",
  Platform: "Platform administrators create, suspend and resume shops, and change plans, shops' plans, overrides and kill switches; every change is a numbered version with its actor and reason, and any earlier state can be restored as a new version. Everyone else: 403 PLATFORM_ADMIN_REQUIRED.",
  Caller: "Logging in, accepting an invitation, the caller's account and the shops it belongs to, and the public keys its tokens are verified with; no tenant is named.",
  Operations: "Liveness, readiness, metrics, this document and its page, and the platform administrators' endpoints.",
};

const tenantRef = {
  type: "string",
  pattern: tenantRefPattern,
  maxLength: 63,
  description: "The shop's slug or id, in either case.",
};

const tenantHeader = {
  name: "X-Tenant-Id",
  in: "header",
  required: false,
  description:
    "The shop (slug or id) the request acts in. It may also be named by the path form /api/v1/t/{tenant}/..., by a subdomain " +
    "{slug}.{BASE_DOMAIN}, or by the token: a token scoped to one shop (its `tid` claim) acts in that shop when the request names none. " +
    "Names that disagree: 400 TENANT_CONFLICT. A shop the caller does not belong to, or that does not exist: 404 TENANT_NOT_FOUND. " +
    "With a token scoped to another shop, naming a shop here does not widen the token: the answer is 404 TENANT_NOT_FOUND, the same " +
    "as for a shop the caller does not belong to. A suspended shop: 403 TENANT_SUSPENDED (members only). No shop named anywhere: 400 TENANT_REQUIRED.",
  schema: tenantRef,
};

const idempotencyHeader = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  description: "1-255 visible ASCII characters. A retry with the same key and body replays the first answer (status, body, headers) with Idempotent-Replayed: true.",
  schema: { type: "string", pattern: "^[\\x21-\\x7e]{1,255}$" },
};

const tokenSchema = { type: "string", pattern: "^1\\.[0-9a-f]{16}$", maxLength: 18 };

const consistencyParam = {
  name: "X-Consistency-Token",
  in: "header",
  required: false,
  description:
    "The X-Consistency-Token of this client's last write, sent back unchanged: the answer then includes that write (it comes from a " +
    "replica that has replayed it, or from the primary). Without it a replica may answer from data up to READ_REPLICA_MAX_LAG_MS old. " +
    "Anything but a token this API answered is 400 INVALID_CONSISTENCY_TOKEN.",
  schema: tokenSchema,
};

const consistencyResponseHeader = {
  description:
    "Where the deployment reads from hot standbys (DATABASE_READ_URLS): the point this write reached in the primary's log. Opaque: " +
    "send it back unchanged on the reads after it (X-Consistency-Token) to read this write.",
  schema: tokenSchema,
};

const readsFromReplica =
  "Where the deployment reads from hot standbys (DATABASE_READ_URLS), a replica answers it: at most READ_REPLICA_MAX_LAG_MS behind " +
  "the primary, or, with the X-Consistency-Token of the client's last write, at or after that write.";

/**
 * Which server answers an operation where replicas serve reads, and why (x-consistency): every
 * write, and a read that says why it needs to be (`primary`), the primary; every other read that
 * reaches the database a replica. Operations that never reach the database (liveness, metrics,
 * this document) carry none.
 */
function consistency(method: string, doc: Doc, writing: boolean, auth: string) {
  if (doc.primary) return { "served-by": "primary", reason: doc.primary };
  if (writing) {
    const why = method === "get" ? "Its transaction writes" : "It writes";
    return { "served-by": "primary", reason: `${why}: writes go to the primary, and every statement of a writing transaction with them.` };
  }
  if (method !== "get") {
    return { "served-by": "primary", reason: "Only GETs are read from replicas: an action that only reads (such as testing a stored credential) acts on what the client just wrote, so it reads the primary." };
  }
  return auth === "public" ? undefined : { "served-by": "replica", reason: readsFromReplica };
}

const textRule =
  "No string may hold a NUL character (U+0000) or a lone UTF-16 surrogate: PostgreSQL text cannot store them. " +
  "In a body that is 422 VALIDATION_FAILED, in the query string 400 INVALID_PARAMETER.";

const info = {
  title: "rls-service-shop API",
  version: "1",
  description: [
    "Multi-tenant service-shop API: workshops manage customers, vehicles, appointments, a service catalog and invoices. PostgreSQL row-level security is the tenant boundary.",
    "**Tenant.** A tenant route acts in one shop, named by the X-Tenant-Id header, the /api/v1/t/{tenant}/ path form, a subdomain or a scoped token. Another shop's rows answer as rows that do not exist (404).",
    "**Lists** page by an opaque keyset cursor: pass next_cursor back as cursor; it is null on the last page.",
    "**Limits.** Request schemas carry the limits the database enforces (lengths, ranges, patterns, two decimals of a quantity): a value beyond one is refused with 422 VALIDATION_FAILED before the database is asked. " +
      "Rules across fields or rows stay the database's, answered with their own codes: starts_at before ends_at (422 INVALID_TIME_RANGE), unique names and VINs (409), overlapping bookings (409 APPOINTMENT_OVERLAP).",
    `**Text.** ${textRule}`,
    "**Reading your writes.** Where the deployment reads from hot standbys, a read may be answered from data up to READ_REPLICA_MAX_LAG_MS old (each operation's x-consistency says which server answers it and why). " +
      "Every tenant write then answers an X-Consistency-Token header; send the latest one back, unchanged, on later reads and they include that write.",
    "**Errors.** Every error answers {\"error\": {code, message, request_id}}, with details and help where there are any. A method a path does not have is 405 METHOD_NOT_ALLOWED with an Allow header naming the methods it has.",
  ].join("\n\n"),
  // The service is not published under a licence: its rights are reserved (an SPDX LicenseRef names that).
  license: { name: "Proprietary: all rights reserved", identifier: "LicenseRef-Proprietary" },
  contact: { name: "rls-service-shop maintainers" },
};

const errorResponses = {
  ClientError: {
    description:
      "Refused: 400 malformed input, 401 no valid token, 403 not permitted, 404 not found (also another shop's row, and a shop the caller " +
      "does not belong to), 405 a method this path does not have, 409 conflict, 413 body too large, 415 not JSON, 422 failed validation.",
    headers: {
      Allow: { description: "With 405: the methods this path has.", schema: { type: "string" } },
      "WWW-Authenticate": { description: "With 401: the scheme, Bearer.", schema: { type: "string" } },
    },
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  },
  ServerError: {
    description: "503 when the database is unavailable, busy or slow, or this instance is shutting down (retry after Retry-After); 500 otherwise.",
    headers: { "Retry-After": { description: "With 503: seconds to wait before a retry.", schema: { type: "string" } } },
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  },
};

const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z_]+)/g, "{$1}");

/**
 * The document's named schemas: `ref(schema)` answers a copy of `schema` in which every schema
 * named with named(...) is a $ref to its component, defined once. Two different schemas under one
 * name are a mistake in the routes, refused here.
 */
function schemaComponents() {
  const components: Record<string, JsonSchema> = {};
  const walk = (value: unknown, root: boolean): unknown => {
    if (Array.isArray(value)) return value.map((v) => walk(v, false));
    if (value === null || typeof value !== "object") return value;
    const name = nameOf(value);
    if (name !== undefined && !root) {
      const written = walk(value, true) as JsonSchema;
      const before = components[name];
      if (before && JSON.stringify(before) !== JSON.stringify(written)) throw new Error(`two different schemas are named ${name} (server/http/contract.ts named())`);
      components[name] = written;
      return { $ref: `#/components/schemas/${name}` };
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, false)]));
  };
  return { components, ref: (schema: JsonSchema) => walk(schema, false) as JsonSchema };
}

type Ref = (schema: JsonSchema) => JsonSchema;

type Needs = { permission?: string; feature?: string; writes?: boolean };

function operation(method: string, path: string, doc: Doc, tenantPath: boolean, needs: Needs, pathForm: boolean, ref: Ref) {
  const { permission, writes } = needs;
  const feature = needs.feature && needs.feature !== "none" ? needs.feature : undefined;
  if (!(doc.tag in tags)) throw new Error(`${method.toUpperCase()} ${path}: tag "${doc.tag}" is not one of the document's tags. FIX: describe it in server/http/openApi.ts`);
  const params: Record<string, unknown>[] = [...path.matchAll(/\{([A-Za-z_]+)\}/g)].map(([, name]) => ({
    name,
    in: "path",
    required: true,
    schema: name === "tenant" ? tenantRef : ref(doc.params?.[name] ?? uuid),
  }));
  const query = doc.query as { properties?: Record<string, JsonSchema>; required?: string[] } | undefined;
  for (const [name, schema] of Object.entries(query?.properties ?? {})) {
    params.push({ name, in: "query", required: query?.required?.includes(name) ?? false, schema: ref(schema) });
  }
  if (tenantPath && !pathForm) params.push(tenantHeader);
  if (method === "post" && tenantPath) params.push(idempotencyHeader);
  const auth = doc.auth ?? "bearer";
  // By default every method but GET and HEAD writes (auth/authorize.ts requires()).
  const writing = writes ?? method !== "get";
  const served = consistency(method, doc, writing, auth);
  if (served?.["served-by"] === "replica") params.push(consistencyParam);
  // A tenant write answers its token (db/tenantContext.ts); the export's answer leaves before it commits.
  const stamped = tenantPath && method !== "get" && writing;
  const responses: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(doc.responses)) {
    const headers = stamped && status.startsWith("2") ? { ...r.headers, "X-Consistency-Token": consistencyResponseHeader } : r.headers;
    responses[status] = {
      description: r.description,
      ...(headers ? { headers } : {}),
      ...(r.schema || r.contentType ? { content: { [r.contentType ?? "application/json"]: { schema: ref(r.schema ?? { type: "string" }) } } } : {}),
    };
  }
  // Every GET body carries a strong ETag (http/etag.ts); a matching If-None-Match answers 304.
  if (method === "get") responses["304"] ??= { description: "Not modified: If-None-Match matched the ETag." };
  responses["4XX"] ??= { $ref: "#/components/responses/ClientError" };
  responses["5XX"] ??= { $ref: "#/components/responses/ServerError" };
  return {
    operationId: `${method}${path.replace(/[{}]/g, "").replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? "").toUpperCase())}`,
    summary: doc.summary,
    description: [
      doc.description,
      permission ? `Needs the permission \`${permission}\` in the tenant.` : "",
      feature ? `Needs the feature \`${feature}\` (403 FEATURE_NOT_ENABLED when the shop may not use it).` : "",
    ].filter(Boolean).join("\n\n"),
    tags: [doc.tag],
    ...(permission ? { "x-permission": permission } : {}),
    ...(feature ? { "x-feature": feature } : {}),
    ...(served ? { "x-consistency": served } : {}),
    security: auth === "public" ? [] : [{ bearer: [] }],
    parameters: params,
    ...(doc.body ? { requestBody: { required: true, description: textRule, content: { "application/json": { schema: ref(doc.body) } } } } : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document of everything mounted on `app` that carries a `documented` mark. */
export function openApiDocument(app: express.Express): JsonSchema {
  const { components, ref } = schemaComponents();
  ref(errorSchema);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routeInventory(app)) {
    if (!route.doc) continue;
    const method = route.method.toLowerCase();
    const path = toOpenApiPath(route.path);
    (paths[path] ??= {})[method] = operation(method, path, route.doc, route.tenantPath, route, false, ref);
    // The same tenant operation with the tenant named in the path.
    if (route.tenantPath && path.startsWith("/api/v1/")) {
      const prefixed = path.replace(/^\/api\/v1\//, "/api/v1/t/{tenant}/");
      const op = operation(method, prefixed, route.doc, true, route, true, ref);
      (paths[prefixed] ??= {})[method] = { ...op, operationId: `${op.operationId}ByTenantPath` };
    }
  }
  const used = new Set(Object.values(paths).flatMap((ops) => Object.values(ops).flatMap((op) => (op as { tags: string[] }).tags)));
  return {
    openapi: "3.1.0",
    info,
    servers: [{ url: "/" }],
    tags: Object.entries(tags).filter(([name]) => used.has(name)).map(([name, description]) => ({ name, description })),
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b))),
      responses: errorResponses,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
    },
  };
}

// The OpenAPI 3.1 document of an app: openApiDocument(app) walks the mounted router stack
// (routeInventory.ts) and writes an operation for every route carrying a `documented({...})` mark
// (contract.ts).
import type express from "express";
import { errorSchema, uuid, type Doc, type JsonSchema } from "./contract.ts";
import { routeInventory } from "./routeInventory.ts";

const tenantHeader = {
  name: "X-Tenant-Id",
  in: "header",
  required: false,
  description: "The tenant (uuid or slug). Or name it in the path (/api/v1/t/{tenant}/...), by subdomain, or in the token; names that disagree are 400 TENANT_CONFLICT.",
  schema: { type: "string", maxLength: 100 },
};

const idempotencyHeader = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  description: "1-255 visible ASCII characters. A retry with the same key and body replays the first answer (status, body, headers) with Idempotent-Replayed: true.",
  schema: { type: "string", pattern: "^[\\x21-\\x7e]{1,255}$" },
};

const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z_]+)/g, "{$1}");

function operation(method: string, path: string, doc: Doc, tenantPath: boolean, permission: string | undefined, pathForm: boolean) {
  const params = [...path.matchAll(/\{([A-Za-z_]+)\}/g)].map(([, name]) => ({
    name,
    in: "path",
    required: true,
    schema: name === "tenant" ? { type: "string", maxLength: 63 } : doc.params?.[name] ?? uuid,
  }));
  const query = doc.query as { properties?: Record<string, JsonSchema>; required?: string[] } | undefined;
  for (const [name, schema] of Object.entries(query?.properties ?? {})) {
    params.push({ name, in: "query", required: query?.required?.includes(name) ?? false, schema } as never);
  }
  if (tenantPath && !pathForm) params.push(tenantHeader as never);
  if (method === "post" && tenantPath) params.push(idempotencyHeader as never);
  const responses: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(doc.responses)) {
    responses[status] = {
      description: r.description,
      ...(r.headers ? { headers: r.headers } : {}),
      ...(r.schema || r.contentType ? { content: { [r.contentType ?? "application/json"]: { schema: r.schema ?? { type: "string" } } } } : {}),
    };
  }
  // Every GET body carries a strong ETag (http/etag.ts); a matching If-None-Match answers 304.
  if (method === "get") responses["304"] ??= { description: "Not modified: If-None-Match matched the ETag." };
  responses["4XX"] ??= { description: "Client error", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
  responses["5XX"] ??= { description: "Server unavailable or error", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
  const auth = doc.auth ?? "bearer";
  return {
    operationId: `${method}${path.replace(/[{}]/g, "").replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? "").toUpperCase())}`,
    summary: doc.summary,
    ...(doc.description || permission ? { description: [doc.description, permission ? `Needs the permission \`${permission}\` in the tenant.` : ""].filter(Boolean).join("\n\n") } : {}),
    tags: [doc.tag],
    ...(permission ? { "x-permission": permission } : {}),
    security: auth === "public" ? [] : [{ bearer: [] }],
    parameters: params,
    ...(doc.body ? { requestBody: { required: true, content: { "application/json": { schema: doc.body } } } } : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document of everything mounted on `app` that carries a `documented` mark. */
export function openApiDocument(app: express.Express): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routeInventory(app)) {
    if (!route.doc) continue;
    const method = route.method.toLowerCase();
    const path = toOpenApiPath(route.path);
    (paths[path] ??= {})[method] = operation(method, path, route.doc, route.tenantPath, route.permission, false);
    // The same tenant operation with the tenant named in the path.
    if (route.tenantPath && path.startsWith("/api/v1/")) {
      const prefixed = path.replace(/^\/api\/v1\//, "/api/v1/t/{tenant}/");
      const op = operation(method, prefixed, route.doc, true, route.permission, true);
      (paths[prefixed] ??= {})[method] = { ...op, operationId: `${op.operationId}ByTenantPath` };
    }
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "rls-service-shop API",
      version: "1",
      description: "Multi-tenant service-shop API; PostgreSQL row-level security is the tenant boundary. Lists page by an opaque keyset cursor. Every error answers {\"error\": {code, message, request_id}}.",
    },
    servers: [{ url: "/" }],
    paths,
    components: {
      schemas: { Error: errorSchema },
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
    },
  };
}

// The API contract. Each route carries a `documented({...})` middleware naming its summary and
// the same schema objects its validators are compiled from (query, body) plus its responses.
// openApiDocument(app) walks the mounted router stack (routeInventory) and writes an OpenAPI
// 3.1 document from those marks, so the document describes what is mounted, with one source.
import type express from "express";
import type { RequestHandler } from "express";
import { templateOf } from "../core/metrics.ts";
import { routeInventory } from "./routeInventory.ts";

export type JsonSchema = Record<string, unknown>;

export type Responses = Record<string, { description: string; schema?: JsonSchema; contentType?: string; headers?: Record<string, { description: string; schema: JsonSchema }> }>;

export type Doc = {
  summary: string;
  tag: string;
  /** Who may call: nobody needs a token ("public"), any verified token ("bearer"), a platform admin ("admin"). Tenant routes are "bearer". */
  auth?: "public" | "bearer" | "admin";
  /** The query-string schema the route validates with (an object schema with properties). */
  query?: JsonSchema;
  /** The body schema the route validates with. */
  body?: JsonSchema;
  /** Path parameters: name → schema (default: a uuid). */
  params?: Record<string, JsonSchema>;
  responses: Responses;
  description?: string;
};

const DOC = Symbol.for("rls-service-shop.doc");

/**
 * Marks a route with its contract. First on the route, it also records the route's template
 * for the metrics and the access log (metrics.ts routeTemplate).
 */
export function documented(doc: Doc): RequestHandler {
  // The template of the last mount and path seen (a route has one): built once, not per request.
  let seen: { baseUrl: string; path: string; template: string } | undefined;
  const handler: RequestHandler = function documentedRoute(req, res, next) {
    const path = (req.route as { path?: unknown } | undefined)?.path;
    if (typeof path === "string" && res.locals.route === undefined) {
      if (seen?.baseUrl !== req.baseUrl || seen.path !== path) seen = { baseUrl: req.baseUrl, path, template: templateOf(req.baseUrl, path) };
      res.locals.route = seen.template;
    }
    next();
  };
  return Object.assign(handler, { [DOC]: doc });
}

export function docOf(handler: unknown): Doc | undefined {
  return typeof handler === "function" ? (handler as { [DOC]?: Doc })[DOC] : undefined;
}

export const uuid = { type: "string", format: "uuid" } as const;
export const timestamp = { type: "string", format: "date-time" } as const;
export const nullable = (schema: JsonSchema): JsonSchema => ({ ...schema, type: [schema.type as string, "null"] });

/** The one error body (errorHandler.ts). */
export const errorSchema: JsonSchema = {
  type: "object",
  additionalProperties: false,
  required: ["error"],
  properties: {
    error: {
      type: "object",
      additionalProperties: false,
      required: ["code", "message", "request_id"],
      properties: {
        code: { type: "string", pattern: "^[A-Z][A-Z0-9_]*$" },
        message: { type: "string" },
        request_id: { type: "string" },
        details: {},
        help: { type: "string" },
      },
    },
  },
};

/** An object schema whose every property is listed and required (rows answer every column, null or not). */
export function row(properties: Record<string, JsonSchema>): JsonSchema {
  return { type: "object", additionalProperties: false, required: Object.keys(properties), properties };
}

export const page = (item: JsonSchema): JsonSchema => ({
  type: "object",
  additionalProperties: false,
  required: ["data", "next_cursor"],
  properties: { data: { type: "array", items: item }, next_cursor: { type: ["string", "null"], description: "Opaque; null on the last page." } },
});

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
  // Every GET body carries Express's strong ETag; a matching If-None-Match answers 304.
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

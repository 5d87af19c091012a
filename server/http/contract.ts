// The API contract. Each route carries a `documented({...})` middleware naming its summary and
// the same schema objects its validators are compiled from (query, body) plus its responses.
// openApi.ts writes the OpenAPI document from those marks, so the document describes what is
// mounted, with one source.
import type { RequestHandler } from "express";
import { templateOf } from "../core/metrics.ts";
import { requestState } from "../core/requestContext.ts";

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
  /** What the operation does, for the API document (every operation has one). */
  description: string;
  /**
   * Why this read must be answered by the primary where replicas serve reads (its x-consistency in
   * the API document); documented() then keeps it there. Writes are the primary's without saying.
   */
  primary?: string;
};

const DOC = Symbol.for("rls-service-shop.doc");

/**
 * Marks a route with its contract. First on the route, it also records the route's template
 * for the metrics and the access log (core/metrics.ts routeTemplate), and keeps a read that
 * documents it needs the primary there (db/tenantContext.ts reads the request state).
 */
export function documented(doc: Doc): RequestHandler {
  // The template of the last mount and path seen (a route has one): built once, not per request.
  let seen: { baseUrl: string; path: string; template: string } | undefined;
  const primary = doc.primary !== undefined;
  const handler: RequestHandler = function documentedRoute(req, res, next) {
    const path = (req.route as { path?: unknown } | undefined)?.path;
    if (typeof path === "string" && res.locals.route === undefined) {
      if (seen?.baseUrl !== req.baseUrl || seen.path !== path) seen = { baseUrl: req.baseUrl, path, template: templateOf(req.baseUrl, path) };
      res.locals.route = seen.template;
    }
    if (primary) {
      const state = requestState(req);
      if (state) state.primary = true;
    }
    next();
  };
  return Object.assign(handler, { [DOC]: doc });
}

export function docOf(handler: unknown): Doc | undefined {
  return typeof handler === "function" ? (handler as { [DOC]?: Doc })[DOC] : undefined;
}

// Schemas given a name here become components of the API document, referenced by $ref wherever
// they are used, so a client generated from it gets a named type for each.
const names = new WeakMap<object, string>();

/** `schema`, named `name` in the API document (components/schemas). Returns the same object. */
export function named<T extends JsonSchema>(name: string, schema: T): T {
  names.set(schema, name);
  return schema;
}

export function nameOf(schema: object): string | undefined {
  return names.get(schema);
}

export const uuid = { type: "string", format: "uuid" } as const;
export const timestamp = { type: "string", format: "date-time" } as const;
export const nullable = (schema: JsonSchema): JsonSchema => ({ ...schema, type: [schema.type as string, "null"] });

/** The one error body (errorHandler.ts). */
export const errorSchema: JsonSchema = named("Error", {
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
        details: { description: "What exactly was refused, when known: for validation, a list of {field, message}." },
        help: { type: "string", description: "Where an operator reads what to do (a runbook)." },
      },
    },
  },
});

/** An object schema whose every property is listed and required (rows answer every column, null or not). */
export function row(properties: Record<string, JsonSchema>): JsonSchema {
  return { type: "object", additionalProperties: false, required: Object.keys(properties), properties };
}

/** A keyset page of `item`; named `${item's name}Page` in the API document when the item is named. */
export const page = (item: JsonSchema): JsonSchema => pageNamed(item, {
  type: "object",
  additionalProperties: false,
  required: ["data", "next_cursor"],
  properties: { data: { type: "array", items: item }, next_cursor: { type: ["string", "null"], description: "Opaque; null on the last page." } },
});

function pageNamed(item: JsonSchema, schema: JsonSchema): JsonSchema {
  const itemName = nameOf(item);
  return itemName ? named(`${itemName}Page`, schema) : schema;
}

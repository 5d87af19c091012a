// The service catalog v2: groups (services) and operations. Lists and items carry a strong
// ETag; operations list as a root JSON array, display_order ASC NULLS LAST, then name.
import { nullable, timestamp, uuid } from "../http/contract.ts";
import { resourceRoutes } from "./resource.ts";
import type { Routes } from "./mount.ts";
import type { Sql } from "../db/connections.ts";

// The catalog's lists answer its current version (policies/catalog_versions.sql) and change their
// ETag with each one.
const catalogVersion = {
  header: "Catalog-Version",
  query: (sql: Sql) => sql`select coalesce(max(h.version), 0)::int as version from app.catalog_heads h`,
};

export function serviceRoutes(router: Routes): void {
  resourceRoutes(router, {
    permissions: { read: "catalog:read", write: "catalog:write" },
    feature: "none",
    table: "app.services",
    columns: ["id", "name", "display_order", "created_at", "updated_at"],
    fields: {
      name: { type: "string", minLength: 1, maxLength: 200, pattern: "\\S" },
      display_order: { type: "integer", minimum: -1000000, maximum: 1000000 },
    },
    required: ["name"],
    filters: {},
    keyset: { keys: [{ expr: "display_order", type: "int" }, { expr: "name", type: "text" }, { expr: "id", type: "uuid" }] },
    name: "service",
    tag: "Services",
    rules: "The name is unique per shop (409 SERVICE_NAME_TAKEN).",
    deleteRule: "A service that operations still belong to, or that catalog change sets name: 409 REFERENCE_IN_USE.",
    order: "display_order, name, then id",
    row: { id: uuid, name: { type: "string" }, display_order: { type: "integer" }, created_at: timestamp, updated_at: timestamp },
    notFoundCode: "SERVICE_NOT_FOUND",
    notFoundMessage: "Service not found.",
    etag: true,
    versioned: catalogVersion,
  });
}

export function serviceOperationRoutes(router: Routes): void {
  resourceRoutes(router, {
    permissions: { read: "catalog:read", write: "catalog:write" },
    feature: "none",
    table: "app.service_operations",
    columns: ["id", "service_id", "internal_code", "name", "subcategory", "display_order", "price_cents", "duration_minutes", "active", "created_at", "updated_at"],
    fields: {
      service_id: uuid,
      internal_code: { type: "string", pattern: "^[A-Za-z0-9._-]{1,40}$" },
      name: { type: "string", minLength: 1, maxLength: 200, pattern: "\\S" },
      subcategory: { type: ["string", "null"], minLength: 1, maxLength: 200 },
      display_order: { type: ["integer", "null"], minimum: -1000000, maximum: 1000000 },
      // The database's own bounds (service_operations_price_check, _duration_check), told before it refuses.
      price_cents: { type: "integer", minimum: 0, maximum: 100000000 },
      duration_minutes: { type: "integer", minimum: 1, maximum: 100000 },
      active: { type: "boolean" },
    },
    required: ["service_id", "internal_code", "name", "price_cents", "duration_minutes"],
    filters: { service_id: uuid, active: { type: "boolean" } },
    // display_order ascending with NULLs last, then name: the NULL flag is a key of its own so
    // that every key is non-null and a row comparison pages through it.
    keyset: {
      keys: [
        { expr: "display_order is null", type: "boolean" },
        { expr: "coalesce(display_order, 0)", type: "int" },
        { expr: "name", type: "text" },
        { expr: "id", type: "uuid" },
      ],
    },
    name: "service operation",
    tag: "Service operations",
    rules: "The service must be one of this shop's (422 REFERENCE_NOT_FOUND); internal_code is unique per shop (409 INTERNAL_CODE_TAKEN).",
    deleteRule: "An operation that invoice lines or catalog change sets still reference: 409 REFERENCE_IN_USE.",
    order: "display_order ascending with nulls last, name, then id",
    row: {
      id: uuid, service_id: uuid, internal_code: { type: "string" }, name: { type: "string" }, subcategory: nullable({ type: "string" }),
      display_order: nullable({ type: "integer" }), price_cents: { type: "integer" }, duration_minutes: { type: "integer" }, active: { type: "boolean" },
      created_at: timestamp, updated_at: timestamp,
    },
    notFoundCode: "SERVICE_OPERATION_NOT_FOUND",
    notFoundMessage: "Service operation not found.",
    rootArray: true,
    etag: true,
    versioned: catalogVersion,
  });
}

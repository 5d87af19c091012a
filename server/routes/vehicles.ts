// Vehicles: a customer's cars. The customer must belong to the caller's tenant; the database
// checks it (composite foreign key), so a foreign or unknown customer is 422 REFERENCE_NOT_FOUND.
import { nullable, timestamp, uuid } from "../http/contract.ts";
import { resourceRoutes } from "./resource.ts";
import type { Routes } from "./mount.ts";

const text = (max: number) => ({ type: ["string", "null"], minLength: 1, maxLength: max });

export function vehicleRoutes(router: Routes): void {
  resourceRoutes(router, {
    permissions: { read: "customers:read", write: "customers:write" },
    feature: "none",
    table: "app.vehicles",
    columns: ["id", "customer_id", "vin", "plate", "make", "model", "year", "created_at", "updated_at"],
    fields: {
      customer_id: uuid,
      vin: { type: ["string", "null"], pattern: "^[A-HJ-NPR-Z0-9]{17}$" },
      plate: text(20),
      make: text(80),
      model: text(80),
      year: { type: ["integer", "null"], minimum: 1886, maximum: 2100 },
    },
    required: ["customer_id"],
    filters: { customer_id: uuid },
    keyset: { keys: [{ expr: "created_at", type: "timestamptz" }, { expr: "id", type: "uuid" }] },
    name: "vehicle",
    tag: "Vehicles",
    rules: "The customer must be one of this shop's (422 REFERENCE_NOT_FOUND); a VIN is unique per shop (409 VIN_TAKEN).",
    deleteRule: "A vehicle that appointments still reference: 409 REFERENCE_IN_USE.",
    order: "created_at, then id",
    row: {
      id: uuid, customer_id: uuid, vin: nullable({ type: "string" }), plate: nullable({ type: "string" }), make: nullable({ type: "string" }),
      model: nullable({ type: "string" }), year: nullable({ type: "integer" }), created_at: timestamp, updated_at: timestamp,
    },
    notFoundCode: "VEHICLE_NOT_FOUND",
    notFoundMessage: "Vehicle not found.",
  });
}

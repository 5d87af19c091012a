// Appointments. The database enforces the rules: the vehicle belongs to the customer, the
// assignee is a member, start before end, no overlapping live bookings per assignee
// (APPOINTMENT_OVERLAP), and the status machine (INVALID_TRANSITION).
import { nullable, timestamp, uuid } from "../http/contract.ts";
import { resourceRoutes } from "./resource.ts";
import type { Routes } from "./mount.ts";


export function appointmentRoutes(router: Routes): void {
  resourceRoutes(router, {
    permissions: { read: "appointments:read", write: "appointments:write" },
    feature: "none",
    table: "app.appointments",
    columns: ["id", "customer_id", "vehicle_id", "assigned_user_id", "starts_at", "ends_at", "status", "notes", "created_at", "updated_at"],
    fields: {
      customer_id: uuid,
      vehicle_id: nullable(uuid),
      assigned_user_id: nullable(uuid),
      starts_at: { type: "string", format: "date-time" },
      ends_at: { type: "string", format: "date-time" },
      status: { enum: ["scheduled", "in_progress", "done", "cancelled"] },
      notes: { type: ["string", "null"], maxLength: 4000 },
    },
    required: ["customer_id", "starts_at", "ends_at"],
    filters: { status: { enum: ["scheduled", "in_progress", "done", "cancelled"] }, assigned_user_id: uuid, customer_id: uuid },
    where: {
      schema: { from: { type: "string", format: "date-time" }, to: { type: "string", format: "date-time" } },
      // Appointments that overlap [from, to).
      build: (sql, q) => sql`
        ${q.from ? sql`and ends_at > ${q.from as string}::timestamptz` : sql``}
        ${q.to ? sql`and starts_at < ${q.to as string}::timestamptz` : sql``}`,
    },
    keyset: { keys: [{ expr: "starts_at", type: "timestamptz" }, { expr: "id", type: "uuid" }] },
    name: "appointment",
    tag: "Appointments",
    rules: "starts_at must be before ends_at (422 INVALID_TIME_RANGE); the vehicle must be the customer's and the assignee a member (422 REFERENCE_NOT_FOUND); " +
      "an assignee's live bookings may not overlap (409 APPOINTMENT_OVERLAP); status moves scheduled → in_progress → done, or to cancelled from either (409 INVALID_TRANSITION). " +
      "Without appointments:all only one's own appointments exist, and assigning another member is 403.",
    deleteRule: "An appointment that an invoice references: 409 REFERENCE_IN_USE.",
    order: "starts_at, then id",
    row: {
      id: uuid, customer_id: uuid, vehicle_id: nullable(uuid), assigned_user_id: nullable(uuid), starts_at: timestamp, ends_at: timestamp,
      status: { enum: ["scheduled", "in_progress", "done", "cancelled"] }, notes: nullable({ type: "string" }), created_at: timestamp, updated_at: timestamp,
    },
    notFoundCode: "APPOINTMENT_NOT_FOUND",
    notFoundMessage: "Appointment not found.",
  });
}

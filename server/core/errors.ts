// One error taxonomy: AppError carries an HTTP status, a stable UPPER_SNAKE code, whether it
// is operational (expected) and optional help. Subclasses only set defaults. Database errors
// become AppErrors through one SQLSTATE table (toAppError); nothing else maps them.

export type ErrorOptions = { details?: unknown; help?: string; cause?: unknown; headers?: Record<string, string> };

export class AppError extends Error {
  readonly status: number;
  readonly code: string;
  readonly operational: boolean;
  readonly details?: unknown;
  readonly help?: string;
  readonly headers?: Record<string, string>;

  constructor(status: number, code: string, message: string, options: ErrorOptions & { operational?: boolean } = {}) {
    super(message, { cause: options.cause });
    this.status = status;
    this.code = code;
    this.operational = options.operational ?? status < 500;
    this.details = options.details;
    this.help = options.help;
    this.headers = options.headers;
  }
}

export class BadRequestError extends AppError {
  constructor(code: string, message: string, options?: ErrorOptions) { super(400, code, message, options); }
}
export class UnauthorizedError extends AppError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(401, code, message, { ...options, headers: { "WWW-Authenticate": 'Bearer realm="api"', ...options?.headers } });
  }
}
export class ForbiddenError extends AppError {
  constructor(code: string, message: string, options?: ErrorOptions) { super(403, code, message, options); }
}
export class NotFoundError extends AppError {
  constructor(code: string, message: string, options?: ErrorOptions) { super(404, code, message, options); }
}
export class ConflictError extends AppError {
  constructor(code: string, message: string, options?: ErrorOptions) { super(409, code, message, options); }
}
export class ValidationError extends AppError {
  constructor(code: string, message: string, options?: ErrorOptions) { super(422, code, message, options); }
}
export class UnavailableError extends AppError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(503, code, message, { ...options, operational: true, headers: { "Retry-After": "1", ...options?.headers } });
  }
}

export const databaseUnavailable = (cause?: unknown) =>
  new UnavailableError("DATABASE_UNAVAILABLE", "The database is unavailable; retry shortly.", {
    cause,
    help: "runbooks/incident-database-unavailable.md",
  });

// Bounded waits (server/db/connections.ts): each answers at once with a Retry-After instead of queueing.
export const databaseBusy = (waitedMs: number, cause?: unknown) =>
  new UnavailableError("DATABASE_BUSY", `No database connection became free within ${waitedMs} ms; retry shortly.`, {
    cause,
    help: "runbooks/incident-database-unavailable.md",
  });

export const overloaded = (cause?: unknown) =>
  new UnavailableError("OVERLOADED", "The service is at capacity; retry shortly.", {
    cause,
    help: "runbooks/incident-database-unavailable.md",
  });

export const exportsBusy = (budget: number, cause?: unknown) =>
  new UnavailableError("EXPORTS_BUSY", `All ${budget} export connections are in use; retry later.`, {
    cause,
    headers: { "Retry-After": "10" },
    help: "runbooks/incident-database-unavailable.md",
  });

// /readyz: app_user's own role defaults left the allow-list (policies/role_defaults.sql). Only an
// operator puts them right, so pollers are asked to come back in 30 s rather than 1.
export const roleDefaultsChanged = (settings: string[]) =>
  new UnavailableError("ROLE_DEFAULTS_CHANGED", "The API role's defaults in the database left the allow-list.", {
    details: { settings },
    headers: { "Retry-After": "30" },
    help: "runbooks/role-defaults.md",
  });

// Login throttling (policies/login_throttle.sql): too many failures for this account or address.
export const loginThrottled = (retryAfterSeconds: number) =>
  new AppError(429, "LOGIN_THROTTLED", `Too many failed logins; try again in ${retryAfterSeconds} s.`, {
    headers: { "Retry-After": String(retryAfterSeconds) },
    help: "runbooks/tenant-lifecycle.md",
  });

// A read on a replica that has not replayed the client's consistency token (server/db/tenantContext.ts).
// The primary then answers the read: no client sees this one, unless a replica read escaped that path.
export const replicaBehind = () =>
  new UnavailableError("REPLICA_BEHIND", "The read replica has not replayed this client's last write yet; retry shortly.");

// An X-Consistency-Token this API did not write (server/db/walPosition.ts): refused, never ignored,
// so a client that believes it reads its writes does not silently lose that.
export const invalidConsistencyToken = () =>
  new BadRequestError("INVALID_CONSISTENCY_TOKEN", "X-Consistency-Token must be a token this API answered a write with, sent back unchanged.", {
    help: "docs/api.md#reading-your-writes",
  });

export const shuttingDown = (cause?: unknown) =>
  new UnavailableError("SHUTTING_DOWN", "This instance is shutting down; retry on another.", { cause });

type PgError = { code?: string; constraint_name?: string; constraint?: string; message?: string; detail?: string };

// Client-side connection failures reported by postgres.js or the socket layer.
const connectionCodes = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND", "EPIPE", "EAI_AGAIN",
  "CONNECT_TIMEOUT", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED",
]);

// Named constraints whose violation has its own stable code (checked before the SQLSTATE).
const constraintErrors: Record<string, [number, string, string]> = {
  vehicles_tenant_vin_key: [409, "VIN_TAKEN", "Another vehicle of this shop has this VIN."],
  services_tenant_name_key: [409, "SERVICE_NAME_TAKEN", "A service with this name already exists."],
  service_operations_tenant_code_key: [409, "INTERNAL_CODE_TAKEN", "An operation with this internal_code already exists."],
  service_operations_price_check: [422, "INVALID_PRICE", "price_cents must be zero or more."],
  service_operations_duration_check: [422, "INVALID_DURATION", "duration_minutes must be more than zero."],
  vehicles_vin_check: [422, "INVALID_VIN", "A VIN has 17 characters: digits and capital letters except I, O and Q."],
  appointments_assignee_overlap: [409, "APPOINTMENT_OVERLAP", "The assignee already has an appointment at that time."],
  appointments_time_check: [422, "INVALID_TIME_RANGE", "starts_at must be before ends_at."],
  invoice_lines_quantity_check: [422, "INVALID_QUANTITY", "quantity must be more than zero."],
  invoice_lines_price_check: [422, "INVALID_PRICE", "unit_price_cents must be zero or more."],
  memberships_pkey: [409, "ALREADY_A_MEMBER", "This account is already a member of the shop."],
  tenants_slug_key: [409, "SLUG_TAKEN", "Another shop has this slug."],
  // Catalog change sets (sql/0460): an item of the wrong shape or out of bounds, whether ajv or the database refused it.
  catalog_change_set_items_shape_check: [422, "INVALID_CHANGE_ITEM", "A change set item does not carry what its kind needs (and only that)."],
  catalog_change_set_items_values_check: [422, "INVALID_CHANGE_ITEM", "A change set item holds a value out of the catalog's bounds."],
  catalog_change_set_items_operation_fkey: [422, "REFERENCE_NOT_FOUND", "A change set item names an operation this shop does not have."],
  catalog_change_set_items_service_fkey: [422, "REFERENCE_NOT_FOUND", "A change set item names a service this shop does not have."],
  catalog_change_sets_rejection_reason_check: [422, "INVALID_REASON", "A rejection reason has 1 to 1000 characters."],
};

// The shop's settings (sql/0430, policies/settings.sql): a value out of bounds is 422
// INVALID_SETTING naming the setting, whether ajv or the database refused it.
const settingConstraints: Record<string, string> = {
  tenants_name_check: "name",
  tenants_timezone_check: "timezone",
  tenants_timezone_known: "timezone",
  tenants_currency_check: "currency",
  tenants_tax_rate_bps_check: "tax_rate_bps",
  tenants_invoice_number_prefix_check: "invoice_number_prefix",
  tenants_payment_terms_days_check: "payment_terms_days",
  tenants_appointment_slot_minutes_check: "appointment_slot_minutes",
};

/**
 * 422 INVALID_SETTING naming the setting refused, and what refused it: the request schema's
 * `errors` ({field, message}) or the database's `constraint`.
 */
export const invalidSetting = (setting: string, by: { errors: unknown } | { constraint: string }, cause?: unknown) =>
  new ValidationError("INVALID_SETTING", `The setting ${setting} is out of its range or not a value it accepts.`, {
    details: { setting, ...by }, help: "docs/api.md#settings", cause,
  });

// Business rules raised by triggers and functions (SQLSTATE class SS), by the constraint they name.
const ruleErrors: Record<string, [number, string, string]> = {
  appointment_status: [409, "INVALID_TRANSITION", "The appointment cannot change to that status."],
  invoice_status: [409, "INVALID_TRANSITION", "The invoice cannot change to that status."],
  invoice_immutable: [409, "INVOICE_IMMUTABLE", "The invoice is no longer a draft and cannot change."],
  invoice_empty: [422, "INVOICE_EMPTY", "An invoice without lines cannot be issued."],
  invoice: [404, "INVOICE_NOT_FOUND", "Invoice not found."],
  audit_append_only: [409, "AUDIT_APPEND_ONLY", "The audit trail is append-only."],
  owner_only: [403, "OWNER_REQUIRED", "Only an owner grants or removes the owner role."],
  last_owner: [409, "LAST_OWNER", "The shop must keep at least one owner."],
  member: [404, "MEMBER_NOT_FOUND", "Member not found."],
  // An action app.audit_event does not know (policies/audit_functions.sql, app.audit_actions()):
  // only the API's own code names actions, so this is a programming error, never the client's.
  audit_action: [500, "AUDIT_ACTION_UNKNOWN", "Internal server error."],
  appointment_slot: [422, "APPOINTMENT_OFF_SLOT", "An appointment lasts a whole number of the shop's slots (appointment_slot_minutes)."],
  // Platform administration (policies/platform.sql).
  tenant: [404, "TENANT_NOT_FOUND", "Tenant not found."],
  plan: [404, "PLAN_NOT_FOUND", "No plan has this name."],
  feature: [404, "FEATURE_NOT_FOUND", "No feature has this name."],
  entitlement_version: [404, "VERSION_NOT_FOUND", "No entitlement version has this number."],
  override_expiry: [422, "INVALID_EXPIRY", "An override expires in the future."],
  // Tenant lifecycle (policies/tenant_lifecycle.sql) and invitations (policies/invitations.sql):
  // no answer about a token depends on whether an email has an account.
  tenant_status: [409, "TENANT_STATUS_UNCHANGED", "The shop already has this status."],
  invitation: [404, "INVITATION_NOT_FOUND", "No invitation has this token."],
  invitation_expired: [410, "INVITATION_EXPIRED", "This invitation has expired; ask for a new one."],
  invitation_used: [409, "INVITATION_USED", "This invitation has already been used."],
  invitation_member: [409, "ALREADY_A_MEMBER", "This account is already a member of the shop."],
  // Catalog change sets and versions (policies/catalog_versions.sql).
  change_set: [404, "CHANGE_SET_NOT_FOUND", "Change set not found."],
  change_set_not_draft: [409, "CHANGE_SET_NOT_DRAFT", "Only a draft change set can change or be deleted."],
  change_set_status: [409, "INVALID_TRANSITION", "The change set cannot change to that status."],
  change_set_stale: [409, "CHANGE_SET_STALE", "The change set was drafted against a catalog version that is no longer current; draft it again."],
  change_set_self_approval: [403, "SELF_APPROVAL_FORBIDDEN", "The author of a change set cannot approve it unless they are an owner."],
  change_set_empty: [422, "CHANGE_SET_EMPTY", "A change set without items cannot be approved."],
  catalog_version: [404, "CATALOG_VERSION_NOT_FOUND", "No catalog version has this number."],
  catalog_version_current: [409, "CATALOG_VERSION_CURRENT", "This catalog version is the current one; there is nothing to restore."],
  catalog_history_append_only: [409, "CATALOG_HISTORY_APPEND_ONLY", "The catalog's history is append-only."],
  // Programming errors of the API's own calls, never the client's.
  catalog_version_begun: [500, "INTERNAL", "Internal server error."],
  catalog_version_kind: [500, "INTERNAL", "Internal server error."],
};

/** SQLSTATE (or connection error) → AppError. Unknown database errors become a 500. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const pg = (error ?? {}) as PgError;
  const code = typeof pg.code === "string" ? pg.code : "";
  const constraint = pg.constraint_name ?? pg.constraint;
  const on = constraint ? { details: { constraint } } : {};

  if (connectionCodes.has(code) || code.startsWith("08") || code.startsWith("57P")) return databaseUnavailable(error);
  const named = constraint ? constraintErrors[constraint] : undefined;
  if (named && code.startsWith("23")) return new AppError(named[0], named[1], named[2], { ...on, cause: error });
  const setting = constraint && code === "23514" ? settingConstraints[constraint] : undefined;
  if (setting) return invalidSetting(setting, { constraint: constraint! }, error);
  // A feature the shop may not use (app.open_tenant_context): the feature is in DETAIL.
  if (code === "FE403") {
    return new ForbiddenError("FEATURE_NOT_ENABLED", `This shop may not use the feature ${pg.detail}.`, {
      details: { feature: pg.detail }, help: "runbooks/features.md", cause: error,
    });
  }
  // A role without the permission (app.require_permission): the permission is in DETAIL.
  if (code === "SS403" && constraint === "permission") {
    return new ForbiddenError("FORBIDDEN", `Your role in this shop lacks the permission ${pg.detail}.`, {
      details: { permission: pg.detail }, help: "runbooks/rbac-matrix.md", cause: error,
    });
  }
  const rule = code.startsWith("SS") && constraint ? ruleErrors[constraint] : undefined;
  // A stale change set says which version it was drafted against and which is current (DETAIL, JSON).
  if (rule && constraint === "change_set_stale") {
    return new AppError(rule[0], rule[1], rule[2], { details: staleVersions(pg.detail), help: "runbooks/catalog-change-sets.md#change_set_stale", cause: error });
  }
  if (rule) return new AppError(rule[0], rule[1], rule[2], { cause: error });
  // Deleting a row that others still reference is a conflict, not a missing reference.
  if (code === "23503" && /^update or delete on table/.test(pg.message ?? "")) {
    return new ConflictError("REFERENCE_IN_USE", "Other records still reference this one.", { ...on, cause: error });
  }
  switch (code) {
    case "TN404": return new NotFoundError("TENANT_NOT_FOUND", "Tenant not found.", { cause: error });
    case "TN403": return new ForbiddenError("TENANT_SUSPENDED", "This tenant is suspended.", { cause: error });
    case "TN400": return new BadRequestError("TENANT_CONFLICT", "The request names more than one tenant.", { cause: error });
    case "PA403": return new ForbiddenError("PLATFORM_ADMIN_REQUIRED", "Only platform administrators may use the platform endpoints.", { cause: error });
    // The database refused the API's context proof: CONTEXT_KEY differs from the key installed
    // in the database, or the clocks of API and database disagree by more than the proof's TTL.
    case "TN401": return new AppError(503, "CONTEXT_PROOF_REFUSED", "The database refused the request's context proof.", {
      cause: error, operational: false, help: "runbooks/context-key.md", headers: { "Retry-After": "5" },
    });
    case "42501": return new ForbiddenError("FORBIDDEN", "This action is not permitted.", { cause: error });
    case "23505": return new ConflictError("CONFLICT", "A record with these values already exists.", { ...on, cause: error });
    case "23503": return new ValidationError("REFERENCE_NOT_FOUND", "A referenced record does not exist.", { ...on, cause: error });
    case "23502":
    case "23514":
    case "23P01":
    case "22P02":
    case "22007":
    case "22001":
      return new ValidationError("CONSTRAINT_VIOLATION", "The values break a data rule.", { ...on, cause: error });
    case "22003": // numeric_value_out_of_range
    case "22008": // datetime_field_overflow
    case "22015": // interval_field_overflow
      return new ValidationError("VALUE_OUT_OF_RANGE", "A value is outside the range the database accepts.", { cause: error });
    case "22021": // character_not_in_repertoire: a NUL byte or invalid UTF-8
    case "22P05": // untranslatable_character
      return new ValidationError("INVALID_CHARACTER", "A text value holds a character the database cannot store (NUL or invalid UTF-8).", { cause: error });
    case "54000": // program_limit_exceeded, e.g. a value too large for an index row
      return new ValidationError("VALUE_TOO_LARGE", "A value is too large for the database to store or index.", { cause: error });
    case "40001":
    case "40P01":
      return new ConflictError("TRANSACTION_CONFLICT", "A concurrent change conflicted with this request; retry it.", { cause: error });
    case "57014":
      return new UnavailableError("DATABASE_TIMEOUT", "The database did not answer in time.", { cause: error });
  }
  // Any other data exception (class 22) is the input's fault, never the server's.
  if (code.startsWith("22")) return new ValidationError("INVALID_VALUE", "A value is not acceptable to the database.", { cause: error });
  // A client error raised by Express or a library it uses (http-errors: status and expose).
  const http = error as { status?: unknown; expose?: unknown; message?: string };
  if (typeof http.status === "number" && http.status >= 400 && http.status < 500 && http.expose === true) {
    return new AppError(http.status, "REQUEST_REJECTED", "The request was rejected as malformed.", { cause: error });
  }
  // A path or query with a malformed percent-escape (decodeURIComponent, Express's param decoding).
  if (error instanceof URIError) return new BadRequestError("MALFORMED_URI", "The URL holds a malformed percent-escape.", { cause: error });
  return new AppError(500, "INTERNAL", "Internal server error.", { cause: error, operational: false });
}

function staleVersions(detail: string | undefined): unknown {
  try {
    return JSON.parse(detail ?? "null") ?? undefined;
  } catch {
    return undefined;
  }
}

/** Transient database errors the tenant-context helper retries before answering 409. */
export function isRetryable(error: unknown): boolean {
  const code = (error as PgError | undefined)?.code;
  return code === "40001" || code === "40P01";
}

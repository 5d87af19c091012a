// The shapes of identifiers the API checks before the database sees them, each written once.
// test/shared-lists.test.ts holds them to the database's own rules.

/** A uuid in its canonical text form, in either case (the database stores and answers lower case). */
export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === "string" && uuidPattern.test(value);
}

/**
 * A tenant as a request names it: its slug or its uuid, in either case (the API lowercases it).
 * The slug rule is app.tenants' CHECK (tenants_slug_check) with upper case allowed; a uuid
 * matches it too. A string, for the API document's `pattern`.
 */
export const tenantRefPattern = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$";

const tenantRef = new RegExp(tenantRefPattern);

export function isTenantRef(value: string): boolean {
  return tenantRef.test(value);
}

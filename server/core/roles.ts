// The roles a member holds in a shop, in the order pages list them. The database is the source:
// the CHECK constraints memberships_role_check (sql/0001) and role_permissions_role_check
// (sql/0301), and the columns of policies/permissions.sql's grid. test/shared-lists.test.ts fails
// while this list and those differ.
export const ROLES = ["owner", "admin", "manager", "staff", "accountant"] as const;

export type Role = (typeof ROLES)[number];

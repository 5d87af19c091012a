// Invitation tokens (issue 34): 32 random bytes, base64url (43 characters), shown once to whoever
// created the invitation; the database keeps only their SHA-256 (hex), which is all the API ever
// sends it. A token of another shape is refused before any lookup.
import { createHash, randomBytes } from "node:crypto";

export const invitationTokenPattern = "^[A-Za-z0-9_-]{43}$";
const shape = new RegExp(invitationTokenPattern);

export type InvitationToken = { token: string; hash: string };

/** The SHA-256 (hex) of a token, as app.invitations.token_hash holds it. */
export function hashInvitationToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Whether `token` has the shape of one this API issues. */
export function isInvitationToken(token: string): boolean {
  return shape.test(token);
}

/** A fresh token and its hash. */
export function newInvitationToken(): InvitationToken {
  return invitationTokenFrom(randomBytes(32).toString("base64url"));
}

/** A token given as 32 bytes in base64url (one derived from a secret), and its hash. */
export function invitationTokenFrom(token: string): InvitationToken {
  if (!isInvitationToken(token)) throw new Error("an invitation token is 32 bytes in base64url");
  return { token, hash: hashInvitationToken(token) };
}

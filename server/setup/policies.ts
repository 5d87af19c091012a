// Applies policies/ in the order policies/ORDER gives, in one transaction, as the owner role.
// The files are idempotent: a second application changes nothing.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { connectOnce } from "../db/connections.ts";

export const policiesDir = fileURLToPath(new URL("../../policies", import.meta.url));

export function policyFiles(): string[] {
  return readFileSync(join(policiesDir, "ORDER"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

export async function applyPolicies(ownerUrl: string): Promise<string[]> {
  const files = policyFiles();
  const sql = connectOnce(ownerUrl);
  try {
    await sql.begin(async (tx) => {
      for (const file of files) await tx.unsafe(readFileSync(join(policiesDir, file), "utf8"));
    });
  } finally {
    await sql.end({ timeout: 5 });
  }
  return files;
}

// The policy files of policies/, in the order policies/ORDER gives, as the owner role applies them
// (server/setup/deploy.ts): their version, which of them need applying, and what applying changed.
// The files are idempotent: a second application changes nothing. Each file is recorded with the
// hash of what it was applied on (public.policy_files, sql/0450): the applied migrations, every
// file before it, and its own text. A file whose hash is unchanged is skipped; a changed file is
// applied with every file after it (they may build on what it defines), and a new migration
// re-applies them all (registry-driven files such as tenant_isolation.sql reach every table).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Sql } from "../db/connections.ts";
import { sha256, type MigrationFile } from "./migrate.ts";

export const policiesDir = fileURLToPath(new URL("../../policies", import.meta.url));
const stateQueryFile = fileURLToPath(new URL("../../deploy/policy_state.sql", import.meta.url));

export type PolicyFile = { file: string; text: string; input: string };

/** The files policies/ORDER names, in order. */
export function policyFiles(dir = policiesDir): string[] {
  return readFileSync(join(dir, "ORDER"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

/** The release's policy version: sha256 over the files ORDER names, in order, with their text. What /readyz compares. */
export function policyVersion(dir = policiesDir): string {
  return sha256(policyFiles(dir).map((file) => `${file}\0${readText(dir, file)}`).join("\0"));
}

/** Each file with its input hash, chained from the migrations the database runs. */
export function policyInputs(migrations: MigrationFile[], dir = policiesDir): PolicyFile[] {
  let input = sha256(`migrations\0${migrations.map((m) => `${m.name}:${m.sha256}`).join("\0")}`);
  return policyFiles(dir).map((file) => {
    const text = readText(dir, file);
    input = sha256(`${input}\0${file}\0${text}`);
    return { file, text, input };
  });
}

function readText(dir: string, file: string): string {
  try {
    return readFileSync(join(dir, file), "utf8").replace(/\r\n/g, "\n");
  } catch {
    throw new Error(`policies/ORDER names ${file}, which does not exist. FIX: add the file or remove the line`);
  }
}

/** The files whose recorded input differs from this release's (all of them before the first deploy that kept records). */
export async function changedPolicyFiles(sql: Sql, files: PolicyFile[]): Promise<PolicyFile[]> {
  const [{ kept }] = await sql`select to_regclass('public.policy_files') is not null as kept`;
  if (!kept) return files;
  const recorded = new Map((await sql`select file, input_sha256 from public.policy_files`).map((r) => [r.file as string, r.input_sha256 as string]));
  return files.filter((f) => recorded.get(f.file) !== f.input);
}

/** Applies `apply` (in order) inside the caller's transaction; an error names the file it came from. */
export async function applyPolicyFiles(tx: Sql, apply: PolicyFile[]): Promise<void> {
  for (const f of apply) {
    try {
      await tx.unsafe(f.text);
    } catch (error) {
      if (error instanceof Error) error.message = `policies/${f.file}: ${error.message}`;
      throw error;
    }
  }
}

/** Records every file's input and the version now in force (in the applying transaction). */
export async function recordPolicies(tx: Sql, files: PolicyFile[], applied: string[], version: string): Promise<void> {
  for (const f of files) {
    await tx`insert into public.policy_files (file, input_sha256) values (${f.file}, ${f.input})
             on conflict (file) do update set input_sha256 = excluded.input_sha256, applied_at = now()
             where public.policy_files.input_sha256 <> excluded.input_sha256`;
  }
  await tx`delete from public.policy_files where file <> all (${files.map((f) => f.file)}::text[])`;
  await tx`insert into public.policy_deploys (policy_version, files_applied) values (${version}, ${applied}::text[])`;
}

/** Everything policies/ controls, object by object (deploy/policy_state.sql), to tell what an application changed. */
export async function policyState(tx: Sql): Promise<Map<string, string>> {
  const rows = await tx.unsafe(readFileSync(stateQueryFile, "utf8"));
  return new Map(rows.map((r) => [r.object as string, r.state as string]));
}

/** What changed between two policyState() snapshots, one line per object, as deploy/apply-policies.sh prints it. */
export function describeChanges(before: Map<string, string>, after: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const [object, state] of after) {
    const was = before.get(object);
    if (was === undefined) lines.push(`added    ${object}: ${state}`);
    else if (was !== state) lines.push(`changed  ${object}:\n           before: ${was}\n           after:  ${state}`);
  }
  for (const [object, state] of before) if (!after.has(object)) lines.push(`removed  ${object}: ${state}`);
  return lines.sort();
}

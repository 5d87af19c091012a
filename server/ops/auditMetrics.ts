// What the scheduled audit job (`audit seal`, `audit verify` with --metrics-dir) tells Prometheus:
// a file for node_exporter's textfile collector (--collector.textfile.directory), one per command,
// written whole to a temporary name and renamed, so the collector never reads half a file. The API
// cannot export these: walking the chains takes the owner role, which the API never holds.
// deploy/monitoring/alerts.yml alerts on them (AuditVerifyFailed, AuditVerifyStale, AuditSealStale).
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Gauge, Registry } from "prom-client";

export type Values = Record<string, { help: string; value: number }>;

/** The Prometheus text of `values` (one unlabelled gauge each), formatted by prom-client. */
export async function textfile(values: Values): Promise<string> {
  const registry = new Registry();
  for (const [name, { help, value }] of Object.entries(values)) new Gauge({ name, help, registers: [registry] }).set(value);
  return registry.metrics();
}

/** Writes `<dir>/<name>.prom` atomically; returns its path. */
export async function writeTextfile(dir: string, name: string, values: Values): Promise<string> {
  const path = join(dir, `${name}.prom`);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, await textfile(values));
  renameSync(temporary, path);
  return path;
}

const now = () => Date.now() / 1000;

/** `audit seal`'s file: when it last finished, and what it sealed. */
export function sealValues(run: { tenants: number; sealed: number }): Values {
  return {
    audit_seal_last_success_timestamp_seconds: { help: "When `audit seal` last sealed every tenant's chain (Unix time).", value: now() },
    audit_seal_sealed_rows: { help: "Audit rows the last `audit seal` sealed.", value: run.sealed },
    audit_seal_tenants: { help: "Tenants the last `audit seal` sealed.", value: run.tenants },
  };
}

/** `audit verify`'s file: when it last checked every tenant, and what it found broken. */
export function verifyValues(run: { tenants: number; broken: number; unsealed: number }): Values {
  return {
    audit_verify_last_run_timestamp_seconds: { help: "When `audit verify` last finished checking every tenant (Unix time).", value: now() },
    audit_verify_broken: { help: "Chains and anchor files the last `audit verify` found broken (0 when all verified).", value: run.broken },
    audit_verify_tenants: { help: "Tenants the last `audit verify` checked.", value: run.tenants },
    audit_verify_unsealed_rows: { help: "Audit rows not yet sealed when the last `audit verify` checked them.", value: run.unsealed },
  };
}

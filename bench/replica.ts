// The read-replica row of `npm run bench` (issue 38): GET customer by id against the API with the
// primary alone and against the API reading from one hot standby of the same server
// (DATABASE_READ_URLS), in interleaved rounds of one run. The standby is made with pg_basebackup
// (test/standby.ts) and runs on the same machine: on 2 shared cores it competes with the primary,
// the API and the load generator for the same CPU, so this row shows what routing costs and where
// the work goes, not what a standby on its own machine adds. Each side reports req/s, p50 / p99,
// Node CPU per request, PostgreSQL CPU per request on the primary and on the standby (the pools'
// backends, by application_name), and the share of its reads the standby answered (db_reads_total).
import postgres from "postgres";
import { pgBasebackup, standbyMissingMessage, startStandby } from "../test/standby.ts";
import { backendCpu, cpuMeter } from "./cpu.ts";
import type { LoadResult } from "./sqlLoad.ts";

type Server = { url: string; pid: number; stop: () => Promise<void> };

export type ReplicaSide = LoadResult & {
  statuses: Record<string, number>;
  node_cpu_us: number;
  /** PostgreSQL CPU per request on the primary's API backends. */
  pg_cpu_us: number;
  /** PostgreSQL CPU per request on the standby's API backends (0 with the primary alone). */
  standby_cpu_us: number;
  /** Reads the standby answered, of all the side's reads (db_reads_total). */
  replica_share: number;
};

export type ReplicaRow = { primary_alone: ReplicaSide; primary_and_standby: ReplicaSide; rounds: Record<string, number[]> };

type Options = {
  superuserUrl: string;
  appUrl: string;
  /** Starts the compiled API with extra environment. */
  startApi: (env: Record<string, string>) => Promise<Server>;
  primaryAlone: Server;
  /** The load of one round on `url`, GET by id expected 200. */
  load: (url: string, seconds: number) => Promise<LoadResult & { statuses: Record<string, number> }>;
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  log: (...args: unknown[]) => void;
};

/** Reads answered by each target so far, from the API's /metrics (db_reads_total; empty without replicas). */
async function readsByTarget(url: string): Promise<{ replica: number; all: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let replica = 0;
  let all = 0;
  for (const m of text.matchAll(/^db_reads_total\{target="([^"]+)"\} (\d+)/gm)) {
    all += Number(m[2]);
    if (m[1] !== "primary") replica += Number(m[2]);
  }
  return { replica, all };
}

/** The row, or why it was not measured. */
export async function replicaRow(o: Options): Promise<ReplicaRow | string> {
  if (!pgBasebackup()) return `not measured: ${standbyMissingMessage}`;
  o.log("replica row: starting a hot standby (pg_basebackup)");
  const standby = await startStandby(o.superuserUrl);
  let withStandby: Server | undefined;
  const onStandby = postgres(standby.url(o.superuserUrl), { max: 1, onnotice: () => {} });
  const onPrimary = postgres(o.superuserUrl, { max: 1, onnotice: () => {} });
  try {
    await standby.caughtUp(120_000);
    withStandby = await o.startApi({ DATABASE_READ_URLS: standby.url(o.appUrl) });
    const sides: Record<string, Server> = { primary_alone: o.primaryAlone, primary_and_standby: withStandby };
    for (const [name, server] of Object.entries(sides)) {
      o.log(`replica row: ${name} warm-up`);
      await o.load(server.url, o.warmupSeconds);
    }
    const runs: Record<string, ReplicaSide[]> = {};
    for (let round = 1; round <= o.rounds; round++) {
      for (const [name, server] of Object.entries(sides)) {
        o.log(`replica row: ${name} (round ${round} of ${o.rounds})`);
        const meter = await cpuMeter(onPrimary, server.pid, "rls-service-shop");
        const standby0 = await backendCpu(onStandby, "rls-service-shop-replica");
        const reads0 = await readsByTarget(server.url);
        const r = await o.load(server.url, o.seconds);
        const cpu = await meter(r.requests);
        const standby1 = await backendCpu(onStandby, "rls-service-shop-replica");
        const reads1 = await readsByTarget(server.url);
        let standbyCpu = 0;
        for (const [p, c] of standby1 ?? []) standbyCpu += c - (standby0?.get(p) ?? 0);
        const wrong = Math.max(0, r.requests - (r.statuses["200"] ?? 0));
        const reads = reads1.all - reads0.all;
        (runs[name] ??= []).push({
          ...r, errors: r.errors + wrong, ...cpu,
          standby_cpu_us: r.requests === 0 ? NaN : standbyCpu / r.requests,
          replica_share: reads === 0 ? 0 : (reads1.replica - reads0.replica) / reads,
        });
      }
    }
    const median = (xs: ReplicaSide[]) => [...xs].sort((a, b) => a.rps - b.rps)[Math.floor(xs.length / 2)];
    return {
      primary_alone: median(runs.primary_alone),
      primary_and_standby: median(runs.primary_and_standby),
      rounds: Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, v.map((r) => Math.round(r.rps))])),
    };
  } finally {
    await withStandby?.stop();
    await onStandby.end({ timeout: 5 });
    await onPrimary.end({ timeout: 5 });
    await standby.stop();
  }
}

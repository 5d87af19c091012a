// Hot-standby replicas that serve reads (DATABASE_READ_URLS): a monitor that says which of them a
// read may use, and the choice of one for each read. tenantContext.ts asks `choose()` for every
// read transaction and falls back to the primary when none is usable or the read fails there
// (including a replica that has not replayed the client's consistency token, which the read
// itself checks there).
//
// How far behind a replica is (its lag), defined so that an idle primary does not make it look
// stale: `now() - pg_last_xact_replay_timestamp()` on the standby grows for as long as nothing
// commits on the primary, although the standby then misses nothing. Instead the monitor compares
// positions in the WAL over time. Every `intervalMs` it reads the primary's insert position and
// remembers when the primary was first seen at each new position, and reads each standby's replay
// position. A replica's lag, at the moment it answered, is the time since the primary was first
// seen at a position the replica has not replayed yet, and 0 when it has replayed all the primary
// was last seen at (a position first seen after the answer counts nothing). An
// idle primary gains no new position, so a replica that replayed everything stays at 0; a replica
// whose replay stopped while writes go on is behind by the time since the first write it did not
// replay. The figure is known to one interval (a quarter of READ_REPLICA_MAX_LAG_MS): it may read
// low by up to that much, never high.
//
// A replica is used while its last poll found it a standby within READ_REPLICA_MAX_LAG_MS. One
// that lags more, does not answer a poll, refuses connections or is no longer in recovery
// (promoted: its data may have left the primary's) is skipped until a poll finds it back within
// the limit. A replica that stops answering has its connections ended, so the reads waiting on it
// fail at once and are answered by the primary (tenantContext.ts). A read caught on a replica that
// stops answering waits at most the acquire timeout for that: each replica is polled on its own
// (a slow primary or sibling delays no other), its polls start at most half the acquire timeout
// apart, and one serving reads has the other half to answer (at least 50 ms each). One serving no
// reads has the whole timeout, a new connection included, so a distant replica is not cut off for
// the time it takes to connect.
import type { Pool, Sql } from "./connections.ts";
import { logger } from "../core/log.ts";
import { defaultLayout, parseLsn, replayable, type WalLayout, type WalPosition } from "./walPosition.ts";

export type ReplicaState = "starting" | "ok" | "lagging" | "unreachable" | "not_standby";

/** Why a read did not use a replica: it lagged, it was unavailable, or it had not replayed the client's token. */
export type SkipReason = "lag" | "unavailable" | "behind_token";

/** Why a read that a replica took was answered by the primary (tenantContext.ts decides). */
export type FailoverReason = "lost" | "busy" | "refused" | "behind_token";

export type Replica = {
  /** host:port of its URL (never the credentials): the metrics' label and /readyz's name. */
  readonly name: string;
  /** Its connections, replaced when it stops answering. */
  pool: Pool;
  state: ReplicaState;
  /** Milliseconds behind the primary at its last poll, when known. */
  lagMs?: number;
  /** Its replay position at its last poll. */
  replayed?: WalPosition;
};

/** What /readyz and the metrics say of each replica. */
export type ReplicaReport = {
  name: string;
  state: ReplicaState;
  lagSeconds: number | null;
  served: number;
  skipped: Record<SkipReason, number>;
  failovers: number;
};

export type Replicas = {
  /** The replica a read goes to, or undefined for the primary. */
  choose: () => Replica | undefined;
  /** `after` in the form a standby's replay position is compared with. */
  replayable: (after: WalPosition) => WalPosition;
  /** A read answered by `replica`, or by the primary when undefined. */
  served: (replica: Replica | undefined) => void;
  /**
   * A read on `replica` is answered by the primary instead: the replica had not replayed the
   * client's token (`behind_token`), refused the read (`refused`), gave it no connection within the
   * acquire timeout (`busy`) or lost its connection (`lost`). The last two skip it until the next
   * poll finds it well; a lost connection also ends its others, so the reads waiting there move now.
   */
  failedOver: (replica: Replica, reason: FailoverReason) => void;
  /** `polls`: how many replica answers (or missing answers) the monitor has judged. */
  report: () => { primaryServed: number; replicas: ReplicaReport[]; polls: number };
  /** Polls once now (the monitor polls by itself every interval). */
  poll: () => Promise<void>;
  end: () => Promise<void>;
};

export type ReplicaOptions = {
  urls: string[];
  maxLagMs: number;
  /** The primary's probe connection: its insert position is read there. */
  primary: Sql;
  /** Makes the pool of a replica's connections. */
  pool: (url: string) => Pool;
  /**
   * The longest a read may wait on a replica that stopped answering (the acquire timeout): a
   * replica serving reads has half of it to answer a poll, and its polls start at most half of it
   * apart (at least 50 ms each); one serving none has all of it.
   */
  answerWithinMs: number;
  /** Between polls; default a quarter of maxLagMs, within 50 ms to 1 s, and at most half of answerWithinMs. */
  intervalMs?: number;
};

type Entry = Replica & { url: string; served: number; skipped: Record<SkipReason, number>; failovers: number };

/** The name a replica is known by: host:port of its URL, numbered when two share one. */
function names(urls: string[]): string[] {
  const seen = new Map<string, number>();
  return urls.map((url) => {
    const u = new URL(url);
    const base = `${u.hostname}:${u.port || "5432"}`;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return n === 1 ? base : `${base}#${n}`;
  });
}

/** Rejects with a timeout once `ms` passed without an answer. */
function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  // Refused after the event loop's next I/O phase: an answer that arrived while the process was
  // busy past the bound is read first, and wins the race.
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => setImmediate(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: "POLL_TIMEOUT" }))), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

// The primary's positions, each with the time it was first seen there, oldest first. Kept while
// younger than `keepMs` (and the newest always: on an idle primary it is the one that counts).
function history(keepMs: number) {
  const seen: { at: number; p: WalPosition }[] = [];
  return {
    see(p: WalPosition, at: number): void {
      if (seen.length > 0 && p <= seen[seen.length - 1].p) return;
      seen.push({ at, p });
      while (seen.length > 1 && seen[0].at < at - keepMs) seen.shift();
    },
    known: () => seen.length > 0,
    /** Milliseconds since the primary was first seen at a position `replayed` lacks; 0 when it lacks none. */
    lagOf(replayed: WalPosition, now: number, layout: WalLayout): number {
      // Binary search for the first position not replayed (positions only grow).
      let lo = 0;
      let hi = seen.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (replayable(seen[mid].p, layout) <= replayed) lo = mid + 1;
        else hi = mid;
      }
      return lo === seen.length ? 0 : Math.max(0, now - seen[lo].at);
    },
  };
}

export function createReplicas(options: ReplicaOptions): Replicas {
  // A replica serving reads answers within half the acquire timeout; polls start at most that far apart.
  const half = Math.max(50, Math.floor(options.answerWithinMs / 2));
  const intervalMs = options.intervalMs ?? Math.min(1000, half, Math.max(50, Math.round(options.maxLagMs / 4)));
  const replicas: Entry[] = names(options.urls).map((name, i) => ({
    name, url: options.urls[i], pool: options.pool(options.urls[i]), state: "starting",
    served: 0, skipped: { lag: 0, unavailable: 0, behind_token: 0 }, failovers: 0,
  }));
  // A replica more than maxLagMs behind is skipped whatever the exact figure, so positions older
  // than a few times that are needed only to report how far behind it is.
  const primary = history(Math.max(60_000, options.maxLagMs * 10));
  let layout = defaultLayout;
  let primaryServed = 0;
  let polls = 0;
  let turn = 0;
  let ended = false;

  const setState = (r: Entry, state: ReplicaState, detail?: unknown) => {
    if (r.state !== state) logger.info({ replica: r.name, from: r.state, to: state, lag_ms: r.lagMs, err: detail }, "read replica state changed");
    r.state = state;
  };

  /**
   * Ends a replica's connections and refuses the reads waiting for one (all fail over to the primary
   * at once, rather than being served by new connections to a server that does not answer), and
   * gives it fresh ones for when it answers again.
   */
  const replacePool = (r: Entry) => {
    const old = r.pool;
    r.pool = options.pool(r.url);
    old.end({ timeout: 0, abandonWaiting: true }).catch((error) => logger.warn({ err: error, replica: r.name }, "ending a read replica's connections failed"));
  };

  async function pollPrimary(): Promise<void> {
    try {
      const [row] = await within(options.answerWithinMs, options.primary`
        select pg_current_wal_insert_lsn()::text as lsn, current_setting('wal_block_size')::int8 as block,
               (select setting::int8 from pg_catalog.pg_settings where name = 'wal_segment_size') as segment`);
      layout = { block: BigInt(row.block), segment: BigInt(row.segment) };
      primary.see(parseLsn(row.lsn), Date.now());
    } catch (error) {
      // The primary unreachable: the replicas are judged against what it was last seen at, so
      // those that replayed all of it keep serving reads while it is away.
      logger.debug({ err: error }, "read replica monitor: the primary did not answer");
    }
  }

  /** A replica's answer to a poll, or the error it gave (a timeout when it gave none in time). */
  type Probe = { pool: Pool; at: number; row?: { standby: boolean; replayed: string | null }; error?: unknown };
  async function probeReplica(r: Entry): Promise<Probe> {
    const pool = r.pool;
    const bound = r.state === "ok" ? half : Math.max(half, options.answerWithinMs);
    try {
      const [row] = await within(bound, pool.probe`select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn()::text as replayed`);
      return { pool, at: Date.now(), row: row as Probe["row"] };
    } catch (error) {
      return { pool, at: Date.now(), error };
    }
  }

  /** Judges a replica by its answer, against the primary's positions. */
  function judgeReplica(r: Entry, { pool, at, row, error }: Probe): void {
    // An answer from connections ended meanwhile (a read lost its connection there) is stale.
    if (r.pool !== pool) return;
    polls++;
    if (!row) {
      r.lagMs = undefined;
      setState(r, "unreachable", error);
      // No answer at all (a hung server, a dropped network): reads waiting on its connections
      // would wait as long; ending them sends those reads to the primary now.
      if ((error as { code?: string }).code === "POLL_TIMEOUT") replacePool(r);
      return;
    }
    if (!row.standby) {
      r.lagMs = undefined;
      return setState(r, "not_standby");
    }
    if (row.replayed === null || !primary.known()) return setState(r, "starting");
    r.replayed = parseLsn(row.replayed);
    r.lagMs = primary.lagOf(r.replayed, at, layout);
    setState(r, r.lagMs > options.maxLagMs ? "lagging" : "ok");
  }

  /** `work` every intervalMs, start to start (at once after a run that took longer), until end(). */
  const loops: { timer?: NodeJS.Timeout; running?: Promise<void> }[] = [];
  const repeat = (work: () => Promise<void>) => {
    const l: (typeof loops)[number] = {};
    const run = () => {
      const started = performance.now();
      l.running = work().finally(() => {
        l.running = undefined;
        if (!ended) l.timer = setTimeout(run, Math.max(0, started + intervalMs - performance.now())).unref();
      });
    };
    loops.push(l);
    run();
  };
  // The replicas wait for the primary's first poll (bounded) once, so they are judged from the start.
  const primaryFirst = pollPrimary();
  let primaryRuns = 0;
  repeat(() => (primaryRuns++ === 0 ? primaryFirst : pollPrimary()));
  const pollReplica = async (r: Entry) => {
    await primaryFirst;
    judgeReplica(r, await probeReplica(r));
  };
  for (const r of replicas) repeat(() => pollReplica(r));

  return {
    choose() {
      // Round robin over the usable ones; every other replica counts a skip, by its reason. A
      // client's token does not enter the choice: the read checks it on the replica itself, in
      // its own pipeline (tenantContext.ts), which knows better than a poll up to an interval old
      // (a write is usually replayed within milliseconds).
      const start = turn++ % replicas.length;
      let chosen: Entry | undefined;
      for (let i = 0; i < replicas.length; i++) {
        const r = replicas[(start + i) % replicas.length];
        if (r.state !== "ok") r.skipped[r.state === "lagging" ? "lag" : "unavailable"]++;
        else chosen ??= r;
      }
      return chosen;
    },
    replayable: (after) => replayable(after, layout),
    served(replica) {
      if (replica) (replica as Entry).served++;
      else primaryServed++;
    },
    failedOver(replica, reason) {
      const r = replica as Entry;
      if (reason === "behind_token") return void r.skipped.behind_token++;
      r.failovers++;
      // A refusal (a recovery conflict, a context key not replayed yet, a full queue) says nothing
      // of the next read. A lost connection or none within the acquire timeout: skipped until a
      // poll finds it well again (at most one interval away). Once, on the first such read.
      if (reason === "refused" || r.state !== "ok") return;
      r.lagMs = undefined;
      setState(r, "unreachable", reason === "lost" ? "a read lost its connection there" : "a read waited the acquire timeout for a connection there");
      // A server that went away: the reads queued for its connections would each wait for a
      // connection that cannot be made, up to the acquire timeout; ended, they move to the primary now.
      if (reason === "lost") replacePool(r);
    },
    report: () => ({
      primaryServed,
      polls,
      replicas: replicas.map((r) => ({
        name: r.name, state: r.state, lagSeconds: r.lagMs === undefined ? null : r.lagMs / 1000, served: r.served, skipped: { ...r.skipped }, failovers: r.failovers,
      })),
    }),
    poll: async () => {
      await Promise.all(loops.map((l) => l.running));
      await pollPrimary();
      await Promise.all(replicas.map(pollReplica));
    },
    async end() {
      ended = true;
      for (const l of loops) clearTimeout(l.timer);
      await Promise.all(loops.map((l) => l.running));
      await Promise.all(replicas.map((r) => r.pool.end({ timeout: 5 })));
    },
  };
}

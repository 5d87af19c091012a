// The bounded pool the API's one-connection postgres.js clients are leased from (server/db/connections.ts):
// tarn (knex's pool) makes, lends, times out and ends them; this file adds the four things tarn
// leaves to its caller and names why an acquisition was refused, so connections.ts can answer
// DATABASE_BUSY, OVERLOADED or SHUTTING_DOWN:
// - a bound on waiting acquisitions (tarn queues without one): past `maxWaiting`, refused at once;
// - ending a broken item at once: tarn destroys only an idle item that fails `validate`, so a
//   broken one is ended here, marked, and given back for tarn to drop;
// - drain: refuse from now on, serve the acquisitions already waiting, resolve once every lease
//   is back (tarn's destroy() aborts the waiting ones instead);
// - abandonWaiting: refuse the waiting acquisitions now, for items that could not serve them (a
//   read replica that stopped answering: tarn's destroy() aborts them only once every lease is back).
// A pool of our own replaced generic-pool for 1.03× on GET by id (inside the bench's noise) and
// then needed a fix for a pool that shrank for good when its factory threw (issue 30); tarn
// hands a factory's error to the waiting acquisition (propagateCreateError). Measured side by
// side against it: bench/README.md, the lease pool row.
import { Pool, TimeoutError } from "tarn";

/** Why an acquisition was refused. */
export type Refusal = "draining" | "queue-full" | "timeout";

export class PoolRefusal extends Error {
  constructor(readonly reason: Refusal) {
    super(reason === "draining" ? "pool is draining" : reason === "queue-full" ? "too many acquisitions waiting" : "timed out waiting for a free item");
    this.name = "PoolRefusal";
  }
}

export type LeasePool<T> = {
  acquire: () => Promise<T>;
  /** Gives a leased item back for the next acquisition. */
  release: (item: T) => void;
  /** Ends a leased item that must not be reused; a new one takes its place when needed. */
  destroy: (item: T) => Promise<void>;
  /** Refuses acquisitions from now on and resolves once every leased item is back (waiting acquisitions are still served). */
  drain: () => Promise<void>;
  /** Refuses the acquisitions waiting now ("draining"), as it refuses new ones: for items that cannot serve them (a server that stopped answering). */
  abandonWaiting: () => void;
  /** Items leased now. */
  readonly borrowed: number;
  /** Acquisitions waiting for an item. */
  readonly pending: number;
  /** Whether an acquisition now would be refused at once: every item leased, none may be added, the queue full. */
  readonly saturated: boolean;
};

export function leasePool<T>(factory: { create: () => T; destroy: (item: T) => Promise<void> }, limits: { max: number; maxWaiting: number; acquireTimeoutMs: number }): LeasePool<T> {
  const broken = new Set<T>();
  const ended = new Map<T, Promise<void>>();
  // Ends an item once: a broken lease ends it at once, and tarn asks again when it drops it.
  const end = (item: T) => {
    let done = ended.get(item);
    if (!done) ended.set(item, (done = factory.destroy(item)));
    return done;
  };
  const pool = new Pool<T>({
    create: async () => factory.create(),
    destroy: (item) => {
      const done = end(item);
      broken.delete(item);
      ended.delete(item);
      return done;
    },
    validate: (item) => !broken.has(item),
    min: 0,
    max: limits.max,
    acquireTimeoutMillis: limits.acquireTimeoutMs,
    // The clients close their own idle connection after 60 s (db.ts); the client goes with it.
    idleTimeoutMillis: 60_000,
    propagateCreateError: true,
  });
  let draining = false;
  let drained: Promise<void> | undefined;
  // tarn's waiting acquisitions, so they can be refused at once (tarn's destroy() first waits for every lease).
  const waiting = new Set<{ abort: () => void }>();
  let settle = () => {};
  const pending = () => pool.numPendingAcquires();
  const idle = () => pool.numUsed() === 0 && pending() === 0;
  const check = () => {
    if (draining && idle()) settle();
  };

  return {
    acquire() {
      if (draining) return Promise.reject(new PoolRefusal("draining"));
      // An acquisition waits when nothing is free and no item may be added.
      const waits = pool.numFree() === 0 && pool.numUsed() + pool.numPendingCreates() >= limits.max;
      if (waits && pending() >= limits.maxWaiting) return Promise.reject(new PoolRefusal("queue-full"));
      const op = pool.acquire();
      waiting.add(op);
      return op.promise.then(
        (item) => (waiting.delete(op), item),
        (error: unknown) => {
          const abandoned = !waiting.delete(op);
          check();
          throw error instanceof TimeoutError ? new PoolRefusal("timeout") : abandoned ? new PoolRefusal("draining") : error;
        },
      );
    },
    release(item) {
      pool.release(item);
      check();
    },
    async destroy(item) {
      broken.add(item);
      try {
        await end(item);
      } finally {
        pool.release(item);
        check();
      }
    },
    drain() {
      draining = true;
      drained ??= new Promise<void>((resolve) => {
        settle = resolve;
        check();
      }).then(() => pool.destroy()).then(() => undefined);
      return drained;
    },
    abandonWaiting() {
      draining = true;
      const ops = [...waiting];
      waiting.clear();
      for (const op of ops) op.abort();
    },
    get borrowed() {
      return pool.numUsed();
    },
    get pending() {
      return pending();
    },
    get saturated() {
      return pool.numFree() === 0 && pool.numUsed() + pool.numPendingCreates() >= limits.max && pending() >= limits.maxWaiting;
    },
  };
}

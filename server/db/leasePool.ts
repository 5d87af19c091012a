// A bounded pool of items (the API's one-connection postgres.js clients, server/db/connections.ts): at most
// `max` exist, created when needed; at most `maxWaiting` acquisitions wait for one, each at most
// `acquireTimeoutMs`; a broken item is destroyed and its place freed; drain() refuses new
// acquisitions and waits for every lease to come back.
//
// Why not generic-pool, which did this before: its acquire built two deferred promises, a
// request object, a loan record and a timer for every request, even when an item was free (about
// 44k instructions of a GET's 665k under callgrind). Here a free item is handed over at once, and
// a timer is armed only for an acquisition that has to wait.

/** Why an acquisition was refused. */
export type Refusal = "draining" | "queue-full" | "timeout";

export class PoolRefusal extends Error {
  constructor(readonly reason: Refusal) {
    super(reason === "draining" ? "pool is draining" : reason === "queue-full" ? "too many acquisitions waiting" : "timed out waiting for a free item");
    this.name = "PoolRefusal";
  }
}

type Waiter<T> = { resolve: (item: T) => void; reject: (error: unknown) => void; timer: NodeJS.Timeout };

export type LeasePool<T> = {
  acquire: () => Promise<T>;
  /** Gives a leased item back for the next acquisition. */
  release: (item: T) => void;
  /** Ends a leased item that must not be reused; a new one takes its place when needed. */
  destroy: (item: T) => Promise<void>;
  /** Refuses acquisitions from now on and resolves once every leased item is back (waiting acquisitions are still served). */
  drain: () => Promise<void>;
  /** Items leased now. */
  readonly borrowed: number;
  /** Acquisitions waiting for an item. */
  readonly pending: number;
  /** Whether an acquisition now would be refused at once: every item leased, none may be added, the queue full. */
  readonly saturated: boolean;
};

export function leasePool<T>(factory: { create: () => T; destroy: (item: T) => Promise<void> }, limits: { max: number; maxWaiting: number; acquireTimeoutMs: number }): LeasePool<T> {
  const idle: T[] = [];
  const waiters: Waiter<T>[] = [];
  let size = 0;
  let borrowed = 0;
  let draining = false;
  let drained: (() => void) | undefined;
  let drainedPromise: Promise<void> | undefined;

  function lend(item: T): T {
    borrowed++;
    return item;
  }

  /** A new item, counted in `size` only once it exists: a factory that throws takes no place. */
  function created(): T {
    const item = factory.create();
    size++;
    return item;
  }

  function settleDrain(): void {
    if (drained && borrowed === 0 && waiters.length === 0) drained();
  }

  /** Hands `item` (or a new one, when a place is free) to the oldest waiter; true when one took it. */
  function serveWaiter(item: T | undefined): boolean {
    const waiter = waiters.shift();
    if (!waiter) return false;
    clearTimeout(waiter.timer);
    if (item !== undefined) {
      waiter.resolve(lend(item));
      return true;
    }
    try {
      waiter.resolve(lend(created()));
    } catch (error) {
      waiter.reject(error);
    }
    return true;
  }

  return {
    acquire() {
      if (draining) return Promise.reject(new PoolRefusal("draining"));
      const item = idle.pop();
      if (item !== undefined) return Promise.resolve(lend(item));
      if (size < limits.max) {
        try {
          return Promise.resolve(lend(created()));
        } catch (error) {
          return Promise.reject(error);
        }
      }
      if (waiters.length >= limits.maxWaiting) return Promise.reject(new PoolRefusal("queue-full"));
      return new Promise<T>((resolve, reject) => {
        const waiter: Waiter<T> = {
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(new PoolRefusal("timeout"));
            settleDrain();
          }, limits.acquireTimeoutMs),
        };
        waiters.push(waiter);
      });
    },
    release(item) {
      borrowed--;
      if (!serveWaiter(item)) idle.push(item);
      settleDrain();
    },
    async destroy(item) {
      borrowed--;
      size--;
      try {
        await factory.destroy(item);
      } finally {
        if (size < limits.max) serveWaiter(undefined);
        settleDrain();
      }
    },
    drain() {
      draining = true;
      drainedPromise ??= new Promise<void>((resolve) => {
        drained = resolve;
        settleDrain();
      });
      return drainedPromise;
    },
    get borrowed() {
      return borrowed;
    },
    get pending() {
      return waiters.length;
    },
    get saturated() {
      return idle.length === 0 && size >= limits.max && waiters.length >= limits.maxWaiting;
    },
  };
}

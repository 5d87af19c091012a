// The lease pool behind the API's connections (server/db/leasePool.ts, tarn underneath): bounded in items, in waiting
// acquisitions and in waiting time; a destroyed item frees its place; drain waits for every lease.
import { describe, expect, it } from "vitest";
import { leasePool, PoolRefusal } from "../server/db/leasePool.ts";

function pool(limits: { max: number; maxWaiting: number; acquireTimeoutMs: number }) {
  let made = 0;
  const destroyed: number[] = [];
  const p = leasePool<number>({ create: () => ++made, destroy: async (n) => void destroyed.push(n) }, limits);
  return { p, made: () => made, destroyed };
}

const refusal = (reason: string) => expect.objectContaining({ name: "PoolRefusal", reason });

describe("lease pool", () => {
  it("creates items only as needed, up to max, and lends a returned item again", async () => {
    const { p, made } = pool({ max: 2, maxWaiting: 5, acquireTimeoutMs: 1000 });
    const a = await p.acquire();
    p.release(a);
    expect(await p.acquire()).toBe(a);
    const b = await p.acquire();
    expect([a, b, made(), p.borrowed]).toEqual([1, 2, 2, 2]);
  });

  it("hands a released item to the oldest waiting acquisition, in order", async () => {
    const { p } = pool({ max: 1, maxWaiting: 5, acquireTimeoutMs: 1000 });
    const a = await p.acquire();
    const order: string[] = [];
    const first = p.acquire().then((x) => (order.push("first"), x));
    const second = p.acquire().then((x) => (order.push("second"), x));
    expect(p.pending).toBe(2);
    p.release(a);
    p.release(await first);
    await second;
    expect(order).toEqual(["first", "second"]);
  });

  it("refuses at once past maxWaiting, and says so in saturated beforehand", async () => {
    const { p } = pool({ max: 1, maxWaiting: 1, acquireTimeoutMs: 1000 });
    const a = await p.acquire();
    expect(p.saturated).toBe(false);
    const waiting = p.acquire();
    expect(p.saturated).toBe(true);
    await expect(p.acquire()).rejects.toEqual(refusal("queue-full"));
    p.release(a);
    expect(await waiting).toBe(a);
  });

  it("a pool without a queue refuses the moment every item is leased", async () => {
    const { p } = pool({ max: 1, maxWaiting: 0, acquireTimeoutMs: 1000 });
    await p.acquire();
    await expect(p.acquire()).rejects.toBeInstanceOf(PoolRefusal);
  });

  it("a waiting acquisition gives up after acquireTimeoutMs and leaves the queue", async () => {
    const { p } = pool({ max: 1, maxWaiting: 5, acquireTimeoutMs: 30 });
    const a = await p.acquire();
    const started = Date.now();
    await expect(p.acquire()).rejects.toEqual(refusal("timeout"));
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(p.pending).toBe(0);
    p.release(a);
    expect(await p.acquire()).toBe(a);
  });

  it("a destroyed item is ended and its place goes to a new item for whoever waits", async () => {
    const { p, destroyed } = pool({ max: 1, maxWaiting: 5, acquireTimeoutMs: 1000 });
    const a = await p.acquire();
    const waiting = p.acquire();
    await p.destroy(a);
    expect(destroyed).toEqual([a]);
    expect(await waiting).toBe(2);
    expect(p.borrowed).toBe(1);
  });

  it("drain refuses new acquisitions and resolves once every lease is back", async () => {
    const { p } = pool({ max: 2, maxWaiting: 5, acquireTimeoutMs: 1000 });
    const a = await p.acquire();
    let drained = false;
    const draining = p.drain().then(() => (drained = true));
    await expect(p.acquire()).rejects.toEqual(refusal("draining"));
    // A turn of the event loop: whatever the drain could resolve on by itself has run by now.
    await new Promise((resolve) => setImmediate(resolve));
    expect(drained).toBe(false);
    p.release(a);
    await draining;
    expect(p.borrowed).toBe(0);
  });

  it("abandonWaiting refuses the acquisitions waiting now, and new ones, at once; the leases out stay out", async () => {
    const { p } = pool({ max: 1, maxWaiting: 5, acquireTimeoutMs: 60_000 });
    const a = await p.acquire();
    const waiters = [p.acquire(), p.acquire()].map((w) => w.then(() => "served", (e: unknown) => e));
    expect(p.pending).toBe(2);
    p.abandonWaiting();
    expect(await Promise.all(waiters)).toEqual([refusal("draining"), refusal("draining")]);
    await expect(p.acquire()).rejects.toEqual(refusal("draining"));
    expect([p.pending, p.borrowed]).toEqual([0, 1]);
    p.release(a);
    await p.drain();
  });

  it("an item the factory fails to make takes no place: the error reaches the caller and the next acquisition may make one", async () => {
    let fail = true;
    const p = leasePool<number>({ create: () => { if (fail) throw new Error("cannot make"); return 7; }, destroy: async () => {} }, { max: 1, maxWaiting: 5, acquireTimeoutMs: 1000 });
    await expect(p.acquire()).rejects.toThrow("cannot make");
    expect(p.borrowed).toBe(0);
    fail = false;
    expect(await p.acquire()).toBe(7);
  });

  it("a waiter whose replacement item the factory fails to make is told so, not left waiting", async () => {
    let fail = false;
    const p = leasePool<number>({ create: () => { if (fail) throw new Error("cannot make"); return 1; }, destroy: async () => {} }, { max: 1, maxWaiting: 5, acquireTimeoutMs: 5000 });
    const a = await p.acquire();
    const waiting = p.acquire();
    fail = true;
    await p.destroy(a);
    await expect(waiting).rejects.toThrow("cannot make");
    fail = false;
    expect(await p.acquire()).toBe(1);
  });

  it("a second drain waits for the same leases as the first", async () => {
    const { p } = pool({ max: 1, maxWaiting: 5, acquireTimeoutMs: 1000 });
    const a = await p.acquire();
    const first = p.drain();
    const second = p.drain();
    p.release(a);
    await expect(Promise.all([first, second])).resolves.toEqual([undefined, undefined]);
  });
});

// Admission control for /api/v1, in front of Express: at most `limit` API requests are inside the
// app at once; the rest wait here, before anything is spent on them (no routing, token check,
// body or log line), and one that cannot be served in time is refused, 503 OVERLOADED, for a few
// microseconds of CPU.
//
// Why: clients that ignore Retry-After and retry at once (autocannon, a misbehaving SDK, an
// attacker) turn every refusal into the next request. Refused at once, through Express, each cost
// about 145 µs of Node CPU, and 256 such clients left 211 successful answers a second against
// 1,521 at 16 connections (issue 37; bench/overload.ts measures it). What this does instead:
// - Deadline: a request is served only within `deadlineMs` of its arrival.
// - Adaptive LIFO (Facebook's "Fail at Scale", with CoDel's signal: how long the queue holds
//   requests, not how long it is): oldest first while the oldest waiter is younger than
//   `lifoAfterMs` (three quarters of the deadline), newest first beyond, so under overload the
//   requests served are fresh and the ones left at the bottom are those past their deadline.
//   Served oldest first under overload, every answer would wait nearly the deadline; served
//   newest first as soon as a queue forms, some would starve under a load that oldest first
//   serves in time (64 connections in the bench: 28 refusals in 8 s with half the deadline).
// - A refusal is answered `refuseAfterMs` after the request arrived (1 s, the Retry-After it
//   carries, and the longest wait DB_ACQUIRE_TIMEOUT_MS allowed before), not the moment it misses
//   its deadline: a client that retries at once then comes back once a second, not five times,
//   and a client that honours Retry-After would not have come back sooner anyway.
// - The refusal is written here, not by Express: the error body and headers the error handler
//   writes, and no log line each (one summary a second, and http_unavailable_total).
// Past `queueMax` waiting requests a newcomer is refused at once and its connection closed.
// Hand-written: the queues on npm (p-queue, p-limit, bottleneck) serve oldest first with no
// deadline, and the load-shedding plugins (toobusy-js, overload-protection, under-pressure)
// decide on event-loop delay and refuse through the framework. README (Overload) has what each
// lever here, and closing every refused connection, measured.
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { logger } from "../core/log.ts";
import { countUnavailable } from "../core/metrics.ts";
import { requestIdFrom } from "./requestId.ts";

export type AdmissionOptions = {
  /** API requests inside the app at once. */
  limit: number;
  /** Requests allowed to wait; one more is refused at once and its connection closed. */
  queueMax: number;
  /** How long after its arrival a request may still be let in. */
  deadlineMs: number;
  /** When, after its arrival, a request that was not let in is answered 503 (at least deadlineMs). */
  refuseAfterMs: number;
  /** Newest first while the oldest waiter has waited longer than this (default: three quarters of the deadline). */
  lifoAfterMs?: number;
};

type Waiter = { req: IncomingMessage; res: ServerResponse; since: number };

const body = (requestId: string) =>
  `{"error":{"code":"OVERLOADED","message":"The service is at capacity; retry shortly.","request_id":"${requestId}","help":"runbooks/incident-database-unavailable.md"}}`;

let refused = 0;
let report: NodeJS.Timeout | undefined;

/** 503 OVERLOADED as the error handler writes it, without Express. */
function refuse(req: IncomingMessage, res: ServerResponse, close: boolean): void {
  if (res.destroyed) return;
  const header = req.headers["x-request-id"];
  const id = requestIdFrom(typeof header === "string" ? header : undefined);
  const text = body(id);
  res.writeHead(503, {
    "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(text), "Retry-After": "1", "X-Request-Id": id,
    ...(close ? { Connection: "close" } : {}),
  });
  res.end(text);
  refused++;
  report ??= setTimeout(reportRefusals, 1000).unref();
}

function reportRefusals(): void {
  report = undefined;
  countUnavailable("OVERLOADED", refused);
  logger.warn({ code: "OVERLOADED", refused, help: "runbooks/incident-database-unavailable.md" }, "requests refused at capacity in the last second");
  refused = 0;
}

/** A queue of waiters, oldest at the front, that takes from either end. */
function deque() {
  let items: Waiter[] = [];
  let head = 0;
  const reset = () => {
    items = [];
    head = 0;
  };
  return {
    get size() {
      return items.length - head;
    },
    push: (w: Waiter) => items.push(w),
    oldest: () => items[head],
    shift: () => {
      const w = items[head++];
      // Cut off the consumed front now and then, so the array does not grow for ever.
      if (head === items.length) reset();
      else if (head > 1024 && head * 2 > items.length) {
        items = items.slice(head);
        head = 0;
      }
      return w;
    },
    pop: () => {
      const w = items.pop()!;
      if (head === items.length) reset();
      return w;
    },
  };
}

export type Admission = RequestListener & {
  /** API requests inside the app, waiting for a place, and past their deadline awaiting their 503. */
  stats: () => { inside: number; waiting: number; refusing: number };
};

/** `app` behind admission control for paths under /api/v1; every other path goes straight to it. */
export function admissionControl(app: RequestListener, options: AdmissionOptions): Admission {
  const lifoAfterMs = options.lifoAfterMs ?? (options.deadlineMs * 3) / 4;
  const refuseAfterMs = Math.max(options.refuseAfterMs, options.deadlineMs);
  let inside = 0;
  const waiting = deque();
  // Past their deadline, waiting for their answer; in order of arrival, so of answer time too.
  const refusing = deque();
  let timer: NodeJS.Timeout | undefined;

  const admit = (req: IncomingMessage, res: ServerResponse) => {
    inside++;
    // "close" comes once per response, finished or abandoned.
    res.once("close", leave);
    app(req, res);
  };

  /** Moves waiters past their deadline (the oldest, at the front) to the refusals, and answers those that are due. */
  const expire = (now: number) => {
    while (waiting.size > 0 && now - waiting.oldest().since > options.deadlineMs) refusing.push(waiting.shift());
    while (refusing.size > 0 && now - refusing.oldest().since >= refuseAfterMs) {
      const w = refusing.shift();
      refuse(w.req, w.res, false);
    }
  };

  function leave(): void {
    inside--;
    const now = performance.now();
    expire(now);
    const lifo = waiting.size > 0 && now - waiting.oldest().since > lifoAfterMs;
    while (inside < options.limit && waiting.size > 0) {
      const w = lifo ? waiting.pop() : waiting.shift();
      // A client that went away while it waited takes no place.
      if (!w.res.destroyed && !w.req.socket.destroyed) admit(w.req, w.res);
    }
    schedule(now);
  }

  /** One timer for the next deadline or answer due, whichever comes first. */
  const schedule = (now: number) => {
    if (timer) return;
    const next = Math.min(
      waiting.size > 0 ? waiting.oldest().since + options.deadlineMs : Infinity,
      refusing.size > 0 ? refusing.oldest().since + refuseAfterMs : Infinity,
    );
    if (next === Infinity) return;
    timer = setTimeout(() => {
      timer = undefined;
      const at = performance.now();
      expire(at);
      schedule(at);
    }, Math.max(1, next - now + 1));
  };

  const listener: RequestListener = (req, res) => {
    if (!req.url!.startsWith("/api/v1")) return app(req, res);
    if (inside < options.limit && waiting.size === 0) return admit(req, res);
    if (waiting.size >= options.queueMax) return refuse(req, res, true);
    const now = performance.now();
    waiting.push({ req, res, since: now });
    schedule(now);
  };
  return Object.assign(listener, { stats: () => ({ inside, waiting: waiting.size, refusing: refusing.size }) });
}

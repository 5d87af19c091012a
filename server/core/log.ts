// One logger on stdout. Lines written during a request carry its request id, tenant and user
// (logBindings(req)). Tokens, cookies, passwords and credentials are redacted; query strings are never logged.
//
// LOG_FORMAT: JSON lines (`json`: production, pipes, log collectors) or lines for a person at a
// terminal (`pretty`, pino-pretty: time, level, message, then the fields). Unset, it is `pretty` in
// development when stdout is a terminal, `json` otherwise. The batching below is JSON's; pretty
// lines are written one by one, as a person reads them.
//
// Lines are written in batches: a batch leaves when it reaches PIPE_BUF bytes or LOG_FLUSH_MS
// (default 5 ms) after its first line, whichever comes first. Under load a write per line, or
// per event-loop turn, was the API's largest cost after its sockets; 5 ms is below what a person
// or a collector notices. Each write holds whole lines of at most PIPE_BUF bytes (4 KB on
// Linux), which a pipe takes in one piece: the WEB_CONCURRENCY workers share stdout, and none
// splits another's line. The writes are synchronous, as pino's and Node's own for pipes: an
// asynchronous write costs a thread-pool round trip (15 µs of CPU per request measured against
// this), and a stdout that stops draining then grows the heap instead of pausing the process.
// Lines still pending when the process exits (a fatal error at start-up, SIGTERM) are written
// then.
import { writeSync } from "node:fs";
import { pino, type DestinationStream } from "pino";

const format = process.env.LOG_FORMAT ?? ((process.env.NODE_ENV ?? "development") === "development" && process.stdout.isTTY ? "pretty" : "json");

/** pino-pretty, loaded only when asked for; the access line's fields make its message. */
async function prettyStream(): Promise<DestinationStream> {
  const { default: pretty } = await import("pino-pretty");
  return pretty({
    sync: true,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname,req,res,responseTime",
    messageFormat: "{if req.method}{req.method} {req.url} {res.statusCode} {responseTime} ms: {end}{msg}",
  });
}

const pretty = format === "pretty" ? await prettyStream() : undefined;
const stdout = pino.destination({ dest: 1, sync: true });
const PIPE_BUF = 4096;
const FLUSH_MS = Number(process.env.LOG_FLUSH_MS ?? 5);
let pending: string[] = [];
let pendingBytes = 0;
let flushTimer: NodeJS.Timeout | undefined;

/** The pending lines as writes of whole lines, each at most PIPE_BUF bytes (a longer line alone). */
function takeBatches(): string[] {
  const lines = pending;
  pending = [];
  pendingBytes = 0;
  const batches: string[] = [];
  let batch = "";
  let bytes = 0;
  for (const line of lines) {
    const size = Buffer.byteLength(line);
    if (bytes > 0 && bytes + size > PIPE_BUF) {
      batches.push(batch);
      batch = "";
      bytes = 0;
    }
    batch += line;
    bytes += size;
  }
  if (bytes > 0) batches.push(batch);
  return batches;
}

function writePending(): void {
  if (flushTimer) clearTimeout(flushTimer);
  flushTimer = undefined;
  for (const batch of takeBatches()) stdout.write(batch);
}

/** Queues one whole JSON line (ending in a newline) for stdout; the access log writes its own this way. */
export function writeLine(line: string): void {
  if (pretty) return void pretty.write(line);
  // Sizes here in UTF-16 units (the bytes, for the ASCII that log lines nearly always are); the
  // batches are cut on true byte counts when written (takeBatches).
  if (pendingBytes > 0 && pendingBytes + line.length > PIPE_BUF) writePending();
  pending.push(line);
  pendingBytes += line.length;
  flushTimer ??= setTimeout(writePending, FLUSH_MS).unref();
}

const batched = { write: writeLine };

/** At exit there is no event loop left: the remaining lines go out with blocking writes, retried briefly while a pipe is full. */
function writeAllSync(text: string): void {
  let buffer = Buffer.from(text);
  for (let retries = 0; buffer.length > 0 && retries < 200; ) {
    try {
      buffer = buffer.subarray(writeSync(1, buffer));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") return;
      retries++;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

// Registered after the destination, whose own exit handler (pino's) first writes out anything it
// still holds.
process.on("exit", () => {
  for (const batch of takeBatches()) writeAllSync(batch);
});

export const logger = pino({
  level: process.env.LOG_LEVEL ?? "info",
  redact: {
    // No route logs a body; a credential (routes/integrations.ts) is redacted should one ever be passed here.
    paths: ["req.headers.authorization", "req.headers.cookie", "password", "*.password", "access_token", "secret", "*.secret", "credential_envelope", "*.credential_envelope"],
    censor: "[redacted]",
  },
}, pretty ?? batched);

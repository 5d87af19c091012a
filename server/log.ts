// One JSON logger on stdout. Lines written during a request carry its request id, tenant and
// user (logBindings(req)). Tokens, cookies and passwords are redacted; query strings are never logged.
//
// The lines of one event-loop turn leave together, at the turn's end: under load a turn answers
// several requests, and a write per access-log line was the API's largest cost after its
// sockets. The writes are pino's asynchronous destination, as by default: a stdout that stops
// draining (a slow log collector) costs memory, never a blocked event loop. Each write holds
// whole lines of at most PIPE_BUF bytes (4 KB on Linux), which a pipe takes in one piece: the
// WEB_CONCURRENCY workers share stdout, and none splits another's line. Lines still pending when
// the process exits (a fatal error at start-up) are written synchronously then, after the ones
// the destination holds.
import { writeSync } from "node:fs";
import { pino } from "pino";

const stdout = pino.destination({ dest: 1, sync: false });
const PIPE_BUF = 4096;
let pending: string[] = [];

/** The pending lines as writes of whole lines, each at most PIPE_BUF bytes (a longer line alone). */
function takeBatches(): string[] {
  const lines = pending;
  pending = [];
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
  for (const batch of takeBatches()) stdout.write(batch);
}

const batched = {
  write(line: string): void {
    if (pending.push(line) === 1) setImmediate(writePending);
  },
};

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

// Registered after the destination, whose own exit handler (pino's) first writes out the older
// lines it still holds.
process.on("exit", () => {
  for (const batch of takeBatches()) writeAllSync(batch);
});

export const logger = pino({
  level: process.env.LOG_LEVEL ?? "info",
  redact: {
    paths: ["req.headers.authorization", "req.headers.cookie", "password", "*.password", "access_token"],
    censor: "[redacted]",
  },
}, batched);

// One JSON logger on stdout. Lines written during a request carry its request id, tenant and
// user (logBindings(req)). Tokens, cookies and passwords are redacted; query strings are never logged.
//
// The lines of one event-loop turn leave in one synchronous write when the turn ends: under
// load a turn answers several requests, and a write per access-log line was the API's largest
// cost after its sockets. Synchronous, nothing is left in flight: lines still pending when the
// process exits (a fatal error at start-up) are written then, in order. A stdout that stops
// draining (a stuck log collector) holds the process back instead of filling its memory.
import { pino } from "pino";

const stdout = pino.destination({ dest: 1, sync: true });
let pending: string[] = [];

// A pipe takes a write of at most PIPE_BUF (4 KB on Linux) whole: WEB_CONCURRENCY workers share
// stdout, so a batch leaves in writes of whole lines up to that size, and no line is split.
const PIPE_BUF = 4096;

function writePending(): void {
  const lines = pending;
  pending = [];
  let batch = "";
  let bytes = 0;
  for (const line of lines) {
    const size = Buffer.byteLength(line);
    if (bytes > 0 && bytes + size > PIPE_BUF) {
      stdout.write(batch);
      batch = "";
      bytes = 0;
    }
    batch += line;
    bytes += size;
  }
  if (bytes > 0) stdout.write(batch);
}

const batched = {
  write(line: string): void {
    if (pending.push(line) === 1) setImmediate(writePending);
  },
};

process.on("exit", () => {
  if (pending.length > 0) writePending();
});

export const logger = pino({
  level: process.env.LOG_LEVEL ?? "info",
  redact: {
    paths: ["req.headers.authorization", "req.headers.cookie", "password", "*.password", "access_token"],
    censor: "[redacted]",
  },
}, batched);

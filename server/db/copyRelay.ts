// Relays the output of a postgres.js `COPY ... TO STDOUT` stream into an HTTP response with
// stream.pipeline and backpressure, through public stream APIs only. The one postgres.js bug
// workaround of the project lives here (resumeAfterCopy).
import { Writable, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { countExportBytes } from "../core/metrics.ts";

/**
 * postgres.js 3.4.9 pauses its socket when a COPY chunk fills the stream's buffer and resumes
 * it only from the stream's read(). When CopyDone arrived in the same socket chunk as that last
 * CopyData, the stream has ended, nothing reads it any more, and the socket stays paused: the
 * rest of the answer sits unread and the next statement (our COMMIT) never returns.
 * https://github.com/porsager/postgres/issues/499 (fix pending in porsager/postgres#1016).
 * Calling the stream's read implementation resumes the socket; harmless when it was not paused.
 * Remove with the upgrade that fixes #499.
 */
function resumeAfterCopy(rows: Readable): void {
  (rows as Readable & { _read: (size: number) => void })._read(0);
}

/**
 * Streams `rows` to `res` (an HTTP response or a file, which the caller ends). Resolves true when
 * every row was written, false when the client left first: then `cancel` stops the COPY and the
 * rest of its output is read and dropped, because an unread COPY would hold the connection.
 * `observe` sees each chunk written (a checksum, a count).
 */
export async function relayCopy(rows: Readable, res: Writable, cancel: () => void, observe?: (chunk: Buffer) => void): Promise<boolean> {
  let left = false;
  const leave = () => {
    if (res.writableFinished) return;
    left = true;
    cancel();
  };
  res.once("close", leave);
  // Gone before this COPY started (a caller writing several in a row): nothing is waited for.
  if (res.destroyed) leave();
  // The response as a Writable that waits for the client to drain (backpressure) and, once the
  // client has left, drops what is still coming instead of failing the pipeline: postgres.js's
  // stream must be read to its end, never destroyed half way.
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (left) return done();
      countExportBytes(chunk.length);
      observe?.(chunk);
      if (res.write(chunk)) return done();
      const go = () => {
        res.off("drain", go).off("close", go);
        done();
      };
      res.once("drain", go).once("close", go);
    },
  });
  try {
    await pipeline(rows, sink);
  } catch (error) {
    // A cancelled COPY ends in an error (57014): expected once the client has left.
    if (!left) throw error;
  } finally {
    res.off("close", leave);
    resumeAfterCopy(rows);
  }
  return !left;
}

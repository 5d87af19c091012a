// Positions in the primary's write-ahead log, and the consistency token built from one.
//
// A position is PostgreSQL's pg_lsn ('16/B374D848': two 32-bit halves in hex), held here as a
// bigint so positions compare with < and >=. The token a write's answer carries
// (X-Consistency-Token) is the position the primary's WAL had reached once the write committed:
// a read that sends it back is served only where that position has been replayed
// (server/db/replicas.ts). To clients it is opaque; this file is the only one that reads or writes it.
import { invalidConsistencyToken } from "../core/errors.ts";

export type WalPosition = bigint;

const lsnPattern = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const tokenPattern = /^1\.([0-9a-f]{16})$/;

/** A pg_lsn's text as a position. */
export function parseLsn(text: string): WalPosition {
  const m = lsnPattern.exec(text);
  if (!m) throw new Error(`not a pg_lsn: ${text}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** A position as pg_lsn text, for a ::pg_lsn parameter. */
export function formatLsn(p: WalPosition): string {
  return `${(p >> 32n).toString(16).toUpperCase()}/${(p & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** The token a write's answer carries: a version, then the position as 16 hex digits. */
export function consistencyToken(p: WalPosition): string {
  return `1.${p.toString(16).padStart(16, "0")}`;
}

/**
 * The position a request's X-Consistency-Token names, or undefined when it sends none. Strict:
 * anything but one token as this API writes it is 400 INVALID_CONSISTENCY_TOKEN (two headers reach
 * Node joined by a comma, so they are refused too), never ignored: a client that believes it reads
 * its writes must not silently lose that.
 */
export function positionOfToken(header: string | string[] | undefined): WalPosition | undefined {
  if (header === undefined) return undefined;
  const m = typeof header === "string" ? tokenPattern.exec(header) : null;
  if (!m) throw invalidConsistencyToken();
  return BigInt(`0x${m[1]}`);
}

/** The server's WAL page and segment sizes (wal_block_size, wal_segment_size), PostgreSQL's defaults until the primary says. */
export type WalLayout = { block: bigint; segment: bigint };
export const defaultLayout: WalLayout = { block: 8192n, segment: 16n * 1024n * 1024n };

// Page headers (PostgreSQL's SizeOfXLogShortPHD, and SizeOfXLogLongPHD on a segment's first page).
const shortHeader = 24n;
const longHeader = 40n;

/**
 * The position a standby reports once it has replayed up to `p`. The primary's insert position
 * after a record that ended exactly at a page boundary stands past the next page's header (no
 * record can start inside it), while a standby's replay position (the end of the last record
 * replayed) reads the boundary itself: the same point in the WAL, written two ways. Without this,
 * such a position would never be "replayed" on an idle primary, and a replica would look behind
 * until the next WAL record, for no reason.
 */
export function replayable(p: WalPosition, layout: WalLayout = defaultLayout): WalPosition {
  if (p % layout.segment === longHeader) return p - longHeader;
  if (p % layout.block === shortHeader) return p - shortHeader;
  return p;
}

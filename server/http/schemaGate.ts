// The serving API holds no owner credentials (server/main.ts), so it cannot bring its database to
// its release: it checks. While the database is behind (a migration of this release not applied, or
// its policies never deployed: server/setup/release.ts), every /api/v1 request answers 503
// SCHEMA_BEHIND naming the command that fixes it, and /readyz says the same. An instance started
// before the deploy step learns the deploy happened by asking again: every 2 s while behind, and at
// every /readyz; then it serves without a restart. Only a process that watches (main.ts) refuses:
// apps built by tests and tools are not gated.
import type { RequestHandler } from "express";
import { AppError, UnavailableError, databaseUnavailable } from "../core/errors.ts";
import { logger } from "../core/log.ts";
import { DEPLOY_COMMAND, describeBehind, type SchemaBehind } from "../setup/release.ts";

type State = { watched: boolean; known: boolean; behind: SchemaBehind | null };
const state: State = { watched: false, known: false, behind: null };
let poll: { check: () => Promise<SchemaBehind | null>; intervalMs: number; timer?: NodeJS.Timeout } | undefined;

/** 503 SCHEMA_BEHIND: what is missing, and the deploy command that brings it. */
export function schemaBehindError(behind: SchemaBehind): AppError {
  return new UnavailableError("SCHEMA_BEHIND", `The database is behind this release (${describeBehind(behind)}). Run the deploy: ${DEPLOY_COMMAND}.`, {
    details: { pending_migrations: behind.pending, policy_version: behind.policies },
    headers: { "Retry-After": "5" },
    help: "runbooks/go-live.md",
  });
}

/** Records a check's result (from the watch, or from /readyz); while behind, the watch asks again. */
export function noteSchema(behind: SchemaBehind | null): void {
  if (!state.watched) return;
  const was = state.known ? state.behind : undefined;
  state.known = true;
  state.behind = behind;
  if (behind && (was === undefined || was === null)) {
    logger.error({ behind, fix: DEPLOY_COMMAND, help: "runbooks/go-live.md" }, `the database is behind this release: ${describeBehind(behind)}; refusing API requests (503 SCHEMA_BEHIND) until it is deployed: run ${DEPLOY_COMMAND}`);
  }
  if (!behind && was) logger.info("the database is at this release now; serving");
  if (behind) schedule();
}

function schedule(): void {
  if (!poll || poll.timer) return;
  poll.timer = setTimeout(async () => {
    poll!.timer = undefined;
    try {
      noteSchema(await poll!.check());
    } catch {
      schedule(); // the database did not answer: ask again later
    }
  }, poll.intervalMs);
  poll.timer.unref();
}

/** Starts gating this process on `check` (read-only, as app_user): at once, then every intervalMs while behind or unanswered. */
export async function watchSchema(check: () => Promise<SchemaBehind | null>, intervalMs = 2000): Promise<void> {
  state.watched = true;
  poll = { check, intervalMs };
  try {
    noteSchema(await check());
  } catch (error) {
    logger.warn({ err: error }, "the release check could not reach the database; asking again");
    schedule();
  }
}

/** Stops the watch (shutdown). */
export function stopWatchingSchema(): void {
  if (poll?.timer) clearTimeout(poll.timer);
  poll = undefined;
}

/** First on /api/v1: refuses while the watched database is behind (or not checked yet). */
export const refuseWhenBehind: RequestHandler = (_req, _res, next) => {
  if (!state.watched || (state.known && !state.behind)) return next();
  next(state.behind ? schemaBehindError(state.behind) : databaseUnavailable());
};

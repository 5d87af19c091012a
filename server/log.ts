// One JSON logger; every line carries the request id (and tenant, once known) from the
// request state. Tokens, cookies and passwords are redacted; query parameters never logged.
import { pino } from "pino";

export const logger = pino({
  level: process.env.LOG_LEVEL ?? "info",
  redact: {
    paths: ["req.headers.authorization", "req.headers.cookie", "password", "*.password", "access_token"],
    censor: "[redacted]",
  },
});

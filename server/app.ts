// The Express app: one first step for every request (its id, refusal while shutting down, the access
// log and metrics, the tenant path prefix), then /api/v1, every route registered on the app's own
// router at its full path behind the API's middleware (JSON bodies on writes, authentication, the
// idempotency key, and for tenant resources the tenant): a request walks one router, not three
// nested ones (server/routes/mount.ts). Then health, /metrics, docs and /ops, then 405 for a path
// asked with a method it lacks, 404 and the one error handler. /api/v1 comes first because nearly
// every request is one.
import express, { type RequestHandler } from "express";
import { startAccessLog } from "./http/accessLog.ts";
import { authenticate } from "./auth/authenticate.ts";
import { errorHandler, notFound } from "./http/errorHandler.ts";
import { useStrongEtags } from "./http/etag.ts";
import { idempotencyKey } from "./http/idempotency.ts";
import { jsonBody } from "./http/jsonBody.ts";
import { answerOtherMethods } from "./http/methodNotAllowed.ts";
import { metricsEndpoint } from "./core/metrics.ts";
import { assignRequestId } from "./http/requestId.ts";
import { drainingRefusal } from "./http/shutdown.ts";
import { refuseWhenBehind } from "./http/schemaGate.ts";
import { mountRoutes, type Routes } from "./routes/mount.ts";
import { authRoutes } from "./routes/auth.ts";
import { invitationRoutes } from "./routes/invitations.ts";
import { customerRoutes } from "./routes/customers.ts";
import { serviceOperationRoutes, serviceRoutes } from "./routes/serviceCatalog.ts";
import { catalogChangeRoutes } from "./routes/catalogChanges.ts";
import { vehicleRoutes } from "./routes/vehicles.ts";
import { appointmentRoutes } from "./routes/appointments.ts";
import { invoiceRoutes } from "./routes/invoices.ts";
import { reportRoutes } from "./routes/reports.ts";
import { auditRoutes } from "./routes/audit.ts";
import { healthRoutes } from "./routes/health.ts";
import { memberRoutes } from "./routes/members.ts";
import { settingsRoutes } from "./routes/settings.ts";
import { integrationRoutes } from "./routes/integrations.ts";
import { wellKnownRoutes } from "./routes/wellKnown.ts";
import { featureRoutes } from "./routes/features.ts";
import { exportRoutes } from "./routes/export.ts";
import { accessRoutes } from "./routes/access.ts";
import { platformRoutes } from "./routes/platform.ts";
import { meRoutes } from "./routes/me.ts";
import { opsRoutes, type Deployment } from "./routes/ops.ts";
import { docsRoutes } from "./routes/docs.ts";
import { documented } from "./http/contract.ts";
import { resolveTenant, rewriteTenantPathPrefix } from "./auth/tenantResolution.ts";
import { shedWhenSaturated } from "./db/tenantContext.ts";
import type { TokenKeys } from "./auth/tokens.ts";
import { DEFAULT_LOGIN_THROTTLE, type LoginThrottle } from "./core/config.ts";
import type { KeyRing } from "./core/keyRing.ts";

export type AppOptions = {
  keys: TokenKeys; baseDomain?: string; bodyLimit: string; deployment?: Deployment;
  /** The credentials key ring (CREDENTIALS_KEYS as bytes: core/credentialCipher.ts credentialKeys). */
  credentialKeys?: KeyRing<Buffer>;
  /** Failed-login limits (LOGIN_THROTTLE_*: policies/login_throttle.sql). */
  loginThrottle?: LoginThrottle;
};

/** Tenant resources by path under /api/v1: every route of each is registered behind resolveTenant, so its handlers run in a tenant. */
export function tenantResources(options: Pick<AppOptions, "credentialKeys"> = {}): Record<string, (router: Routes) => void> {
  return {
    "/customers": customerRoutes,
    "/vehicles": vehicleRoutes,
    "/services": serviceRoutes,
    "/service-operations": serviceOperationRoutes,
    "/catalog": catalogChangeRoutes,
    "/appointments": appointmentRoutes,
    "/invoices": invoiceRoutes,
    "/reports": reportRoutes,
    "/audit": auditRoutes,
    "/members": memberRoutes,
    "/settings": settingsRoutes,
    "/integrations": (router) => integrationRoutes(router, options.credentialKeys),
    "/features": featureRoutes,
    "/export": exportRoutes,
    "/access": accessRoutes,
  };
}

/**
 * What every request does first, as one router layer (each layer is a step of the router's walk):
 * its id and state, the refusal while shutting down (then nothing else runs and nothing is logged),
 * the access log and metrics when it ends, and the /api/v1/t/{slug}/ prefix rewritten before routing.
 */
const startRequest: RequestHandler = (req, res, next) => {
  assignRequestId(req, res);
  const refused = drainingRefusal(res);
  if (refused) return next(refused);
  startAccessLog(req, res);
  rewriteTenantPathPrefix(req);
  next();
};

export function createApp(options: AppOptions): express.Express {
  const app = express();
  app.disable("x-powered-by");
  // Strong ETags on every body (the bytes Express's "strong" setting writes, hashed from the text
  // with that setting off: http/etag.ts), and 304 for a matching If-None-Match on GET (req.fresh).
  useStrongEtags(app);
  app.set("query parser", "simple");

  app.use(startRequest);

  // /api/v1 (server/routes/mount.ts): refused while the database is behind this release (only in a
  // process that watches it: server/http/schemaGate.ts), shed before anything is paid for, JSON bodies on writes, then
  // the login; every other route authenticates and reads its idempotency key, tenant resources
  // then resolve the tenant. The caller's routes (/me, /tenants) after the tenant resources, which
  // nearly every request is.
  const api = [refuseWhenBehind, shedWhenSaturated, jsonBody(options.bodyLimit)];
  authRoutes(mountRoutes(app, "/api/v1/auth", api), options.keys, options.loginThrottle ?? DEFAULT_LOGIN_THROTTLE);
  // Accepting an invitation: public too, the token is the credential.
  invitationRoutes(mountRoutes(app, "/api/v1/invitations", api));
  const authenticated = [...api, authenticate(options.keys), idempotencyKey];
  const inTenant = [...authenticated, resolveTenant(options.baseDomain)];
  for (const [path, routes] of Object.entries(tenantResources(options))) routes(mountRoutes(app, `/api/v1${path}`, inTenant));
  meRoutes(mountRoutes(app, "/api/v1", authenticated));
  // Platform administration: no tenant; the database opens its context only for a platform admin.
  platformRoutes(mountRoutes(app, "/api/v1/platform", authenticated));

  app.use(healthRoutes());
  app.get("/metrics", documented({
    summary: "Prometheus metrics (unauthenticated: expose to the scraper's network only)", tag: "Operations", auth: "public",
    description: "Requests by method, route template and status, their latency, 503s by error code, 304s, authorization denials, the tenant pool's use, and Node's defaults, in Prometheus's text format.",
    responses: { 200: { description: "Prometheus text format", contentType: "text/plain" } },
  }), metricsEndpoint);
  app.use(docsRoutes());
  app.use(wellKnownRoutes(options.keys));
  app.use("/ops", opsRoutes(options.keys, options.deployment));

  // A path that exists, asked with a method it does not have: 405 with Allow, token or not (the
  // paths are public in /openapi.json).
  answerOtherMethods(app);
  // A path under /api/v1 that no route serves: authentication first, as for every route, so it is
  // 401 without a good token and 404 ROUTE_NOT_FOUND with one.
  app.use("/api/v1", ...authenticated);
  app.use(notFound);
  app.use(errorHandler);
  return app;
}

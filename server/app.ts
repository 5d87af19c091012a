// The Express app: request id, then the access log and metrics (one listener, accessLog.ts), then /api/v1 (JSON bodies on writes, login,
// authentication, caller routes, tenant routes), then health, /metrics and /ops, then 404 and the one
// error handler. /api/v1 comes first because nearly every request is one: the others' routers are not
// walked for it (the paths are disjoint, so the order changes no answer).
import express, { type Router } from "express";
import { authenticate } from "./authenticate.ts";
import { errorHandler, notFound } from "./errorHandler.ts";
import { useStrongEtags } from "./etag.ts";
import { idempotencyKey } from "./idempotency.ts";
import { jsonBody } from "./jsonBody.ts";
import { metricsEndpoint } from "./metrics.ts";
import { accessLog } from "./accessLog.ts";
import { requestId } from "./requestId.ts";
import { refuseWhileDraining } from "./shutdown.ts";
import { authRoutes } from "./routes/auth.ts";
import { customerRoutes } from "./routes/customers.ts";
import { serviceOperationRoutes, serviceRoutes } from "./routes/serviceCatalog.ts";
import { vehicleRoutes } from "./routes/vehicles.ts";
import { appointmentRoutes } from "./routes/appointments.ts";
import { invoiceRoutes } from "./routes/invoices.ts";
import { reportRoutes } from "./routes/reports.ts";
import { auditRoutes } from "./routes/audit.ts";
import { healthRoutes } from "./routes/health.ts";
import { memberRoutes } from "./routes/members.ts";
import { settingsRoutes } from "./routes/settings.ts";
import { meRoutes } from "./routes/me.ts";
import { opsRoutes, type Deployment } from "./routes/ops.ts";
import { docsRoutes } from "./routes/docs.ts";
import { documented } from "./contract.ts";
import { resolveTenant, tenantPathPrefix } from "./tenantResolution.ts";
import { shedWhenSaturated } from "./tenantContext.ts";
import type { TokenKeys } from "./tokens.ts";

export type AppOptions = { keys: TokenKeys; baseDomain?: string; bodyLimit: string; deployment?: Deployment };

/** Tenant resources: each is mounted behind resolveTenant, so its handlers run in a tenant. */
export function tenantResources(): Record<string, Router> {
  return {
    "/customers": customerRoutes(),
    "/vehicles": vehicleRoutes(),
    "/services": serviceRoutes(),
    "/service-operations": serviceOperationRoutes(),
    "/appointments": appointmentRoutes(),
    "/invoices": invoiceRoutes(),
    "/reports": reportRoutes(),
    "/audit": auditRoutes(),
    "/members": memberRoutes(),
    "/settings": settingsRoutes(),
  };
}

export function createApp(options: AppOptions): express.Express {
  const app = express();
  app.disable("x-powered-by");
  // Strong ETags on every body (Express's own, hashed from the text: etag.ts), and 304 for a
  // matching If-None-Match on GET (Express's req.fresh).
  useStrongEtags(app);
  app.set("query parser", "simple");

  app.use(requestId);
  app.use(refuseWhileDraining);
  app.use(accessLog);
  app.use(tenantPathPrefix);

  const api = express.Router();
  api.use(shedWhenSaturated);
  api.use(jsonBody(options.bodyLimit));
  // Mounted at its path, the login router is not walked by every other request.
  api.use("/auth", authRoutes(options.keys));
  api.use(authenticate(options.keys));
  api.use(idempotencyKey);
  const tenant = resolveTenant(options.baseDomain);
  for (const [path, router] of Object.entries(tenantResources())) api.use(path, tenant, router);
  // The caller's routes (/me, /tenants) after the tenant resources, which nearly every request is.
  api.use(meRoutes());
  app.use("/api/v1", api);

  app.use(healthRoutes());
  app.get("/metrics", documented({
    summary: "Prometheus metrics (unauthenticated: expose to the scraper's network only)", tag: "Operations", auth: "public",
    responses: { 200: { description: "Prometheus text format", contentType: "text/plain" } },
  }), metricsEndpoint);
  app.use(docsRoutes());
  app.use("/ops", opsRoutes(options.keys, options.deployment));

  app.use(notFound);
  app.use(errorHandler);
  return app;
}

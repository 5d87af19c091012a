// The Express app: request id, metrics and logging first, then health, /metrics, /ops, then /api/v1 (JSON bodies,
// login, authentication, caller routes, tenant routes), then 404 and the one error handler.
import express, { type Router } from "express";
import { pinoHttp } from "pino-http";
import { authenticate } from "./authenticate.ts";
import { errorHandler, notFound } from "./errorHandler.ts";
import { idempotencyKey } from "./idempotency.ts";
import { jsonBody } from "./jsonBody.ts";
import { logger } from "./log.ts";
import { metricsEndpoint, metricsMiddleware } from "./metrics.ts";
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
  app.set("etag", false);
  app.set("query parser", "simple");

  app.use(requestId);
  app.use(refuseWhileDraining);
  app.use(metricsMiddleware);
  app.use(
    pinoHttp({
      logger,
      genReqId: (req) => (req as { id?: string }).id ?? "",
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? "error" : res.statusCode >= 400 ? "warn" : "info"),
      serializers: {
        req: (req) => ({ method: req.method, url: req.url, remoteAddress: req.remoteAddress }),
        res: (res) => ({ statusCode: res.statusCode }),
      },
    }),
  );
  app.use(tenantPathPrefix);
  app.use(healthRoutes());
  app.get("/metrics", metricsEndpoint);
  app.use("/ops", opsRoutes(options.keys, options.deployment));

  const api = express.Router();
  api.use(shedWhenSaturated);
  api.use(jsonBody(options.bodyLimit));
  api.use(authRoutes(options.keys));
  api.use(authenticate(options.keys));
  api.use(idempotencyKey);
  api.use(meRoutes());
  const tenant = resolveTenant(options.baseDomain);
  for (const [path, router] of Object.entries(tenantResources())) api.use(path, tenant, router);
  app.use("/api/v1", api);

  app.use(notFound);
  app.use(errorHandler);
  return app;
}

// The API document and its human page: GET /openapi.json (http/openApi.ts, from the mounted
// routes' contract marks) and GET /docs, rendered by swagger-ui-dist from
// node_modules (no CDN: the page works offline and behind a strict egress policy).
import { createRequire } from "node:module";
import { dirname } from "node:path";
import express, { Router } from "express";
import { documented } from "../http/contract.ts";
import { openApiDocument } from "../http/openApi.ts";

const swaggerDir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

const page = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>rls-service-shop API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;
const init = `window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });\n`;

export function docsRoutes(): Router {
  const router = Router();
  let document: unknown;
  router.get("/openapi.json", documented({
    summary: "This API's OpenAPI 3.1 document", tag: "Operations", auth: "public",
    description: "Generated from the mounted routes' own contract marks, so it describes exactly what this server serves. Generate a client from it (openapi-typescript, openapi-generator).",
    responses: { 200: { description: "The document", schema: { type: "object", required: ["openapi", "paths"], properties: { openapi: { type: "string" }, paths: { type: "object" } } } } },
  }), (req, res) => {
    // Built once, from the app's router stack as mounted (every route is in place by the first request).
    document ??= openApiDocument(req.app as express.Express);
    res.json(document);
  });
  router.get("/docs", documented({
    summary: "Human-readable API reference (Swagger UI)", tag: "Operations", auth: "public",
    description: "This document rendered by Swagger UI, served from this server (no CDN).",
    responses: { 200: { description: "HTML", contentType: "text/html" } },
  }), (_req, res) => {
    res.type("html").send(page);
  });
  router.get("/docs/init.js", documented({
    summary: "The reference page's start-up script", tag: "Operations", auth: "public",
    description: "Points Swagger UI at /openapi.json; loaded by /docs.",
    responses: { 200: { description: "JavaScript", contentType: "text/javascript" } },
  }), (_req, res) => {
    res.type("text/javascript").send(init);
  });
  router.use("/docs/assets", express.static(swaggerDir, { index: false }));
  return router;
}

// 405 for a method a path does not have, with Allow naming the methods it has (RFC 9110 15.5.6),
// in the one error body. answerOtherMethods(app) runs after every route is registered: it puts one
// catch-all (a route's .all(), one route for every method; app.all would add one per method) per
// route path behind them, so Express matches the path exactly as it
// matched the routes, and only a request no route of that path answered reaches it. A GET route
// answers HEAD too (Express does), so Allow names HEAD with GET. OPTIONS is answered, not refused:
// 204 with Allow (a router mounted whole, as health's and docs', answers it itself, with 200).
import type express from "express";
import { AppError } from "../core/errors.ts";
import { routeInventory } from "./routeInventory.ts";

export function answerOtherMethods(app: express.Express): void {
  const byPath = new Map<string, Set<string>>();
  for (const route of routeInventory(app)) {
    const methods = byPath.get(route.path) ?? new Set<string>();
    methods.add(route.method);
    if (route.method === "GET") methods.add("HEAD");
    byPath.set(route.path, methods);
  }
  for (const [path, methods] of byPath) {
    const allow = [...methods].join(", ");
    app.route(path).all((req, res, next) => {
      if (req.method === "OPTIONS") return void res.set("Allow", `${allow}, OPTIONS`).status(204).end();
      next(new AppError(405, "METHOD_NOT_ALLOWED", `${req.method} is not a method of this path; it has ${allow}.`, { headers: { Allow: allow } }));
    });
  }
}

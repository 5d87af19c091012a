// Run by test/http-server.test.ts under `node --log-ic`: serves GETs through an Express app, on
// createHttpServer (server/http/httpServer.ts) or (PLAIN_SERVER=1) on http.createServer(app).
import http from "node:http";
import express from "express";
import { createHttpServer } from "../server/http/httpServer.ts";

const app = express();
app.get("/x/:id", async (req, res) => {
  await new Promise((resolve) => setImmediate(resolve));
  res.json({ id: req.params.id, sameRequestPrototype: Object.getPrototypeOf(req) === app.request, sameResponsePrototype: Object.getPrototypeOf(res) === app.response });
});
const server = process.env.PLAIN_SERVER === "1" ? http.createServer(app) : createHttpServer(app);
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
server.listen(0, "127.0.0.1", async () => {
  const { port } = server.address() as { port: number };
  const get = () => new Promise<string>((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: "/x/1", agent }, (r) => {
      let body = "";
      r.on("data", (d) => (body += d)).on("end", () => resolve(body));
    }).on("error", reject);
  });
  let last: string[] = [];
  for (let i = 0; i < 500; i++) last = await Promise.all(Array.from({ length: 8 }, get));
  console.log(last[0]);
  agent.destroy();
  server.close();
});

// Bench only: the API as BENCH_API_WORKERS processes sharing one port (node:cluster), each
// running server/main.ts with the same environment. SIGTERM stops the workers, then exits.
import cluster from "node:cluster";

const workers = Number(process.env.BENCH_API_WORKERS ?? 2);

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  let stopping = false;
  process.on("SIGTERM", () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGTERM");
  });
  cluster.on("exit", (worker, code) => {
    if (!stopping) {
      console.error(`worker ${worker.process.pid} exited with ${code}`);
      process.exitCode = 1;
    }
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit();
  });
} else {
  await import("../server/main.ts");
}

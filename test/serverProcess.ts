// The API as its own process (`node --import tsx server/main.ts`) against the test database, as
// an operator starts it: its output captured whole (every log line), its port read from the
// "API listening" line.
import { spawn, type ChildProcess } from "node:child_process";

export type ServerProcess = { child: ChildProcess; port: number; output: () => string; exited: Promise<number | null>; stop: () => Promise<number | null> };

/** Starts main.ts with `env` over this process's environment (PORT 0, DATABASE_URL set: nothing embedded); resolves once it listens. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], { env: { ...process.env, PORT: "0", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (c) => (out += c));
  child.stderr!.on("data", (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /"port":(\d+),"embedded":false/.exec(out);
      if (m) resolve((clearInterval(timer), Number(m[1])));
    }, 50);
    void exited.then((code) => (clearInterval(timer), reject(new Error(`exited ${code}: ${out}`))));
  });
  return { child, port, output: () => out, exited, stop: () => (child.kill("SIGTERM"), exited) };
}

// API instances as an operator runs them: `node server/main.ts` processes (through tsx), with the
// environment given, JSON logs collected, the port read from their "API listening" line.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:net";
import { root } from "./scratch.ts";
import { waitFor } from "./waits.ts";

export type Instance = {
  child: ChildProcess;
  /** Where the first worker listens (all workers share the port). */
  url: string;
  output: () => string;
  exited: Promise<number | null>;
};

/** Starts an instance and resolves once `workers` processes log "API listening". */
export async function startInstance(env: Record<string, string>, options: { workers?: number; timeoutMs?: number } = {}): Promise<Instance> {
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    cwd: root,
    // Production refuses to start without a credentials key ring (issue 33): one of its own unless given.
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", LOG_FORMAT: "json", DATABASE_OWNER_URL: "", CREDENTIALS_KEYS: `*instance=${"cd".repeat(32)}`, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (c) => (out += c));
  child.stderr!.on("data", (c) => (out += c));
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve((code = c))));
  const listening = () => [...out.matchAll(/"port":(\d+)[^\n]*"msg":"API listening"/g)].map((m) => Number(m[1]));
  try {
    await waitFor(() => {
      if (code !== undefined) throw new Error(`the instance exited (${code}) before listening:\n${out}`);
      return listening().length >= (options.workers ?? 1);
    }, { timeoutMs: options.timeoutMs ?? 60_000, what: "the instance to listen" });
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return { child, url: `http://127.0.0.1:${listening()[0]}`, output: () => out, exited };
}

/** SIGTERM, and the exit code. */
export async function stopInstance(instance: Instance | undefined): Promise<number | null | undefined> {
  if (!instance) return undefined;
  if (instance.child.exitCode === null && instance.child.signalCode === null) instance.child.kill("SIGTERM");
  return instance.exited;
}

/** A TCP listener that only counts the connections made to it: a URL that must never be dialled. */
export async function connectionCounter(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server: Server = createServer((socket) => {
    n++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => n,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

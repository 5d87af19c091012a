// The progress of a long operator command (the credentials key rotation) on stderr: a bar with
// counts and rate at a terminal (cli-progress), a line every two seconds otherwise (logs, CI).
import { SingleBar } from "cli-progress";

export type Progress = { total: number; done: number; conflicts: number; failed: number };

export function progressBar(title: string): { update: (p: Progress) => void; stop: () => void } {
  const started = performance.now();
  const bar = new SingleBar({
    format: `${title} {bar} {value}/{total} rows | {rate} rows/s | {conflicts} read again | {failed} unreadable | ETA {eta_formatted}`,
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 2000,
    hideCursor: true,
  });
  let begun = false;
  return {
    update(p) {
      const seconds = (performance.now() - started) / 1000;
      const payload = { rate: seconds > 0 ? Math.round(p.done / seconds) : 0, conflicts: p.conflicts, failed: p.failed };
      if (!begun) {
        bar.start(p.total, p.done, payload);
        begun = true;
      } else {
        bar.setTotal(Math.max(p.total, p.done));
        bar.update(p.done, payload);
      }
    },
    stop() {
      if (begun) bar.stop();
    },
  };
}

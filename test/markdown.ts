// Reading the documentation as GitHub shows it: headings' ids and relative links. Shared by the
// link check (docs-links.test.ts) and the alert rules' runbook links (monitoring.test.ts).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { root } from "./scratch.ts";

/** The page's text without its fenced code blocks, where brackets are code, not links. */
export const prose = (file: string) => readFileSync(join(root, file), "utf8").replace(/```[\s\S]*?```/g, "");

/** GitHub's id of a heading: lower case, punctuation dropped, spaces as hyphens. */
export const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");

export function anchorsOf(file: string): Set<string> {
  return new Set([...prose(file).matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1])));
}

/** Whether `target` (a path relative to `from`'s folder, with an optional #anchor) leads to a file and, for a page, to one of its headings; else why not. */
export function brokenTarget(from: string, target: string): string | undefined {
  const [path, anchor] = target.split("#");
  const into = path ? join(dirname(from), path) : from;
  if (path && !existsSync(join(root, into))) return `${from}: ${target} (no ${relative(".", into)})`;
  if (anchor && into.endsWith(".md") && !anchorsOf(into).has(anchor)) return `${from}: ${target} (no heading #${anchor} in ${into})`;
  return undefined;
}

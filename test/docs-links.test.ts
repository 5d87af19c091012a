// The documentation's links lead somewhere: every relative link in the README, docs/, bench/,
// server/'s folder READMEs and the runbooks names a file that exists, and every #anchor a
// heading of the page it points into (GitHub's heading ids).
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { root } from "./scratch.ts";

function markdownFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return markdownFiles(path);
    return name.endsWith(".md") ? [path] : [];
  });
}

const pages = ["README.md", ...markdownFiles("docs"), ...markdownFiles("bench"), ...markdownFiles("server"), ...markdownFiles("runbooks")];

/** The page's text without its fenced code blocks, where brackets are code, not links. */
const prose = (file: string) => readFileSync(join(root, file), "utf8").replace(/```[\s\S]*?```/g, "");

/** GitHub's id of a heading: lower case, punctuation dropped, spaces as hyphens. */
const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");

function anchorsOf(file: string): Set<string> {
  return new Set([...prose(file).matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1])));
}

function brokenLinks(file: string, text = prose(file)): string[] {
  const broken: string[] = [];
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/.test(target)) continue;
    const [path, anchor] = target.split("#");
    const into = path ? join(dirname(file), path) : file;
    if (path && !existsSync(join(root, into))) broken.push(`${file}: ${target} (no ${relative(".", into)})`);
    else if (anchor && into.endsWith(".md") && !anchorsOf(into).has(anchor)) broken.push(`${file}: ${target} (no heading #${anchor} in ${into})`);
  }
  return broken;
}

describe("documentation links", () => {
  it("every relative link and anchor resolves", () => {
    expect(pages.length).toBeGreaterThan(15);
    expect(pages.flatMap((page) => brokenLinks(page))).toEqual([]);
  });

  it("canary: a link to a missing file and to a missing heading are both named", () => {
    expect(slug("Resources (all under `/api/v1`, tenant-scoped)")).toBe("resources-all-under-apiv1-tenant-scoped");
    const text = "[ok](docs/api.md#roles-and-permissions) [gone](docs/gone.md) [moved](README.md#benchmarks) [web](https://example.org/x)";
    expect(brokenLinks("README.md", text)).toEqual([
      "README.md: docs/gone.md (no docs/gone.md)",
      "README.md: README.md#benchmarks (no heading #benchmarks in README.md)",
    ]);
  });
});

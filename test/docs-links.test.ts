// The documentation's links lead somewhere: every relative link in the README, CONTRIBUTING,
// SECURITY, the pull request template, deploy/monitoring/, docs/, bench/, server/'s folder READMEs
// and the runbooks names a file that exists, and every #anchor a heading of the page it points
// into (GitHub's heading ids).
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { brokenTarget, prose, slug } from "./markdown.ts";
import { root } from "./scratch.ts";

function markdownFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return markdownFiles(path);
    return name.endsWith(".md") ? [path] : [];
  });
}

const pages = [
  "README.md", "CONTRIBUTING.md", "SECURITY.md", ".github/pull_request_template.md", "deploy/monitoring/README.md",
  ...markdownFiles("docs"), ...markdownFiles("bench"), ...markdownFiles("server"), ...markdownFiles("runbooks"),
];

function brokenLinks(file: string, text = prose(file)): string[] {
  const broken: string[] = [];
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/.test(target)) continue;
    const problem = brokenTarget(file, target);
    if (problem) broken.push(problem);
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

  it("every item of the pull request template names the check that enforces it, and every file it names exists", () => {
    const template = readFileSync(join(root, ".github/pull_request_template.md"), "utf8");
    expect(unenforcedItems(template)).toEqual([]);
    const named = [...template.matchAll(/`((?:test|verify|policies|server|deploy|sql|runbooks|docs)\/[\w./-]+|\.ci\/run)`/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(15);
    expect(named.filter((path) => !existsSync(join(root, path)))).toEqual([]);
  });

  it("canary: an item naming no check is named", () => {
    expect(unenforcedItems("- [ ] Tests added.\n- [ ] Isolation: `test/sql-isolation.test.ts`.\n- [ ] Kind: checked in review.\n")).toEqual(["- [ ] Tests added."]);
  });
});

/** Checklist items that name neither a test, a verify script nor CI, and do not say a reviewer checks them. */
function unenforcedItems(template: string): string[] {
  return template.split("\n").filter((line) => /^- (\[ \]|Kind:)/.test(line))
    .filter((line) => !/`(test\/[\w./-]+|verify\/[\w./-]+|\.ci\/run)`/.test(line) && !/checked in review|the reviewer checks/i.test(line));
}

describe("the README", () => {
  // It is for someone who runs and uses the service (issue 30); depth belongs in docs/, bench/README.md and CONTRIBUTING.md.
  it("stays under 250 lines", () => {
    const lines = readFileSync(join(root, "README.md"), "utf8").split("\n").length;
    expect(lines, "README.md grew past 250 lines: move the detail to docs/, bench/README.md or CONTRIBUTING.md and link it").toBeLessThan(250);
  });
});

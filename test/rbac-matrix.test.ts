// runbooks/rbac-matrix.md is generated from policies/permissions.sql (read through the database)
// and the routes; this fails while the page and the SQL disagree.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../server/app.ts";
import { routeInventory } from "../server/http/routeInventory.ts";
import { rbacMatrixFile, readMatrix, renderMatrix as render, type Matrix } from "../server/ops/rbacMatrix.ts";
import { keys, useDatabase } from "./fixtures.ts";

const routes = routeInventory(createApp({ keys, bodyLimit: "1kb" }));
const renderMatrix = (m: Matrix) => render(m, routes);

const { owner } = useDatabase();
let matrix: Matrix;

beforeAll(async () => {
  matrix = await readMatrix(owner);
});

describe("runbooks/rbac-matrix.md", () => {
  it("is exactly what `npm run cli -- rbac matrix --write` generates from the SQL matrix", () => {
    const page = readFileSync(rbacMatrixFile, "utf8");
    expect(page, "runbooks/rbac-matrix.md is stale. FIX: npm run cli -- rbac matrix --write").toBe(renderMatrix(matrix));
  });

  it("changes when the matrix changes (one grant taken away)", () => {
    const fewer: Matrix = { ...matrix, granted: new Set([...matrix.granted].filter((g) => g !== "accountant invoices:pay")) };
    expect(renderMatrix(fewer)).not.toBe(renderMatrix(matrix));
    expect(renderMatrix(matrix)).toMatch(/\| `POST \/api\/v1\/invoices\/:id\/pay` \| `invoices:pay` \| – \| ✓ \| ✓ \| ✓ \| – \| ✓ \|/);
  });

  it("reading it leaves the database as it was (applied in a transaction that is rolled back)", async () => {
    const before = await owner`select count(*)::int as n from app.role_permissions`;
    await readMatrix(owner);
    expect(await owner`select count(*)::int as n from app.role_permissions`).toEqual(before);
  });
});

// The architecture of server/ as rules that `npm run lint` enforces (server/README.md explains the
// layers). A folder imports only from the folders below it in `layers`; the three files at the top
// of server/ (main.ts, cli.ts, app.ts) may import anything and nothing imports them; no cycle.
// Type-only imports count too: a type from a higher layer is still a dependency on it.
// test/architecture.test.ts shows that an upward import and a cycle each make this fail.

/** Lowest first. */
const layers = ["core", "auth", "db", "setup", "http", "routes", "ops"];

module.exports = {
  forbidden: [
    {
      name: "no-cycle",
      comment: "An import cycle: the modules cannot be read, tested or loaded one without the other. FIX: move what both need one layer down.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    ...layers.map((layer, i) => ({
      name: `layer-${layer}`,
      comment:
        `server/${layer}/ may import only ${i === 0 ? "nothing of server/" : `server/{${layers.slice(0, i).join(",")}}/`} and itself. ` +
        "FIX: move the shared part down to the lowest layer that needs it, or pass it in as a parameter.",
      severity: "error",
      from: { path: `^server/${layer}/` },
      to: { path: `^server/(?!(?:${layers.slice(0, i + 1).join("|")})/)` },
    })),
    {
      name: "no-import-of-entry-points",
      comment: "main.ts (npm start) and cli.ts (npm run cli) run when loaded: nothing imports them. FIX: move what is needed into a folder.",
      severity: "error",
      from: {},
      to: { path: "^server/(main|cli)\\.ts$" },
    },
    {
      name: "server-not-to-tests",
      comment: "The service never loads test or bench code. FIX: keep test helpers in test/.",
      severity: "error",
      from: { path: "^server/" },
      to: { path: "^(test|bench)/" },
    },
    {
      name: "server-not-to-dev-dependencies",
      comment: "npm ci --omit=dev installs no devDependencies: the service cannot load one. FIX: move the package to dependencies, or the code to test/.",
      severity: "error",
      from: { path: "^server/" },
      to: { dependencyTypes: ["npm-dev"], dependencyTypesNot: ["type-only"] },
    },
    {
      name: "no-test-only-modules",
      comment: "A module of server/ that neither npm start nor the CLI reaches serves only tests. FIX: move it to test/.",
      severity: "error",
      from: { path: "^server/(main|cli)\\.ts$" },
      to: { path: "^server/", pathNot: "^server/(main|cli)\\.ts$", reachable: false },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"], extensions: [".ts", ".js", ".json"] },
  },
};

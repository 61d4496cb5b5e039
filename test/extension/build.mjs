// Bundles what the extension tests load inside the extension host (CommonJS, vscode external):
//   dist/extension.cjs                      the extension (same options as esbuild.config.mjs)
//   dist/test/extension/suite/*.cjs         the mocha suite: index.cjs (run()) and one file per *.test.ts
//   dist/test/extension/bench/index.cjs     the benchmark module (bench/extensionBench.ts runs it)
// mocha stays external: the extension host requires it from the repository's node_modules.
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const common = { bundle: true, platform: "node", target: "node20", sourcemap: "inline", logLevel: "warning", format: "cjs", absWorkingDir: root };
const suiteDir = path.join(root, "test", "extension", "suite");
const suiteEntries = readdirSync(suiteDir)
  .filter((file) => file === "index.ts" || file.endsWith(".test.ts"))
  .map((file) => path.join("test", "extension", "suite", file));

await Promise.all([
  esbuild.build({ ...common, sourcemap: true, entryPoints: ["extension/src/extension.ts"], outfile: "dist/extension.cjs", external: ["vscode"] }),
  esbuild.build({ ...common, entryPoints: suiteEntries, outdir: "dist/test/extension/suite", outExtension: { ".js": ".cjs" }, external: ["vscode", "mocha"] }),
  esbuild.build({ ...common, entryPoints: ["test/extension/bench/index.ts"], outfile: "dist/test/extension/bench/index.cjs", external: ["vscode"] }),
]);

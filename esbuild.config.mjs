// Bundles the sidecar (ESM, node-llama-cpp stays external: it ships native binaries),
// the CLI, and the extension (CommonJS, as VS Code loads it; vscode stays external).
import { readFileSync } from "node:fs";
import * as esbuild from "esbuild";

const watch = process.argv.includes("--watch");
const common = { bundle: true, platform: "node", target: "node20", sourcemap: true, logLevel: "info" };
// Python the sidecar runs ships as linted .py files; the bundle carries their text.
const pythonSources = { __GPIOT_SYNTAX_CHECK_SERVER__: JSON.stringify(readFileSync("sidecar/src/pipeline/syntax_check_server.py", "utf8")) };
const esmBanner = { js: "import { createRequire as __gpiotCreateRequire } from 'node:module'; const require = __gpiotCreateRequire(import.meta.url);" };

const builds = [
  { ...common, entryPoints: ["sidecar/src/main.ts"], outfile: "dist/sidecar.mjs", format: "esm", external: ["node-llama-cpp"], banner: esmBanner, define: pythonSources },
  { ...common, entryPoints: ["sidecar/src/cli/gpiot.ts"], outfile: "dist/cli.mjs", format: "esm", external: ["node-llama-cpp"], banner: esmBanner, define: pythonSources },
];
if (process.argv.includes("--with-extension") || (await import("node:fs")).existsSync("extension/src/extension.ts")) {
  builds.push({ ...common, entryPoints: ["extension/src/extension.ts"], outfile: "dist/extension.cjs", format: "cjs", external: ["vscode"] });
}

if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}

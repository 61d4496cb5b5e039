// Bundles the sidecar (ESM, node-llama-cpp stays external: it ships native binaries),
// the CLI, and the extension (CommonJS, as VS Code loads it; vscode stays external), and puts the
// Python files the sidecar runs (sidecar/python/) next to the bundles, in dist/python/.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import * as esbuild from "esbuild";

const watch = process.argv.includes("--watch");
const common = { bundle: true, platform: "node", target: "node20", sourcemap: true, logLevel: "info" };
const esmBanner = { js: "import { createRequire as __gpiotCreateRequire } from 'node:module'; const require = __gpiotCreateRequire(import.meta.url);" };

const builds = [
  { ...common, entryPoints: ["sidecar/src/main.ts"], outfile: "dist/sidecar.mjs", format: "esm", external: ["node-llama-cpp"], banner: esmBanner },
  { ...common, entryPoints: ["sidecar/src/cli/gpiot.ts"], outfile: "dist/cli.mjs", format: "esm", external: ["node-llama-cpp"], banner: esmBanner },
];
if (process.argv.includes("--with-extension") || (await import("node:fs")).existsSync("extension/src/extension.ts")) {
  builds.push({ ...common, entryPoints: ["extension/src/extension.ts"], outfile: "dist/extension.cjs", format: "cjs", external: ["vscode"] });
}

rmSync("dist/python", { recursive: true, force: true });
mkdirSync("dist/python", { recursive: true });
for (const name of readdirSync("sidecar/python").filter((file) => file.endsWith(".py"))) copyFileSync(`sidecar/python/${name}`, `dist/python/${name}`);

if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}

/**
 * `npm run package`: builds platform-specific .vsix files of the GPIoT extension.
 *
 * The extension itself is one bundle (dist/extension.cjs), and so is the sidecar (dist/sidecar.mjs)
 * except for node-llama-cpp, which ships native binaries: it must be in the .vsix's node_modules
 * with the binaries of the user's platform. One .vsix per VS Code target carries exactly that
 * target's @node-llama-cpp/* packages; the Marketplace serves each user the .vsix of their platform.
 *
 * By default a .vsix carries the CPU binaries only (the "cpu" variant, ~12 MB for linux-x64): the
 * extension fetches a GPU runtime on first use when it finds a GPU (extension/src/gpuRuntime.ts).
 * Apple Silicon's only build is its Metal one, so darwin-arm64 runs on the GPU out of the box.
 * `--variant all` builds the old fat packages with every GPU build (355 MB for linux-x64, over
 * Open VSX's upload limit), `--variant no-cuda` CPU + Vulkan (38.5 MB), for offline installs.
 *
 * For each target: a staging folder out/vsix/<target>/ gets a package.json (the extension's
 * manifest with only node-llama-cpp as a dependency), package.nls.json, l10n/, the bundles with
 * dist/python/, media/, models/manifest.json (no model files), LICENSE, CHANGELOG.md and
 * docs/extension.md as README; `npm install --omit=dev --os --cpu` fills its node_modules for that
 * platform; `vsce package --target` zips it (.vscodeignore drops what only a source build of
 * llama.cpp would need).
 *
 *   tsx extension/scripts/package.ts                      the host platform (e.g. linux-x64), CPU binaries
 *   tsx extension/scripts/package.ts --target all         every target below
 *   tsx extension/scripts/package.ts --target darwin-arm64 --target win32-x64
 *   tsx extension/scripts/package.ts --variant no-cuda    CPU and Vulkan/Metal binaries, no CUDA builds
 *   tsx extension/scripts/package.ts --variant all        every GPU build of the target
 *   --out DIR   where the .vsix files go (default out/vsix)
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** VS Code target → npm platform, and the @node-llama-cpp binaries packages it needs (CPU first). */
export const TARGETS: Record<string, { os: string; cpu: string; binaries: string[] }> = {
  "linux-x64": { os: "linux", cpu: "x64", binaries: ["linux-x64", "linux-x64-vulkan", "linux-x64-cuda", "linux-x64-cuda-ext"] },
  "linux-arm64": { os: "linux", cpu: "arm64", binaries: ["linux-arm64"] },
  "linux-armhf": { os: "linux", cpu: "arm", binaries: ["linux-armv7l"] },
  "darwin-arm64": { os: "darwin", cpu: "arm64", binaries: ["mac-arm64-metal"] },
  "darwin-x64": { os: "darwin", cpu: "x64", binaries: ["mac-x64"] },
  "win32-x64": { os: "win32", cpu: "x64", binaries: ["win-x64", "win-x64-vulkan", "win-x64-cuda", "win-x64-cuda-ext"] },
  "win32-arm64": { os: "win32", cpu: "arm64", binaries: ["win-arm64"] },
};

export function hostTarget(): string {
  const platform = process.platform;
  const arch = process.arch === "arm" ? "armhf" : process.arch;
  const target = `${platform}-${arch}`;
  if (!TARGETS[target]) throw new Error(`No .vsix target for this machine (${target}); pass --target.`);
  return target;
}

const MANIFEST_KEYS = ["name", "displayName", "description", "version", "publisher", "license", "engines", "categories", "keywords", "icon", "activationEvents", "capabilities", "contributes", "main", "repository", "homepage", "bugs", "extensionKind", "l10n"];

export type Variant = "all" | "no-cuda" | "cpu";

/** The @node-llama-cpp packages a variant of a target ships. */
export function binariesFor(target: string, variant: Variant): string[] {
  const all = TARGETS[target].binaries;
  return variant === "all" ? all : variant === "cpu" ? all.slice(0, 1) : all.filter((name) => !name.includes("cuda"));
}

function stageManifest(target: string, variant: Variant): Record<string, unknown> {
  const root = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8"));
  const manifest: Record<string, unknown> = {};
  for (const key of MANIFEST_KEYS) if (root[key] !== undefined) manifest[key] = root[key];
  manifest.engines = { vscode: root.engines.vscode };
  const version = root.dependencies?.["node-llama-cpp"];
  if (!version) throw new Error("package.json has no node-llama-cpp dependency");
  manifest.dependencies = { "node-llama-cpp": version };
  // "all": npm's --os/--cpu pick this target's binaries from node-llama-cpp's optionalDependencies.
  // Other variants: optional dependencies are omitted and the chosen binaries become direct dependencies.
  if (variant !== "all") for (const name of binariesFor(target, variant)) (manifest.dependencies as Record<string, string>)[`@node-llama-cpp/${name}`] = version;
  return manifest;
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): void {
  execFileSync(command, args, { cwd, stdio: "inherit", env: { ...process.env, ...env } });
}

function size(file: string): string {
  return `${(statSync(file).size / 1024 / 1024).toFixed(1)} MB`;
}

export interface PackageOptions {
  targets: string[];
  outDir: string;
  variant: Variant;
}

export function packageExtension(options: PackageOptions): string[] {
  for (const file of ["dist/extension.cjs", "dist/sidecar.mjs", "dist/python/sandbox_supervisor.py", "media/icon.png", "media/gpiot.svg", "models/manifest.json", "docs/extension.md", "package.nls.json", "l10n/bundle.l10n.json", "LICENSE", "CHANGELOG.md"]) {
    if (!existsSync(path.join(ROOT, file))) throw new Error(`${file} is missing (run npm run build first)`);
  }
  mkdirSync(options.outDir, { recursive: true });
  const root = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8"));
  const produced: string[] = [];
  for (const target of options.targets) {
    const platform = TARGETS[target];
    if (!platform) throw new Error(`Unknown target ${target}; known: ${Object.keys(TARGETS).join(", ")}`);
    const started = Date.now();
    const stage = path.join(ROOT, "out", "vsix", target);
    rmSync(stage, { recursive: true, force: true });
    mkdirSync(path.join(stage, "dist"), { recursive: true });
    mkdirSync(path.join(stage, "models"), { recursive: true });
    copyFileSync(path.join(ROOT, "dist", "extension.cjs"), path.join(stage, "dist", "extension.cjs"));
    copyFileSync(path.join(ROOT, "dist", "sidecar.mjs"), path.join(stage, "dist", "sidecar.mjs"));
    // The Python files the sidecar runs (the sandbox, the checks, main.py's template).
    cpSync(path.join(ROOT, "dist", "python"), path.join(stage, "dist", "python"), { recursive: true });
    cpSync(path.join(ROOT, "media"), path.join(stage, "media"), { recursive: true });
    copyFileSync(path.join(ROOT, "models", "manifest.json"), path.join(stage, "models", "manifest.json"));
    copyFileSync(path.join(ROOT, "docs", "extension.md"), path.join(stage, "README.md"));
    for (const file of ["package.nls.json", "LICENSE", "CHANGELOG.md"]) copyFileSync(path.join(ROOT, file), path.join(stage, file));
    cpSync(path.join(ROOT, "l10n"), path.join(stage, "l10n"), { recursive: true });
    copyFileSync(path.join(ROOT, ".vscodeignore"), path.join(stage, ".vscodeignore"));
    const manifest = stageManifest(target, options.variant);
    writeFileSync(path.join(stage, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);

    // node-llama-cpp and its production dependencies, with this platform's binaries.
    const npmArgs = ["install", "--omit=dev", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline", "--no-package-lock", `--os=${platform.os}`, `--cpu=${platform.cpu}`];
    if (options.variant !== "all") npmArgs.push("--omit=optional");
    console.log(`[package] ${target}: npm ${npmArgs.join(" ")}`);
    run("npm", npmArgs, stage, { npm_config_update_notifier: "false" });
    const binaries = binariesFor(target, options.variant);
    const missing = binaries.filter((name) => !existsSync(path.join(stage, "node_modules", "@node-llama-cpp", name, "package.json")));
    if (missing.length) throw new Error(`${target}: the binaries ${missing.join(", ")} were not installed`);

    const vsix = path.join(options.outDir, `${root.name}-${root.version}-${target}${options.variant === "cpu" ? "" : `-${options.variant}`}.vsix`);
    rmSync(vsix, { force: true });
    run(process.execPath, [path.join(ROOT, "node_modules", "@vscode", "vsce", "vsce"), "package", "--target", target, "--out", vsix, "--no-rewrite-relative-links"], stage);
    console.log(`[package] ${target}: ${path.relative(ROOT, vsix)} (${size(vsix)}, binaries: ${binaries.join(", ")}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    produced.push(vsix);
  }
  return produced;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(fileURLToPath(import.meta.url))) {
  const { values } = parseArgs({ options: { target: { type: "string", multiple: true }, out: { type: "string" }, variant: { type: "string" }, "cpu-only": { type: "boolean" }, "no-cuda": { type: "boolean" } } });
  const requested = values.target ?? [hostTarget()];
  const targets = requested.includes("all") ? Object.keys(TARGETS) : requested;
  const variant = (values.variant ?? (values["no-cuda"] ? "no-cuda" : "cpu")) as Variant;
  if (!["all", "no-cuda", "cpu"].includes(variant)) throw new Error(`--variant is all, no-cuda or cpu, not ${variant}`);
  const produced = packageExtension({ targets, outDir: path.resolve(values.out ?? path.join(ROOT, "out", "vsix")), variant });
  console.log(produced.map((file) => `  ${path.relative(ROOT, file)}`).join(os.EOL));
}

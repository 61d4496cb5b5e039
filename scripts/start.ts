/**
 * `npm start -- "<requirement>" [gpiot synthesize options]`: the main job in one command. Builds
 * the engine and the CLI when the sources are newer than the build, writes the tiny test models
 * when they are missing, synthesizes the program with the built-in default (the manifest's default
 * profile when its model is downloaded, else the tiny random-weight test model, which says so),
 * writes it to a new folder under ./gpiot-programs/ (or --out DIR) and says where it went.
 * Options after the requirement go to `gpiot synthesize` as they are (--profile, --model,
 * --constraints, --threads, --verify, ...). Exit code: gpiot synthesize's.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freshProgramFolder, programFolderName } from "../extension/src/outputFolders";
import { writeTinyTestModels } from "../sidecar/src/gguf/tinyTestModels";
import { defaultManifestPath, loadManifest, resolveProfile } from "../sidecar/src/models/manifest";
import { roleNames } from "../sidecar/src/schemas";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const USAGE = `Usage: npm start -- "<requirement>" [gpiot synthesize options]

  npm start -- "Detect heartbeats in a single-lead ECG and report the heart rate"
  npm start -- "Count steps from a wrist accelerometer signal" --constraints "ESP32, <= 256 KB RAM"

Builds when needed, writes the tiny test models when missing, runs the synthesis on the default
model profile when it is downloaded (npx gpiot models pull) and on the tiny test model otherwise,
and prints where the program went (./gpiot-programs/<name>/ unless --out DIR).
`;

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

function buildIfNeeded(): void {
  const outputs = ["dist/cli.mjs", "dist/sidecar.mjs"].map((file) => path.join(ROOT, file));
  const built = outputs.every((file) => existsSync(file)) ? Math.min(...outputs.map((file) => statSync(file).mtimeMs)) : 0;
  if (built > newestMtime(path.join(ROOT, "sidecar", "src"))) return;
  console.error(built ? "[start] the sources changed since the last build: building…" : "[start] building the engine and the CLI…");
  execFileSync(process.execPath, [path.join(ROOT, "esbuild.config.mjs")], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
}

async function tinyModelsIfMissing(): Promise<void> {
  const dir = path.join(ROOT, "models", "tiny");
  if (["tiny-base.gguf", "tiny-td.lora.gguf", "tiny-rt.lora.gguf", "tiny-cg.lora.gguf"].every((file) => existsSync(path.join(dir, file)))) return;
  console.error("[start] writing the tiny test models into models/tiny/…");
  await writeTinyTestModels(dir);
}

/** The manifest's default profile when all its files are on disk, else undefined. */
function downloadedDefaultProfile(): string | undefined {
  try {
    const manifestPath = defaultManifestPath();
    const manifest = loadManifest(manifestPath);
    const resolved = resolveProfile(manifest, manifestPath, manifest.defaultProfile, {});
    const files = roleNames.flatMap((role) => [resolved.roles[role].modelPath, ...resolved.roles[role].adapters.map((adapter) => adapter.path)]);
    return files.every((file) => existsSync(file)) ? manifest.defaultProfile : undefined;
  } catch {
    return undefined;
  }
}

const args = process.argv.slice(2);
if (!args.length || args[0] === "--help" || args[0] === "-h" || args[0].startsWith("-")) {
  process.stdout.write(USAGE);
  process.exit(args.length && (args[0] === "--help" || args[0] === "-h") ? 0 : 2);
}
const [requirement, ...options] = args;
buildIfNeeded();
await tinyModelsIfMissing();

const has = (...names: string[]) => options.some((option) => names.includes(option) || names.some((name) => option.startsWith(`${name}=`)));
const extra: string[] = [];
if (!has("--model", "-m", "--profile", "-p")) {
  const profile = downloadedDefaultProfile();
  if (profile) {
    console.error(`[start] model: profile "${profile}"`);
    extra.push("--profile", profile);
  } else {
    console.error("[start] model: the tiny random-weight test model (no real model is downloaded: `npx gpiot models pull` gets one).");
    console.error("[start] The pipeline, grammars and files are real; the text and code the tiny model writes are noise.");
    extra.push("--profile", "tiny");
    if (!has("--threads")) extra.push("--threads", "1");
  }
}
let outDir: string;
const outAt = options.findIndex((option) => option === "--out" || option === "-o");
if (outAt >= 0 && options[outAt + 1]) outDir = path.resolve(options[outAt + 1]);
else {
  // npm runs scripts in the package folder; INIT_CWD is where `npm start` was typed.
  outDir = await freshProgramFolder(path.resolve(process.env.INIT_CWD ?? process.cwd(), "gpiot-programs"), programFolderName(requirement));
  extra.push("--out", outDir);
}

const child = spawn(process.execPath, [path.join(ROOT, "bin", "gpiot.mjs"), "synthesize", requirement, ...options, ...extra], { stdio: ["inherit", has("--json") ? "inherit" : "ignore", "inherit"] });
const code: number = await new Promise((resolve) => child.on("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 130 : 1))));
if (code === 0 || code === 6) {
  const relative = path.relative(process.env.INIT_CWD ?? process.cwd(), outDir) || ".";
  console.log(`The program is in ${relative}${path.sep}`);
  console.log(`  ${readdirSync(outDir).sort().join("  ")}`);
  console.log(`Try it: python3 ${path.join(relative, "main.py")} --help`);
}
process.exit(code);

import path from "node:path";
import {fileURLToPath} from "node:url";
import {writeTinyTestModels} from "../sidecar/src/gguf/tinyTestModels";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const targetDir = path.resolve(repoRoot, process.argv[2] ?? path.join("models", "tiny"));

const startedAt = performance.now();
const paths = await writeTinyTestModels(targetDir);
const elapsedMs = performance.now() - startedAt;

console.log(`Tiny test models written and verified in ${elapsedMs.toFixed(0)} ms:`);
console.log(`  base:               ${paths.base}`);
console.log(`  adapter td:         ${paths.adapters.td}`);
console.log(`  adapter rt:         ${paths.adapters.rt}`);
console.log(`  adapter cg:         ${paths.adapters.cg}`);
console.log(`  mismatched adapter: ${paths.mismatchedAdapter}`);
console.log(`  embedding model:    ${paths.embedding}`);

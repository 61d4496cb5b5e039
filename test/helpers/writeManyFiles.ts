/**
 * A write to interrupt: writes a program of many files into the folder given as the first
 * argument with writeProgram, slowly enough that a test can stop or kill it half-way.
 */
import { writeProgram } from "../../sidecar/src/pipeline/writeProgram";

const [outDir, count = "3000"] = process.argv.slice(2);
const files = Array.from({ length: Number(count) }, (_, index) => ({ path: `module_${index}.py`, content: "value = 1\n".repeat(1500), kind: "module" as const }));
await writeProgram(outDir, files);

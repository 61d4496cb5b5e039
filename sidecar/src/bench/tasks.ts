/**
 * IoT Bench tasks are data: `iotbench/tasks/<id>.json` (requirement text with the input/output
 * contract the program must follow, optional resource constraints, scoring, synthetic data
 * sizes) and `iotbench/solutions/<id>/<name>/solution.json` (hand-written reference and
 * deliberately broken programs that prove the harness).
 */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

export const BenchTaskSchema = z.object({
  id: z.string().regex(/^[a-z0-9-]+$/),
  title: z.string(),
  kind: z.enum(["ecg-beats", "har-imu", "multimodal"]),
  requirement: z.string().min(1),
  constraints: z.string().optional(),
  contract: z.object({ inputs: z.record(z.string(), z.string()), outputs: z.record(z.string(), z.string()) }),
  scoring: z.object({ metric: z.string(), toleranceMs: z.number().positive().optional(), pass: z.record(z.string(), z.number()) }),
  synthetic: z.record(z.string(), z.number()),
  realData: z.string(),
  timeoutMs: z.number().int().positive(),
  memoryMB: z.number().int().positive(),
});
export type BenchTask = z.infer<typeof BenchTaskSchema>;

const ParameterSchema = z.object({ name: z.string(), type: z.string(), description: z.string() });
export const SolutionSchema = z.object({
  name: z.string(),
  kind: z.enum(["reference", "broken"]),
  description: z.string(),
  parts: z
    .array(
      z.object({
        name: z.string(),
        /** Relative to the solution's folder; may point into a sibling solution (../reference/x.py). */
        file: z.string(),
        inputs: z.array(ParameterSchema),
        outputs: z.array(ParameterSchema).min(1),
        requirements: z.array(z.string()).default([]),
      }),
    )
    .min(1),
});
export type Solution = z.infer<typeof SolutionSchema> & { dir: string };

/** The iotbench/ folder next to the GPIoT installation (source tree or bundle). */
export function defaultBenchRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, "iotbench");
    if (existsSync(path.join(candidate, "tasks"))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error("Cannot find the iotbench/ folder next to the GPIoT installation.");
}

export async function loadTasks(root: string, ids?: string[]): Promise<BenchTask[]> {
  const dir = path.join(root, "tasks");
  const tasks: BenchTask[] = [];
  for (const file of (await readdir(dir)).filter((name) => name.endsWith(".json")).sort()) {
    const parsed = BenchTaskSchema.safeParse(JSON.parse(await readFile(path.join(dir, file), "utf8")));
    if (!parsed.success) throw new Error(`${path.join(dir, file)}: ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}`);
    tasks.push(parsed.data);
  }
  if (!ids?.length) return tasks;
  const unknown = ids.filter((id) => !tasks.some((task) => task.id === id));
  if (unknown.length) throw new Error(`unknown task${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}; known: ${tasks.map((task) => task.id).join(", ")}`);
  return ids.map((id) => tasks.find((task) => task.id === id)!);
}

export async function loadSolutions(root: string, taskId: string): Promise<Solution[]> {
  const dir = path.join(root, "solutions", taskId);
  if (!existsSync(dir)) return [];
  const solutions: Solution[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const file = path.join(dir, name, "solution.json");
    if (!existsSync(file)) continue;
    const parsed = SolutionSchema.safeParse(JSON.parse(await readFile(file, "utf8")));
    if (!parsed.success) throw new Error(`${file}: ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}`);
    solutions.push({ ...parsed.data, dir: path.join(dir, name) });
  }
  // The reference first, then the broken ones.
  return solutions.sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name) : a.kind === "reference" ? -1 : 1));
}

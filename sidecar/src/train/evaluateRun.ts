/**
 * Held-out evaluation of a run: the trainer generates greedy answers for held-out records without
 * any grammar (eval/generations.json); here they are read with the pipeline's own parsers and zod
 * schemas, so "format-correct" means exactly "the stage would have accepted it":
 *
 * - format-correctness rate (FCR): share of answers that parse into the role's schema;
 * - TD BLEU: corpus BLEU-4 of the TD answers against the records' answers;
 * - CG compile rate: share of CG answers whose code parses and compiles (Python's compile(), nothing runs).
 *
 * "exported" answers come from the model as exported (no cross-path projections), "with_cross" from
 * the PECT model as trained: the difference is what dropping the projections costs.
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { checkPythonSyntax } from "../pipeline/pythonSyntax";
import { parsePaperCode, parsePaperDecomposition } from "../pipeline/promptFormats/paperFormat";
import { parseStageOutput } from "../pipeline/structuredGeneration";
import { CodeArtifactSchema, DecompositionSchema, IoSpecSchema, UserTargetSchema, type CodeArtifact } from "../schemas";
import { corpusBleu } from "./bleu";

const GenerationsSchema = z.object({
  split: z.string(),
  generations: z.array(
    z.object({ id: z.string(), role: z.enum(["td", "rt", "cg"]), format: z.enum(["json", "paper"]), variant: z.string(), reference: z.string(), text: z.string() }),
  ),
});

export interface RoleEvaluation {
  samples: number;
  formatCorrect: number;
  formatRate: number;
  bleu?: number;
  compiles?: number;
  compileRate?: number;
}

export interface RunEvaluation {
  split: string;
  variants: Record<string, Partial<Record<"td" | "rt" | "cg", RoleEvaluation>>>;
}

/** The role's parsed answer, or undefined when it is not in the role's format. */
export function parseAnswer(role: "td" | "rt" | "cg", format: "json" | "paper", text: string): unknown {
  try {
    if (format === "paper") {
      if (role === "td") return parsePaperDecomposition(text);
      if (role === "cg") return parsePaperCode(text);
    }
    const json = text.trim();
    if (role === "td") return parseStageOutput("TD", DecompositionSchema, json, "eogToken");
    if (role === "cg") return parseStageOutput("CG", CodeArtifactSchema, json, "eogToken");
    try {
      return parseStageOutput("RT", UserTargetSchema, json, "eogToken");
    } catch {
      return parseStageOutput("RT", IoSpecSchema, json, "eogToken");
    }
  } catch {
    return undefined;
  }
}

export async function evaluateGenerations(file: string, python = "python3"): Promise<RunEvaluation> {
  const data = GenerationsSchema.parse(JSON.parse(await readFile(file, "utf8")));
  const variants: RunEvaluation["variants"] = {};
  const groups = new Map<string, typeof data.generations>();
  for (const generation of data.generations) {
    const key = `${generation.variant}\u0000${generation.role}`;
    groups.set(key, [...(groups.get(key) ?? []), generation]);
  }
  for (const [key, items] of groups) {
    const [variant, role] = key.split("\u0000") as [string, "td" | "rt" | "cg"];
    const parsed = items.map((item) => parseAnswer(role, item.format, item.text));
    const formatCorrect = parsed.filter((value) => value !== undefined).length;
    const evaluation: RoleEvaluation = { samples: items.length, formatCorrect, formatRate: items.length ? formatCorrect / items.length : 0 };
    if (role === "td") evaluation.bleu = corpusBleu(items.map((item) => item.text.trim()), items.map((item) => item.reference));
    if (role === "cg") {
      let compiles = 0;
      for (const value of parsed) if (value && (await checkPythonSyntax((value as CodeArtifact).code, "module.py", python)).ok) compiles++;
      evaluation.compiles = compiles;
      evaluation.compileRate = items.length ? compiles / items.length : 0;
    }
    (variants[variant] ??= {})[role] = evaluation;
  }
  return { split: data.split, variants };
}

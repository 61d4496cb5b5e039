/**
 * A scripted teacher for `gpiot data tdd` content tests: it answers each teacher prompt from what
 * the prompt says (the labels it offers, the module it names), so tests can check what ends up in
 * the records. Real-model paths are tested with the tiny GGUF model.
 */
import type { GenerationRequest, GenerationResult } from "../../sidecar/src/pipeline/structuredGeneration";
import type { Teacher } from "../../sidecar/src/data/teacher";

export interface ScriptedTeacherOptions {
  /** Section heading -> the module the teacher reports for it (headings not listed get none). */
  modules: Record<string, string>;
  contextTokens?: number;
  /** Called before each answer; throw to simulate a crash. */
  beforeAnswer?(request: GenerationRequest, index: number): void;
  /** Replace an answer (e.g. with invalid JSON). */
  override?(request: GenerationRequest): { text: string; stopReason?: GenerationResult["stopReason"] } | undefined;
}

export class ScriptedTeacher implements Teacher {
  readonly description = "scripted";
  readonly requests: GenerationRequest[] = [];

  constructor(private readonly options: ScriptedTeacherOptions) {}

  contextTokens(): number {
    return this.options.contextTokens ?? 8192;
  }

  countTokens(_role: unknown, text: string): number {
    return Math.ceil(text.length / 4);
  }

  async dispose(): Promise<void> {}

  async generate(request: GenerationRequest): Promise<GenerationResult> {
    this.options.beforeAnswer?.(request, this.requests.length);
    this.requests.push(request);
    const override = this.options.override?.(request);
    const text = override?.text ?? JSON.stringify(this.answer(request));
    return { text, stopReason: override?.stopReason ?? "eogToken", tokenCount: Math.ceil(text.length / 4), firstTokenMs: 1, totalMs: 2 };
  }

  private answer(request: GenerationRequest): unknown {
    const prompt = request.userPrompt;
    if (prompt.includes("List the modules of the system")) {
      const modules = [];
      for (const match of prompt.matchAll(/^\[(S\d+)\] (.*?)(?: \(page \d+\))?$/gm)) {
        const name = this.options.modules[match[2]];
        if (name) modules.push({ name, description: `${name}: what the section "${match[2]}" describes`, source: match[1] });
      }
      return { modules };
    }
    if (prompt.includes("Write the problem statement")) {
      const module = /^Module \d+: (.*?)\. /m.exec(prompt)?.[1] ?? "module";
      return {
        problem: `Build the ${module} stage of an IoT sensing program from the sensor stream`,
        subTasks: [
          { name: `Load data for ${module}`, problem: "Read the recorded sensor stream", steps: ["Open the recording", "Resample it to a uniform rate"] },
          { name: `Run ${module}`, problem: `Apply the ${module} algorithm`, steps: ["Filter the signal", `Compute the ${module} output`] },
        ],
      };
    }
    if (prompt.startsWith("An IoT programming problem and its decomposition")) {
      const value = /(?:modality|representation): (.*?)\. |within "(.*?)"/.exec(prompt);
      const target = value?.[1] ?? value?.[2] ?? "another setting";
      const original = /^Problem: (.*)$/m.exec(prompt)?.[1] ?? "";
      return {
        problem: `${original}, rewritten for ${target}`,
        subTasks: [
          { name: "Load data", problem: `Read the ${target} data`, steps: [`Open the ${target} stream`] },
          { name: "Process", problem: `Process the ${target} data`, steps: [`Adapt the algorithm to ${target}`] },
        ],
      };
    }
    if (prompt.includes('starts with "Write some code and documentation to"')) {
      const name = /^Sub-task: (.*)$/m.exec(prompt)?.[1] ?? "sub-task";
      return { target: `Write some code and documentation to ${name.toLowerCase()}` };
    }
    if (prompt.includes("List the input parameters and output values")) {
      const name = (/^Sub-task: (.*)$/m.exec(prompt)?.[1] ?? "value").toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "");
      return { inputs: [{ name: "signal", type: "np.ndarray", description: "the samples" }], outputs: [{ name: `${name}_out`, type: "np.ndarray", description: "the result" }] };
    }
    throw new Error(`scripted teacher: unexpected prompt ${prompt.slice(0, 120)}`);
  }
}

/** A scripted stand-in for the models, for unit tests of prompt building and parsing only. */
import type { GenerationRequest, GenerationResult, RoleModels, StopReason } from "../../sidecar/src/pipeline/structuredGeneration";

export interface ScriptedAnswer {
  text: string;
  stopReason?: StopReason;
}

export class FakeRoleModels implements RoleModels {
  readonly requests: GenerationRequest[] = [];

  constructor(private readonly answers: (request: GenerationRequest) => ScriptedAnswer) {}

  async generate(request: GenerationRequest): Promise<GenerationResult> {
    this.requests.push(request);
    const answer = this.answers(request);
    // Stream in small uneven pieces, as tokens arrive.
    for (let i = 0; i < answer.text.length; ) {
      const size = 1 + (i % 5);
      request.onTextChunk?.(answer.text.slice(i, i + size));
      i += size;
    }
    return { text: answer.text, stopReason: answer.stopReason ?? "eogToken", tokenCount: Math.ceil(answer.text.length / 3), firstTokenMs: 1, totalMs: 2 };
  }
}

export const sampleSubTasks = [
  { name: "Load ECG", problem: "Read a WFDB record", steps: ["Read the signal with wfdb", "Normalise it"] },
  { name: "Detect R peaks", problem: "Find QRS complexes", steps: ["Band-pass 5-15 Hz", "Pan-Tompkins thresholds"] },
  { name: "Report heart rate", problem: "Average RR intervals", steps: ["Compute RR", "Print bpm"] },
];

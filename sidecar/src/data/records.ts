/**
 * Training records: what `gpiot data` writes and `gpiot train` reads, one JSON object per line.
 *
 * Every record holds the exact messages a role's model sees at inference time: the stage's own
 * system prompt, the user prompt built by the stage's own prompt builder, and the answer the
 * stage's zod schema validates. Records of the published GPIoT datasets keep the authors'
 * Llama-2 chat text instead (`format: "paper"`). The last message is the assistant's answer and
 * the only one that carries training loss.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { buildCodePrompt, CG_SYSTEM_PROMPT } from "../pipeline/codeGeneration";
import { buildIoPrompt, buildTargetPrompt, RT_SYSTEM_PROMPT, type TransformationInput } from "../pipeline/requirementTransformation";
import { buildDecompositionPrompt, TD_SYSTEM_PROMPT } from "../pipeline/taskDecomposition";
import { CodeArtifactSchema, DecompositionSchema, IoSpecSchema, UserTargetSchema, type CodeArtifact, type ResourceLimits, type SubTask, type TaskSpec } from "../schemas";

export const MessageSchema = z.object({
  role: z.enum(["system", "user", "assistant"]),
  content: z.string(),
});
export type Message = z.infer<typeof MessageSchema>;

export const RecordSourceSchema = z.object({
  kind: z.enum(["paper", "package", "published", "synthetic"]),
  /** Paper or dataset file, relative to the folder it was read from. */
  file: z.string().optional(),
  page: z.number().int().positive().optional(),
  section: z.string().optional(),
  package: z.string().optional(),
  /** Fully qualified name of the documented function, e.g. scipy.signal.find_peaks. */
  function: z.string().optional(),
  /** Which CGD set the record belongs to: D1 describe, D2 code for a target, D3 spec -> code. */
  kind_detail: z.enum(["D1", "D2", "D3"]).optional(),
});
export type RecordSource = z.infer<typeof RecordSourceSchema>;

export const augmentationAxes = ["modality", "representation", "resources"] as const;
export const AugmentationSchema = z.object({ axis: z.enum(augmentationAxes), value: z.string().min(1) }).nullable();
export type Augmentation = z.infer<typeof AugmentationSchema>;

export const SplitSchema = z.enum(["train", "validation", "test"]);
export type Split = z.infer<typeof SplitSchema>;

/** The stage answer an assistant message must be, per role, in the project's JSON prompt format. */
const jsonAnswerSchemas = {
  td: [DecompositionSchema],
  rt: [UserTargetSchema, IoSpecSchema],
  cg: [CodeArtifactSchema],
} as const;

function recordSchemaFor<R extends "td" | "rt" | "cg">(role: R) {
  return z
    .object({
      id: z.string().regex(/^[0-9a-f]{64}$/),
      role: z.literal(role),
      messages: z.array(MessageSchema).min(2),
      format: z.enum(["json", "paper"]),
      source: RecordSourceSchema,
      augmentation: AugmentationSchema,
      split: SplitSchema,
    })
    .superRefine((record, context) => {
      const last = record.messages[record.messages.length - 1];
      if (last.role !== "assistant") {
        context.addIssue({ code: "custom", path: ["messages"], message: "the last message must be the assistant's answer" });
        return;
      }
      if (!record.messages.some((message) => message.role === "user")) context.addIssue({ code: "custom", path: ["messages"], message: "a record needs a user message" });
      if (record.messages.some((message) => message.role === "system") && record.messages[0].role !== "system")
        context.addIssue({ code: "custom", path: ["messages"], message: "the system message, when there is one, comes first" });
      if (record.id !== recordId(record.role, record.messages)) context.addIssue({ code: "custom", path: ["id"], message: "the id is not the content hash of role and messages" });
      if (!last.content.trim()) {
        context.addIssue({ code: "custom", path: ["messages"], message: "the assistant's answer is empty" });
        return;
      }
      if (record.format !== "json") return;
      let answer: unknown;
      try {
        answer = JSON.parse(last.content);
      } catch {
        context.addIssue({ code: "custom", path: ["messages"], message: `a ${role.toUpperCase()} answer in the json format must be JSON` });
        return;
      }
      if (!jsonAnswerSchemas[role].some((schema) => schema.safeParse(answer).success))
        context.addIssue({ code: "custom", path: ["messages"], message: `the answer is not a valid ${role.toUpperCase()} stage output` });
    });
}

/** TD: requirement (+ resource limits) -> sub-tasks. */
export const TdRecordSchema = recordSchemaFor("td");
/** RT: sub-task -> user target, then sub-task + target -> input/output specification. */
export const RtRecordSchema = recordSchemaFor("rt");
/** CG: task specification -> Python module + Markdown documentation. */
export const CgRecordSchema = recordSchemaFor("cg");

export const TrainingRecordSchema = z.discriminatedUnion("role", [TdRecordSchema, RtRecordSchema, CgRecordSchema]);
export type TrainingRecord = z.infer<typeof TrainingRecordSchema>;
export type RecordRole = TrainingRecord["role"];

/** Stable id: SHA-256 (hex) of the role and the messages, so the same content always gets the same id. */
export function recordId(role: string, messages: Message[]): string {
  return createHash("sha256").update(JSON.stringify([role, messages.map((message) => [message.role, message.content])])).digest("hex");
}

/** A record before quality filtering has given it a split. */
export type DraftRecord = Omit<TrainingRecord, "split">;

function draft(role: RecordRole, system: string, user: string, answer: string, source: RecordSource, augmentation: Augmentation, format: "json" | "paper" = "json"): DraftRecord {
  const messages: Message[] = [
    { role: "system", content: system },
    { role: "user", content: user },
    { role: "assistant", content: answer },
  ];
  return { id: recordId(role, messages), role, messages, format, source, augmentation } as DraftRecord;
}

/** A TD record in the prompt form of the TD stage. */
export function tdRecord(input: { requirement: string; limits: ResourceLimits | null; subTasks: SubTask[] }, source: RecordSource, augmentation: Augmentation = null): DraftRecord {
  return draft("td", TD_SYSTEM_PROMPT, buildDecompositionPrompt({ requirement: input.requirement, limits: input.limits }), JSON.stringify({ subTasks: input.subTasks }), source, augmentation);
}

/** The two RT records of one sub-task, as the RT stage's chain of two prompts asks them. */
export function rtRecords(input: TransformationInput, spec: TaskSpec, source: RecordSource, augmentation: Augmentation = null): DraftRecord[] {
  return [
    draft("rt", RT_SYSTEM_PROMPT, buildTargetPrompt(input), JSON.stringify({ target: spec.target }), source, augmentation),
    draft("rt", RT_SYSTEM_PROMPT, buildIoPrompt(input, spec.target), JSON.stringify({ inputs: spec.inputs, outputs: spec.outputs }), source, augmentation),
  ];
}

/** A CG record in the prompt form of the CG stage (a first sub-task: no specs before it). */
export function cgRecord(input: { requirement: string; limits: ResourceLimits | null; spec: TaskSpec }, artifact: CodeArtifact, source: RecordSource, augmentation: Augmentation = null): DraftRecord {
  const answer: CodeArtifact = { code: artifact.code, documentation: artifact.documentation, requirements: artifact.requirements };
  return draft("cg", CG_SYSTEM_PROMPT, buildCodePrompt({ requirement: input.requirement, limits: input.limits, spec: input.spec, previousSpecs: [] }), JSON.stringify(answer), source, augmentation);
}

/** A record that keeps the published datasets' messages as they are. */
export function paperFormatRecord(role: RecordRole, messages: Message[], source: RecordSource): DraftRecord {
  return { id: recordId(role, messages), role, messages, format: "paper", source, augmentation: null } as DraftRecord;
}

/** The answer (last message) and the prompt (user messages) of a record. */
export function answerOf(record: Pick<TrainingRecord, "messages">): string {
  return record.messages[record.messages.length - 1].content;
}

export function promptOf(record: Pick<TrainingRecord, "messages">): string {
  return record.messages
    .slice(0, -1)
    .filter((message) => message.role === "user")
    .map((message) => message.content)
    .join("\n");
}

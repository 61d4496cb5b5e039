/**
 * The JSON lines the Python trainer (training/gpiot_training, events.py) prints on stdout, one zod
 * schema per event. Unknown fields pass through; an unknown event is kept as such.
 */
import { z } from "zod";

/** Exit codes of the trainer and of `gpiot train`. */
export const TrainExitCode = {
  ok: 0,
  failed: 1,
  badInput: 2,
  outputExists: 4,
  model: 5,
  noEnvironment: 7,
  doesNotFit: 8,
  interrupted: 130,
} as const;

const roleLosses = z.record(z.string(), z.number());

export const TrainEventSchema = z.discriminatedUnion("event", [
  z.looseObject({ event: z.literal("fit"), fits: z.boolean(), summary: z.string(), needed_bytes: z.number(), free_bytes: z.number(), device: z.string() }),
  z.looseObject({
    event: z.literal("start"),
    mode: z.enum(["lora", "pect"]),
    roles: z.array(z.enum(["td", "rt", "cg"])),
    device: z.string(),
    weights: z.string(),
    parameters: z.object({ total: z.number(), trainable: z.number(), frozen: z.number() }),
    trainable_share: z.number(),
    steps: z.number(),
    start_step: z.number(),
    epochs: z.number(),
    steps_per_epoch: z.number(),
    train_records: z.record(z.string(), z.number()),
    validation_records: z.record(z.string(), z.number()),
    test_records: z.record(z.string(), z.number()),
    formats: z.record(z.string(), z.enum(["json", "paper"])),
    pect: z.record(z.string(), z.unknown()),
    seed: z.number(),
  }),
  z.looseObject({
    event: z.literal("step"),
    step: z.number(),
    steps: z.number(),
    epoch: z.number(),
    loss: z.number(),
    role_loss: roleLosses,
    lr: z.number(),
    grad_norm: z.number(),
    tokens: z.number(),
    tokens_per_s: z.number(),
    eta_s: z.number(),
    step_s: z.number(),
  }),
  z.looseObject({
    event: z.literal("validation"),
    epoch: z.number(),
    step: z.number(),
    loss: z.number(),
    role_loss: roleLosses,
    tokens: z.number(),
    loss_without_cross: z.number().optional(),
    role_loss_without_cross: roleLosses.optional(),
  }),
  z.looseObject({ event: z.literal("checkpoint"), step: z.number(), path: z.string() }),
  z.looseObject({ event: z.literal("resumed"), step: z.number(), checkpoint: z.string() }),
  z.looseObject({ event: z.literal("warning"), message: z.string() }),
  z.looseObject({ event: z.literal("exported"), role: z.enum(["td", "rt", "cg"]), dir: z.string(), rank: z.number(), targets: z.array(z.string()), tensors: z.number() }),
  z.looseObject({ event: z.literal("generated"), role: z.string(), samples: z.number(), split: z.string() }),
  z.looseObject({ event: z.literal("done"), out: z.string(), generations: z.string(), split: z.string() }),
  z.looseObject({ event: z.literal("interrupted"), step: z.number(), message: z.string() }),
  z.looseObject({ event: z.literal("error"), code: z.string(), message: z.string() }),
  z.looseObject({ event: z.literal("check"), python: z.string(), versions: z.record(z.string(), z.string().nullable()) }),
  z.looseObject({ event: z.literal("tiny_base"), dir: z.string(), vocab_size: z.number(), parameters: z.number() }),
  z.looseObject({ event: z.literal("logprobs"), out: z.string(), shape: z.array(z.number()) }),
  z.looseObject({ event: z.literal("rendered"), index: z.number(), role: z.string(), format: z.string(), prompt_text: z.string(), prompt_ids: z.array(z.number()), answer_ids: z.array(z.number()) }),
  z.looseObject({ event: z.literal("throughput"), tokens_per_s: z.record(z.string(), z.number()), ratio_pect_vs_lora: z.number(), ratio_pect_cross_vs_lora: z.number() }),
  z.looseObject({ event: z.literal("share"), pect: z.record(z.string(), z.number()), lora: z.record(z.string(), z.number()) }),
]);
export type TrainEvent = z.infer<typeof TrainEventSchema>;
export type TrainEventOf<E extends TrainEvent["event"]> = Extract<TrainEvent, { event: E }>;

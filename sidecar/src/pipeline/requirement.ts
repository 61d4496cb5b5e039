/**
 * First stage, before any model runs: checks that the requirement is something to build and
 * reads the resource limits the user stated, so every later prompt can carry them.
 */
import { REQUIREMENT_MAX_CHARS, type ResourceLimits } from "../schemas";

export const CONSTRAINTS_MAX_CHARS = 1000;

export class RequirementError extends Error {
  constructor(
    readonly code: "REQUIREMENT_EMPTY" | "REQUIREMENT_TOO_LONG" | "NOTHING_TO_BUILD" | "CONSTRAINTS_TOO_LONG",
    message: string,
  ) {
    super(message);
    this.name = "RequirementError";
  }
}

export interface PreparedRequirement {
  requirement: string;
  limits: ResourceLimits | null;
}

const MIN_MEANINGFUL_WORDS = 3;

export function prepareRequirement(rawRequirement: string, rawConstraints?: string): PreparedRequirement {
  const requirement = rawRequirement.replace(/\r\n?/g, "\n").trim();
  if (!requirement) throw new RequirementError("REQUIREMENT_EMPTY", "The requirement is empty: describe what the program should do.");
  if (requirement.length > REQUIREMENT_MAX_CHARS)
    throw new RequirementError(
      "REQUIREMENT_TOO_LONG",
      `The requirement is ${requirement.length} characters long; the limit is ${REQUIREMENT_MAX_CHARS}. Shorten it or split it into several programs.`,
    );
  const words = requirement.match(/\p{L}[\p{L}\p{N}'-]*/gu) ?? [];
  if (words.filter((word) => word.length >= 2).length < MIN_MEANINGFUL_WORDS)
    throw new RequirementError(
      "NOTHING_TO_BUILD",
      `There is nothing to build in "${requirement.slice(0, 60)}": state what the program should do, e.g. "Detect heartbeats in a single-lead ECG and report the heart rate".`,
    );
  const constraintsText = (rawConstraints ?? "").trim();
  if (constraintsText.length > CONSTRAINTS_MAX_CHARS)
    throw new RequirementError("CONSTRAINTS_TOO_LONG", `The resource constraint is ${constraintsText.length} characters long; the limit is ${CONSTRAINTS_MAX_CHARS}.`);
  return { requirement, limits: constraintsText ? parseResourceLimits(constraintsText) : null };
}

const memoryUnitsToMB: Record<string, number> = { kb: 1 / 1024, kib: 1 / 1024, mb: 1, mib: 1, gb: 1024, gib: 1024 };
const timeUnitsToMs: Record<string, number> = { us: 0.001, µs: 0.001, ms: 1, s: 1000, sec: 1000, seconds: 1000 };
const knownDevices = [/jetson\s+\w+/i, /raspberry\s+pi(?:\s*\d)?/i, /esp32/i, /arduino\s*\w*/i, /coral(?:\s+dev\s+board)?/i, /stm32\w*/i];

export function parseResourceLimits(text: string): ResourceLimits {
  const limits: ResourceLimits = { text };
  const memory = text.match(/(\d+(?:\.\d+)?)\s*(kib|kb|mib|mb|gib|gb)\b/i);
  if (memory) limits.memoryMB = Number(memory[1]) * memoryUnitsToMB[memory[2].toLowerCase()];
  const latency = text.match(/(\d+(?:\.\d+)?)\s*(ms|us|µs|seconds|sec|s)\b/i);
  if (latency) limits.latencyMs = Number(latency[1]) * timeUnitsToMs[latency[2].toLowerCase()];
  for (const pattern of knownDevices) {
    const device = text.match(pattern);
    if (device) {
      limits.device = device[0].trim();
      break;
    }
  }
  return limits;
}

/** The constraint sentence every stage's prompt carries. */
export function describeLimits(limits: ResourceLimits | null): string {
  if (!limits) return "No resource constraints were given.";
  const parts = [`Resource constraints (must hold): ${limits.text}.`];
  if (limits.device) parts.push(`Target device: ${limits.device}.`);
  if (limits.memoryMB !== undefined) parts.push(`Peak memory must stay at or below ${limits.memoryMB} MB.`);
  if (limits.latencyMs !== undefined) parts.push(`Processing time must stay at or below ${limits.latencyMs} ms.`);
  return parts.join(" ");
}

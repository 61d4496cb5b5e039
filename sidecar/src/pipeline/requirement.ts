/**
 * First stage, before any model runs: checks that the requirement is something to build and
 * reads the resource limits the user stated, so every later prompt can carry them.
 */
import { REQUIREMENT_MAX_CHARS, type ResourceLimits } from "../schemas";

export const CONSTRAINTS_MAX_CHARS = 1000;

export class RequirementError extends Error {
  constructor(
    readonly code: "REQUIREMENT_EMPTY" | "REQUIREMENT_TOO_LONG" | "NOTHING_TO_BUILD" | "CONSTRAINTS_TOO_LONG" | "CONSTRAINTS_INVALID",
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

/**
 * Words that say nothing about a program on their own: greetings, thanks, test words, keyboard
 * mashes and placeholders. A requirement made only of these (or of no words at all) has nothing
 * to build; any other word, even one ("Pedometer", "Count steps"), may be a requirement.
 */
const FILLER_WORDS = new Set(
  (
    "hi hello hey hiya yo howdy greetings world thanks thank you please help ok okay yes no yeah nope hmm hm " +
    "test tests testing tester asdf asdfg asdfgh asdfghjkl qwer qwert qwerty zxcv zxcvb foo bar baz qux quux " +
    "lorem ipsum dolor sit amet blah bla xxx xx todo tbd placeholder something anything stuff thing things whatever " +
    "nothing abc abcd xyz the an and or of to it this that is"
  ).split(" "),
);

/** A lower-case run of four or more letters without a vowel: "zxcv", "sdfg" (acronyms are written in capitals). */
function isKeyboardMash(word: string): boolean {
  return word.length >= 4 && word === word.toLowerCase() && !/[aeiouyàáâäãåèéêëìíîïòóôöõùúûü]/i.test(word);
}

function hasSomethingToBuild(words: string[]): boolean {
  return words.some((word) => word.length >= 2 && !FILLER_WORDS.has(word.toLowerCase()) && !isKeyboardMash(word));
}

export function prepareRequirement(rawRequirement: string, rawConstraints?: string): PreparedRequirement {
  const requirement = rawRequirement.replace(/\r\n?/g, "\n").trim();
  if (!requirement) throw new RequirementError("REQUIREMENT_EMPTY", "The requirement is empty: describe what the program should do.");
  if (requirement.length > REQUIREMENT_MAX_CHARS)
    throw new RequirementError(
      "REQUIREMENT_TOO_LONG",
      `The requirement is ${requirement.length} characters long; the limit is ${REQUIREMENT_MAX_CHARS}. Shorten it or split it into several programs.`,
    );
  const words = requirement.match(/\p{L}[\p{L}\p{N}]*/gu) ?? [];
  if (!hasSomethingToBuild(words)) {
    const why = words.length === 0 ? "it has no words, only numbers and symbols" : "it has only greetings, test words or placeholders";
    throw new RequirementError(
      "NOTHING_TO_BUILD",
      `There is nothing to build in "${requirement.slice(0, 60)}": ${why}. State what the program should do, e.g. "Detect heartbeats in a single-lead ECG and report the heart rate".`,
    );
  }
  const constraintsText = (rawConstraints ?? "").trim();
  if (constraintsText.length > CONSTRAINTS_MAX_CHARS)
    throw new RequirementError("CONSTRAINTS_TOO_LONG", `The resource constraint is ${constraintsText.length} characters long; the limit is ${CONSTRAINTS_MAX_CHARS}.`);
  return { requirement, limits: constraintsText ? parseResourceLimits(constraintsText) : null };
}

const memoryUnitsToMB: Record<string, number> = { kb: 1 / 1024, kib: 1 / 1024, mb: 1, mib: 1, gb: 1024, gib: 1024 };
const timeUnitsToMs: Record<string, number> = { us: 0.001, µs: 0.001, ms: 1, s: 1000, sec: 1000, seconds: 1000 };
const knownDevices = [/jetson\s+\w+/i, /raspberry\s+pi(?:\s*\d)?/i, /esp32/i, /arduino\s*\w*/i, /coral(?:\s+dev\s+board)?/i, /stm32\w*/i];

/** A minus sign that belongs to the number (not a range such as "100-200 MB"). */
const SIGNED_NUMBER = String.raw`((?<![\p{L}\p{N}.])[-−–]\s*)?(\d+(?:\.\d+)?)`;
const MEMORY_LIMIT = new RegExp(`${SIGNED_NUMBER}\\s*(kib|kb|mib|mb|gib|gb)\\b`, "giu");
const TIME_LIMIT = new RegExp(`${SIGNED_NUMBER}\\s*(ms|us|µs|seconds|sec|s)\\b`, "giu");

/** The first stated limit of a kind, in the unit's scale; a negative or zero limit is refused, not read as positive. */
function firstLimit(text: string, pattern: RegExp, scale: Record<string, number>, what: string): number | undefined {
  let first: number | undefined;
  for (const match of text.matchAll(pattern)) {
    const value = Number(match[2]);
    if (match[1] || value === 0)
      throw new RequirementError(
        "CONSTRAINTS_INVALID",
        `The resource constraint "${match[0].trim()}" in "${text.slice(0, 80)}" is not a limit a program can meet: ${what} must be more than zero, e.g. "<= ${value || 10} ${match[3]}".`,
      );
    first ??= value * scale[match[3].toLowerCase()];
  }
  return first;
}

export function parseResourceLimits(text: string): ResourceLimits {
  const limits: ResourceLimits = { text };
  const memoryMB = firstLimit(text, MEMORY_LIMIT, memoryUnitsToMB, "memory");
  if (memoryMB !== undefined) limits.memoryMB = memoryMB;
  const latencyMs = firstLimit(text, TIME_LIMIT, timeUnitsToMs, "a time limit");
  if (latencyMs !== undefined) limits.latencyMs = latencyMs;
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

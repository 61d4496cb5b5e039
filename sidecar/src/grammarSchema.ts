/**
 * Derives the JSON Schema that node-llama-cpp turns into a generation grammar from a zod schema,
 * so that the zod schema stays the one source of truth for every structured output.
 */
import { z } from "zod";

/** The subset of JSON Schema that node-llama-cpp's grammar generator accepts (GbnfJsonSchema). */
export type GrammarJsonSchema =
  | { type: "string"; minLength?: number; maxLength?: number; description?: string }
  | { type: "number" | "integer" | "boolean" | "null"; description?: string }
  | { enum: (string | number | boolean | null)[]; description?: string }
  | { const: string | number | boolean | null; description?: string }
  | { type: "array"; items: GrammarJsonSchema; minItems?: number; maxItems?: number; description?: string }
  | { type: "object"; properties: Record<string, GrammarJsonSchema>; additionalProperties: false; description?: string };

type JsonSchemaNode = Record<string, unknown>;

/**
 * The grammar counts string length in code points while zod counts UTF-16 units, and one code point
 * can take two units. Halving the grammar's limit guarantees that every string the grammar lets
 * through also passes zod's `max`.
 */
function grammarMaxLength(zodMaxLength: number): number | undefined {
  const limit = Math.max(1, Math.floor(zodMaxLength / 2));
  // llama.cpp refuses grammars whose repetitions add up past ~2000; long fields (code,
  // documentation) are bounded by the stage's token limit instead, and zod checks them after.
  return limit <= GRAMMAR_MAX_REPETITION ? limit : undefined;
}

export const GRAMMAR_MAX_REPETITION = 300;

function convert(node: JsonSchemaNode, path: string): GrammarJsonSchema {
  const description = typeof node.description === "string" ? { description: node.description } : {};
  if (Array.isArray(node.enum)) return { enum: node.enum as (string | number | boolean | null)[], ...description };
  if ("const" in node) return { const: node.const as string | number | boolean | null, ...description };
  switch (node.type) {
    case "string": {
      if (node.pattern !== undefined || node.format !== undefined)
        throw new Error(`grammar schema: ${path} uses a string pattern/format, which the grammar cannot enforce`);
      return {
        type: "string",
        ...(typeof node.minLength === "number" ? { minLength: node.minLength } : {}),
        ...(typeof node.maxLength === "number" && grammarMaxLength(node.maxLength) !== undefined ? { maxLength: grammarMaxLength(node.maxLength) } : {}),
        ...description,
      };
    }
    case "number":
    case "integer":
    case "boolean":
    case "null":
      return { type: node.type, ...description };
    case "array": {
      if (typeof node.items !== "object" || node.items === null || Array.isArray(node.items))
        throw new Error(`grammar schema: ${path} is an array without a single item schema`);
      return {
        type: "array",
        items: convert(node.items as JsonSchemaNode, `${path}[]`),
        ...(typeof node.minItems === "number" ? { minItems: node.minItems } : {}),
        ...(typeof node.maxItems === "number" ? { maxItems: node.maxItems } : {}),
        ...description,
      };
    }
    case "object": {
      const properties = (node.properties ?? {}) as Record<string, JsonSchemaNode>;
      const required = new Set((node.required ?? []) as string[]);
      const converted: Record<string, GrammarJsonSchema> = {};
      for (const [key, value] of Object.entries(properties)) {
        // The grammar always emits every key, so an optional field would silently become required.
        if (!required.has(key)) throw new Error(`grammar schema: ${path}.${key} is optional; generation schemas need every field`);
        converted[key] = convert(value, `${path}.${key}`);
      }
      return { type: "object", properties: converted, additionalProperties: false, ...description };
    }
    default:
      throw new Error(`grammar schema: ${path} has a shape the grammar does not support (${JSON.stringify(node).slice(0, 120)})`);
  }
}

const cache = new WeakMap<z.ZodType, GrammarJsonSchema>();

export function grammarSchemaFor(schema: z.ZodType): GrammarJsonSchema {
  let converted = cache.get(schema);
  if (!converted) {
    converted = convert(z.toJSONSchema(schema, { io: "output" }) as JsonSchemaNode, "$");
    cache.set(schema, converted);
  }
  return converted;
}

/**
 * A process that holds one role and nothing else: one model, one context with the role's adapter,
 * one short generation under the role's grammar. It prints its peak RSS in MB on stdout.
 * Plain JavaScript with node-llama-cpp as its only import, so that no TypeScript loader or
 * engine code adds to the baseline. The memory benchmark starts it from this file, never through
 * `node -e`: node-llama-cpp's binding self-test forks the running script file.
 *
 *   node bench/oneRoleProcess.mjs '{"basePath", "adapterPath", "contextSize", "threads", "systemPrompt", "prompt", "grammarSchema", "maxTokens"}'
 */
import { readFileSync } from "node:fs";
import { getLlama, LlamaChatSession, LlamaLogLevel } from "node-llama-cpp";

const options = JSON.parse(process.argv[2] ?? "{}");
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: options.basePath });
const context = await model.createContext({ contextSize: options.contextSize, threads: options.threads, lora: { adapters: [{ filePath: options.adapterPath }] } });
const grammar = await llama.createGrammarForJsonSchema(options.grammarSchema);
const session = new LlamaChatSession({ contextSequence: context.getSequence(), systemPrompt: options.systemPrompt });
await session.prompt(options.prompt, { grammar, maxTokens: options.maxTokens });
const peakKB = /VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
if (peakKB === undefined) throw new Error("/proc/self/status has no VmHWM line");
process.stdout.write(String(Number(peakKB) / 1024));
session.dispose();
await context.dispose();
await model.dispose();
await llama.dispose();

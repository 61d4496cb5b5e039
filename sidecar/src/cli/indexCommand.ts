/**
 * `gpiot index ...`: the retrieval index of the user's documents that RT and CG draw passages from:
 * add a folder (PDF, Markdown, text) or a `gpiot data` corpus, list, remove, rebuild, and search
 * (to see what a prompt would get).
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import { toErrorInfo } from "../engine/errors";
import { defaultManifestPath } from "../models/manifest";
import { describeCitation } from "../schemas";
import { EngineSettingsSchema, type EngineSettings } from "../settings";
import type { IndexProgress, UpdateSummary } from "../retrieval/indexStore";
import { defaultIndexDir, RetrievalService, type IndexListing } from "../retrieval/retrievalService";

const INDEX_USAGE = `gpiot index - the retrieval index: passages from your documents for the RT and CG prompts

Usage:
  gpiot index add PATH [--workspace]     index a folder of PDF, Markdown and text documents, or a
                                         retrieval corpus (FILE.corpus.jsonl from gpiot data); adding
                                         it again updates it: only changed files are read again and
                                         only new text is embedded
  gpiot index list                       the sources, their documents and chunks, skipped files
  gpiot index remove SOURCE              remove a source (its id or path) and its chunks
  gpiot index rebuild [--full]           read every source again (--full: from scratch, re-embedding all)
  gpiot index search "TEXT" [--k N]      the passages a prompt about TEXT would get

Options:
      --index-dir DIR        the index folder (default: $GPIOT_INDEX_DIR or ${defaultIndexDir()})
      --workspace            add the folder as a workspace: used only while synthesizing inside it
  -p, --profile NAME         the profile whose embedding model is used (default: the manifest's default)
      --embedding-model FILE a GGUF embedding model instead of the profile's
      --no-embeddings        lexical index only (BM25); no embedding model is loaded
      --manifest FILE        a models manifest other than the shipped models/manifest.json
      --models-dir DIR       where downloaded models live
      --max-file-mb N        skip documents larger than this (default 64)
      --threads N            CPU threads for the embedding model
      --gpu MODE             auto | cpu | cuda | vulkan | metal
      --json                 machine-readable output on stdout
  -q, --quiet                no progress on stderr

Exit codes: 0 done, 1 failed (or the index is busy), 2 usage, 7 unusable input (a path that does
not exist or cannot be indexed, an unknown source), 130 interrupted (the index is left as it was).
`;

class IndexUsageError extends Error {}

const exitCodes = new Map<string, number>([
  ["INVALID_PARAMS", 2],
  ["INDEX_INPUT_INVALID", 7],
  ["INDEX_SOURCE_NOT_FOUND", 7],
  ["CANCELLED", 130],
]);

const OPTIONS = {
  "index-dir": { type: "string" },
  workspace: { type: "boolean" },
  profile: { type: "string", short: "p" },
  "embedding-model": { type: "string" },
  "no-embeddings": { type: "boolean" },
  manifest: { type: "string" },
  "models-dir": { type: "string" },
  "max-file-mb": { type: "string" },
  threads: { type: "string" },
  gpu: { type: "string" },
  full: { type: "boolean" },
  k: { type: "string" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = Record<string, string | boolean | undefined>;

function settingsFrom(values: Values): EngineSettings {
  const number = (name: string) => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const parsed = Number(raw);
    if (!Number.isFinite(parsed)) throw new IndexUsageError(`--${name} expects a number, got "${String(raw)}"`);
    return parsed;
  };
  const gpu = values.gpu as string | undefined;
  if (gpu !== undefined && !["auto", "cpu", "cuda", "vulkan", "metal"].includes(gpu)) throw new IndexUsageError(`--gpu expects auto, cpu, cuda, vulkan or metal, got "${gpu}"`);
  const parsed = EngineSettingsSchema.safeParse({
    threads: number("threads"),
    gpu: gpu === undefined ? undefined : gpu === "cpu" ? false : gpu,
    profile: values.profile,
    manifestPath: values.manifest === undefined ? undefined : path.resolve(String(values.manifest)),
    modelsDir: values["models-dir"] === undefined ? undefined : path.resolve(String(values["models-dir"])),
    retrieval: {
      ...(values["index-dir"] !== undefined ? { indexDir: path.resolve(String(values["index-dir"])) } : {}),
      ...(values["embedding-model"] !== undefined ? { embeddingModelPath: path.resolve(String(values["embedding-model"])) } : {}),
      ...(values["max-file-mb"] !== undefined ? { maxFileMB: number("max-file-mb") } : {}),
      ...(values.k !== undefined ? { k: number("k") } : {}),
      workspaceFolders: [process.cwd()],
    },
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IndexUsageError(`invalid option ${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

/** Progress on stderr: a line per phase change and every few seconds, redrawn in place on a terminal. */
function progressPrinter(stream: NodeJS.WriteStream, enabled: boolean): { update(progress: IndexProgress): void; done(): void } {
  let lastPhase = "";
  let lastAt = 0;
  return {
    update(progress) {
      if (!enabled) return;
      const now = performance.now();
      if (progress.phase === lastPhase && now - lastAt < (stream.isTTY ? 100 : 3000)) return;
      lastPhase = progress.phase;
      lastAt = now;
      const what = progress.phase === "read" ? `reading ${progress.done + 1}/${progress.total}${progress.file ? ` ${path.basename(progress.file)}` : ""}` : progress.phase === "embed" ? `embedding ${progress.done}/${progress.total} chunks` : "writing the index";
      if (stream.isTTY) stream.write(`\r\x1b[K${what.slice(0, (stream.columns || 100) - 1)}`);
      else stream.write(`${what}\n`);
    },
    done() {
      if (enabled && stream.isTTY && lastPhase) stream.write("\r\x1b[K");
    },
  };
}

function describeSummary(summary: UpdateSummary): string[] {
  const lines = [
    `${summary.chunks} chunks from ${summary.sources} source(s); ${summary.files.read} document(s) read, ${summary.files.unchanged} unchanged, ${summary.files.removed} gone; ${summary.chunksAdded} chunks added, ${summary.chunksRemoved} removed.`,
    summary.embedding ? `Embeddings: ${summary.vectors} vectors (${summary.embedding.key}, ${summary.embedding.dims} dimensions); ${summary.embedded} embedded now.` : "Embeddings: none (lexical retrieval only).",
  ];
  if (summary.skipped.length) {
    lines.push(`Skipped ${summary.skipped.length} file(s):`);
    for (const skipped of summary.skipped.slice(0, 50)) lines.push(`  ${skipped.path}: ${skipped.reason}`);
    if (summary.skipped.length > 50) lines.push(`  ... and ${summary.skipped.length - 50} more (gpiot index list --json shows them all)`);
  }
  for (const note of summary.notes) lines.push(`Note: ${note}`);
  return lines;
}

function describeListing(listing: IndexListing): string[] {
  const lines = [`Index: ${listing.dir}`];
  if (listing.problem) lines.push(`Problem: ${listing.problem} Run \`gpiot index rebuild\`.`);
  for (const note of listing.notes) lines.push(`Note: ${note}`);
  if (!listing.sources.length) {
    lines.push("No sources yet: add a folder of documents with `gpiot index add DIR`.");
    return lines;
  }
  lines.push(`${listing.chunks} chunks, ${listing.vectors} vectors${listing.embedding ? ` (${listing.embedding.key})` : " (lexical only)"}.`);
  for (const source of listing.sources) {
    lines.push(`  ${source.id}  ${source.kind.padEnd(9)} ${source.path}${source.missing ? "  (missing)" : ""}`);
    lines.push(`      ${source.files} document(s), ${source.chunks} chunks${source.skipped.length ? `, ${source.skipped.length} skipped` : ""}`);
    for (const skipped of source.skipped.slice(0, 5)) lines.push(`      skipped ${skipped.path}: ${skipped.reason}`);
  }
  return lines;
}

export async function indexCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    process.stdout.write(INDEX_USAGE);
    return sub === undefined ? 2 : 0;
  }
  let llama: Promise<Llama> | undefined;
  let service: RetrievalService | undefined;
  const onSigint = () => {
    if (!service?.cancel().cancelled) process.exit(130);
  };
  try {
    const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: OPTIONS });
    if (values.help) {
      process.stdout.write(INDEX_USAGE);
      return 0;
    }
    const settings = settingsFrom(values as Values);
    const embeddings = values["no-embeddings"] !== true;
    service = new RetrievalService({
      settings,
      manifestPath: () => settings.manifestPath ?? defaultManifestPath(),
      runtime: () =>
        (llama ??= getLlama({ gpu: settings.gpu, build: "never", progressLogs: false, logLevel: LlamaLogLevel.error, logger: (_level, message) => process.stderr.write(`llama.cpp: ${message}`) })),
    });
    const progress = progressPrinter(process.stderr, !values.quiet && !values.json);
    service.onProgress((event) => progress.update(event));
    process.on("SIGINT", onSigint);
    const print = (value: unknown, lines: string[]) => process.stdout.write(values.json ? `${JSON.stringify(value, null, 2)}\n` : `${lines.join("\n")}\n`);
    const one = (what: string) => {
      if (positionals.length !== 1) throw new IndexUsageError(`gpiot index ${sub} takes one ${what}`);
      return positionals[0];
    };
    switch (sub) {
      case "add": {
        const result = await service.add({ path: one("folder or corpus file"), kind: values.workspace ? "workspace" : undefined, embeddings });
        progress.done();
        print(result, [`${result.existed ? "Updated" : "Added"} ${result.source.kind} ${result.source.path} (${result.source.id}).`, ...describeSummary(result.summary)]);
        return 0;
      }
      case "list": {
        if (positionals.length) throw new IndexUsageError("gpiot index list takes no arguments");
        const listing = service.list();
        print(listing, describeListing(listing));
        return 0;
      }
      case "remove": {
        const result = await service.remove({ source: one("source (its id or path)") });
        progress.done();
        print(result, [`Removed ${result.removed.kind} ${result.removed.path} (${result.removed.id}).`, ...describeSummary(result.summary)]);
        return 0;
      }
      case "rebuild": {
        if (positionals.length) throw new IndexUsageError("gpiot index rebuild takes no arguments");
        const summary = await service.rebuild({ full: values.full === true, embeddings });
        progress.done();
        print(summary, [`Rebuilt ${service.indexDir}.`, ...describeSummary(summary)]);
        return 0;
      }
      case "search": {
        const found = await service.search(one('query ("TEXT")'));
        print(found, [
          ...found.warnings.map((warning) => `Warning: ${warning}`),
          ...(found.passages.length ? found.passages.flatMap((passage) => [`[${passage.citation.n}] ${describeCitation(passage.citation)} — ${passage.citation.path}`, `    ${passage.text.slice(0, 300).replace(/\s+/g, " ")}`]) : ["No passages."]),
        ]);
        return 0;
      }
      default:
        throw new IndexUsageError(`unknown index command "${sub}"`);
    }
  } catch (error) {
    if (error instanceof IndexUsageError || (error as NodeJS.ErrnoException).code?.startsWith?.("ERR_PARSE_ARGS")) {
      process.stderr.write(`gpiot index: ${(error as Error).message}\nRun "gpiot index --help" for usage.\n`);
      return 2;
    }
    const info = toErrorInfo(error);
    process.stderr.write(`\ngpiot index: ${info.message}\n`);
    return exitCodes.get(info.code) ?? 1;
  } finally {
    process.off("SIGINT", onSigint);
    await service?.dispose();
    await (await llama?.catch(() => undefined))?.dispose();
  }
}

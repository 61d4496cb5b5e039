/**
 * Downloads one file (httpDownload.ts: connect and read timeouts, instant cancel, resume, a Hugging
 * Face token from HF_TOKEN or ~/.cache/huggingface/token for hf: sources) and only then puts it
 * where the model is expected:
 *
 *   <dest dir>/.partial/<name>.download       while downloading (kept on cancel, failure or crash:
 *   <dest dir>/.partial/<name>.download.json  the next pull continues it; the JSON says from where)
 *   <dest dir>/.partial/<name>                when complete, while its size, SHA-256 and GGUF header are checked
 *   <dest dir>/<name>                         only after every check passed (a rename on the same file system)
 *
 * A file that fails a check is deleted, so a partial or corrupt file is never where the model is
 * expected. With `offline` nothing here opens a connection: it refuses before any request.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { DEFAULT_TIMEOUTS, TransferError, transferToFile, type TransferTimeouts } from "./httpDownload";

export type ModelsErrorCode = "OFFLINE" | "DOWNLOAD_FAILED" | "CHECKSUM_MISMATCH" | "CONVERSION_FAILED" | "CANCELLED" | "INVALID_PARAMS" | "MODEL_NOT_FOUND";

export class ModelsError extends Error {
  constructor(
    readonly code: ModelsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ModelsError";
  }
}

export const PARTIAL_DIR = ".partial";
export const PROGRESS_SUFFIX = ".download";
const RECORD_SUFFIX = ".download.json";
const DEFAULT_HF_ENDPOINT = "https://huggingface.co/";

export interface DownloadProgress {
  /** Final path of the file being fetched. */
  path: string;
  phase: "download" | "verify";
  bytes: number;
  /** 0 while unknown. */
  totalBytes: number;
}

export interface DownloadOptions {
  /** `hf:<user>/<repo>/<file>` or an http(s) URL. */
  source: string;
  /** Where the verified file goes. */
  destination: string;
  sizeBytes?: number;
  sha256?: string;
  /** Check that the file is a readable GGUF (default: when the name ends in .gguf). */
  expectGguf?: boolean;
  /** Base URL for `hf:` sources instead of https://huggingface.co/ (else $HF_ENDPOINT). */
  endpoint?: string;
  offline: boolean;
  /** Connect and read timeouts; default DEFAULT_TIMEOUTS. */
  timeouts?: Partial<TransferTimeouts>;
  signal?: AbortSignal;
  onProgress?(progress: DownloadProgress): void;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256?: string;
  /** A previous interrupted download was continued. */
  resumed: boolean;
  /** Already there and not fetched again. */
  skipped: boolean;
}

export function assertOnline(offline: boolean, what: string): void {
  if (offline) throw new ModelsError("OFFLINE", `Offline mode is on, so GPIoT will not ${what}. Turn the "offline" setting off (CLI: drop --offline / GPIOT_OFFLINE), or copy the file into place yourself.`);
}

export function partialPaths(destination: string): { staged: string; progress: string; record: string } {
  const staged = path.join(path.dirname(destination), PARTIAL_DIR, path.basename(destination));
  return { staged, progress: staged + PROGRESS_SUFFIX, record: staged + RECORD_SUFFIX };
}

/** The timeouts for a download timeout setting: reads wait that long, connections at most 10 s of it. */
export function downloadTimeouts(timeoutMs: number | undefined): TransferTimeouts {
  if (timeoutMs === undefined) return DEFAULT_TIMEOUTS;
  return { readMs: timeoutMs, connectMs: Math.min(timeoutMs, DEFAULT_TIMEOUTS.connectMs) };
}

/** `hf:<user>/<repo>/<path>[#branch]` against the endpoint, or an http(s) URL as it is. */
export function sourceUrl(source: string, endpoint?: string): { url: string; huggingFace: boolean } {
  if (/^https?:\/\//i.test(source)) {
    const url = new URL(source);
    return { url: url.href, huggingFace: url.protocol === "https:" && /^(?:huggingface\.co|hf\.co)$/i.test(url.hostname) };
  }
  const match = /^(?:hf|huggingface):(?:\/\/)?([^/#]+)\/([^/#]+)\/([^#]+?)(?:#(.+))?$/i.exec(source);
  if (!match) throw new ModelsError("DOWNLOAD_FAILED", `Cannot download "${source}": a source is hf:<user>/<repo>/<path/to/file> or an http(s) URL.`);
  const [, user, repo, filePath, branch] = match;
  let base = endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_HF_ENDPOINT;
  if (!base.endsWith("/")) base += "/";
  const encodedPath = filePath.split("/").map(encodeURIComponent).join("/");
  return { url: new URL(`${encodeURIComponent(user)}/${encodeURIComponent(repo)}/resolve/${encodeURIComponent(branch ?? "main")}/${encodedPath}`, base).href, huggingFace: true };
}

/** The Hugging Face token of this user, as huggingface_hub finds it: HF_TOKEN, else the token file. */
async function huggingFaceToken(): Promise<string | undefined> {
  if (process.env.HF_TOKEN) return process.env.HF_TOKEN;
  const home = process.env.HF_HOME || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "huggingface");
  try {
    const token = (await readFile(process.env.HF_TOKEN_PATH || path.join(home, "token"), "utf8")).trim();
    return token || undefined;
  } catch {
    return undefined;
  }
}

export async function sha256File(filePath: string, onBytes?: (bytes: number) => void, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of createReadStream(filePath, { highWaterMark: 4 * 1024 * 1024 })) {
    if (signal?.aborted) throw new ModelsError("CANCELLED", "Cancelled while checking the download.");
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    onBytes?.(bytes);
  }
  return hash.digest("hex");
}

/** Throws if the file does not start like a GGUF or its header cannot be parsed. */
export async function checkGgufHeader(filePath: string): Promise<void> {
  const handle = await open(filePath, "r");
  try {
    const magic = Buffer.alloc(4);
    await handle.read(magic, 0, 4, 0);
    if (magic.toString("latin1") !== "GGUF") throw new Error("it does not start with the GGUF magic (an HTML error page or a different file?)");
  } finally {
    await handle.close();
  }
  await readGgufFileInfo(filePath, { readTensorInfo: true, logWarnings: false, sourceType: "filesystem" });
}

export async function downloadVerifiedFile(options: DownloadOptions): Promise<DownloadResult> {
  const { source, destination } = options;
  assertOnline(options.offline, `download ${source}`);
  if (options.signal?.aborted) throw new ModelsError("CANCELLED", "Download cancelled before it started.");
  const split = /-(\d{5})-of-(\d{5})\.gguf$/i.exec(source);
  if (split && Number(split[2]) > 1)
    throw new ModelsError("DOWNLOAD_FAILED", `${source} is a GGUF split into ${Number(split[2])} files; point the manifest at a single-file GGUF (or merge the parts with llama-gguf-split).`);
  const { url, huggingFace } = sourceUrl(source, options.endpoint);
  const { staged, progress, record } = partialPaths(destination);
  const stagingDir = path.dirname(staged);
  const skipped = existsSync(staged) && !existsSync(progress);
  if (skipped) return finishVerifiedFile(staged, options, { resumed: false, skipped });
  await mkdir(stagingDir, { recursive: true });

  const token = huggingFace ? await huggingFaceToken() : undefined;
  let resumed: boolean;
  try {
    ({ resumed } = await transferToFile({
      url,
      headers: token ? { authorization: `Bearer ${token}` } : {},
      file: progress,
      recordFile: record,
      timeouts: options.timeouts,
      signal: options.signal,
      onSize: (totalBytes) => {
        if (options.sizeBytes !== undefined && totalBytes > 0 && totalBytes !== options.sizeBytes)
          throw new TransferError("size", `The server offers ${totalBytes} bytes for ${source}, but the manifest expects ${options.sizeBytes}. Nothing was downloaded.`);
      },
      onProgress: (bytes, totalBytes) => options.onProgress?.({ path: destination, phase: "download", bytes, totalBytes }),
    }));
  } catch (error) {
    if (!(error instanceof TransferError)) throw error;
    if (error.kind === "cancelled" || options.signal?.aborted)
      throw new ModelsError("CANCELLED", `Download of ${path.basename(destination)} cancelled; the part already fetched is kept in ${stagingDir} and the next pull continues from there.`);
    if (error.kind === "size") {
      await rm(progress, { force: true });
      await rm(record, { force: true });
      throw new ModelsError("CHECKSUM_MISMATCH", error.message);
    }
    if (error.kind === "unreachable") throw new ModelsError("DOWNLOAD_FAILED", `Cannot download ${source}: ${error.message}. Check the network connection${options.endpoint ? ` and the endpoint ${options.endpoint}` : ""}, or copy the file into place yourself.`);
    throw new ModelsError("DOWNLOAD_FAILED", `Downloading ${source} failed: ${error.message}. Run the pull again to continue where it stopped.`);
  }
  await rename(progress, staged);
  return finishVerifiedFile(staged, options, { resumed, skipped: false });
}

/** Checks a completely downloaded file and moves it into place; deletes it when a check fails. */
async function finishVerifiedFile(downloaded: string, options: DownloadOptions, flags: { resumed: boolean; skipped: boolean }): Promise<DownloadResult> {
  const { destination, source } = options;
  const reject = async (message: string): Promise<never> => {
    await rm(downloaded, { force: true });
    throw new ModelsError("CHECKSUM_MISMATCH", `${message} The downloaded file was deleted; nothing was put at ${destination}.`);
  };
  const bytes = (await stat(downloaded)).size;
  if (options.sizeBytes !== undefined && bytes !== options.sizeBytes) await reject(`${source} has ${bytes} bytes, but the manifest expects ${options.sizeBytes}.`);
  let sha256: string | undefined;
  if (options.sha256) {
    options.onProgress?.({ path: destination, phase: "verify", bytes: 0, totalBytes: bytes });
    sha256 = await sha256File(downloaded, (done) => options.onProgress?.({ path: destination, phase: "verify", bytes: done, totalBytes: bytes }), options.signal);
    if (sha256 !== options.sha256.toLowerCase()) await reject(`Checksum mismatch for ${source}: SHA-256 is ${sha256}, the manifest expects ${options.sha256}.`);
  }
  if (options.expectGguf ?? destination.toLowerCase().endsWith(".gguf")) {
    try {
      await checkGgufHeader(downloaded);
    } catch (error) {
      await reject(`${source} is not a valid GGUF file: ${(error as Error).message}.`);
    }
  }
  await mkdir(path.dirname(destination), { recursive: true });
  await rename(downloaded, destination);
  return { path: destination, bytes, sha256, resumed: flags.resumed, skipped: flags.skipped };
}

/** Joins a folder source (hf:user/repo[/sub] or URL) and a file name inside it. */
export function joinSource(folder: string, file: string): string {
  if (/^https?:\/\//i.test(folder)) {
    const url = new URL(folder);
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/${file.split("/").map(encodeURIComponent).join("/")}`;
    return url.href;
  }
  const [main, branch] = folder.split("#");
  return `${main.replace(/\/+$/, "")}/${file}${branch ? `#${branch}` : ""}`;
}

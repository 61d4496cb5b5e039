/**
 * Downloads one file through node-llama-cpp's downloader (ipull: parallel ranges, resume, HF token
 * from HF_TOKEN or ~/.cache/huggingface/token) and only then puts it where the model is expected:
 *
 *   <dest dir>/.partial/<name>.ipull   while downloading (kept on cancel or crash: the next pull resumes it)
 *   <dest dir>/.partial/<name>         when complete, while its size, SHA-256 and GGUF header are checked
 *   <dest dir>/<name>                  only after every check passed (a rename on the same file system)
 *
 * A file that fails a check is deleted, so a partial or corrupt file is never where the model is
 * expected. With `offline` nothing here opens a connection: it refuses before the downloader exists.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { createModelDownloader, readGgufFileInfo, type ModelDownloader } from "node-llama-cpp";

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
export const PROGRESS_SUFFIX = ".ipull";

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
  /** Base URL for `hf:` sources instead of https://huggingface.co/. */
  endpoint?: string;
  offline: boolean;
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

export function partialPaths(destination: string): { staged: string; progress: string } {
  const staged = path.join(path.dirname(destination), PARTIAL_DIR, path.basename(destination));
  return { staged, progress: staged + PROGRESS_SUFFIX };
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

/**
 * Fails at once when the server cannot be reached: the downloader itself retries a refused or
 * unresolvable connection for minutes before it gives up.
 */
export async function assertReachable(source: string, endpoint: string | undefined, timeoutMs = 15_000): Promise<void> {
  const url = new URL(/^https?:\/\//i.test(source) ? source : (endpoint ?? "https://huggingface.co/"));
  const port = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: "ETIMEDOUT" })));
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  }).catch((error: NodeJS.ErrnoException) => {
    throw new ModelsError("DOWNLOAD_FAILED", `Cannot reach ${url.host} (${error.code ?? error.message}): this machine seems to be offline, or the server is down. Nothing more was downloaded; run the pull again once it is reachable.`);
  });
}

export async function downloadVerifiedFile(options: DownloadOptions): Promise<DownloadResult> {
  const { source, destination } = options;
  assertOnline(options.offline, `download ${source}`);
  if (options.signal?.aborted) throw new ModelsError("CANCELLED", "Download cancelled before it started.");
  await assertReachable(source, options.endpoint);
  const { staged, progress } = partialPaths(destination);
  const stagingDir = path.dirname(staged);
  await mkdir(stagingDir, { recursive: true });
  const resumed = existsSync(progress);

  let downloader: ModelDownloader;
  try {
    downloader = await createModelDownloader({
      modelUri: source,
      dirPath: stagingDir,
      fileName: path.basename(destination),
      endpoints: options.endpoint ? { huggingFace: options.endpoint } : undefined,
      deleteTempFileOnCancel: false,
      skipExisting: true,
      parallelDownloads: 1,
      onProgress: ({ downloadedSize, totalSize }) => options.onProgress?.({ path: destination, phase: "download", bytes: downloadedSize, totalBytes: totalSize }),
    });
  } catch (error) {
    throw new ModelsError("DOWNLOAD_FAILED", `Cannot start downloading ${source}: ${(error as Error).message}`);
  }
  if (downloader.totalFiles !== 1)
    throw new ModelsError("DOWNLOAD_FAILED", `${source} is a GGUF split into ${downloader.totalFiles} files; point the manifest at a single-file GGUF (or merge the parts with llama-gguf-split).`);
  if (options.sizeBytes !== undefined && downloader.totalSize > 0 && downloader.totalSize !== options.sizeBytes) {
    await downloader.cancel({ deleteTempFile: true }).catch(() => undefined);
    throw new ModelsError("CHECKSUM_MISMATCH", `The server offers ${downloader.totalSize} bytes for ${source}, but the manifest expects ${options.sizeBytes}. Nothing was downloaded.`);
  }

  const cancelled = async () => {
    await downloader.cancel({ deleteTempFile: false }).catch(() => undefined);
    return new ModelsError("CANCELLED", `Download of ${path.basename(destination)} cancelled; the part already fetched is kept in ${stagingDir} and the next pull continues from there.`);
  };
  const skipped = existsSync(staged) && !existsSync(progress);
  try {
    await downloader.download({ signal: options.signal });
  } catch (error) {
    if (options.signal?.aborted) throw await cancelled();
    throw new ModelsError("DOWNLOAD_FAILED", `Downloading ${source} failed: ${(error as Error).message}. Run the pull again to continue where it stopped.`);
  }
  // On abort node-llama-cpp closes the transfer and returns normally: the file is not complete.
  if (options.signal?.aborted) throw await cancelled();
  const downloaded = downloader.entrypointFilePath;
  if (!existsSync(downloaded)) throw new ModelsError("DOWNLOAD_FAILED", `The download of ${source} finished but ${downloaded} is not there.`);
  return finishVerifiedFile(downloaded, options, { resumed, skipped });
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

/**
 * Fetches a GPU runtime of node-llama-cpp (its `@node-llama-cpp/<platform>-<arch>-<gpu>` binaries
 * packages) from an npm registry and puts it where node-llama-cpp finds it, without npm:
 *
 *   1. the registry's metadata for the exact version node-llama-cpp needs (tarball URL, integrity);
 *   2. the tarball, into `<store>/<version>/<name>.tgz.partial`, continued with an HTTP Range
 *      request when an earlier download stopped;
 *   3. its SHA-512 checked against the registry's integrity value (a mismatch deletes it);
 *   4. unpacked into a hidden folder, its package.json checked (name, version), then renamed into
 *      `<store>/<version>/<name>` (never half-unpacked where it is looked for);
 *   5. linked as `<link dir>/<name>` (a symlink; a junction on Windows), i.e. a
 *      `node_modules/@node-llama-cpp/` beside node-llama-cpp, where module resolution finds it.
 *
 * The store lives in the extension's global storage, so an extension update only links it again.
 * Plain Node (no vscode import): unit-tested against a loopback registry.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, lstatSync, readFileSync } from "node:fs";
import { mkdir, open, readlink, rename, rm, stat, symlink, unlink } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { createGunzip } from "node:zlib";

export type InstallErrorCode = "OFFLINE" | "DOWNLOAD_FAILED" | "INTEGRITY_MISMATCH" | "BAD_PACKAGE" | "CANCELLED" | "NOT_WRITABLE";

export class RuntimeInstallError extends Error {
  constructor(
    readonly code: InstallErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "RuntimeInstallError";
  }
}

export interface InstallProgress {
  package: string;
  index: number;
  count: number;
  phase: "download" | "verify" | "unpack";
  bytes: number;
  /** 0 while unknown. */
  totalBytes: number;
}

export interface InstallOptions {
  /** npm registry base URL, e.g. https://registry.npmjs.org/ */
  registry: string;
  /** Package names without the `@node-llama-cpp/` scope. */
  packages: string[];
  /** The version node-llama-cpp needs (its own version). */
  version: string;
  /** Where unpacked runtimes are kept (one folder per version). */
  storeDir: string;
  /** The `node_modules/@node-llama-cpp` folder the packages are linked into. */
  linkDir: string;
  signal?: AbortSignal;
  onProgress?(progress: InstallProgress): void;
}

export interface InstallResult {
  packages: { name: string; path: string; bytes: number; resumed: boolean; downloaded: boolean }[];
}

const SCOPE = "@node-llama-cpp";

function offlineLike(error: NodeJS.ErrnoException): boolean {
  return ["ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH", "EHOSTUNREACH"].includes(error.code ?? "");
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

function get(url: string, headers: Record<string, string>, signal?: AbortSignal, redirects = 5): Promise<Response> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith("https:") ? https : http;
    const request = client.get(url, { headers: { "user-agent": "gpiot-vscode", ...headers }, signal }, (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 300 && status < 400 && response.headers.location && redirects > 0) {
        response.resume();
        resolve(get(new URL(response.headers.location, url).href, headers, signal, redirects - 1));
        return;
      }
      resolve({ status, headers: response.headers, body: response });
    });
    request.on("error", (error: NodeJS.ErrnoException) => {
      if (signal?.aborted) reject(new RuntimeInstallError("CANCELLED", "The download of the GPU runtime was cancelled; what was fetched is kept."));
      else if (offlineLike(error)) reject(new RuntimeInstallError("OFFLINE", `Cannot reach ${new URL(url).host} (${error.code}): this machine seems to be offline.`));
      else reject(new RuntimeInstallError("DOWNLOAD_FAILED", `Fetching ${url} failed: ${error.message}`));
    });
  });
}

async function readJson(response: Response): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of response.body) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

/** The registry's tarball URL and integrity of one package version. */
export async function packageMetadata(registry: string, name: string, version: string, signal?: AbortSignal): Promise<{ tarball: string; integrity: string }> {
  const url = new URL(`${encodeURIComponent(`${SCOPE}/${name}`).replace(/^%40/, "@")}/${encodeURIComponent(version)}`, registry.endsWith("/") ? registry : `${registry}/`).href;
  const response = await get(url, { accept: "application/json" }, signal);
  if (response.status !== 200) {
    response.body.resume();
    throw new RuntimeInstallError("DOWNLOAD_FAILED", `The registry ${registry} has no ${SCOPE}/${name}@${version} (HTTP ${response.status}).`);
  }
  const json = (await readJson(response)) as { dist?: { tarball?: string; integrity?: string } };
  if (!json.dist?.tarball || !json.dist.integrity?.startsWith("sha512-"))
    throw new RuntimeInstallError("BAD_PACKAGE", `The registry's entry for ${SCOPE}/${name}@${version} has no tarball or SHA-512 integrity.`);
  return { tarball: json.dist.tarball, integrity: json.dist.integrity };
}

async function sha512Base64(file: string): Promise<string> {
  const hash = createHash("sha512");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("base64");
}

/** Downloads `url` into `partial`, continuing what is there; resolves whether it continued. */
async function download(url: string, partial: string, signal: AbortSignal | undefined, onBytes: (bytes: number, total: number) => void): Promise<boolean> {
  const have = existsSync(partial) ? (await stat(partial)).size : 0;
  const response = await get(url, have > 0 ? { range: `bytes=${have}-` } : {}, signal);
  const resumed = response.status === 206 && have > 0;
  if (response.status === 416 && have > 0) {
    response.body.resume();
    return true;
  }
  if (response.status !== 200 && response.status !== 206) {
    response.body.resume();
    throw new RuntimeInstallError("DOWNLOAD_FAILED", `Downloading ${url} failed: HTTP ${response.status}.`);
  }
  const start = resumed ? have : 0;
  const total = Number(response.headers["content-length"] ?? 0) + start;
  const out = createWriteStream(partial, { flags: resumed ? "a" : "w" });
  let bytes = start;
  onBytes(bytes, total);
  try {
    for await (const chunk of response.body) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once("drain", resolve));
      bytes += (chunk as Buffer).length;
      onBytes(bytes, total);
    }
  } catch (error) {
    if (signal?.aborted) throw new RuntimeInstallError("CANCELLED", "The download of the GPU runtime was cancelled; what was fetched is kept and the next download continues it.");
    throw new RuntimeInstallError("DOWNLOAD_FAILED", `The connection broke while downloading ${url} (${(error as Error).message}); what was fetched is kept and the next download continues it.`);
  } finally {
    await new Promise<void>((resolve) => out.end(resolve));
  }
  if (signal?.aborted) throw new RuntimeInstallError("CANCELLED", "The download of the GPU runtime was cancelled; what was fetched is kept and the next download continues it.");
  if (total > 0 && bytes !== total) throw new RuntimeInstallError("DOWNLOAD_FAILED", `The download of ${url} ended after ${bytes} of ${total} bytes; the next download continues it.`);
  return resumed;
}

function octal(block: Buffer, start: number, length: number): number {
  const text = block.subarray(start, start + length).toString("latin1").replace(/\0.*$/, "").trim();
  return text ? parseInt(text, 8) : 0;
}

function cString(block: Buffer, start: number, length: number): string {
  const raw = block.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? raw.length : end).toString("utf8");
}

/** The path inside the package: npm tarballs put everything under one top folder ("package/"). */
function packagePath(name: string): string | undefined {
  const parts = name.split("/").filter((part) => part && part !== ".");
  if (parts.length < 2 || parts.some((part) => part === "..") || path.isAbsolute(name)) return undefined;
  return parts.slice(1).join("/");
}

/** Unpacks a .tgz (ustar, with pax and GNU long names) into `dest`; only regular files and folders. */
export async function unpackTarball(tgz: string, dest: string, onBytes?: (bytes: number) => void): Promise<number> {
  await mkdir(dest, { recursive: true });
  let buffer: Buffer = Buffer.alloc(0);
  let remaining = 0;
  let padding = 0;
  let file: Awaited<ReturnType<typeof open>> | undefined;
  let longName: string | undefined;
  let paxName: string | undefined;
  let collecting: "long" | "pax" | undefined;
  let collected: Buffer[] = [];
  let files = 0;
  let done = false;
  let unpacked = 0;
  const gunzip = createGunzip();
  createReadStream(tgz)
    .on("error", (error) => gunzip.destroy(error))
    .pipe(gunzip);
  for await (const chunk of gunzip) {
    buffer = buffer.length ? Buffer.concat([buffer, chunk as Buffer]) : (chunk as Buffer);
    while (!done) {
      if (remaining > 0) {
        if (!buffer.length) break;
        const piece = buffer.subarray(0, Math.min(remaining, buffer.length));
        buffer = buffer.subarray(piece.length);
        remaining -= piece.length;
        unpacked += piece.length;
        if (file) await file.write(piece);
        else if (collecting) collected.push(Buffer.from(piece));
        if (remaining === 0) {
          if (file) {
            await file.close();
            file = undefined;
            files += 1;
          } else if (collecting === "long") longName = Buffer.concat(collected).toString("utf8").replace(/\0+$/, "");
          else if (collecting === "pax") {
            const text = Buffer.concat(collected).toString("utf8");
            for (const record of text.split("\n")) {
              const match = /^\d+ path=(.*)$/.exec(record);
              if (match) paxName = match[1];
            }
          }
          collecting = undefined;
          collected = [];
        }
        continue;
      }
      if (padding > 0) {
        const skip = Math.min(padding, buffer.length);
        buffer = buffer.subarray(skip);
        padding -= skip;
        if (padding > 0) break;
        continue;
      }
      if (buffer.length < 512) break;
      const header = buffer.subarray(0, 512);
      buffer = buffer.subarray(512);
      if (header.every((byte) => byte === 0)) {
        done = true;
        break;
      }
      const size = octal(header, 124, 12);
      const type = String.fromCharCode(header[156] || 48);
      const prefix = cString(header, 345, 155);
      const name = paxName ?? longName ?? (prefix ? `${prefix}/${cString(header, 0, 100)}` : cString(header, 0, 100));
      remaining = size;
      padding = (512 - (size % 512)) % 512;
      if (type === "L" || type === "x") {
        collecting = type === "L" ? "long" : "pax";
        if (size === 0) collecting = undefined;
        continue;
      }
      paxName = undefined;
      longName = undefined;
      const inside = packagePath(name);
      if (type === "0" || type === "\0" || type === "7") {
        if (!inside) {
          if (name.split("/").some((part) => part === "..") || path.isAbsolute(name)) throw new RuntimeInstallError("BAD_PACKAGE", `The package has an unsafe path: ${name}`);
          continue;
        }
        const target = path.join(dest, ...inside.split("/"));
        await mkdir(path.dirname(target), { recursive: true });
        const mode = octal(header, 100, 8) & 0o777;
        file = await open(target, "w", mode & 0o111 ? 0o755 : 0o644);
        if (size === 0) {
          await file.close();
          file = undefined;
          files += 1;
        }
      } else if (type === "5") {
        if (inside) await mkdir(path.join(dest, ...inside.split("/")), { recursive: true });
      }
      // Links and device entries are skipped: the binaries packages contain regular files only.
    }
    onBytes?.(unpacked);
    if (done) break;
  }
  if (file) await file.close();
  if (remaining > 0) throw new RuntimeInstallError("BAD_PACKAGE", "The package archive ends in the middle of a file.");
  return files;
}

function readPackageJson(dir: string): { name?: string; version?: string } | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
  } catch {
    return undefined;
  }
}

/** The unpacked package folder, when it is complete and the right version. */
export function installedPackage(storeDir: string, name: string, version: string): string | undefined {
  const dir = path.join(storeDir, version, name);
  const json = readPackageJson(dir);
  return json?.name === `${SCOPE}/${name}` && json.version === version ? dir : undefined;
}

/** Links `<linkDir>/<name>` to the unpacked package (replacing an old link; a real folder there is kept). */
export async function linkPackage(linkDir: string, name: string, target: string): Promise<string> {
  await mkdir(linkDir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    throw new RuntimeInstallError("NOT_WRITABLE", `Cannot create ${linkDir} (${error.code}): GPIoT keeps running the models on the CPU.`);
  });
  const link = path.join(linkDir, name);
  let existing: ReturnType<typeof lstatSync> | undefined;
  try {
    existing = lstatSync(link);
  } catch {
    existing = undefined;
  }
  if (existing?.isSymbolicLink()) {
    if (path.resolve(path.dirname(link), await readlink(link)) === path.resolve(target)) return link;
    await unlink(link);
  } else if (existing) return link;
  try {
    await symlink(target, link, process.platform === "win32" ? "junction" : "dir");
  } catch (error) {
    throw new RuntimeInstallError("NOT_WRITABLE", `Cannot link the GPU runtime into ${linkDir} (${(error as NodeJS.ErrnoException).code}): GPIoT keeps running the models on the CPU.`);
  }
  return link;
}

export async function installGpuRuntime(options: InstallOptions): Promise<InstallResult> {
  const result: InstallResult = { packages: [] };
  const versionDir = path.join(options.storeDir, options.version);
  await mkdir(versionDir, { recursive: true });
  for (const [index, name] of options.packages.entries()) {
    const report = (phase: InstallProgress["phase"], bytes: number, totalBytes: number) => options.onProgress?.({ package: name, index, count: options.packages.length, phase, bytes, totalBytes });
    let dir = installedPackage(options.storeDir, name, options.version);
    let resumed = false;
    let bytes = 0;
    if (!dir) {
      if (options.signal?.aborted) throw new RuntimeInstallError("CANCELLED", "The download of the GPU runtime was cancelled.");
      const { tarball, integrity } = await packageMetadata(options.registry, name, options.version, options.signal);
      const partial = path.join(versionDir, `${name}.tgz.partial`);
      resumed = await download(tarball, partial, options.signal, (done, total) => report("download", done, total));
      bytes = (await stat(partial)).size;
      report("verify", 0, bytes);
      const actual = `sha512-${await sha512Base64(partial)}`;
      if (actual !== integrity) {
        await rm(partial, { force: true });
        throw new RuntimeInstallError("INTEGRITY_MISMATCH", `${SCOPE}/${name}@${options.version} does not match the registry's SHA-512 (${integrity.slice(0, 24)}…); the download was deleted.`);
      }
      const staging = path.join(versionDir, `.${name}.unpacking`);
      await rm(staging, { recursive: true, force: true });
      try {
        await unpackTarball(partial, staging, (done) => report("unpack", done, 0));
        const json = readPackageJson(staging);
        if (json?.name !== `${SCOPE}/${name}` || json.version !== options.version)
          throw new RuntimeInstallError("BAD_PACKAGE", `The tarball of ${SCOPE}/${name}@${options.version} holds ${json?.name ?? "no package"}@${json?.version ?? "?"}.`);
        dir = path.join(versionDir, name);
        await rm(dir, { recursive: true, force: true });
        await rename(staging, dir);
      } catch (error) {
        await rm(staging, { recursive: true, force: true });
        if (error instanceof RuntimeInstallError) throw error;
        throw new RuntimeInstallError("BAD_PACKAGE", `Unpacking ${SCOPE}/${name}@${options.version} failed: ${(error as Error).message}`);
      }
      await rm(partial, { force: true });
    }
    await linkPackage(options.linkDir, name, dir);
    result.packages.push({ name, path: dir, bytes, resumed, downloaded: bytes > 0 });
  }
  return result;
}

/** Links what an earlier install left in the store (after an extension update); resolves the names linked. */
export async function relinkInstalled(storeDir: string, linkDir: string, packages: string[], version: string): Promise<string[]> {
  const linked: string[] = [];
  for (const name of packages) {
    const dir = installedPackage(storeDir, name, version);
    if (!dir) continue;
    await linkPackage(linkDir, name, dir);
    linked.push(name);
  }
  return linked;
}

/**
 * Reads IoT papers into cleaned sections with provenance: PDF (text through pdf.js, via unpdf;
 * headings found by font size and numbering), Markdown (ATX headings) and plain text (short
 * title lines). References, bibliography and acknowledgement sections are left out, hyphenated
 * line breaks are joined, and whitespace is normalised.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { inputError } from "./errors";

export interface PaperSection {
  /** Heading of the section ("" before the first heading). */
  heading: string;
  /** First page (PDF only). */
  page?: number;
  text: string;
}

export interface Paper {
  /** Path relative to the papers folder, "/"-separated. */
  file: string;
  kind: "pdf" | "markdown" | "text";
  title: string;
  sections: PaperSection[];
}

const paperExtensions: Record<string, Paper["kind"]> = { ".pdf": "pdf", ".md": "markdown", ".markdown": "markdown", ".txt": "text" };

const DROPPED_SECTION = /^(?:(?:\d+(?:\.\d+)*|[ivxlc]+)\.?\s+)?(references|bibliography|acknowledge?ments?|works cited)\s*$/i;

/** The paper files in `dir` (and its sub-folders), sorted; others are listed as skipped. */
export function listPaperFiles(dir: string): { files: string[]; skipped: string[] } {
  let stats;
  try {
    stats = statSync(dir);
  } catch {
    throw inputError(dir, "the papers folder does not exist");
  }
  if (!stats.isDirectory()) throw inputError(dir, "is not a folder; --papers takes a folder of PDF, Markdown (.md) and text (.txt) papers");
  const files: string[] = [];
  const skipped: string[] = [];
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (entry.name.startsWith(".")) continue;
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (paperExtensions[path.extname(entry.name).toLowerCase()]) files.push(full);
      else skipped.push(full);
    }
  };
  walk(dir);
  if (!files.length)
    throw inputError(dir, `holds no papers${skipped.length ? ` (only ${skipped.length} file(s) of other types)` : ""}: put PDF (.pdf), Markdown (.md) or text (.txt) files there`);
  return { files, skipped };
}

export async function readPapers(dir: string): Promise<{ papers: Paper[]; skipped: string[] }> {
  const { files, skipped } = listPaperFiles(dir);
  const papers: Paper[] = [];
  for (const file of files) papers.push(await readPaper(file, path.relative(dir, file).split(path.sep).join("/")));
  return { papers, skipped };
}

export async function readPaper(file: string, relative = path.basename(file)): Promise<Paper> {
  const kind = paperExtensions[path.extname(file).toLowerCase()];
  if (!kind) throw inputError(file, "is not a PDF, Markdown or text file");
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw inputError(file, `cannot be read (${(error as Error).message})`);
  }
  const raw = kind === "pdf" ? await pdfSections(file, bytes) : kind === "markdown" ? markdownSections(decodeUtf8(file, bytes)) : textSections(decodeUtf8(file, bytes));
  const sections = keepContent(raw);
  if (!sections.some((section) => section.text.length > 0))
    throw inputError(file, kind === "pdf" ? "has no extractable text (a scanned PDF? run OCR on it first)" : "is empty");
  const title = raw.find((section) => section.heading)?.heading ?? path.basename(file, path.extname(file));
  return { file: relative, kind, title, sections };
}

/** Strict UTF-8: a file in another encoding is named, with the first bad byte's offset. */
export function decodeUtf8(file: string, bytes: Buffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    let offset = 0;
    for (let end = 1; end <= bytes.length; end++) {
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, end), { stream: true });
        offset = end;
      } catch {
        break;
      }
    }
    throw inputError(file, `is not valid UTF-8 text (first invalid byte at offset ${offset}); convert it, e.g. iconv -f latin1 -t utf-8`);
  }
}

/**
 * Normalises whitespace and joins words broken across lines. "detec-\ntion" becomes "detection"
 * when the text uses "detection" elsewhere; otherwise the hyphen is kept ("fixed-\npoint" ->
 * "fixed-point"), since a line may end at a compound word's own hyphen.
 */
export function cleanText(text: string, vocabulary: Set<string> = wordsOf(text)): string {
  return text
    .replace(/\r\n?/g, "\n")
    .replace(/\u00ad/g, "")
    .replace(/(\p{L}+)-[ \t]*\n[ \t]*(\p{Ll}\p{L}*)/gu, (_, head: string, tail: string) => (vocabulary.has(`${head}${tail}`.toLowerCase()) ? `${head}${tail}` : `${head}-${tail}`))
    .replace(/[ \t\u00a0]+/g, " ")
    .replace(/ *\n */g, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

function wordsOf(text: string): Set<string> {
  return new Set((text.match(/\p{L}+(?![-\p{L}]*\n)/gu) ?? []).map((word) => word.toLowerCase()));
}

/** Joins the lines of each paragraph (single newlines) and keeps blank lines between paragraphs. */
function joinParagraphs(text: string): string {
  return text
    .split(/\n\s*\n/)
    .map((paragraph) => paragraph.replace(/\s*\n\s*/g, " ").trim())
    .filter(Boolean)
    .join("\n\n");
}

function keepContent(sections: PaperSection[]): PaperSection[] {
  const kept: PaperSection[] = [];
  const vocabulary = wordsOf(sections.map((section) => section.text).join("\n"));
  for (const section of sections) {
    if (DROPPED_SECTION.test(section.heading.trim())) continue;
    const text = joinParagraphs(cleanText(section.text, vocabulary));
    if (!text && !section.heading) continue;
    kept.push({ ...section, heading: section.heading.trim(), text });
  }
  return kept.filter((section) => section.text);
}

/** Drops Markdown emphasis and code marks from a heading; underscores inside names (find_peaks) stay. */
function stripEmphasis(heading: string): string {
  return heading.replace(/[*`]/g, "").replace(/(^|[^\p{L}\p{N}_])_+|_+(?=[^\p{L}\p{N}_]|$)/gu, "$1");
}

export function markdownSections(markdown: string): PaperSection[] {
  const text = markdown
    .replace(/^\uFEFF/, "")
    .replace(/^---\n[\s\S]*?\n---\n/, "")
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/\[([^\]]+)\]\([^)]*\)/g, "$1");
  const sections: PaperSection[] = [];
  let current: PaperSection = { heading: "", text: "" };
  let inFence = false;
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    const heading = inFence ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      sections.push(current);
      current = { heading: stripEmphasis(heading[1]), text: "" };
    } else {
      current.text += `${line.replace(/\*\*|__/g, "")}\n`;
    }
  }
  sections.push(current);
  return sections;
}

const NUMBERED_HEADING = /^(?:\d+(?:\.\d+)*\.?|[IVX]+\.)\s+\p{Lu}[^.!?]{1,80}$/u;

export function textSections(text: string): PaperSection[] {
  const sections: PaperSection[] = [];
  let current: PaperSection = { heading: "", text: "" };
  const paragraphs = text.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n").split(/\n\s*\n/);
  for (const paragraph of paragraphs) {
    const trimmed = paragraph.trim();
    const isHeading = !trimmed.includes("\n") && trimmed.length > 0 && trimmed.length <= 90 && (NUMBERED_HEADING.test(trimmed) || DROPPED_SECTION.test(trimmed) || (/^[\p{Lu}\d][^.!?:;,]*$/u.test(trimmed) && trimmed.split(/\s+/).length <= 10));
    if (isHeading) {
      sections.push(current);
      current = { heading: trimmed, text: "" };
    } else current.text += `${paragraph}\n\n`;
  }
  sections.push(current);
  return sections;
}

interface PdfLine {
  text: string;
  size: number;
  y: number;
  page: number;
}

async function pdfSections(file: string, bytes: Buffer): Promise<PaperSection[]> {
  const { getDocumentProxy } = await import("unpdf");
  let document: Awaited<ReturnType<typeof getDocumentProxy>>;
  try {
    document = await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0 });
  } catch (error) {
    const name = (error as Error).name;
    if (name === "PasswordException") throw inputError(file, "is encrypted (it needs a password); save a decrypted copy (e.g. qpdf --decrypt) and use that");
    throw inputError(file, `is not a readable PDF (${(error as Error).message})`);
  }
  const lines: PdfLine[] = [];
  try {
    for (let pageNumber = 1; pageNumber <= document.numPages; pageNumber++) {
      const page = await document.getPage(pageNumber);
      const content = await page.getTextContent();
      let current: PdfLine | null = null;
      for (const item of content.items as { str?: string; transform?: number[]; hasEOL?: boolean }[]) {
        if (typeof item.str !== "string" || !item.transform) continue;
        const size = Math.round(Math.hypot(item.transform[0], item.transform[1]) * 10) / 10;
        const y = item.transform[5];
        if (current && Math.abs(current.y - y) > Math.max(2, size * 0.5)) {
          lines.push(current);
          current = null;
        }
        if (item.str) {
          if (!current) current = { text: item.str, size, y, page: pageNumber };
          else {
            current.text += (current.text.endsWith(" ") || item.str.startsWith(" ") ? "" : current.text.endsWith("-") ? "" : " ") + item.str;
            current.size = Math.max(current.size, size);
          }
        }
        if (item.hasEOL && current) {
          lines.push(current);
          current = null;
        }
      }
      if (current) lines.push(current);
    }
  } catch (error) {
    throw inputError(file, `could not be read to the end (${(error as Error).message})`);
  }
  if (!lines.length) return [];
  const bodySize = modeSize(lines);
  const sections: PaperSection[] = [];
  let current: PaperSection = { heading: "", page: 1, text: "" };
  let previous: PdfLine | null = null;
  for (const line of lines) {
    const text = line.text.trim();
    if (!text) continue;
    const larger = line.size >= bodySize * 1.15;
    const heading = text.length <= 120 && (larger || NUMBERED_HEADING.test(text) || (DROPPED_SECTION.test(text) && line.size >= bodySize));
    if (heading) {
      // A heading that wraps onto a second line of the same size continues the first.
      if (previous && previous.size === line.size && current.text === "" && current.heading && previous.page === line.page) current.heading += ` ${text}`;
      else {
        sections.push(current);
        current = { heading: text, page: line.page, text: "" };
      }
    } else {
      // A gap larger than a line's height starts a new paragraph.
      const gap = previous && previous.page === line.page ? previous.y - line.y : 0;
      const separator = current.text === "" ? "" : gap > line.size * 1.9 ? "\n\n" : "\n";
      current.text += separator + text;
    }
    previous = line;
  }
  sections.push(current);
  return sections;
}

function modeSize(lines: PdfLine[]): number {
  const weight = new Map<number, number>();
  for (const line of lines) weight.set(line.size, (weight.get(line.size) ?? 0) + line.text.length);
  return [...weight].sort((a, b) => b[1] - a[1])[0][0];
}

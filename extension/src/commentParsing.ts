/**
 * Finds the comment a requirement is written in and reads the requirement out of it. Pure text
 * functions (no vscode import) so they are unit-tested with node:test.
 *
 * Python: consecutive `#` lines, or a triple-quoted string statement (docstring).
 * C-like (C, C++, ...): consecutive `//` lines, or a `/* ... *\/` block.
 */

export type CommentStyle = "hash" | "docstring" | "slashes" | "block";

export interface CommentBlock {
  /** First and last line (0-based, inclusive). */
  startLine: number;
  endLine: number;
  style: CommentStyle;
  /** Leading whitespace of the first line: what inserted code is indented with. */
  indent: string;
  /** The text without comment markers, lines joined with "\n". */
  text: string;
}

export interface ParsedRequirement {
  requirement: string;
  constraints?: string;
}

const HASH_LANGUAGES = new Set(["python"]);
const C_LIKE_LANGUAGES = new Set(["c", "cpp", "cuda-cpp", "arduino", "objective-c", "objective-cpp", "java", "javascript", "typescript", "go", "rust", "csharp"]);

export function supportsLanguage(languageId: string): boolean {
  return HASH_LANGUAGES.has(languageId) || C_LIKE_LANGUAGES.has(languageId);
}

const leadingWhitespace = (line: string) => /^\s*/.exec(line)![0];

function hashBlock(lines: string[], line: number): CommentBlock | undefined {
  const isHash = (text: string | undefined) => text !== undefined && /^\s*#/.test(text) && !/^#!/.test(text);
  if (!isHash(lines[line])) return undefined;
  let start = line;
  let end = line;
  while (start > 0 && isHash(lines[start - 1])) start--;
  while (end < lines.length - 1 && isHash(lines[end + 1])) end++;
  const text = lines
    .slice(start, end + 1)
    .map((text) => text.replace(/^\s*#+ ?/, "").trimEnd())
    .join("\n");
  return { startLine: start, endLine: end, style: "hash", indent: leadingWhitespace(lines[start]), text };
}

const DOCSTRING_OPEN = /^\s*(?:[rRuUbBfF]{0,2})("""|''')/;

/** Triple-quoted string statements of a Python file, as [start, end] line ranges. */
function docstringRanges(lines: string[]): { start: number; end: number; quote: string }[] {
  const ranges: { start: number; end: number; quote: string }[] = [];
  let i = 0;
  while (i < lines.length) {
    const open = DOCSTRING_OPEN.exec(lines[i]);
    if (!open) {
      i++;
      continue;
    }
    const quote = open[1];
    const afterOpen = lines[i].slice(open[0].length);
    if (afterOpen.includes(quote)) {
      ranges.push({ start: i, end: i, quote });
      i++;
      continue;
    }
    let end = i + 1;
    while (end < lines.length && !lines[end].includes(quote)) end++;
    if (end >= lines.length) break;
    ranges.push({ start: i, end, quote });
    i = end + 1;
  }
  return ranges;
}

function docstringBlock(lines: string[], line: number): CommentBlock | undefined {
  const range = docstringRanges(lines).find((candidate) => candidate.start <= line && line <= candidate.end);
  if (!range) return undefined;
  const raw = lines.slice(range.start, range.end + 1).join("\n");
  const open = DOCSTRING_OPEN.exec(raw)!;
  const body = raw.slice(open[0].length);
  const close = body.lastIndexOf(range.quote);
  const text = dedent(body.slice(0, close < 0 ? undefined : close));
  return { startLine: range.start, endLine: range.end, style: "docstring", indent: leadingWhitespace(lines[range.start]), text };
}

function slashesBlock(lines: string[], line: number): CommentBlock | undefined {
  const isSlashes = (text: string | undefined) => text !== undefined && /^\s*\/\//.test(text);
  if (!isSlashes(lines[line])) return undefined;
  let start = line;
  let end = line;
  while (start > 0 && isSlashes(lines[start - 1])) start--;
  while (end < lines.length - 1 && isSlashes(lines[end + 1])) end++;
  const text = lines
    .slice(start, end + 1)
    .map((text) => text.replace(/^\s*\/\/+!? ?/, "").trimEnd())
    .join("\n");
  return { startLine: start, endLine: end, style: "slashes", indent: leadingWhitespace(lines[start]), text };
}

function blockCommentBlock(lines: string[], line: number): CommentBlock | undefined {
  // Scan from the top so that "/*" inside an earlier block does not confuse us (strings are not parsed).
  let open: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    let rest = lines[i];
    for (;;) {
      if (open === undefined) {
        const at = rest.indexOf("/*");
        if (at < 0) break;
        open = i;
        rest = rest.slice(at + 2);
      } else {
        const at = rest.indexOf("*/");
        if (at < 0) break;
        const start = open;
        open = undefined;
        if (start <= line && line <= i) return makeBlock(lines, start, i);
        rest = rest.slice(at + 2);
      }
    }
    if (i >= line && open === undefined) break;
  }
  return undefined;
}

function makeBlock(lines: string[], start: number, end: number): CommentBlock {
  const raw = lines.slice(start, end + 1).join("\n");
  const body = raw.slice(raw.indexOf("/*") + 2, raw.lastIndexOf("*/"));
  const text = body
    .replace(/^\*+/, "")
    .split("\n")
    .map((text) => text.replace(/^\s*\*+(?!\/) ?/, "").trimEnd())
    .join("\n");
  return { startLine: start, endLine: end, style: "block", indent: leadingWhitespace(lines[start]), text: trimBlankLines(text) };
}

function trimBlankLines(text: string): string {
  return text.replace(/^([ \t]*\n)+/, "").replace(/(\n[ \t]*)+$/, "");
}

function dedent(text: string): string {
  const lines = trimBlankLines(text).split("\n");
  const indents = lines.filter((line) => line.trim()).map((line) => leadingWhitespace(line).length);
  const common = indents.length ? Math.min(...indents) : 0;
  return lines.map((line) => line.slice(common).trimEnd()).join("\n");
}

/** The comment block around `line` (or the first comment line of lines startLine..endLine). */
export function findCommentBlock(text: string, languageId: string, startLine: number, endLine = startLine): CommentBlock | undefined {
  const lines = text.split(/\r?\n/);
  for (let line = Math.max(0, startLine); line <= Math.min(endLine, lines.length - 1); line++) {
    const block = HASH_LANGUAGES.has(languageId)
      ? (hashBlock(lines, line) ?? docstringBlock(lines, line))
      : C_LIKE_LANGUAGES.has(languageId)
        ? (slashesBlock(lines, line) ?? blockCommentBlock(lines, line))
        : undefined;
    if (block && block.text.trim()) return block;
  }
  return undefined;
}

/** Every comment block of a document whose text starts with a GPIoT marker ("GPIoT:", "@gpiot"). */
export function findMarkedBlocks(text: string, languageId: string): CommentBlock[] {
  const lines = text.split(/\r?\n/);
  const blocks: CommentBlock[] = [];
  for (let line = 0; line < lines.length; line++) {
    if (!/(#|\/\/|\/\*|"""|''')\s*(GPIoT\s*:|@gpiot\b)/i.test(lines[line])) continue;
    const block = findCommentBlock(text, languageId, line);
    if (block && !blocks.some((known) => known.startLine === block.startLine)) {
      blocks.push(block);
      line = block.endLine;
    }
  }
  return blocks;
}

/** Reads the requirement (and a "Constraints:" line, if any) out of comment text. */
export function parseRequirement(text: string): ParsedRequirement {
  const lines: string[] = [];
  const constraints: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const constraint = /^(constraints?|resources?|resource constraints?)\s*:\s*(.*)$/i.exec(line);
    if (constraint) {
      if (constraint[2]) constraints.push(constraint[2]);
      continue;
    }
    lines.push(line.replace(/^(GPIoT\s*:|@gpiot\b|TODO\s*(\(gpiot\))?\s*:|requirement\s*:)\s*/i, ""));
  }
  const requirement = lines.join("\n").replace(/\n{3,}/g, "\n\n").trim();
  return constraints.length ? { requirement, constraints: constraints.join("; ") } : { requirement };
}

/** Text to insert after the comment's last line: the code, indented like the comment. */
export function insertionText(block: CommentBlock, code: string, eol = "\n"): string {
  const body = code.replace(/\r\n?/g, "\n").replace(/\n+$/, "");
  const indented = body
    .split("\n")
    .map((line) => (line ? block.indent + line : line))
    .join(eol);
  return `${eol}${indented}${eol}`;
}

const REQUIREMENT_VERBS =
  /\b(detect|read|reads|measure|monitor|classify|recogni[sz]e|count|estimate|compute|calculate|report|filter|track|predict|log|send|collect|sample|warn|alert|control|sense|identify|segment|extract|forecast|stream|publish|acquire|trigger|smooth|denoise|convert|analy[sz]e|notify|record|transmit|localize|locate|build|implement|write a program|generate)\b/i;
const IOT_WORDS =
  /\b(sensors?|signals?|data|devices?|accelerometers?|gyroscopes?|imu|ecg|eeg|emg|ppg|temperature|humidity|pressure|heart|heartbeats?|steps?|wifi|csi|bluetooth|ble|camera|images?|audio|microphones?|sound|gps|radar|lidar|readings?|samples?|hz|khz|mqtt|iot|raspberry|jetson|arduino|esp32|stm32|battery|motion|activit(y|ies)|gestures?|vibration|current|voltage|power|energy|light|co2|air quality|soil)\b/i;
const NOT_A_REQUIREMENT = /\b(copyright|licen[cs]ed?|spdx|all rights reserved|todo|fixme|xxx|hack|noqa|pylint|type:\s*ignore|pragma|-\*-|@param|:param|args:|returns?:|raises:|parameters\n-{3,})/i;
const CODE_LINE = /(^\s*(def|class|import|from|return|if|for|while|print|#include|int|void|let|const|var)\b)|[;{}]\s*$|\w\s*=\s*[\w"'[(]|\w\(.*\)/;

/**
 * Whether a comment reads like a requirement worth a "Synthesize from comment" CodeLens: a few
 * sentences that say what to do (a verb such as detect, read, classify, count, report) with what
 * (a sensor, a signal, data, a device), and that are not a licence header, a TODO, a docstring of
 * parameters, or commented-out code.
 */
export function looksLikeRequirement(block: CommentBlock): boolean {
  const text = block.text.trim();
  if (/^(GPIoT\s*:|@gpiot\b)/i.test(text)) return true;
  const words = text.match(/[\p{L}\p{N}][\p{L}\p{N}'-]*/gu) ?? [];
  if (words.length < 6 || words.length > 150) return false;
  if (NOT_A_REQUIREMENT.test(text)) return false;
  const lines = text.split("\n").filter((line) => line.trim());
  if (lines.filter((line) => CODE_LINE.test(line)).length > lines.length / 3) return false;
  return REQUIREMENT_VERBS.test(text) && IOT_WORDS.test(text);
}

const COMMENT_START = /^\s*(#|\/\/|\/\*|(?:[rRuUbBfF]{0,2})("""|'''))/;

/** Comment blocks that read like requirements or start with a GPIoT marker, in document order. */
export function findRequirementBlocks(text: string, languageId: string, maxLines = 5000): CommentBlock[] {
  const lines = text.split(/\r?\n/);
  const blocks: CommentBlock[] = [];
  for (let line = 0; line < Math.min(lines.length, maxLines); line++) {
    if (!COMMENT_START.test(lines[line])) continue;
    const block = findCommentBlock(text, languageId, line);
    if (!block || block.startLine !== line) {
      if (block) line = Math.max(line, block.endLine);
      continue;
    }
    if (looksLikeRequirement(block)) blocks.push(block);
    line = block.endLine;
  }
  return blocks;
}

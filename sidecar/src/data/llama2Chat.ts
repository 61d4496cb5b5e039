/**
 * The Llama-2 chat text the published GPIoT datasets use, one conversation per row:
 *
 *   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>
 *
 * (more turns repeat `<s>[INST] {user} [/INST] {answer} </s>`; the system block is optional).
 * Parsing splits a row into messages exactly at the template's markers, trimming only the
 * template's own spacing; rendering writes the canonical form back, so a canonical row survives
 * parse + render unchanged.
 */
import type { Message } from "./records";

export type ChatParse = { ok: true; messages: Message[] } | { ok: false; reason: string };

const OPEN = "[INST]";
const CLOSE = "[/INST]";
const SYS_OPEN = "<<SYS>>";
const SYS_CLOSE = "<</SYS>>";

function positions(text: string, marker: string): number[] {
  const found: number[] = [];
  for (let at = text.indexOf(marker); at >= 0; at = text.indexOf(marker, at + marker.length)) found.push(at);
  return found;
}

export function parseLlama2Chat(text: string): ChatParse {
  if (typeof text !== "string" || !text.trim()) return { ok: false, reason: "empty row" };
  const opens = positions(text, OPEN);
  const closes = positions(text, CLOSE);
  if (!opens.length) return { ok: false, reason: "no [INST] instruction" };
  if (closes.length < opens.length) return { ok: false, reason: "an [INST] instruction is not closed by [/INST]" };
  if (closes.length > opens.length) return { ok: false, reason: "a [/INST] has no [INST] before it" };
  for (let i = 0; i < opens.length; i++) {
    if (closes[i] < opens[i] || (i + 1 < opens.length && opens[i + 1] < closes[i])) return { ok: false, reason: "[INST] and [/INST] are not in order" };
  }
  const before = text.slice(0, opens[0]).trim();
  if (before !== "" && before !== "<s>") return { ok: false, reason: "text before the first [INST]" };
  const messages: Message[] = [];
  for (let i = 0; i < opens.length; i++) {
    let instruction = text.slice(opens[i] + OPEN.length, closes[i]).trim();
    if (instruction.includes(SYS_OPEN) || instruction.includes(SYS_CLOSE)) {
      if (i > 0) return { ok: false, reason: "a <<SYS>> block after the first turn" };
      if (!instruction.startsWith(SYS_OPEN)) return { ok: false, reason: "text before <<SYS>>" };
      const end = instruction.indexOf(SYS_CLOSE);
      if (end < 0) return { ok: false, reason: "<<SYS>> is not closed by <</SYS>>" };
      const system = instruction.slice(SYS_OPEN.length, end).trim();
      if (system) messages.push({ role: "system", content: system });
      instruction = instruction.slice(end + SYS_CLOSE.length).trim();
    }
    if (!instruction) return { ok: false, reason: "an empty instruction" };
    let answer = text.slice(closes[i] + CLOSE.length, i + 1 < opens.length ? opens[i + 1] : text.length);
    answer = answer.trimEnd();
    if (i + 1 < opens.length && answer.endsWith("<s>")) answer = answer.slice(0, -3).trimEnd();
    if (answer.endsWith("</s>")) answer = answer.slice(0, -4);
    answer = answer.trim();
    if (!answer) return { ok: false, reason: i + 1 < opens.length ? "an empty answer before the next turn" : "an empty answer" };
    messages.push({ role: "user", content: instruction }, { role: "assistant", content: answer });
  }
  return { ok: true, messages };
}

export function renderLlama2Chat(messages: Message[]): string {
  const system = messages[0]?.role === "system" ? messages[0].content : null;
  const turns = system === null ? messages : messages.slice(1);
  let text = "";
  for (let i = 0; i + 1 < turns.length; i += 2) {
    const header = i === 0 && system !== null ? `${SYS_OPEN}\n${system}\n${SYS_CLOSE}\n\n` : "";
    text += `<s>${OPEN} ${header}${turns[i].content} ${CLOSE} ${turns[i + 1].content} </s>`;
  }
  return text;
}

/**
 * `npm run l10n`: writes l10n/bundle.l10n.json, the English source of every string the extension
 * shows through vscode.l10n.t (translators copy it to bundle.l10n.<locale>.json). The strings of
 * package.json (commands, settings, views, walkthrough) are in package.nls.json.
 *   tsx extension/scripts/l10n.ts [--check]   (--check: exit 1 when the bundle is out of date)
 */
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BUNDLE = path.join(ROOT, "l10n", "bundle.l10n.json");

/** The first argument of every vscode.l10n.t("…") / ('…') call, unescaped. */
export function extractMessages(source: string): string[] {
  const messages: string[] = [];
  const call = /vscode\.l10n\.t\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')/g;
  for (const match of source.matchAll(call)) {
    const literal = match[1];
    const body = literal.slice(1, -1);
    messages.push(JSON.parse(`"${body.replace(/\\'/g, "'").replace(/(?<!\\)"/g, '\\"')}"`));
  }
  return messages;
}

export function buildBundle(): Record<string, string> {
  const dir = path.join(ROOT, "extension", "src");
  const messages = new Set<string>();
  for (const file of readdirSync(dir).filter((name) => name.endsWith(".ts")).sort()) for (const message of extractMessages(readFileSync(path.join(dir, file), "utf8"))) messages.add(message);
  return Object.fromEntries([...messages].sort().map((message) => [message, message]));
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(fileURLToPath(import.meta.url))) {
  const text = `${JSON.stringify(buildBundle(), null, 2)}\n`;
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(BUNDLE, "utf8");
    } catch {
      // missing: out of date
    }
    if (current !== text) {
      console.error(`${path.relative(ROOT, BUNDLE)} is out of date: run npm run l10n`);
      process.exit(1);
    }
  } else {
    mkdirSync(path.dirname(BUNDLE), { recursive: true });
    writeFileSync(BUNDLE, text);
    console.log(`${path.relative(ROOT, BUNDLE)}: ${Object.keys(JSON.parse(text)).length} strings`);
  }
}

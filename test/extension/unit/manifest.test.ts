/**
 * The extension's manifest as the Marketplace and VS Code read it: every %key% of package.json is
 * in package.nls.json, the l10n bundle lists every vscode.l10n.t string of the sources, activation
 * is not on every Python file, the extension runs beside the workspace, the metadata and the
 * LICENSE agree, the walkthrough's media exist, and every command a menu names is declared.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import test from "node:test";
import { buildBundle, BUNDLE, extractMessages } from "../../../extension/scripts/l10n";

const ROOT = path.resolve(import.meta.dirname, "..", "..", "..");
const manifest = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8"));
const nls = JSON.parse(readFileSync(path.join(ROOT, "package.nls.json"), "utf8"));

test("every %key% in package.json has an English string in package.nls.json, and none is unused", () => {
  const text = readFileSync(path.join(ROOT, "package.json"), "utf8");
  const keys = new Set([...text.matchAll(/"%([^%"]+)%"/g)].map((match) => match[1]));
  for (const key of keys) assert.ok(typeof nls[key] === "string" && nls[key].length > 0, `${key} is in package.nls.json`);
  for (const key of Object.keys(nls)) assert.ok(keys.has(key), `${key} of package.nls.json is used`);
});

test("l10n/bundle.l10n.json is up to date with the vscode.l10n.t strings", () => {
  assert.deepEqual(extractMessages(`vscode.l10n.t("a \\"b\\" {0}", x); vscode.l10n.t('it\\'s "{0}"', y)`), ['a "b" {0}', `it's "{0}"`]);
  assert.deepEqual(JSON.parse(readFileSync(BUNDLE, "utf8")), buildBundle(), "run npm run l10n");
  assert.equal(manifest.l10n, "./l10n");
});

test("activation: GPIoT's own commands and views, and workspaces with GPIoT programs; never every Python file", () => {
  assert.ok(!manifest.activationEvents.some((event: string) => event.startsWith("onLanguage:") || event === "*" || event === "onStartupFinished"), manifest.activationEvents.join(", "));
  assert.deepEqual(manifest.extensionKind, ["workspace"]);
});

test("metadata: licence file matches, repository, bugs and homepage are set, CHANGELOG has this version", () => {
  assert.equal(manifest.license, "MIT");
  assert.match(readFileSync(path.join(ROOT, "LICENSE"), "utf8"), /^MIT License/);
  assert.match(manifest.repository.url, /^https:\/\//);
  assert.match(manifest.bugs.url, /^https:\/\//);
  assert.match(manifest.homepage, /^https:\/\//);
  assert.match(readFileSync(path.join(ROOT, "CHANGELOG.md"), "utf8"), new RegExp(`## ${manifest.version.replace(/\./g, "\\.")}`));
  const readme = readFileSync(path.join(ROOT, "docs", "extension.md"), "utf8");
  const firstHeading = readme.split("\n").find((line) => line.startsWith("## "));
  assert.match(firstHeading ?? "", /Install/i, "the Marketplace README starts with installing");
});

test("walkthrough steps have their media; menus name declared commands", () => {
  for (const walkthrough of manifest.contributes.walkthroughs) for (const step of walkthrough.steps) assert.ok(existsSync(path.join(ROOT, step.media.markdown ?? step.media.image)), step.id);
  const declared = new Set(manifest.contributes.commands.map((command: { command: string }) => command.command));
  for (const [menu, entries] of Object.entries(manifest.contributes.menus) as [string, { command: string }[]][]) for (const entry of entries) assert.ok(declared.has(entry.command), `${menu}: ${entry.command}`);
});

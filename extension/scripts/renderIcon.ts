/**
 * Renders media/icon.png (128×128, the Marketplace/extension-list icon; vsce refuses SVG icons)
 * from the same drawing as the activity-bar icon media/gpiot.svg, in colour, with Debian's
 * Chromium through playwright-core. `tsx extension/scripts/renderIcon.ts`
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const glyph = readFileSync(path.join(root, "media", "gpiot.svg"), "utf8").replace(/currentColor/g, "#ffffff");
const html = `<!doctype html><html><body style="margin:0;background:transparent">
<div style="width:128px;height:128px;border-radius:26px;background:linear-gradient(135deg,#0e7a6f,#1f4fa8);display:flex;align-items:center;justify-content:center">
  <div style="width:96px;height:96px">${glyph.replace('width="24" height="24"', 'width="96" height="96"')}</div>
</div></body></html>`;

const profile = mkdtempSync(path.join(os.tmpdir(), "gpiot-icon-"));
try {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.GPIOT_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"],
    viewport: { width: 128, height: 128 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  await page.setContent(html);
  await page.screenshot({ path: path.join(root, "media", "icon.png"), omitBackground: true, clip: { x: 0, y: 0, width: 128, height: 128 } });
  await context.close();
  console.log("media/icon.png written");
} finally {
  rmSync(profile, { recursive: true, force: true });
}

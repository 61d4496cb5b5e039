#!/usr/bin/env node
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/cli.mjs", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write("gpiot: the CLI is not built yet; run `npm run build` in the GPIoT folder first.\n");
  process.exit(2);
}
await import(cli.href);

/**
 * The sidecar process: `node dist/sidecar.mjs --stdio` (or `--node-ipc`). Holds the models and
 * serves the protocol until `shutdown`/`exit`, until its client's process is gone, or until the
 * transport closes.
 */
import { createConnection } from "vscode-languageserver/node";
import { serveEngine } from "./server/sidecarServer";

const connection = createConnection();
const served = serveEngine(connection, { debug: process.env.GPIOT_DEBUG === "1" });

let exiting = false;
async function exitAfterCleanup(code: number): Promise<void> {
  if (exiting) return;
  exiting = true;
  await served.engine()?.dispose().catch(() => undefined);
  process.exit(code);
}

process.on("SIGTERM", () => void exitAfterCleanup(0));
process.on("SIGINT", () => void exitAfterCleanup(0));
process.on("uncaughtException", (error) => {
  connection.console.error(`Uncaught error in the sidecar: ${error.stack ?? error.message}`);
});
process.on("unhandledRejection", (reason) => {
  connection.console.error(`Unhandled rejection in the sidecar: ${(reason as Error)?.stack ?? reason}`);
});
if (process.argv.includes("--stdio")) process.stdin.on("end", () => void exitAfterCleanup(0));

connection.listen();

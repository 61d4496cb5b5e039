/**
 * The sidecar process: `node dist/sidecar.mjs --stdio` (or `--node-ipc`). Holds the models and
 * serves the protocol until `shutdown`/`exit`, until its client's process is gone, or until the
 * transport closes.
 */
import { createConnection, StreamMessageWriter, type Connection } from "vscode-languageserver/node";
import { serveEngine } from "./server/sidecarServer";
import { TolerantMessageReader } from "./server/tolerantMessageReader";

function connect(): Connection {
  if (!process.argv.includes("--stdio")) return createConnection();
  const writer = new StreamMessageWriter(process.stdout);
  const reader = new TolerantMessageReader(process.stdin, (problem, reply) => {
    process.stderr.write(`gpiot-sidecar: bad input: ${problem}\n`);
    if (reply) void writer.write({ jsonrpc: "2.0", id: reply.id, error: { code: reply.code, message: reply.message } } as never);
  });
  return createConnection(reader, writer);
}

const connection = connect();
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

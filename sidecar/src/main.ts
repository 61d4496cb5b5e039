/**
 * The sidecar process: `node dist/sidecar.mjs --stdio` (or `--node-ipc`). Holds the models and
 * serves the protocol until `shutdown`/`exit`, until its client's process is gone, or until the
 * transport closes.
 */
import { createConnection, IPCMessageWriter, StreamMessageWriter, type Connection, type Message, type MessageWriter } from "vscode-languageserver/node";
import { GatedMessageWriter, JsonRpcGate } from "./server/jsonRpcGate";
import { serveEngine } from "./server/sidecarServer";
import { TolerantIpcMessageReader, TolerantMessageReader } from "./server/tolerantMessageReader";

const USAGE = "Usage: node sidecar.mjs --stdio | --node-ipc\n";

function gateFor(writer: MessageWriter): JsonRpcGate {
  return new JsonRpcGate({
    send: (payload) => void writer.write(payload as Message).catch(() => undefined),
    report: (problem) => process.stderr.write(`gpiot-sidecar: bad input: ${problem}\n`),
  });
}

function connect(): Connection {
  if (process.argv.includes("--stdio")) {
    const writer = new StreamMessageWriter(process.stdout);
    const gate = gateFor(writer);
    return createConnection(new TolerantMessageReader(process.stdin, gate), new GatedMessageWriter(writer, gate));
  }
  if (process.argv.includes("--node-ipc") && process.send) {
    const writer = new IPCMessageWriter(process);
    const gate = gateFor(writer);
    return createConnection(new TolerantIpcMessageReader(process, gate), new GatedMessageWriter(writer, gate));
  }
  process.stderr.write(process.argv.includes("--node-ipc") ? "gpiot-sidecar: --node-ipc needs an IPC channel (spawn it with stdio 'ipc').\n" : USAGE);
  process.exit(2);
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
else process.on("disconnect", () => void exitAfterCleanup(0));

connection.listen();

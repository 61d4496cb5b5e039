// Minimal CommonJS extension: one command that shows a message, writes into the
// output channel, and returns what the extension host sees (so tests can check
// that env vars reach it).
const vscode = require("vscode");

let calls = 0;

function activate(context) {
  console.log(`[sample] activated in pid ${process.pid}, node ${process.version}`);
  // Both reach the runner's stdout/stderr too (the extension host forwards them).
  process.stdout.write("[sample] a process.stdout.write line\n");
  console.error("[sample] a console.error line");
  const out = vscode.window.createOutputChannel("GPIoT Sample");
  context.subscriptions.push(out);
  context.subscriptions.push(
    vscode.commands.registerCommand("sample.hello", async () => {
      calls++;
      const result = {
        greeting: "Hello from the GPIoT sample",
        calls,
        pid: process.pid,
        // Environment handed to code-server reaches the extension host:
        model: process.env.GPIOT_SAMPLE_MODEL,
      };
      out.appendLine(JSON.stringify(result));
      void vscode.window.showInformationMessage(`${result.greeting} (#${calls})`);
      return result;
    }),
  );
}

function deactivate() {}

module.exports = { activate, deactivate };

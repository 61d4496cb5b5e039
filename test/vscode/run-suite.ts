/**
 * CLI: run an extensionTestsPath mocha suite in code-server + headless Chromium.
 *   tsx test/vscode/run-suite.ts --extension <dir> --tests <compiled index.js> --workspace <dir>
 * Exits with the suite's code (0 pass, 1 fail, 124 timeout, 125 harness error).
 */
import { parseSuiteArgs } from "./args";
import { runExtensionTestsInCodeServer } from "./runInCodeServer";

const args = parseSuiteArgs(process.argv.slice(2));

// Ctrl-C / SIGTERM: let runExtensionTestsInCodeServer's finally{} stop code-server
// and Chromium (each in its own process group), then exit. One Ctrl-C often arrives
// more than once (the terminal signals the whole group and tsx/npx relay it), so only
// a signal more than 2 s after the first forces an exit (the exit hook still kills
// code-server's group).
let firstSignalAt = 0;
const controller = new AbortController();
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    if (firstSignalAt && Date.now() - firstSignalAt > 2000) process.exit(130);
    if (firstSignalAt) return;
    firstSignalAt = Date.now();
    console.error(`[vscode-test] ${sig}: stopping`);
    controller.abort();
  });
}

const code = await runExtensionTestsInCodeServer({
  extensionDevelopmentPath: args.extension,
  extensionTestsPath: args.tests,
  workspace: args.workspace,
  artifactsDir: args.artifacts,
  timeoutMs: args.timeoutMs,
  env: args.env,
  userSettings: args.userSettings,
  extensionsDir: args.extensionsDir,
  verbose: args.verbose,
  signal: controller.signal,
});
process.exit(code);

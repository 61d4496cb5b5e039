// extensionTestsPath module (the @vscode/test-electron convention): VS Code's
// extension host requires this file and awaits run(); a rejection means "tests failed".
// It runs in the extension host (real Node, CommonJS), so mocha is loaded from the
// repo's node_modules by path: the extension host has no resolution root of its own.
const path = require("node:path");
const util = require("node:util");
const REPO_ROOT = path.resolve(__dirname, "..", "..", "..", "..");
const Mocha = require(path.join(REPO_ROOT, "node_modules", "mocha"));

// The extension host forwards console.log(format, ...args) to the runner as the raw
// format string followed by the args ("%d passing (%s) 4 74ms"), so format here.
Mocha.reporters.Base.consoleLog = (...args) => console.log(util.format(...args));

async function run() {
  const mocha = new Mocha({
    ui: "tdd",
    timeout: 20_000,
    // No TTY in the extension host: colors would arrive as raw escape codes.
    color: false,
  });
  mocha.addFile(path.join(__dirname, "sample.test.js"));
  await mocha.loadFilesAsync();
  const failures = await new Promise((resolve) => mocha.run(resolve));
  if (failures > 0) throw new Error(`${failures} test(s) failed`);
}

module.exports = { run };

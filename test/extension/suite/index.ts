/**
 * extensionTestsPath module (the @vscode/test-electron convention, also used by the code-server
 * runner): VS Code's extension host requires the bundled index.cjs and awaits run(); a rejection
 * means the tests failed. mocha is required from the repository's node_modules (it stays
 * external in the bundle), the test files are the sibling *.test.cjs bundles, run in this order.
 */
import path from "node:path";
import util from "node:util";
import Mocha from "mocha";

const ORDER = ["activation", "synthesize", "retrieval", "review", "treeRules", "commentChat", "cancel", "crash", "recovery", "download", "settings", "remote"];
/** Run in a second code-server with workspace trust on, so that the workspace is in Restricted Mode. */
const RESTRICTED = ["restricted"];

export async function run(): Promise<void> {
  // The extension host forwards console.log(format, ...args) unformatted: format here.
  (Mocha.reporters.Base as unknown as { consoleLog: (...args: unknown[]) => void }).consoleLog = (...args: unknown[]) => console.log(util.format(...args));
  const mocha = new Mocha({ ui: "tdd", timeout: 90_000, color: false, reporter: "spec" });
  const grep = process.env.GPIOT_TEST_GREP;
  if (grep) mocha.grep(grep);
  for (const name of process.env.GPIOT_TEST_SUITE === "restricted" ? RESTRICTED : ORDER) mocha.addFile(path.join(__dirname, `${name}.test.cjs`));
  await mocha.loadFilesAsync();
  const failures = await new Promise<number>((resolve) => mocha.run(resolve));
  if (failures > 0) throw new Error(`${failures} test(s) failed`);
}

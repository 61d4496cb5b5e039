/**
 * The consent question follows the probe: what the sandbox can do here is found out and said
 * first, and the question never promises isolation the machine does not give.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SandboxProbeSchema } from "../../sidecar/src/verify/report";
import { askRunConsent } from "../../sidecar/src/verify/cliSupport";
import { probeIsolation, resolvePython } from "../../sidecar/src/verify/pythonEnv";
import { probeSandbox } from "../../sidecar/src/verify/sandboxProbe";

const isolation = await probeIsolation((await resolvePython("python3")).executable);

async function consent(options: { isolation: "auto" | "off" | "required"; assumeYes?: boolean; answer?: boolean; python?: string }) {
  const said: string[] = [];
  const asked: string[] = [];
  const given = await askRunConsent({
    python: options.python ?? "python3",
    isolation: options.isolation,
    assumeYes: options.assumeYes ?? false,
    write: (text) => said.push(text),
    ask: async (question) => {
      asked.push(question);
      said.push(`[asked] ${question}`);
      return options.answer ?? true;
    },
  });
  return { given, said, asked };
}

describe("what the sandbox is, said before asking", () => {
  test("the probe reports what it found, per check", { skip: isolation.available ? false : `no isolation here: ${isolation.reason}` }, async () => {
    const probe = SandboxProbeSchema.parse(await probeSandbox({ python: "python3", isolation: "auto" }));
    assert.equal(probe.outcome, "isolated");
    assert.equal(probe.probed.length, 4);
    assert.match(probe.probed.join("\n"), /network: interfaces lo; a connection to 192\.0\.2\.1 failed/);
    assert.match(probe.probed.join("\n"), /PID namespace of its own/);
    assert.match(probe.probed.join("\n"), /read-only remounts work/);
    assert.match(probe.probed.join("\n"), /every capability can be dropped/);
    const { said, asked } = await consent({ isolation: "auto" });
    assert.match(said[0], /^Sandbox: The sandbox isolates the program here: .*Probed: network/);
    assert.deepEqual(asked, ["Run the generated program in this sandbox to check and repair it?"]);
    assert.ok(said.indexOf(`[asked] ${asked[0]}`) > 0, "the findings come first");
  });

  test("without isolation the user hears so before the question, and the question says it", async () => {
    const { given, said, asked } = await consent({ isolation: "off", answer: false });
    assert.equal(given, false);
    assert.match(said[0], /^Sandbox: Isolation is turned off: the program would run with your user's rights, network access and access to your files/);
    assert.deepEqual(asked, ["Run the generated program WITHOUT isolation to check and repair it?"]);
    assert.doesNotMatch(said.join(""), /no network|read-only files/);
    assert.match(said.at(-1)!, /Not running the generated program/);
  });

  test("--yes still says what the sandbox is; an unisolated run is announced", async () => {
    const { given, said, asked } = await consent({ isolation: "off", assumeYes: true });
    assert.equal(given, true);
    assert.deepEqual(asked, []);
    assert.match(said.join(""), /Isolation is turned off[\s\S]*Running it without isolation \(--yes\)/);
  });

  test("no interpreter, or required isolation that is missing: nothing is asked and nothing runs", async () => {
    const missing = await consent({ isolation: "auto", python: "/nonexistent/python3" });
    assert.equal(missing.given, false);
    assert.deepEqual(missing.asked, []);
    assert.match(missing.said[0], /Sandbox: The program cannot run: No usable Python interpreter/);
    if (!isolation.available) {
      const required = await consent({ isolation: "required", assumeYes: true });
      assert.equal(required.given, false);
      assert.match(required.said[0], /isolation is required: it will not run/);
    }
  });
});

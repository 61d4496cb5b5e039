/**
 * Says what the sandbox would be before a program runs: the interpreter, and what the isolation
 * probe found (not what the sandbox would like to promise). The CLI prints it before it asks for
 * consent, the protocol serves it as `gpiot/sandboxProbe`, and `verifyStarted` carries it, so that
 * the "auto" setting falls back to an unisolated run only where that was said first.
 */
import type { SandboxProbe } from "./report";
import { probeIsolation, resolvePython } from "./pythonEnv";
import { SANDBOX_PLATFORM_PROBLEM } from "./sandbox";

export async function probeSandbox(options: { python: string; isolation?: "auto" | "required" | "off" }): Promise<SandboxProbe> {
  const mode = options.isolation ?? "auto";
  let python;
  try {
    python = await resolvePython(options.python);
  } catch (error) {
    const reason = (error as Error).message;
    return { python: null, mode, isolated: false, probed: [], reason, outcome: "refused", summary: `The program cannot run: ${reason}` };
  }
  if (SANDBOX_PLATFORM_PROBLEM) return { python, mode, isolated: false, probed: [], reason: SANDBOX_PLATFORM_PROBLEM, outcome: "refused", summary: `The program cannot run here: ${SANDBOX_PLATFORM_PROBLEM}` };
  const limits = "a wall-clock timeout and memory, file-size and output limits";
  if (mode === "off") {
    return {
      python,
      mode,
      isolated: false,
      probed: [],
      reason: "isolation is turned off",
      outcome: "notIsolated",
      summary: `Isolation is turned off: the program would run with your user's rights, network access and access to your files; only ${limits} apply.`,
    };
  }
  const support = await probeIsolation(python.executable);
  const found = support.probed.length ? ` Probed: ${support.probed.join("; ")}.` : "";
  if (support.available) {
    return {
      python,
      mode,
      isolated: true,
      probed: support.probed,
      outcome: "isolated",
      summary: `The sandbox isolates the program here: no network (loopback only), every file outside its working copy read-only, its own process namespace, ${limits}.${found}${support.note ? ` Note: ${support.note}.` : ""}`,
    };
  }
  const reason = support.reason ?? "unknown reason";
  if (mode === "required") {
    return { python, mode, isolated: false, probed: support.probed, reason, outcome: "refused", summary: `The sandbox cannot isolate the program here (${reason}) and isolation is required: it will not run.${found}` };
  }
  return {
    python,
    mode,
    isolated: false,
    probed: support.probed,
    reason,
    outcome: "notIsolated",
    summary: `The sandbox CANNOT isolate the program here (${reason}): it would run with your user's rights, network access and access to your files; only ${limits} apply.${found}`,
  };
}

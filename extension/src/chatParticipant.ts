/**
 * `@gpiot` in the Chat view, where the chat API exists (feature-detected: VS Code builds and
 * forks without it, or with AI features turned off, simply do not get it). The prompt is the
 * requirement; the decomposition and the code stream into the response; a button writes the
 * program's files. The Comments-API conversation (commentChat.ts) works everywhere.
 */
import * as vscode from "vscode";
import type { Jobs } from "./jobs";
import { errorInfoOf } from "./sidecar";

export function registerChatParticipant(jobs: Jobs, extensionUri: vscode.Uri): vscode.Disposable | undefined {
  const chat = (vscode as { chat?: typeof vscode.chat }).chat;
  if (!chat || typeof chat.createChatParticipant !== "function") return undefined;
  try {
    const participant = chat.createChatParticipant("gpiot.chat", (request, _context, stream, token) => handle(jobs, request, stream, token));
    participant.iconPath = vscode.Uri.joinPath(extensionUri, "media", "icon.png");
    return participant;
  } catch {
    // Declared but unavailable (e.g. chat disabled by policy): nothing to offer.
    return undefined;
  }
}

async function handle(jobs: Jobs, request: vscode.ChatRequest, stream: vscode.ChatResponseStream, token: vscode.CancellationToken): Promise<vscode.ChatResult> {
  const requirement = request.prompt.trim();
  if (!requirement) {
    stream.markdown("Describe the IoT program you need, e.g. `@gpiot detect heartbeats in a single-lead ECG and report the heart rate`.");
    return {};
  }
  stream.progress("Decomposing the requirement with the local models…");
  let started;
  try {
    started = await jobs.synthesize({ requirement, review: "none", origin: "chat" });
  } catch (error) {
    return { errorDetails: { message: errorInfoOf(error).message } };
  }
  const { program } = started;
  const cancellation = token.onCancellationRequested(() => void jobs.cancel(program).catch(() => undefined));
  const subscription = jobs.store.onDidChangeProgram(({ program: changed, event }) => {
    if (changed !== program || !event) return;
    if (event.type === "subTaskDecomposed") {
      stream.markdown(`${event.index + 1}. **${event.subTask.name.replace(/\s+/g, " ")}** — ${event.subTask.problem.replace(/\s+/g, " ")}\n`);
    } else if (event.type === "stageStarted" && event.stage === "cg") {
      const index = program.subTasks.findIndex((entry) => entry.id === event.subTaskId);
      stream.progress(`Writing the code of sub-task ${index + 1} of ${program.subTasks.length}…`);
    } else if (event.type === "codeReady") {
      const index = program.subTasks.findIndex((entry) => entry.id === event.subTaskId);
      stream.markdown(`\n**Sub-task ${index + 1}**${event.syntax.checked && !event.syntax.ok ? ` (syntax error: ${event.syntax.message})` : ""}\n`);
      stream.markdown(fenced(event.artifact.code));
    }
  });
  try {
    const result = await started.done;
    if (result.status === "finished") {
      stream.button({ command: "gpiot.assemble", title: "Create Files", arguments: [{ programUid: program.uid }] });
      return { metadata: { programUid: program.uid } };
    }
    if (result.status === "cancelled") return { metadata: { cancelled: true } };
    return { errorDetails: { message: result.error?.message ?? "The generation failed." } };
  } finally {
    subscription.dispose();
    cancellation.dispose();
  }
}

function fenced(code: string): string {
  const longest = Math.max(2, ...[...code.matchAll(/`+/g)].map((match) => match[0].length));
  const fence = "`".repeat(longest + 1);
  return `${fence}python\n${code}\n${fence}\n`;
}

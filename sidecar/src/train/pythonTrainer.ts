/**
 * Runs the Python training package (training/gpiot_training) and turns its JSON lines into events.
 *
 * The interpreter: --python, else $GPIOT_TRAIN_PYTHON, else training/.venv (the README's install),
 * else python3. The package itself is found next to this installation and put on PYTHONPATH, so it
 * needs no installing; its dependencies come from training/requirements.txt, the normal pip way.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { TrainEventSchema, TrainExitCode, type TrainEvent } from "./trainEvents";

export class TrainingSetupError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = "TrainingSetupError";
  }
}

/** The training/ folder of this installation (holds gpiot_training/ and requirements.txt). */
export function trainingPackageDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, "training");
    if (existsSync(path.join(candidate, "gpiot_training", "__init__.py"))) return candidate;
    dir = path.dirname(dir);
  }
  throw new TrainingSetupError(TrainExitCode.noEnvironment, "Cannot find the training/ folder of this GPIoT installation (gpiot train runs from a source checkout).");
}

export function resolveTrainingPython(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  if (env.GPIOT_TRAIN_PYTHON) return env.GPIOT_TRAIN_PYTHON;
  const venv = path.join(trainingPackageDir(), ".venv", process.platform === "win32" ? "Scripts/python.exe" : "bin/python");
  return existsSync(venv) ? venv : "python3";
}

export interface TrainerRun {
  exitCode: number;
  events: TrainEvent[];
  error?: { code: string; message: string };
  stderrTail: string;
}

export interface TrainerOptions {
  python: string;
  onEvent?(event: TrainEvent): void;
  /** Lines on stderr (library warnings, tracebacks). */
  onStderr?(line: string): void;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /**
   * Run in its own process group, so that a terminal's Ctrl+C reaches the trainer once, through the
   * abort signal, and not also directly (a second SIGINT makes it stop without a checkpoint).
   */
  detached?: boolean;
}

/** Runs `python -m gpiot_training <args>`; an abort sends SIGINT (the trainer checkpoints and stops). */
export function runTrainer(args: string[], options: TrainerOptions): Promise<TrainerRun> {
  const trainingDir = trainingPackageDir();
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...options.env, PYTHONPATH: [trainingDir, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter), PYTHONUNBUFFERED: "1" };
    const child = spawn(options.python, ["-m", "gpiot_training", ...args], { env, stdio: ["ignore", "pipe", "pipe"], detached: options.detached ?? false });
    const killOnExit = () => child.kill("SIGKILL");
    process.on("exit", killOnExit);
    const events: TrainEvent[] = [];
    let error: TrainerRun["error"];
    let stderrTail = "";
    let stdoutBuffer = "";
    let stderrBuffer = "";
    const onAbort = () => child.kill("SIGINT");
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const handleLine = (line: string) => {
      if (!line.trim()) return;
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        options.onStderr?.(line);
        return;
      }
      const parsed = TrainEventSchema.safeParse(json);
      if (!parsed.success) {
        options.onStderr?.(`unexpected trainer output: ${line.slice(0, 200)}`);
        return;
      }
      events.push(parsed.data);
      if (parsed.data.event === "error") error = { code: parsed.data.code, message: parsed.data.message };
      options.onEvent?.(parsed.data);
    };
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdoutBuffer += chunk;
      const lines = stdoutBuffer.split("\n");
      stdoutBuffer = lines.pop()!;
      lines.forEach(handleLine);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-4000);
      stderrBuffer += chunk;
      const lines = stderrBuffer.split(/\r?\n|\r/);
      stderrBuffer = lines.pop()!;
      for (const line of lines) if (line.trim()) options.onStderr?.(line);
    });
    child.on("error", (spawnError) => {
      options.signal?.removeEventListener("abort", onAbort);
      process.off("exit", killOnExit);
      reject(new TrainingSetupError(TrainExitCode.noEnvironment, `Cannot run the Python interpreter "${options.python}": ${spawnError.message}. Install Python 3.10+ and the training packages (pip install -r ${path.join(trainingDir, "requirements.txt")}), or pass --python.`));
    });
    child.on("close", (code, signal) => {
      options.signal?.removeEventListener("abort", onAbort);
      process.off("exit", killOnExit);
      handleLine(stdoutBuffer);
      if (stderrBuffer.trim()) options.onStderr?.(stderrBuffer);
      resolve({ exitCode: code ?? (signal === "SIGINT" ? TrainExitCode.interrupted : TrainExitCode.failed), events, error, stderrTail });
    });
  });
}

/** Checks that the interpreter has the training packages; names what to install when it does not. */
export async function checkTrainingEnvironment(python: string): Promise<Extract<TrainEvent, { event: "check" }>> {
  const requirements = path.join(trainingPackageDir(), "requirements.txt");
  const run = await runTrainer(["check"], { python });
  const check = run.events.find((event): event is Extract<TrainEvent, { event: "check" }> => event.event === "check");
  if (run.exitCode !== 0 || !check) {
    const missing = /No module named '([^']+)'/.exec(run.stderrTail)?.[1];
    throw new TrainingSetupError(
      TrainExitCode.noEnvironment,
      `The Python environment ${python} cannot train${missing ? `: the package "${missing}" is not installed` : ""}. Install the training packages into it:\n` +
        `  ${python} -m pip install -r ${requirements}\n` +
        `or make a virtual environment at ${path.join(path.dirname(requirements), ".venv")} (gpiot train uses it when it exists), or pass --python.`,
    );
  }
  const missing = Object.entries(check.versions).filter(([, version]) => !version).map(([name]) => `"${name}"`);
  if (missing.length)
    throw new TrainingSetupError(
      TrainExitCode.noEnvironment,
      `The Python environment ${python} cannot train: the package${missing.length > 1 ? "s" : ""} ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} not installed. Install the training packages into it:\n  ${python} -m pip install -r ${requirements}`,
    );
  return check;
}

/** The engine's error type and the one mapping from any thrown value to a protocol ErrorInfo. */
import type { ErrorCode, ErrorInfo } from "../protocol";
import { ModelsError } from "../models/download";
import { ManifestError } from "../models/manifest";
import { ModelLoadError } from "../models/modelHost";
import { ConversionError } from "../peft/hfLlamaToGguf";
import { RequirementError } from "../pipeline/requirement";
import { CancelledError, StageOutputError } from "../pipeline/structuredGeneration";
import { ContextTooSmallError } from "../pipeline/contextBudget";
import { OutputFolderError } from "../pipeline/outputFolder";
import { PythonUnavailableError } from "../verify/pythonEnv";
import { IsolationUnavailableError } from "../verify/sandbox";
import { IndexError } from "../retrieval/indexStore";
import { RemoteBackendError } from "../remote/openaiClient";

export class EngineError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "EngineError";
  }
}

type CodedError = Error & { code: ErrorCode };

const codedErrorTypes: (new (...args: never[]) => CodedError)[] = [
  EngineError,
  RequirementError,
  ModelLoadError,
  StageOutputError,
  OutputFolderError,
  ContextTooSmallError,
  ManifestError,
  ModelsError,
  ConversionError,
  PythonUnavailableError,
  IsolationUnavailableError,
  IndexError,
  RemoteBackendError,
];

export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof CancelledError) return { code: "CANCELLED", message: error.message };
  if (error instanceof OutputFolderError) return { code: error.code, message: error.message, output: error.output };
  if (codedErrorTypes.some((type) => error instanceof type)) return { code: (error as CodedError).code, message: (error as CodedError).message };
  if (error instanceof Error && error.name === "AbortError") return { code: "CANCELLED", message: "Cancelled by the user" };
  return { code: "INTERNAL", message: error instanceof Error ? error.message : String(error) };
}

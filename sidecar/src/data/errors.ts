/** Errors of `gpiot data`, each with a code the CLI maps to an exit code. */

export type DataErrorCode =
  /** An input file or folder cannot be used: missing, empty, encrypted or corrupt, not UTF-8, wrong layout. */
  | "DATA_INPUT_INVALID"
  /** A Python package to harvest is not installed in the chosen interpreter. */
  | "PACKAGE_NOT_INSTALLED"
  /** The output file exists and --overwrite was not given. */
  | "OUTPUT_EXISTS"
  /** An unfinished run with other options left its work folder. */
  | "RESUME_CONFLICT"
  /** A helper process (the Python documentation harvester) failed. */
  | "HELPER_FAILED";

export class DataError extends Error {
  constructor(
    readonly code: DataErrorCode,
    message: string,
    /** The file, folder or package the problem is about. */
    readonly subject?: string,
  ) {
    super(message);
    this.name = "DataError";
  }
}

export function inputError(subject: string, problem: string): DataError {
  return new DataError("DATA_INPUT_INVALID", `${subject}: ${problem}`, subject);
}

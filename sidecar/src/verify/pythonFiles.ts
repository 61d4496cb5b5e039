/**
 * The Python files GPIoT ships (sidecar/python/: the sandbox's supervisor and preamble, the static
 * and syntax checks, the isolation probe, main.py's template). The build copies them next to the
 * bundles (dist/python/); run from source, they are read where they live.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export type ShippedPython = "sandbox_supervisor.py" | "sandbox_preamble.py" | "isolation_probe.py" | "static_check.py" | "syntax_check.py" | "python_info.py" | "main_template.py";

let folder: string | null = null;

/** dist/python/ next to a bundle, or sidecar/python/ from this source file. */
export function shippedPythonFolder(): string {
  if (folder) return folder;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, "python"), path.join(here, "..", "..", "python")];
  const found = candidates.find((candidate) => existsSync(path.join(candidate, "sandbox_supervisor.py")));
  if (!found) throw new Error(`GPIoT's Python files are missing (looked in ${candidates.join(" and ")}); reinstall GPIoT or run npm run build.`);
  folder = found;
  return found;
}

export function shippedPythonPath(name: ShippedPython): string {
  return path.join(shippedPythonFolder(), name);
}

const sources = new Map<ShippedPython, string>();

export function shippedPythonSource(name: ShippedPython): string {
  let source = sources.get(name);
  if (source === undefined) {
    source = readFileSync(shippedPythonPath(name), "utf8");
    sources.set(name, source);
  }
  return source;
}

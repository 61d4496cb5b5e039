// `npm run lint`: ESLint with typescript-eslint. Besides the recommended rules, the type-aware rules
// that catch real bugs (promises nobody awaits or that land where a callback is expected, `this`
// lost by detached methods, numbers sorted as strings, ...) and the project's import boundaries.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const nodeGlobals = Object.fromEntries(
  ["process", "console", "Buffer", "URL", "setTimeout", "clearTimeout", "setInterval", "clearInterval", "performance", "AbortController", "TextDecoder", "TextEncoder"].map((name) => [name, "readonly"]),
);
const commonJsGlobals = Object.fromEntries(["require", "module", "exports", "__dirname", "__filename"].map((name) => [name, "readonly"]));

const NODE_EVAL_MESSAGE =
  "Run Node children from a file, not from evaluated code: node-llama-cpp's binding self-test forks the running script, which `node -e` does not have (NoBinaryFoundError).";

export default tseslint.config(
  { ignores: ["dist/", "out/", "node_modules/", ".tools/", ".test-artifacts/", "models/", ".scratch/", "tmp/", "iotbench-results/", ".venv/", "training/.venv/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // `const { omitted: _omitted, ...rest } = value` drops a key on purpose.
      "@typescript-eslint/no-unused-vars": ["error", { ignoreRestSiblings: true, argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "no-restricted-syntax": [
        "error",
        ...[
          // spawn(process.execPath | "node", ["-e", code]) and ["--input-type=module", "-e", code]
          "CallExpression:matches([arguments.0.property.name='execPath'], [arguments.0.value='node']) > ArrayExpression > Literal:first-child[value=/^(-e|--eval|-p|--print|--input-type=.*)$/]",
          "CallExpression:matches([arguments.0.property.name='execPath'], [arguments.0.value='node']) > ArrayExpression > Literal:first-child[value=/^-/] + Literal[value=/^(-e|--eval|-p|--print)$/]",
          // execSync("node -e ...")
          "CallExpression > Literal[value=/^node (-e|--eval|-p|--print|--input-type)\\b/]",
        ].map((selector) => ({ selector, message: NODE_EVAL_MESSAGE })),
      ],
    },
  },
  {
    files: ["**/*.ts"],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        // node:test's test() and describe() return promises that the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "it", "describe", "suite"] }] },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/return-await": ["error", "error-handling-correctness-only"],
      "@typescript-eslint/only-throw-error": "error",
      "@typescript-eslint/no-base-to-string": "error",
      "@typescript-eslint/unbound-method": "error",
      "@typescript-eslint/require-array-sort-compare": ["error", { ignoreStringArrays: true }],
      "@typescript-eslint/no-for-in-array": "error",
      "@typescript-eslint/no-implied-eval": "error",
      "@typescript-eslint/no-array-delete": "error",
      "@typescript-eslint/no-duplicate-type-constituents": "error",
      "@typescript-eslint/no-redundant-type-constituents": "error",
    },
  },
  {
    // Tests read into untyped JSON and GGUF metadata to assert on it; shipped code types its data.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    files: ["**/*.mjs", "**/*.js"],
    languageOptions: { globals: nodeGlobals },
  },
  {
    files: ["test/vscode/sample/**/*.js"],
    languageOptions: { sourceType: "commonjs", globals: { ...nodeGlobals, ...commonJsGlobals, suite: "readonly", test: "readonly" } },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // The sidecar runs outside VS Code: it never imports vscode or the extension's client library.
    files: ["sidecar/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: [{ name: "vscode", message: "The sidecar never imports vscode: it runs outside VS Code (CLI, tests, other clients)." }],
          patterns: [{ group: ["vscode-languageclient", "vscode-languageclient/*"], message: "The sidecar never imports the extension's client library." }],
        },
      ],
    },
  },
  {
    // Shared helpers stay free of the engine, node-llama-cpp and vscode, so that the extension can import them.
    files: ["sidecar/src/shared/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: [{ name: "vscode", message: "sidecar/src/shared/ imports only Node's built-ins, zod and each other." }],
          patterns: [{ regex: "^(?!node:|zod$|\\./)", message: "sidecar/src/shared/ imports only Node's built-ins, zod and each other." }],
        },
      ],
    },
  },
  {
    // The extension talks to the sidecar over the protocol only: it never loads models itself.
    files: ["extension/src/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: [{ name: "node-llama-cpp", message: "The extension never imports node-llama-cpp: models run in the sidecar process." }],
          patterns: [
            { group: ["node-llama-cpp/*", "@node-llama-cpp/*"], message: "The extension never imports node-llama-cpp: models run in the sidecar process." },
            {
              regex: "(^|/)sidecar/src/(?!(protocol|schemas)$|shared/)",
              message: "From the sidecar, the extension imports only sidecar/src/protocol, sidecar/src/schemas and sidecar/src/shared/.",
            },
          ],
        },
      ],
    },
  },
);

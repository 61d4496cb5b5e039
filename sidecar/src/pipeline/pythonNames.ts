/** Python identifiers from names a model wrote. */
const PYTHON_KEYWORDS = new Set(
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield".split(" "),
);

export function pythonIdentifier(name: string): string {
  let identifier = name.trim().replace(/[^A-Za-z0-9_]+/g, "_");
  if (!identifier || /^[0-9]/.test(identifier)) identifier = `value_${identifier}`;
  return PYTHON_KEYWORDS.has(identifier) ? `${identifier}_` : identifier;
}


/**
 * Keeps the "N failing" section of mocha's spec reporter output, with stack traces cut short,
 * so that a run's summary (the last lines a CI log shows) can repeat which tests failed and why.
 */
const MAX_LINES = 150;
const STACK_LINES_PER_FAILURE = 3;

export class MochaFailureDigest {
  private inFailures = false;
  private stackLines = 0;
  private readonly lines: string[] = [];
  private dropped = 0;

  add(message: string): void {
    for (const line of message.replace(/\n$/, "").split("\n")) {
      if (/^\s*\d+ failing\b/.test(line)) {
        this.inFailures = true;
        this.keep(line.trim());
        continue;
      }
      if (!this.inFailures) continue;
      if (/^\s+at /.test(line)) {
        if (++this.stackLines > STACK_LINES_PER_FAILURE) continue;
      } else {
        this.stackLines = 0;
      }
      this.keep(line);
    }
  }

  /** The failing section, or "" when mocha reported no failure. */
  get text(): string {
    const lines = this.lines.slice();
    while (lines.length && lines[lines.length - 1].trim() === "") lines.pop();
    if (this.dropped) lines.push(`(${this.dropped} more lines in the log above)`);
    return lines.join("\n");
  }

  private keep(line: string): void {
    if (this.lines.length < MAX_LINES) this.lines.push(line);
    else this.dropped++;
  }
}

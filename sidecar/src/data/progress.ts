/**
 * Progress of a long `gpiot data` run on stderr: units done of the total, records so far,
 * records per second and the time left. On a terminal one live line; otherwise one line per unit.
 */

export interface ProgressSink {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class DataProgress {
  private total = 0;
  private done = 0;
  private resumed = 0;
  private records = 0;
  private recordsThisRun = 0;
  private unitsThisRun = 0;
  private readonly started = performance.now();
  private live = "";

  constructor(
    private readonly sink: ProgressSink,
    private readonly options: { enabled: boolean; unit: string },
  ) {}

  setTotal(total: number): void {
    this.total = total;
  }

  addToTotal(delta: number): void {
    this.total = Math.max(this.done, this.total + delta);
  }

  /** Units an earlier run finished: they count as done but not toward the rate. */
  addResumed(units: number, records: number): void {
    this.resumed += units;
    this.done += units;
    this.records += records;
  }

  unitDone(records: number, label: string): void {
    this.done++;
    this.unitsThisRun++;
    this.records += records;
    this.recordsThisRun += records;
    this.show(label);
  }

  /** Seconds left at this run's pace, or null before the first unit. */
  etaSeconds(): number | null {
    if (!this.unitsThisRun || this.total <= this.done) return this.total <= this.done ? 0 : null;
    const perUnit = (performance.now() - this.started) / 1000 / this.unitsThisRun;
    return Math.round(perUnit * (this.total - this.done));
  }

  recordsPerSecond(): number {
    const seconds = (performance.now() - this.started) / 1000;
    return seconds > 0 ? this.recordsThisRun / seconds : 0;
  }

  line(label = ""): string {
    const eta = this.etaSeconds();
    const width = String(this.total).length;
    return `[${String(this.done).padStart(width)}/${this.total} ${this.options.unit}] ${this.records} records, ${this.recordsPerSecond().toFixed(2)} records/s, ETA ${eta === null ? "?" : formatDuration(eta)}${label ? ` - ${label}` : ""}`;
  }

  private show(label: string): void {
    if (!this.options.enabled) return;
    const text = this.line(label);
    if (this.sink.isTTY) {
      this.live = text.slice(0, (this.sink.columns || 100) - 1);
      this.sink.write(`\r\x1b[K${this.live}`);
    } else this.sink.write(`${text}\n`);
  }

  note(message: string): void {
    if (!this.options.enabled) return;
    if (this.live) this.sink.write("\r\x1b[K");
    this.sink.write(`${message}\n`);
    if (this.live) this.sink.write(this.live);
  }

  finish(): void {
    if (this.live) this.sink.write("\n");
    this.live = "";
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

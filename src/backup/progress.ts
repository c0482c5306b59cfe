/** Progress of a long copy on a terminal (bytes, rate, ETA); silent when stderr is not a TTY. */
export class Progress {
  private done_ = 0;
  private readonly t0 = Date.now();
  private last = 0;
  constructor(
    private readonly total: number,
    private readonly enabled: boolean,
  ) {}

  add(bytes: number): void {
    this.done_ += bytes;
    if (!this.enabled || Date.now() - this.last < 250) return;
    this.last = Date.now();
    process.stderr.write(`\r${this.line()}   `);
  }

  done(): void {
    if (this.enabled) process.stderr.write(`\r${this.line()}   \n`);
  }

  line(): string {
    const secs = Math.max(0.001, (Date.now() - this.t0) / 1000);
    const rate = this.done_ / secs;
    const pct = this.total > 0 ? Math.min(100, (100 * this.done_) / this.total) : 100;
    const eta = rate > 0 ? Math.max(0, (this.total - this.done_) / rate) : 0;
    return `${mib(this.done_)} / ${mib(this.total)} MiB (${pct.toFixed(0)}%)  ${mib(rate)} MiB/s  ETA ${Math.round(eta)} s`;
  }
}

const mib = (n: number) => (n / 1048576).toFixed(1);

// Progress for long runs. On a terminal: one status line rewritten in place (phase, case i of n,
// time left). Without a terminal (CI): plain timestamped log lines. With --json: nothing on
// stderr but errors, so stdout carries only the final summary.
export type Mode = 'tty' | 'plain' | 'quiet';

export class Progress {
  private status = '';
  private readonly t0 = Date.now();
  constructor(readonly mode: Mode = process.stderr.isTTY ? 'tty' : 'plain') {}

  private clear(): void {
    if (this.mode === 'tty' && this.status) process.stderr.write('\r\x1b[2K');
  }

  /** A line that stays. */
  log(msg: string): void {
    if (this.mode === 'quiet') return;
    this.clear();
    const secs = ((Date.now() - this.t0) / 1000).toFixed(1).padStart(6);
    process.stderr.write(`[${secs}s] ${msg}\n`);
    if (this.mode === 'tty' && this.status) process.stderr.write(this.status);
  }

  /** Where a long run stands; replaces itself on a terminal, logs otherwise. */
  phase(caseNo: number, cases: number, phase: string, secondsLeft?: number): void {
    const left = secondsLeft !== undefined ? `, about ${fmtSeconds(secondsLeft)} left` : '';
    const line = `case ${caseNo}/${cases}: ${phase}${left}`;
    if (this.mode === 'tty') {
      this.clear();
      this.status = line.slice(0, (process.stderr.columns ?? 100) - 1);
      process.stderr.write(this.status);
    } else this.log(line);
  }

  done(): void {
    this.clear();
    this.status = '';
  }

  warn(msg: string): void {
    this.clear();
    process.stderr.write(`warning: ${msg}\n`);
    if (this.mode === 'tty' && this.status) process.stderr.write(this.status);
  }
}

export function fmtSeconds(s: number): string {
  s = Math.max(0, Math.round(s));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

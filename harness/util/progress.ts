// Progress for long runs. On a terminal: one status line rewritten in place (phase, case i of n,
// time left). Without a terminal (CI): plain timestamped log lines. With --json: nothing on
// stderr but errors, so stdout carries only the final summary.
export type Mode = 'tty' | 'plain' | 'quiet';

export class Progress {
  private status = '';
  private readonly t0 = Date.now();
  private timer?: NodeJS.Timeout;
  private current?: { caseNo: number; cases: number; phase: string; deadline?: number };
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
    this.current = { caseNo, cases, phase, deadline: secondsLeft !== undefined ? Date.now() + secondsLeft * 1000 : undefined };
    if (this.mode === 'tty') {
      this.render();
      // On a terminal the time left counts down between phases.
      this.timer ??= setInterval(() => this.render(), 1000).unref();
    } else if (this.mode === 'plain') this.log(this.line());
  }

  private line(): string {
    const c = this.current!;
    const left = c.deadline !== undefined ? `, about ${fmtSeconds((c.deadline - Date.now()) / 1000)} left` : '';
    return `case ${c.caseNo}/${c.cases}: ${c.phase}${left}`;
  }

  private render(): void {
    if (!this.current) return;
    this.clear();
    this.status = this.line().slice(0, (process.stderr.columns ?? 100) - 1);
    process.stderr.write(this.status);
  }

  done(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.current = undefined;
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

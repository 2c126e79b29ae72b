// What the `history` commands print and their default directory: the only part of harness/history/
// that cli/history.ts loads at start-up (commands.ts, with the store and the checks, comes when one runs).

/** Where the history lives unless --history says: beside the run records (ignored by git). */
export const DEFAULT_HISTORY_DIR = 'results/history';

export interface Printed {
  stdout: string;
  stderr?: string;
  exitCode: number;
}

/** Write a command's output and set the process's exit code. */
export function print(p: Printed): void {
  process.stdout.write(p.stdout);
  if (p.stderr) process.stderr.write(p.stderr);
  process.exitCode = p.exitCode;
}

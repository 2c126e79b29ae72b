// `meshbench history …`: the run history nightly CI keeps (docs/history.md). Thin: the store,
// the exports and the checks are in harness/history/.
import { type Command, InvalidArgumentError } from 'commander';

const fraction = (v: string) => {
  const n = Number(v);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError('must be a number between 0 and 1');
  return n;
};
const count = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number ≥ 1');
  return n;
};

/** Where the history lives unless --history says: beside the run records (ignored by git). */
export const DEFAULT_HISTORY_DIR = 'results/history';

export function registerHistory(program: Command): void {
  const history = program
    .command('history')
    .description(
      'The history of runs over commits (nightly CI): append run records, find regressions, export for Bencher or github-action-benchmark (docs/history.md).',
    );

  history
    .command('add')
    .description(
      'Append run records to the history (one file per run, never rewritten; adding a run twice adds nothing). A bad record or history is exit 2, nothing appended.',
    )
    .argument('<run.json...>', 'run records (results/<scenario>/<run-id>/run.json)')
    .option('--history <dir>', 'the history directory (made if missing)', DEFAULT_HISTORY_DIR)
    .action(async (files: string[], o) => {
      const { historyAdd } = await import('../history/store.js');
      const r = await historyAdd(o.history, files);
      for (const s of r.skipped) process.stderr.write(`skipped ${s.file}: ${s.reason}\n`);
      process.stdout.write(`added ${r.added} run(s), ${r.rows} row(s) to ${o.history}\n`);
    });

  history
    .command('check')
    .description(
      "Find change points in every series of the history (E-divisive means with a permutation test, tied to commit ranges) and fail (exit 1) on a new regression: the series' last change, worse by at least --min-effect, starting within the last --recent runs. TCG (functional-only) series are skipped.",
    )
    .option('--history <dir>', 'the history directory', DEFAULT_HISTORY_DIR)
    .option('--min-effect <fraction>', 'smallest relative change reported', fraction, 0.05)
    .option('--significance <p>', 'largest permutation p-value that accepts a change point', fraction, 0.01)
    .option('--recent <runs>', 'a regression starting within this many of the latest runs is new', count, 10)
    .option('--metric <list>', 'only these metrics (comma-separated, e.g. p50,p99)')
    .option('--json', 'print the change points and the verdict as JSON')
    .action(async (o) => {
      const { readHistory } = await import('../history/store.js');
      const { checkHistory, checkJson, formatCheck, newRegressions } = await import('../history/check.js');
      const c = checkHistory(readHistory(o.history), {
        minEffect: o.minEffect,
        significance: o.significance,
        recent: o.recent,
        metrics: o.metric?.split(',').map((m: string) => m.trim()),
      });
      const fresh = newRegressions(c);
      if (o.json) process.stdout.write(`${JSON.stringify(checkJson(c), null, 1)}\n`);
      else process.stdout.write(`${formatCheck(c)}\n`);
      if (fresh.length) process.exitCode = 1;
    });

  history
    .command('export')
    .description(
      'Write the history in Bencher Metric Format (bmf) or github-action-benchmark custom JSON (gab), one file per commit × testbed × kernel; prints the files.',
    )
    .requiredOption('--format <bmf|gab>', 'bmf (Bencher Metric Format) or gab (github-action-benchmark: -smaller and -bigger files)')
    .option('--history <dir>', 'the history directory', DEFAULT_HISTORY_DIR)
    .option('--out <dir>', 'where the files go', 'reports/history/export')
    .option('--latest', 'only the newest commit of each testbed × kernel (what a nightly job uploads)')
    .option('--commit <sha>', 'only this commit (a prefix of it)')
    .option('--include-functional-only', 'also runs on TCG-emulated kernels (left out by default: their figures are functional only)')
    .action(async (o) => {
      const { readHistory } = await import('../history/store.js');
      const { exportHistory, writeExport } = await import('../history/export.js');
      const exports = exportHistory(readHistory(o.history), o.format, { latest: o.latest, commit: o.commit, includeFunctionalOnly: o.includeFunctionalOnly });
      for (const f of writeExport(o.out, exports)) process.stdout.write(`${f}\n`);
    });
}

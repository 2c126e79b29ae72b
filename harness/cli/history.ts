// `meshbench history …`: the run history nightly CI keeps (docs/history.md). Thin: the store,
// the exports and the checks are in harness/history/.
import type { Command } from 'commander';

/** Where the history lives unless --history says: beside the run records (ignored by git). */
export const DEFAULT_HISTORY_DIR = 'results/history';

export function registerHistory(program: Command): void {
  const history = program
    .command('history')
    .description('The history of runs over commits (nightly CI): append run records, export them for Bencher or github-action-benchmark (docs/history.md).');

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

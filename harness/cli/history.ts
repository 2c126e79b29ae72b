// `meshbench history …` (docs/history.md): options only; harness/history/commands.ts does the work.
import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULT_HISTORY_DIR, print } from '../history/output.js';

const num = (ok: (n: number) => boolean, what: string) => (v: string) => {
  const n = Number(v);
  if (!ok(n)) throw new InvalidArgumentError(`must be ${what}`);
  return n;
};
const fraction = num((n) => n > 0 && n < 1, 'a number between 0 and 1');
const count = num((n) => Number.isInteger(n) && n >= 1, 'a whole number ≥ 1');
const cmds = () => import('../history/commands.js');

/** The options `check` and `report` share. */
const checkOptions = (c: Command) =>
  c
    .option('--history <dir>', 'the history directory', DEFAULT_HISTORY_DIR)
    .option('--min-effect <fraction>', 'smallest relative change reported', fraction, 0.05)
    .option('--significance <p>', 'largest permutation p-value that accepts a change point', fraction, 0.01)
    .option('--recent <runs>', 'a regression starting within this many of the latest runs is new', count, 10)
    .option('--metric <list>', 'only these metrics (comma-separated, e.g. p50,p99)');

export function registerHistory(program: Command): void {
  const h = program
    .command('history')
    .description('The history of runs over commits (nightly CI): append run records, find regressions, draw the trends, export (docs/history.md).');
  h.command('add')
    .description('Append run records (one file per run, never rewritten; a run added twice adds nothing). A bad record or history: exit 2, nothing appended.')
    .argument('<run.json...>', 'run records (results/<scenario>/<run-id>/run.json)')
    .option('--history <dir>', 'the history directory (made if missing)', DEFAULT_HISTORY_DIR)
    .action(async (files: string[], o) => print(await (await cmds()).addCommand(o.history, files)));
  checkOptions(
    h
      .command('check')
      .description(
        "Change points in every series (E-divisive means, permutation test, commit ranges); exit 1 on a new regression: the series' last change, worse by --min-effect, within the last --recent runs. TCG series are skipped.",
      ),
  )
    .option('--json', 'print the change points and the verdict as JSON')
    .action(async (o) => print((await cmds()).checkCommand(o)));
  checkOptions(
    h.command('report').description('Write the trend page <reports>/history/index.html: open regressions first, then each series with its change points.'),
  )
    .option('--reports <dir>', 'where reports go', 'reports')
    .option('--repository <url>', 'link commits to <url>/commit/<sha> (e.g. https://github.com/you/meshbench)')
    .action(async (o) => print(await (await cmds()).reportCommand(o)));
  h.command('export')
    .description('Write the history as Bencher Metric Format (bmf) or github-action-benchmark JSON (gab), one file per commit × testbed × kernel.')
    .requiredOption('--format <bmf|gab>', 'bmf (Bencher Metric Format) or gab (github-action-benchmark: -smaller and -bigger files)')
    .option('--history <dir>', 'the history directory', DEFAULT_HISTORY_DIR)
    .option('--out <dir>', 'where the files go', 'reports/history/export')
    .option('--latest', 'only the newest commit of each testbed × kernel (what a nightly job uploads)')
    .option('--commit <sha>', 'only this commit (a prefix of it)')
    .option('--include-functional-only', 'also runs on TCG-emulated kernels (left out by default: functional only)')
    .action(async (o) => print((await cmds()).exportCommand(o)));
}

// What `meshbench history add|check|report|export` do, so cli/history.ts only declares options.
// Each returns the text to print and the exit code (output.ts `print` puts them out). Loaded only
// when a history command runs: the store, the checks and the exports stay off every other start-up.
import { checkHistory, checkJson, formatCheck, newRegressions, type CheckOptions } from './check.js';
import { exportHistory, writeExport, type ExportFormat } from './export.js';
import { historyAdd, readHistory } from './store.js';
import type { Printed } from './output.js';

export async function addCommand(historyDir: string, files: string[]): Promise<Printed> {
  const r = await historyAdd(historyDir, files);
  return {
    stdout: `added ${r.added} run(s), ${r.rows} row(s) to ${historyDir}\n`,
    stderr: r.skipped.map((s) => `skipped ${s.file}: ${s.reason}\n`).join(''),
    exitCode: 0,
  };
}

export interface CheckCliOptions {
  history: string;
  minEffect: number;
  significance: number;
  recent: number;
  metric?: string;
  json?: boolean;
}

const checkOf = (o: CheckCliOptions) => {
  const opts: CheckOptions = { minEffect: o.minEffect, significance: o.significance, recent: o.recent, metrics: o.metric?.split(',').map((m) => m.trim()) };
  return checkHistory(readHistory(o.history), opts);
};

/** Exit 1 on a new regression. */
export function checkCommand(o: CheckCliOptions): Printed {
  const c = checkOf(o);
  return { stdout: `${o.json ? JSON.stringify(checkJson(c), null, 1) : formatCheck(c)}\n`, exitCode: newRegressions(c).length ? 1 : 0 };
}

/** The trend page (reports/history/index.html); exit 0 whatever it shows (`check` decides). */
export async function reportCommand(o: CheckCliOptions & { reports: string; repository?: string }): Promise<Printed> {
  const { writeHistoryReport } = await import('../report/history.js');
  const c = checkOf(o);
  const r = await writeHistoryReport(c, o.reports, { repository: o.repository });
  const n = newRegressions(c).length;
  return { stdout: `trend report: ${r.html}${n ? ` (${n} new regression(s))` : ''}\n`, exitCode: 0 };
}

export function exportCommand(o: {
  history: string;
  format: ExportFormat;
  out: string;
  latest?: boolean;
  commit?: string;
  includeFunctionalOnly?: boolean;
}): Printed {
  const exports = exportHistory(readHistory(o.history), o.format, { latest: o.latest, commit: o.commit, includeFunctionalOnly: o.includeFunctionalOnly });
  return {
    stdout: writeExport(o.out, exports)
      .map((f) => `${f}\n`)
      .join(''),
    exitCode: 0,
  };
}

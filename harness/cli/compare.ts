// `meshbench compare <a/run.json> <b/run.json>`: read both runs, compare them (analysis/compare.ts),
// optionally export every case as fortio JSON (analysis/fortio-export.ts), and say what to print
// and the exit status (0, or 1 when a --fail-on metric regressed; bad input throws E_INPUT).
import { compareRuns, loadRunForCompare, type CompareOptions, type Comparison } from '../analysis/compare.js';
import { exportFortio } from '../analysis/fortio-export.js';
import { formatComparison } from '../report/compare.js';

export interface CompareCommandOptions extends CompareOptions {
  json?: boolean;
  exportFortio?: string;
}

export function runCompare(
  fileA: string,
  fileB: string,
  o: CompareCommandOptions,
): { stdout: string; stderr: string; exitCode: number; comparison: Comparison } {
  const a = loadRunForCompare(fileA);
  const b = loadRunForCompare(fileB);
  const c = compareRuns(a, b, o);
  const exported = o.exportFortio ? [...exportFortio(a.record, o.exportFortio), ...exportFortio(b.record, o.exportFortio)] : undefined;
  const stderr = c.warnings.map((w) => `meshbench: warning: ${w}\n`).join('');
  if (o.json) return { stdout: JSON.stringify(exported ? { ...c, exported } : c, null, 2) + '\n', stderr, exitCode: c.exitCode, comparison: c };
  let stdout = formatComparison(c) + '\n';
  if (exported) stdout += `fortio JSON: ${exported.length} file(s) in ${o.exportFortio} (view with: fortio report -data-dir ${o.exportFortio})\n`;
  return { stdout, stderr, exitCode: c.exitCode, comparison: c };
}

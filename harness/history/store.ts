// The history store (`meshbench/history/v1`, docs/history.md): run records flattened into JSON
// Lines, one file per added run (`<dir>/<YYYY-MM>/<runId>.<testbed>.jsonl`), never rewritten. Two
// jobs appending on two git branches touch different files, so the branch merges without
// conflicts; two appends at once on one machine each publish whole files (temp file + link),
// so no row is lost. A file's content is a pure function of its run record: the same run added
// twice, anywhere, gives the same bytes.
// Over 500 lines: the row schema, the run → rows mapping, reading, appending and series are one
// format contract, read and changed together.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { link, mkdir, open, rename, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { z } from 'zod';
import { metricInfo, metricOf } from '../analysis/metrics.js';
import { MeshbenchError, envError, inputError } from '../errors.js';
import { RUN_SCHEMA, type CaseResult, type Environment, type RunRecord } from '../results/types.js';
import { errnoText, writeError } from '../results/write.js';
import { byString } from '../util/order.js';

export const HISTORY_SCHEMA = 'meshbench/history/v1';

export type Direction = 'lower-is-better' | 'higher-is-better';
export type Virtualisation = 'none' | 'kvm' | 'tcg' | 'vm' | 'unknown';

/** The figures kept per ok case: compare's names (harness/analysis/metrics.ts), per role for cpu/rss/pss. */
export const HISTORY_METRICS = ['p50', 'p90', 'p99', 'qps', 'startup:podReadyMs', 'startup:firstRequestMs'] as const;
export const HISTORY_ROLE_FAMILIES = ['cpu', 'rss', 'pss'] as const;

const virtualisations = ['none', 'kvm', 'tcg', 'vm', 'unknown'] as const;

const common = {
  schema: z.literal(HISTORY_SCHEMA),
  runId: z.string().min(1),
  /** The commit without `+dirty`; `unknown` when the run was not made from a git checkout. */
  commit: z.string().min(1),
  dirty: z.boolean(),
  /** The run's startedAt (ISO 8601, UTC). */
  at: z.iso.datetime(),
  testbed: z.string().min(1),
  kernel: z.string().min(1),
  virtualisation: z.enum(virtualisations),
  /** TCG (emulated) kernels: what works, not what it costs; checks skip these rows. */
  functionalOnly: z.boolean(),
  scenario: z.string().min(1),
};

const caseFields = {
  dataplane: z.string().min(1),
  workload: z.string().min(1),
  repeat: z.number().int().min(0),
  caseIndex: z.number().int().min(0),
};

const testbedInfo = z.looseObject({
  hostname: z.string(),
  cpuModel: z.string(),
  cores: z.number(),
  memoryGiB: z.number(),
  hosts: z.array(z.looseObject({ name: z.string(), address: z.string(), cpus: z.number(), memoryGiB: z.number(), kernel: z.string() })).optional(),
});

const runRow = z.looseObject({
  ...common,
  kind: z.literal('run'),
  status: z.enum(['complete', 'incomplete', 'failed']),
  finishedAt: z.string().optional(),
  repeats: z.number(),
  quick: z.boolean(),
  cases: z.number().int().min(0),
  okCases: z.number().int().min(0),
  testbedInfo,
  tools: z.record(z.string(), z.string()),
});

const metricRow = z.looseObject({
  ...common,
  ...caseFields,
  kind: z.literal('metric'),
  metric: z.string().min(1),
  unit: z.string().min(1),
  direction: z.enum(['lower-is-better', 'higher-is-better']),
  value: z.number(),
});

const caseRow = z.looseObject({
  ...common,
  ...caseFields,
  kind: z.literal('case'),
  status: z.enum(['degraded', 'failed', 'interrupted']),
  reasons: z.array(z.string()),
});

const rowSchema = z.discriminatedUnion('kind', [runRow, metricRow, caseRow]);

export type RunRow = z.infer<typeof runRow>;
export type MetricRow = z.infer<typeof metricRow>;
/** A case that ran but was not ok: no figures, kept so a trend shows the gap. */
export type CaseRow = z.infer<typeof caseRow>;
export type HistoryRow = RunRow | MetricRow | CaseRow;
export type TestbedInfo = z.infer<typeof testbedInfo>;

// ---- testbed and kernel ----

const GiB = 2 ** 30;
const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 24) || 'host';
const hash = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 10);

/**
 * The testbed a run ran on: a stable id from what the machine is (hostname, CPU model, cores,
 * memory to the nearest GiB), or from the machines of a `run --hosts` (their own testbed, never
 * the controller's), and the facts it was derived from.
 */
export function testbedOf(env: Environment): { id: string; info: TestbedInfo } {
  const info: TestbedInfo = {
    hostname: env.hostname ?? 'unknown',
    cpuModel: env.cpuModel ?? 'unknown',
    cores: env.cores ?? 0,
    memoryGiB: Math.round((env.memoryBytes ?? 0) / GiB),
  };
  if (env.hosts?.length) {
    const hosts = [...env.hosts]
      .map((h) => ({ name: h.name, address: h.address, cpus: h.cpus, memoryGiB: Math.round(h.memoryBytes / GiB), kernel: h.kernel }))
      .sort((a, b) => byString(a.name, b.name));
    // The kernel is its own key, not part of the machines' identity.
    const id = hosts.map(({ kernel: _k, ...h }) => h);
    return { id: `hosts${hosts.length}-${hash(id)}`, info: { ...info, hosts } };
  }
  const { hostname, cpuModel, cores, memoryGiB } = info;
  return { id: `${slug(hostname)}-${cores}c-${memoryGiB}g-${hash({ hostname, cpuModel, cores, memoryGiB })}`, info };
}

/** The kernel the lab ran on: its release and how it ran; TCG (or any TCG host) is functional only. */
export function kernelOf(env: Environment): { kernel: string; virtualisation: Virtualisation; functionalOnly: boolean } {
  if (env.hosts?.length) {
    const releases = [...new Set(env.hosts.map((h) => h.kernel))].sort(byString);
    const virts = [...new Set(env.hosts.map((h) => h.virtualisation))].sort(byString);
    return {
      kernel: releases.join(','),
      virtualisation: virts.length === 1 ? virts[0] : virts.includes('tcg') ? 'tcg' : 'vm',
      functionalOnly: env.hosts.some((h) => h.functionalOnly),
    };
  }
  const f = env.kernelFacts;
  return { kernel: f?.release ?? env.kernel ?? 'unknown', virtualisation: f?.virtualisation ?? 'unknown', functionalOnly: f?.functionalOnly ?? false };
}

// ---- run record → rows ----

/** The figures of one ok case, in HISTORY_METRICS order then each role's cpu, rss, pss. */
function caseFigures(c: CaseResult): { metric: string; value: number }[] {
  const names: string[] = [...HISTORY_METRICS];
  for (const role of Object.keys(c.resources?.byRole ?? {}).sort(byString)) for (const f of HISTORY_ROLE_FAMILIES) names.push(`${f}:${role}`);
  return names.flatMap((metric) => {
    const value = metricOf(c, metric);
    return value === undefined ? [] : [{ metric, value }];
  });
}

/** The rows of one run record, the run row first, cases in index order. */
export function rowsOfRun(run: RunRecord): HistoryRow[] {
  const env = run.environment;
  const tb = testbedOf(env);
  const k = kernelOf(env);
  const commit = (env.commit ?? 'unknown').replace(/\+dirty$/, '');
  const base = {
    schema: HISTORY_SCHEMA,
    runId: run.runId,
    commit,
    dirty: (env.commit ?? '').endsWith('+dirty'),
    at: new Date(run.startedAt).toISOString(),
    testbed: tb.id,
    ...k,
    scenario: run.scenario,
  } as const;
  const cases = [...run.cases].sort((a, b) => a.index - b.index);
  const rows: HistoryRow[] = [
    {
      ...base,
      kind: 'run',
      status: run.status,
      ...(run.finishedAt ? { finishedAt: run.finishedAt } : {}),
      repeats: run.options?.repeats ?? 1,
      quick: run.options?.quick ?? false,
      cases: cases.length,
      okCases: cases.filter((c) => c.status === 'ok').length,
      testbedInfo: tb.info,
      tools: env.tools ?? {},
    },
  ];
  for (const c of cases) {
    const cf = { dataplane: c.dataplane, workload: c.workload, repeat: c.repeat, caseIndex: c.index };
    if (c.status !== 'ok') {
      const reasons = c.validity?.reasons?.length ? c.validity.reasons : c.error ? [c.error] : [];
      rows.push({ ...base, ...cf, kind: 'case', status: c.status, reasons });
      continue;
    }
    for (const { metric, value } of caseFigures(c)) {
      const info = metricInfo(metric);
      rows.push({
        ...base,
        ...cf,
        kind: 'metric',
        metric,
        unit: info.unit,
        direction: info.better === 'lower' ? 'lower-is-better' : 'higher-is-better',
        value,
      });
    }
  }
  return rows;
}

/** Where a run's rows live, relative to the history directory. */
export function runFilePath(row: Pick<RunRow, 'at' | 'runId' | 'testbed'>): string {
  return join(row.at.slice(0, 7), `${row.runId}.${row.testbed}.jsonl`);
}

// ---- reading run records ----

const lineAt = (text: string, pos: number) => text.slice(0, pos).split('\n').length;

/** The line of the first `"key":` in a pretty-printed record, 1 when not found. */
function lineOfKey(text: string, key: string): number {
  const i = text.indexOf(`"${key}":`);
  return i < 0 ? 1 : lineAt(text, i);
}

/** Read and check a run record for the history; each problem as `file:line: message`. */
function loadRun(file: string): { run?: RunRecord; problems: string[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { problems: [`${file}:1: cannot read: ${errnoText(err)}`] };
  }
  let j: any;
  try {
    j = JSON.parse(text);
  } catch (err) {
    const pos = /position (\d+)/.exec((err as Error).message);
    return { problems: [`${file}:${pos ? lineAt(text, Number(pos[1])) : 1}: not JSON: ${(err as Error).message}`] };
  }
  const p: string[] = [];
  const at = (key: string, msg: string) => p.push(`${file}:${lineOfKey(text, key)}: ${msg}`);
  if (typeof j !== 'object' || j === null || Array.isArray(j)) return { problems: [`${file}:1: not a meshbench run record (not a JSON object)`] };
  if (j.schema !== RUN_SCHEMA)
    return { problems: [`${file}:${lineOfKey(text, 'schema')}: not a meshbench run record (schema ${String(j.schema)}, expected ${RUN_SCHEMA})`] };
  if (typeof j.runId !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(j.runId))
    at('runId', `runId ${JSON.stringify(j.runId)} is not a run id (letters, digits, - and _)`);
  if (typeof j.scenario !== 'string' || !j.scenario) at('scenario', 'scenario is missing');
  if (typeof j.startedAt !== 'string' || Number.isNaN(Date.parse(j.startedAt))) at('startedAt', `startedAt ${JSON.stringify(j.startedAt)} is not a time`);
  if (!['complete', 'incomplete', 'failed'].includes(j.status)) at('status', `status ${JSON.stringify(j.status)} is not complete, incomplete or failed`);
  const env = j.environment;
  if (typeof env !== 'object' || env === null) at('environment', 'environment is missing');
  else {
    for (const k of ['hostname', 'cpuModel', 'kernel', 'commit'] as const) if (typeof env[k] !== 'string') at(k, `environment.${k} is missing`);
    for (const k of ['cores', 'memoryBytes'] as const) if (typeof env[k] !== 'number') at(k, `environment.${k} is not a number`);
  }
  if (!Array.isArray(j.cases)) at('cases', 'cases is not a list');
  else
    j.cases.forEach((c: any, i: number) => {
      const ok =
        typeof c === 'object' &&
        c !== null &&
        typeof c.dataplane === 'string' &&
        typeof c.workload === 'string' &&
        Number.isInteger(c.repeat) &&
        Number.isInteger(c.index) &&
        ['ok', 'degraded', 'failed', 'interrupted'].includes(c.status);
      if (!ok) at('cases', `cases[${i}] lacks dataplane, workload, repeat, index or a known status`);
    });
  return p.length ? { problems: p } : { run: j as RunRecord, problems: [] };
}

// ---- reading the history ----

/** A problem with the history itself: E_INPUT naming the first bad file:line, all of them in details. */
function corrupt(dir: string, details: string[]): MeshbenchError {
  return inputError(
    `the history in ${dir} is not readable as ${HISTORY_SCHEMA}: ${details[0]}`,
    details,
    'restore the file from git (git checkout -- <file>) or remove it',
  );
}

/** Every history file under dir, sorted; E_INPUT for a file that is not one. */
function historyFiles(dir: string): string[] {
  const files: string[] = [];
  const foreign: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => byString(a.name, b.name))) {
      if (e.name.startsWith('.')) continue; // .git, .gitattributes
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.jsonl')) files.push(p);
      else if (e.name.endsWith('.tmp') || /^readme/i.test(e.name))
        continue; // a writer's file in flight; notes
      else foreign.push(`${p}:1: not a history file (${HISTORY_SCHEMA} files end in .jsonl)`);
    }
  };
  walk(dir);
  if (foreign.length) throw corrupt(dir, foreign);
  return files;
}

/**
 * Every row under historyDir, in time order (run time, then run id, then line). A corrupt line,
 * a row of another schema, or a foreign file is E_INPUT naming `file:line` (exit 2); a missing
 * directory is E_INPUT; an unreadable one E_ENV.
 */
export function readHistory(historyDir: string): HistoryRow[] {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(historyDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw inputError(`no history at ${historyDir}`, [], '`meshbench history add <run.json…>` creates it');
    throw envError(`cannot read the history ${historyDir}: ${errnoText(err)}`);
  }
  if (!st.isDirectory()) throw inputError(`${historyDir}:1: the history is a directory, not a file`);
  const details: string[] = [];
  const files: { rows: HistoryRow[] }[] = [];
  let list: string[];
  try {
    list = historyFiles(historyDir);
  } catch (err) {
    if (err instanceof MeshbenchError) throw err;
    throw envError(`cannot read the history ${historyDir}: ${errnoText(err)}`);
  }
  for (const file of list) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw envError(`cannot read ${file}: ${errnoText(err)}`);
    }
    const rows: HistoryRow[] = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length && details.length < 20; i++) {
      const line = lines[i];
      if (!line.trim()) continue;
      const where = `${file}:${i + 1}`;
      let j: any;
      try {
        j = JSON.parse(line);
      } catch (err) {
        details.push(`${where}: not JSON: ${(err as Error).message}`);
        continue;
      }
      if (j?.schema !== HISTORY_SCHEMA) {
        details.push(`${where}: not a ${HISTORY_SCHEMA} row (schema ${JSON.stringify(j?.schema)})`);
        continue;
      }
      const r = rowSchema.safeParse(j);
      if (!r.success) {
        const iss = r.error.issues[0];
        details.push(`${where}: ${iss.path.join('.') || 'row'}: ${iss.message}`);
        continue;
      }
      const row = r.data as HistoryRow;
      if (rows.length === 0 && row.kind !== 'run') details.push(`${where}: the first row of a run's file must be its run row`);
      else if (rows.length > 0 && (row.kind === 'run' || row.runId !== rows[0].runId))
        details.push(`${where}: a row of run ${row.runId} in the file of run ${rows[0].runId}`);
      rows.push(row);
    }
    if (!rows.length && details.length < 20) details.push(`${file}:1: an empty history file`);
    files.push({ rows });
  }
  if (details.length) throw corrupt(historyDir, details);
  return files
    .sort((a, b) => byString(a.rows[0].at, b.rows[0].at) || byString(a.rows[0].runId, b.rows[0].runId) || byString(a.rows[0].testbed, b.rows[0].testbed))
    .flatMap((f) => f.rows);
}

// ---- appending ----

export interface AddResult {
  /** Runs added. */
  added: number;
  /** Rows written (run rows included). */
  rows: number;
  skipped: { file: string; reason: string }[];
}

/** Create `file` with `text` unless it exists: a whole temp file, fsynced, then linked in (atomic, never overwrites). */
async function publish(file: string, text: string): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(tmp, file);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      // A file system without hard links: rename, which replaces an equal file at worst (same run, same bytes).
      if (existsSync(file)) return false;
      await rename(tmp, file);
      return true;
    }
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
}

/**
 * Add run records to the history at historyDir (made when missing). Every input is checked first
 * and the existing history read: a bad run.json or a corrupt history is E_INPUT (exit 2) with
 * nothing appended. A run already in the history, given twice, or incomplete (interrupted or still
 * running) is skipped with its reason. A file that cannot be written is E_ENV (exit 3); runs
 * written before it stay, each whole, and adding again adds only the rest.
 */
export async function historyAdd(historyDir: string, runJsonFiles: string[]): Promise<AddResult> {
  const problems: string[] = [];
  const runs: { file: string; run: RunRecord }[] = [];
  for (const file of runJsonFiles) {
    const r = loadRun(file);
    problems.push(...r.problems);
    if (r.run) runs.push({ file, run: r.run });
  }
  if (problems.length) throw inputError(`not added: ${problems[0]}`, problems, 'nothing was appended; pass run.json files that `meshbench run` wrote');
  if (existsSync(historyDir)) readHistory(historyDir);
  const result: AddResult = { added: 0, rows: 0, skipped: [] };
  const seen = new Set<string>();
  for (const { file, run } of runs) {
    if (run.status === 'incomplete') {
      result.skipped.push({ file, reason: 'the run is incomplete (interrupted or still running): its cases are not all there' });
      continue;
    }
    const rows = rowsOfRun(run);
    const rel = runFilePath(rows[0]);
    if (seen.has(rel)) {
      result.skipped.push({ file, reason: `the same run was given twice (${rel})` });
      continue;
    }
    seen.add(rel);
    const target = join(historyDir, rel);
    let fresh: boolean;
    try {
      await mkdir(join(historyDir, rel, '..'), { recursive: true });
      fresh = await publish(target, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    } catch (err) {
      throw writeError('the history file', target, err, 'free space or make the history directory writable; runs added before this one stay added');
    }
    if (!fresh) {
      result.skipped.push({ file, reason: `already in the history (${relative(historyDir, target)})` });
      continue;
    }
    result.added++;
    result.rows += rows.length;
  }
  return result;
}

// ---- series ----

export interface SeriesPoint {
  commit: string;
  at: string;
  runId: string;
  /** Median over the run's ok repeats. */
  value: number;
  /** Each ok repeat's value, by repeat, when there were several. */
  values?: number[];
  /** Repeats of this case in the run that were not ok (they give no value). */
  notOk?: number;
  dirty?: boolean;
}

/** A run in which the series' case ran but no repeat was ok: a hole in the trend, not a value. */
export interface SeriesGap {
  commit: string;
  at: string;
  runId: string;
  statuses: string[];
}

export interface Series {
  testbed: string;
  kernel: string;
  virtualisation: Virtualisation;
  functionalOnly: boolean;
  scenario: string;
  dataplane: string;
  workload: string;
  metric: string;
  unit: string;
  direction: Direction;
  points: SeriesPoint[];
  gaps: SeriesGap[];
}

/** testbed|kernel|virtualisation|scenario|dataplane|workload[|metric]. */
export function seriesKey(r: Pick<MetricRow, 'testbed' | 'kernel' | 'virtualisation' | 'scenario' | 'dataplane' | 'workload'>, metric?: string): string {
  const k = [r.testbed, r.kernel, r.virtualisation, r.scenario, r.dataplane, r.workload].join('|');
  return metric === undefined ? k : `${k}|${metric}`;
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const byTime = (a: { at: string; runId: string }, b: { at: string; runId: string }) => byString(a.at, b.at) || byString(a.runId, b.runId);

/**
 * The rows as time series, one per testbed × kernel × scenario × dataplane × workload × metric, in
 * key order; each run is one point (median of its ok repeats), points and gaps in time order.
 */
export function series(rows: readonly HistoryRow[]): Map<string, Series> {
  const out = new Map<string, Series & { byRun: Map<string, { p: SeriesPoint; reps: [number, number][] }> }>();
  // Not-ok repeats per case and run.
  const notOk = new Map<string, Map<string, { commit: string; at: string; statuses: string[] }>>();
  for (const r of rows) {
    if (r.kind !== 'case') continue;
    const k = seriesKey(r);
    const m = notOk.get(k) ?? new Map();
    notOk.set(k, m);
    const e = m.get(r.runId) ?? { commit: r.commit, at: r.at, statuses: [] };
    e.statuses.push(r.status);
    m.set(r.runId, e);
  }
  for (const r of rows) {
    if (r.kind !== 'metric') continue;
    const key = seriesKey(r, r.metric);
    let s = out.get(key);
    if (!s) {
      const { testbed, kernel, virtualisation, functionalOnly, scenario, dataplane, workload, metric, unit, direction } = r;
      s = { testbed, kernel, virtualisation, functionalOnly, scenario, dataplane, workload, metric, unit, direction, points: [], gaps: [], byRun: new Map() };
      out.set(key, s);
    }
    let e = s.byRun.get(r.runId);
    if (!e) {
      e = { p: { commit: r.commit, at: r.at, runId: r.runId, value: Number.NaN, ...(r.dirty ? { dirty: true } : {}) }, reps: [] };
      s.byRun.set(r.runId, e);
    }
    e.reps.push([r.repeat, r.value]);
  }
  const result = new Map<string, Series>();
  for (const key of [...out.keys()].sort(byString)) {
    const { byRun, ...s } = out.get(key)!;
    const holes = notOk.get(seriesKey(s)) ?? new Map();
    for (const [runId, { p, reps }] of byRun) {
      const values = reps.sort((a, b) => a[0] - b[0]).map((x) => x[1]);
      p.value = median(values);
      if (values.length > 1) p.values = values;
      const bad = holes.get(runId)?.statuses.length;
      if (bad) p.notOk = bad;
      s.points.push(p);
    }
    for (const [runId, h] of holes) if (!byRun.has(runId)) s.gaps.push({ commit: h.commit, at: h.at, runId, statuses: h.statuses });
    s.points.sort(byTime);
    s.gaps.sort(byTime);
    result.set(key, s);
  }
  return result;
}

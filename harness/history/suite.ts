// A suite file (kind: Suite): the scenarios a nightly job runs and the form of each, as
// `meshbench run` options (docs/nightly.md). scripts/nightly reads it through this module, run as
// a program: bash never parses YAML. Every problem is `file:line: message` (exit 2); each
// scenario is loaded and its overrides applied, so a bad entry fails before anything runs.
import { existsSync, statSync } from 'node:fs';
import { basename, isAbsolute, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { inputError, MeshbenchError } from '../errors.js';
import { loadScenario, shownPath } from '../scenario/load.js';
import { applyOverrides, expandCases } from '../scenario/expand.js';
import { dataplaneChecks } from '../dataplanes/registry.js';
import { readCiliumPolicies } from '../dataplanes/mesh/policy/cnp.js';
import { isKernelName, knownKernels } from '../vm/kernels.js';
import { readInputFile, safeLine, safeToJS, token, yamlErrorMessage, yamlLine, YAML_PARSE_OPTIONS } from '../util/yaml.js';

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
// Fields go to bash one per tab-separated column: no control characters anywhere.
const plain = z
  .string()
  .min(1)
  .max(4096)
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'no control characters (tabs, newlines …)');

const RunSchema = z.strictObject({
  name: z.string().regex(NAME, 'lower-case letters, digits and dashes, at most 63').optional(),
  scenario: plain.regex(/\.ya?ml$/, 'a scenario file (.yaml), relative to the suite file'),
  quick: z.boolean().optional(),
  dataplanes: z.array(z.string().max(160)).min(1).max(20).optional(),
  repeats: z.number().int().min(1).max(100).optional(),
  duration: z.number().positive().max(3600).optional(),
  warmup: z.number().positive().max(600).optional(),
  kernels: z
    .array(plain.regex(/^[^,]*$/, 'one kernel, no commas'))
    .min(1)
    .max(10)
    .optional(),
});

const SuiteSchema = z.strictObject({
  kind: z.literal('Suite'),
  name: z.string().regex(NAME, 'lower-case letters, digits and dashes, at most 63'),
  description: z.string().max(1000).optional(),
  runs: z.array(RunSchema).min(1).max(100),
});

export type SuiteRun = z.infer<typeof RunSchema> & {
  /** The entry's name (its `name`, else the scenario file's base name), unique in the suite. */
  name: string;
  /** The scenario's path, relative to the working directory when below it, else absolute. */
  scenarioPath: string;
  /** Cases the run expands to (per kernel). */
  cases: number;
};

export interface Suite {
  file: string;
  name: string;
  description?: string;
  runs: SuiteRun[];
}

/** Read and check a suite file; throws E_INPUT with every problem as `file:line: message`. */
export function loadSuite(file: string): Suite {
  const shown = shownPath(resolve(file));
  const read = readInputFile(file);
  if ('error' in read) throw inputError(`${shown} is not a valid suite`, [`${shown}:1: ${read.error}`]);
  const lines = new LineCounter();
  const doc = parseDocument(read.text, { lineCounter: lines, ...YAML_PARSE_OPTIONS });
  const errors: string[] = doc.errors.map((e) => `${shown}:${e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line}: ${yamlErrorMessage(e)}`);
  const js = errors.length ? undefined : safeToJS(doc, lines);
  if (js && !('value' in js)) errors.push(`${shown}:${js.line}: ${js.error}`);
  const fail = () => {
    throw inputError(
      `${shown} is not a valid suite`,
      errors.map((e) => safeLine(e)),
    );
  };
  if (!js || !('value' in js)) return fail();
  const at = (path: PropertyKey[]) => `${shown}:${yamlLine(doc, lines, path)}: ${path.length ? `${path.join('.')}: ` : ''}`;

  const r = SuiteSchema.safeParse(js.value);
  if (!r.success) {
    for (const issue of r.error.issues.slice(0, 50)) {
      const path = issue.path as PropertyKey[];
      if (issue.code === 'unrecognized_keys') errors.push(`${at([...path, issue.keys[0]])}unknown key(s) ${issue.keys.map((k) => token(k)).join(', ')}`);
      else if (issue.code === 'invalid_type' && /received undefined/.test(issue.message))
        errors.push(`${at(path.slice(0, -1))}missing required key ${token(String(path[path.length - 1]))}`);
      else errors.push(`${at(path)}${issue.message}`);
    }
    return fail();
  }

  const dir = resolve(file, '..');
  const seen = new Map<string, number>();
  const runs: SuiteRun[] = [];
  r.data.runs.forEach((run, i) => {
    const abs = isAbsolute(run.scenario) ? run.scenario : resolve(dir, run.scenario);
    const rel = relative(process.cwd(), abs);
    const name = run.name ?? basename(abs).replace(/\.ya?ml$/, '');
    if (!NAME.test(name)) errors.push(`${at(['runs', i, 'scenario'])}the file's base name ${token(name)} is not a run name: give the run a name`);
    if (seen.has(name)) errors.push(`${at(['runs', i])}run ${token(name)} is already in the suite (run ${seen.get(name)}): give it another name`);
    seen.set(name, i);
    const before = errors.length;
    for (const [k, d] of (run.dataplanes ?? []).entries()) {
      const problem = dataplaneChecks.problem(d);
      if (problem) errors.push(`${at(['runs', i, 'dataplanes', k])}${problem}`);
    }
    // A kernel is a registry name or a directory (vmlinuz + lib/modules), relative to the suite.
    const kernels = (run.kernels ?? []).map((kernel, k) => {
      if (isKernelName(kernel)) return kernel;
      const kdir = resolve(dir, kernel);
      if (!kernel.includes('/') || !existsSync(kdir) || !statSync(kdir).isDirectory())
        errors.push(`${at(['runs', i, 'kernels', k])}unknown kernel ${token(kernel)} (known: ${knownKernels().join(', ')}, or a kernel directory with a /)`);
      return kdir;
    });
    let cases = 0;
    try {
      const s = loadScenario(abs, { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
      // Unknown dataplanes are reported above, once.
      if (errors.length === before)
        cases = expandCases(
          applyOverrides(
            s,
            { quick: run.quick, dataplanes: run.dataplanes, repeats: run.repeats, durationS: run.duration, warmupS: run.warmup },
            dataplaneChecks,
          ),
        ).length;
    } catch (e) {
      if (!(e instanceof MeshbenchError)) throw e;
      // The scenario's own problems keep their file:line; the suite line says which run named it.
      errors.push(`${at(['runs', i, 'scenario'])}${e.message}`, ...e.details);
    }
    runs.push({ ...run, ...(run.kernels ? { kernels } : {}), name, scenarioPath: rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs, cases });
  });
  if (errors.length) fail();
  return { file: shown, name: r.data.name, description: r.data.description, runs };
}

/** `meshbench run` arguments of one suite run (without --results/--reports). */
export function runArgs(run: SuiteRun): string[] {
  return [
    run.scenarioPath,
    ...(run.quick ? ['--quick'] : []),
    ...(run.dataplanes ? ['--dataplanes', run.dataplanes.join(',')] : []),
    ...(run.repeats !== undefined ? ['--repeats', String(run.repeats)] : []),
    ...(run.duration !== undefined ? ['--duration', String(run.duration)] : []),
    ...(run.warmup !== undefined ? ['--warmup', String(run.warmup)] : []),
    ...(run.kernels ? ['--kernels', run.kernels.join(',')] : []),
  ];
}

/** What scripts/nightly reads: one line per run, tab-separated: name, cases, then the run arguments. */
export function suiteLines(s: Suite): string {
  return s.runs.map((run) => [run.name, String(run.cases), ...runArgs(run)].join('\t')).join('\n') + '\n';
}

// As a program (scripts/nightly): `node --import tsx harness/history/suite.ts <suite.yaml>`.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    if (process.argv.length !== 3) throw inputError('usage: suite.ts <suite.yaml>');
    process.stdout.write(suiteLines(loadSuite(process.argv[2]!)));
  } catch (e) {
    if (!(e instanceof MeshbenchError)) throw e;
    process.stderr.write(`meshbench: ${e.message}\n${e.details.map((d) => `${d}\n`).join('')}`);
    process.exitCode = e.exitCode;
  }
}

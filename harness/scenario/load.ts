// Loading scenario and topology YAML. Every problem is collected and reported at once as
// `file:line: message` (k6 returns all config errors, not the first), and nothing is built
// from a file that has any. Input is hostile until checked: files are read only when regular
// and small, aliases and nesting are bounded, and messages quote at most a short token of it.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve, relative } from 'node:path';
import { LineCounter, parse as parseYamlText, parseDocument, type Document } from 'yaml';
import { readInputFile, safeLine, safeToJS, token, yamlErrorMessage, yamlLine, YAML_PARSE_OPTIONS } from '../util/yaml.js';
import type { z } from 'zod';
import { inputError } from '../errors.js';
import { PROJECT_ROOT } from '../util/tools.js';
import { FileRefSchema, MAX_COUNT, mbGrpcChainProblems, ScenarioSchema, TopologySchema, type Scenario, type Topology } from './schema.js';
import type { Policy } from './policy-schema.js';
import type { ClaimsTable } from '../results/types.js';

interface Parsed {
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
}

/** File name as shown in messages: relative to the working directory when that is shorter. */
export function shownPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && rel.length < file.length ? rel : file;
}

/** Where a file was named: the scenario's line and key, so problems with the file point there. */
interface Ref {
  p: Parsed;
  path: PropertyKey[];
}

const refPrefix = (r: Ref) => `${shownPath(r.p.file)}:${lineOf(r.p, r.path)}: ${r.path.map(String).join('.')}: `;

/** Text of a file to load, or undefined with the problem reported (at `ref` when another file named it). */
function readChecked(file: string, errors: string[], ref?: Ref): string | undefined {
  const r = readInputFile(file);
  if ('text' in r) return r.text;
  errors.push(ref ? `${refPrefix(ref)}${shownPath(file)}: ${r.error}` : `${shownPath(file)}:1: ${r.error}`);
  return undefined;
}

function parseYaml(file: string, errors: string[], ref?: Ref): Parsed | undefined {
  const text = readChecked(file, errors, ref);
  if (text === undefined) return undefined;
  return parseYamlText2(text, file, errors);
}

function parseYamlText2(text: string, file: string, errors: string[]): Parsed | undefined {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, ...YAML_PARSE_OPTIONS });
  for (const e of doc.errors) {
    const line = e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line;
    errors.push(`${shownPath(file)}:${line}: ${yamlErrorMessage(e)}`);
  }
  return doc.errors.length ? undefined : { file, doc, lines };
}

/**
 * The document as JS, or undefined with the problem (alias bomb, nesting) reported at its line.
 * A document that is not a map saying `kind: <kind>` gets one line and no more: whatever file was
 * named by mistake (/etc/shadow.yaml …), none of its content is quoted back.
 */
function toJS(p: Parsed, errors: string[], kind: 'Scenario' | 'Topology'): { value: Loose } | undefined {
  const r = safeToJS(p.doc, p.lines);
  if (!('value' in r)) {
    errors.push(`${shownPath(p.file)}:${r.line}: ${r.error}`);
    return undefined;
  }
  const v = r.value as Loose;
  if (!isPlain(v) || v.kind !== kind) {
    const has = isPlain(v) && 'kind' in v;
    errors.push(
      `${shownPath(p.file)}:${has ? lineOf(p, ['kind']) : 1}: not a ${kind.toLowerCase()} file: ${has ? 'kind' : 'the key "kind"'} must be ${kind}${has ? '' : ' (missing)'}`,
    );
    return undefined;
  }
  return r;
}

/** The error thrown for bad input: every line made safe to print (no control characters, bounded length). */
function fail(message: string, errors: string[]): never {
  throw inputError(
    safeLine(message),
    errors.map((e) => safeLine(e)),
  );
}

function lineOf(p: Parsed, path: PropertyKey[]): number {
  return yamlLine(p.doc, p.lines, path);
}

const MAX_REPORTED = 100;

function zodErrors(p: Parsed, err: z.ZodError, errors: string[]): void {
  // A list of 100 000 bad items is one problem repeated: report the first ones.
  for (const issue of err.issues.slice(0, MAX_REPORTED)) {
    let path = issue.path as PropertyKey[];
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      // Point at the first unknown key itself, not at the map holding it.
      message = `unknown key(s) ${issue.keys
        .slice(0, 5)
        .map((k) => token(k))
        .join(', ')}${issue.keys.length > 5 ? ` and ${issue.keys.length - 5} more` : ''}`;
      errors.push(`${shownPath(p.file)}:${lineOf(p, [...path, issue.keys[0]])}: ${where(path)}${message}`);
      continue;
    }
    const unionOfMissing =
      issue.code === 'invalid_union' &&
      ((issue as { errors?: z.core.$ZodIssue[][] }).errors ?? []).every((e) => /received undefined/.test(e[0]?.message ?? ''));
    if ((issue.code === 'invalid_type' && /received undefined/.test(message)) || unionOfMissing) {
      message = `missing required key ${token(String(path[path.length - 1]))}`;
      path = path.slice(0, -1);
    } else if (issue.code === 'invalid_union') message = unionMessage(issue) ?? message;
    // A record key that failed its own check: say why, not "Invalid key in record".
    else if (issue.code === 'invalid_key') message = (issue as { issues?: { message: string }[] }).issues?.[0]?.message ?? message;
    errors.push(`${shownPath(p.file)}:${lineOf(p, path)}: ${where(path)}${message}`);
  }
}

/** "a.b.0.c: " for a message, each key cut short (keys are input too). */
const where = (path: PropertyKey[]) =>
  path.length ? `${path.map((k) => (typeof k === 'number' ? String(k) : String(k).length > 40 ? token(String(k)) : String(k))).join('.')}: ` : '';

// zod reports a failed union as "Invalid input"; name the alternatives' first messages instead.
function unionMessage(issue: z.core.$ZodIssue): string | undefined {
  const errs = (issue as { errors?: z.core.$ZodIssue[][] }).errors;
  if (!errs?.length) return undefined;
  const msgs = [...new Set(errs.map((e) => e[0]?.message).filter(Boolean))];
  return msgs.length ? `expected one of: ${msgs.join(' | ')}` : undefined;
}

function loadTopologyInto(file: string, errors: string[], ref?: Ref): Topology | undefined {
  const p = parseYaml(file, errors, ref);
  if (!p) return undefined;
  const js = toJS(p, errors, 'Topology');
  if (!js) return undefined;
  const r = TopologySchema.safeParse(js.value);
  if (!r.success) {
    zodErrors(p, r.error, errors);
    return undefined;
  }
  return r.data;
}

/** `file:line` of a path in a YAML file, for problems found after loading (policies vs cluster). */
export function locate(file: string, path: PropertyKey[]): string {
  const errors: string[] = [];
  const p = parseYaml(resolve(file), errors);
  return `${shownPath(file)}:${p ? lineOf(p, path) : 1}`;
}

/** Order messages by file, then line (stable), so they read top to bottom. */
function sortByLine(errors: string[]): string[] {
  const key = (e: string) => {
    const m = e.match(/^(.*?):(\d+):/);
    return m ? ([m[1], Number(m[2])] as const) : ([e, 0] as const);
  };
  return errors
    .map((e, i) => ({ e, i, k: key(e) }))
    .sort((a, b) => a.k[0].localeCompare(b.k[0]) || a.k[1] - b.k[1] || a.i - b.i)
    .map((x) => x.e);
}

export function loadTopology(file: string): Topology {
  const errors: string[] = [];
  const t = loadTopologyInto(resolve(file), errors);
  if (!t) fail(`${shownPath(file)} is not a valid topology`, sortByLine(errors));
  return t;
}

export function nodeNames(t: Topology): string[] {
  return typeof t.nodes === 'number' ? Array.from({ length: t.nodes }, (_, i) => `node${i + 1}`) : t.nodes;
}

/** The dataplane registry's checks (passed in: the registry is a later stage). */
export interface DataplaneChecks {
  /** What is wrong with a dataplane string (`kind` or `kind[key=value,…]`), or undefined. */
  problem(text: string): string | undefined;
  /** One key per distinct configuration (a variant that sets only defaults is its bare kind). */
  key(text: string): string;
}

/** Checks that accept exactly these names (no variants): for tests and callers without a registry. */
export const namesOnly = (names: readonly string[]): DataplaneChecks => ({
  problem: (d) => (names.includes(d) ? undefined : `unknown dataplane "${d}" (known: ${names.join(', ')})`),
  key: (d) => d,
});

export interface LoadOptions {
  /** The registry's checks; unknown dataplanes and options are reported with the scenario's other errors. */
  dataplanes?: DataplaneChecks;
  /**
   * Reads one policy file (CiliumNetworkPolicy) into the lab's policies, returning `file:line`
   * errors. Passed in by the caller, because the reader lives with the policy model (a later stage).
   */
  readPolicyFile?: (file: string) => { policies: Policy[]; errors: string[] };
  /** The reference tables `reference.table` must name; default: reference/claims.yaml of the project. */
  claimsFile?: string;
}

/** The project's copy of the source documents' tables (reference/claims.yaml). */
export const CLAIMS_FILE = resolve(PROJECT_ROOT, 'reference/claims.yaml');

/** The tables of a claims file (`tables[]` with a string id), or an error message when it cannot be read. */
export function readClaimsTables(file: string = CLAIMS_FILE): ClaimsTable[] | { error: string } {
  if (!existsSync(file)) return { error: `${shownPath(file)} not found` };
  try {
    const doc = parseYamlText(readFileSync(file, 'utf8')) as { tables?: unknown[] } | null;
    const tables = (Array.isArray(doc?.tables) ? doc.tables : []).filter(
      (t): t is ClaimsTable => !!t && typeof t === 'object' && typeof (t as { id?: unknown }).id === 'string',
    );
    return tables.length ? tables : { error: `${shownPath(file)} names no tables` };
  } catch (e) {
    return { error: `${shownPath(file)} cannot be read: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** Table ids in a claims file, or an error message when it cannot be read. */
export function referenceTableIds(file: string = CLAIMS_FILE): string[] | { error: string } {
  const t = readClaimsTables(file);
  return Array.isArray(t) ? t.map((x) => x.id) : t;
}

/** Load and check a scenario file; throws one E_INPUT error listing every problem. */
export function loadScenario(file: string, opts: LoadOptions = {}): Scenario {
  const abs = resolve(file);
  const errors: string[] = [];
  const text = readChecked(abs, errors);
  return loadScenarioText(text, abs, errors, opts);
}

/** Load a scenario from text already read from `abs` (validate reads it once to see its kind). */
export function loadScenarioText(text: string | undefined, abs: string, errors: string[], opts: LoadOptions = {}): Scenario {
  const p = text === undefined ? undefined : parseYamlText2(text, abs, errors);
  const tree = p && toJS(p, errors, 'Scenario');
  if (!p || !tree) fail(`${shownPath(abs)} is not a valid scenario`, errors);
  const js = tree.value as Loose;
  const r = ScenarioSchema.safeParse(js);
  if (!r.success) zodErrors(p, r.error, errors);
  const raw = r.success ? r.data : undefined;

  let topology: Topology | undefined;
  let topologyFile: string | undefined;
  // Files are only read once the schema accepted their names (.yaml, no control characters).
  const fileRef = (x: unknown) => typeof x === 'string' && FileRefSchema.safeParse(x).success;
  if (typeof js?.topology === 'string') {
    topologyFile = resolve(dirname(abs), js.topology);
    if (fileRef(js.topology)) topology = loadTopologyInto(topologyFile, errors, { p, path: ['topology'] });
  } else if (raw && typeof raw.topology === 'object') topology = raw.topology;
  let quickTopology: Topology | undefined;
  if (typeof js?.quick?.topology === 'string') {
    if (fileRef(js.quick.topology)) quickTopology = loadTopologyInto(resolve(dirname(abs), js.quick.topology), errors, { p, path: ['quick', 'topology'] });
  } else if (raw && typeof raw.quick?.topology === 'object') quickTopology = raw.quick.topology;

  // Policy files: read with the caller's reader, their errors reported with everything else.
  const filePolicies: Policy[] = [];
  arr(js?.policyFiles)
    .slice(0, MAX_COUNT.policyFiles)
    .forEach((f, i) => {
      if (!fileRef(f)) return;
      const abs = resolve(dirname(p.file), f);
      const ref = { p, path: ['policyFiles', i] };
      if (!opts.readPolicyFile) errors.push(`${refPrefix(ref)}policy files cannot be read here`);
      else if (readChecked(abs, errors, ref) !== undefined) {
        const r = opts.readPolicyFile(abs);
        errors.push(...r.errors);
        filePolicies.push(...r.policies);
        if (arr(js.policies).length + filePolicies.length > MAX_COUNT.policies && r.policies.length)
          errors.push(`${refPrefix(ref)}more than ${MAX_COUNT.policies} policies in all (inline and from files)`);
      }
    });

  // Checks across fields run on whatever parsed, so one pass reports every problem.
  if (js && typeof js === 'object') {
    crossCheck(p, js, topology, opts, errors);
    if (quickTopology) checkNodes(p, js, quickTopology, errors, 'quick.topology');
  }
  if (errors.length || !raw || !topology) fail(`${shownPath(abs)} is not a valid scenario`, sortByLine(errors));
  return { ...raw, policies: [...raw.policies, ...filePolicies], inlinePolicies: raw.policies.length, topology, file: abs, topologyFile, quickTopology };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;
/** A list from the raw document, cut to `max` (the schema reports longer ones), so checks stay small. */
const arr = (x: unknown, max = 256): Loose[] => (Array.isArray(x) ? x.slice(0, max) : []);
const isPlain = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
/** Names for a message: the first few, each cut short. */
const names = (xs: unknown[], max = 12) =>
  xs
    .slice(0, max)
    .map((x) => (typeof x === 'string' && /^[a-z0-9.-]{1,40}$/.test(x) ? x : token(x)))
    .join(', ') + (xs.length > max ? `, … (${xs.length} in all)` : '');

// Checks that need more than one field: names that must refer to something that exists. They
// read the raw document defensively, since the schema may have rejected parts of it.
/** The client's and the services' nodes must exist in the topology (`which` names it in messages). */
function checkNodes(p: Parsed, s: Loose, t: Topology, errors: string[], which = 'topology'): void {
  const err = (path: PropertyKey[], msg: string) => errors.push(`${shownPath(p.file)}:${lineOf(p, path)}: ${where(path)}${msg}`);
  const nodes = new Set(nodeNames(t));
  const nodeList = names([...nodes]);
  const clientNode = s.client?.node;
  if (typeof clientNode === 'string' && !nodes.has(clientNode)) err(['client', 'node'], `unknown node ${token(clientNode)} (${which} has: ${nodeList})`);
  arr(s.services).forEach((svc, i) =>
    arr(svc?.nodes).forEach((n, j) => {
      if (typeof n === 'string' && !nodes.has(n)) err(['services', i, 'nodes', j], `unknown node ${token(n)} (${which} has: ${nodeList})`);
    }),
  );
}

function crossCheck(p: Parsed, s: Loose, t: Topology | undefined, opts: LoadOptions, errors: string[]): void {
  const err = (path: PropertyKey[], msg: string) => errors.push(`${shownPath(p.file)}:${lineOf(p, path)}: ${where(path)}${msg}`);
  if (t) checkNodes(p, s, t, errors);

  const services = arr(s.services);
  const seen = new Map<string, number>();
  services.forEach((svc, i) => {
    if (typeof svc?.name !== 'string') return;
    if (seen.has(svc.name)) err(['services', i, 'name'], `service ${token(svc.name)} is declared twice (first at services.${seen.get(svc.name)})`);
    else seen.set(svc.name, i);
  });
  for (const name of Object.keys(isPlain(s.quick?.replicas) ? s.quick.replicas : {}).slice(0, MAX_COUNT.services)) {
    if (!seen.has(name)) err(['quick', 'replicas', name], `unknown service ${token(name)} (services: ${names([...seen.keys()])})`);
  }

  const workloads = arr(s.workloads);
  workloads.forEach((w, i) => {
    const chain = arr(w?.chain);
    // A chain of mb-grpc services is gRPC on every hop (schema.ts checks it); fortio's chains are HTTP.
    const appOf = (n: unknown) => {
      const svc = services.find((x) => x?.name === n);
      return svc ? (svc.app ?? 'fortio') : undefined;
    };
    const grpcChain = chain.length > 0 && chain.every((n) => appOf(n) === 'mb-grpc');
    for (const pr of mbGrpcChainProblems(appOf, w ?? {})) err(['workloads', i, ...pr.path], pr.message);
    chain.forEach((name, j) => {
      const svc = services.find((x) => x?.name === name);
      const proto = svc?.protocol ?? 'http';
      if (!svc) err(['workloads', i, 'chain', j], `unknown service ${token(name)} (declared: ${names([...seen.keys()]) || 'none'})`);
      else if (j > 0 && proto !== 'http' && !grpcChain)
        err(['workloads', i, 'chain', j], `service ${token(name)} speaks ${token(proto)}; only http services can be later links of a call chain`);
      else if (j === 0 && typeof w.protocol === 'string' && (w.protocol === 'grpc') !== (proto === 'grpc'))
        err(['workloads', i, 'protocol'], `workload protocol ${token(w.protocol)} does not match service ${token(name)} (protocol ${token(proto)})`);
    });
    if (chain.length > 1 && w.protocol === 'grpc' && !grpcChain)
      err(['workloads', i, 'chain'], 'a gRPC call chain needs app: mb-grpc on each of its services (fortio chain hops are HTTP)');
    if (new Set(chain).size !== chain.length) err(['workloads', i, 'chain'], 'a service appears twice in the call chain');
  });
  const wnames = workloads.map((w) => w?.name ?? 'default');
  wnames.forEach((n, i) => {
    if (wnames.indexOf(n) !== i) err(['workloads', i, 'name'], `workload name ${token(n)} is used twice`);
  });

  const svcNames = new Set(services.map((x) => x?.name));
  arr(s.routes).forEach((r, i) => {
    if (typeof r?.service === 'string' && !svcNames.has(r.service)) err(['routes', i, 'service'], `unknown service ${token(r.service)}`);
    arr(r?.rules).forEach((rule, j) =>
      arr(rule?.to).forEach((d, k) => {
        if (typeof d?.service === 'string' && !svcNames.has(d.service))
          err(['routes', i, 'rules', j, 'to', k, 'service'], `unknown service ${token(d.service)}`);
      }),
    );
  });
  const pnames = arr(s.policies).map((x) => `${typeof x?.namespace === 'string' ? x.namespace : 'default'}/${typeof x?.name === 'string' ? x.name : '?'}`);
  pnames.forEach((n, i) => {
    if (pnames.indexOf(n) !== i) err(['policies', i, 'name'], `policy ${token(n)} is declared twice`);
  });

  const named: [PropertyKey[], unknown][] = [
    [['reference', 'table'], s.reference?.table],
    ...arr(s.reference?.also).map((t, i): [PropertyKey[], unknown] => [['reference', 'also', i], t]),
  ];
  const tables = named.filter(([, t]) => typeof t === 'string' && t !== '');
  if (tables.length) {
    const ids = referenceTableIds(opts.claimsFile);
    for (const [path, table] of tables) {
      if (!Array.isArray(ids)) err(path, `cannot check table ${token(table)}: ${ids.error}`);
      else if (!ids.includes(table as string)) err(path, `unknown table ${token(table)} (known: ${ids.join(', ')})`);
      else if (named.findIndex(([, t]) => t === table) !== named.findIndex(([p]) => p === path)) err(path, `table ${token(table)} is named twice`);
    }
  }

  const dn = arr(s.dataplanes);
  const key = (d: unknown) => (opts.dataplanes && typeof d === 'string' ? opts.dataplanes.key(d) : d);
  dn.forEach((d, i) => {
    const problem = opts.dataplanes && typeof d === 'string' ? opts.dataplanes.problem(d) : undefined;
    if (problem) err(['dataplanes', i], problem);
    const first = dn.findIndex((x) => key(x) === key(d));
    if (first !== i)
      err(['dataplanes', i], dn[first] === d ? `dataplane ${token(d)} is listed twice` : `dataplane ${token(d)} is ${token(dn[first])} again (same settings)`);
  });
}

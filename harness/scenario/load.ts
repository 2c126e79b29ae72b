// Loading scenario and topology YAML. Every problem is collected and reported at once as
// `file:line: message` (k6 returns all config errors, not the first), and nothing is built
// from a file that has any.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve, relative } from 'node:path';
import { LineCounter, parse as parseYamlText, parseDocument, type Document } from 'yaml';
import { yamlLine } from '../util/yaml.js';
import type { z } from 'zod';
import { inputError } from '../errors.js';
import { PROJECT_ROOT } from '../util/tools.js';
import { ScenarioSchema, TopologySchema, type Scenario, type Topology } from './schema.js';
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

function parseYaml(file: string, errors: string[]): Parsed | undefined {
  if (!existsSync(file)) {
    errors.push(`${shownPath(file)}:1: file not found`);
    return undefined;
  }
  const text = readFileSync(file, 'utf8');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  for (const e of doc.errors) {
    const line = e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line;
    errors.push(`${shownPath(file)}:${line}: ${e.message.split('\n')[0]}`);
  }
  return doc.errors.length ? undefined : { file, doc, lines };
}

function lineOf(p: Parsed, path: PropertyKey[]): number {
  return yamlLine(p.doc, p.lines, path);
}

function zodErrors(p: Parsed, err: z.ZodError, errors: string[]): void {
  for (const issue of err.issues) {
    let path = issue.path as PropertyKey[];
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      // Point at the first unknown key itself, not at the map holding it.
      message = `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      errors.push(`${shownPath(p.file)}:${lineOf(p, [...path, issue.keys[0]])}: ${path.length ? `${path.map(String).join('.')}: ` : ''}${message}`);
      continue;
    }
    const unionOfMissing = issue.code === 'invalid_union' && ((issue as { errors?: z.core.$ZodIssue[][] }).errors ?? []).every((e) => /received undefined/.test(e[0]?.message ?? ''));
    if ((issue.code === 'invalid_type' && /received undefined/.test(message)) || unionOfMissing) {
      message = `missing required key "${String(path[path.length - 1])}"`;
      path = path.slice(0, -1);
    } else if (issue.code === 'invalid_union') message = unionMessage(issue) ?? message;
    const where = path.length ? `${path.map(String).join('.')}: ` : '';
    errors.push(`${shownPath(p.file)}:${lineOf(p, path)}: ${where}${message}`);
  }
}

// zod reports a failed union as "Invalid input"; name the alternatives' first messages instead.
function unionMessage(issue: z.core.$ZodIssue): string | undefined {
  const errs = (issue as { errors?: z.core.$ZodIssue[][] }).errors;
  if (!errs?.length) return undefined;
  const msgs = [...new Set(errs.map((e) => e[0]?.message).filter(Boolean))];
  return msgs.length ? `expected one of: ${msgs.join(' | ')}` : undefined;
}

function loadTopologyInto(file: string, errors: string[]): Topology | undefined {
  const p = parseYaml(file, errors);
  if (!p) return undefined;
  const r = TopologySchema.safeParse(p.doc.toJS());
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
    return m ? [m[1], Number(m[2])] as const : [e, 0] as const;
  };
  return errors
    .map((e, i) => ({ e, i, k: key(e) }))
    .sort((a, b) => a.k[0].localeCompare(b.k[0]) || a.k[1] - b.k[1] || a.i - b.i)
    .map((x) => x.e);
}

export function loadTopology(file: string): Topology {
  const errors: string[] = [];
  const t = loadTopologyInto(resolve(file), errors);
  if (!t) throw inputError(`${shownPath(file)} is not a valid topology`, sortByLine(errors));
  return t;
}

export function nodeNames(t: Topology): string[] {
  return typeof t.nodes === 'number' ? Array.from({ length: t.nodes }, (_, i) => `node${i + 1}`) : t.nodes;
}

export interface LoadOptions {
  /** Dataplane names the registry knows; unknown names are reported with the scenario's other errors. */
  knownDataplanes?: string[];
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
  const p = parseYaml(abs, errors);
  if (!p) throw inputError(`${shownPath(abs)} is not a valid scenario`, errors);
  const js = p.doc.toJS() as Loose;
  const r = ScenarioSchema.safeParse(js);
  if (!r.success) zodErrors(p, r.error, errors);
  const raw = r.success ? r.data : undefined;

  let topology: Topology | undefined;
  let topologyFile: string | undefined;
  if (typeof js?.topology === 'string') {
    topologyFile = resolve(dirname(abs), js.topology);
    topology = loadTopologyInto(topologyFile, errors);
  } else if (raw && typeof raw.topology === 'object') topology = raw.topology;
  let quickTopology: Topology | undefined;
  if (typeof js?.quick?.topology === 'string') quickTopology = loadTopologyInto(resolve(dirname(abs), js.quick.topology), errors);
  else if (raw && typeof raw.quick?.topology === 'object') quickTopology = raw.quick.topology;

  // Policy files: read with the caller's reader, their errors reported with everything else.
  const filePolicies: Policy[] = [];
  arr(js?.policyFiles).forEach((f, i) => {
    if (typeof f !== 'string') return;
    const abs = resolve(dirname(p.file), f);
    if (!opts.readPolicyFile) errors.push(`${shownPath(p.file)}:${lineOf(p, ['policyFiles', i])}: policyFiles.${i}: policy files cannot be read here`);
    else if (!existsSync(abs)) errors.push(`${shownPath(p.file)}:${lineOf(p, ['policyFiles', i])}: policyFiles.${i}: file not found: ${shownPath(abs)}`);
    else {
      const r = opts.readPolicyFile(abs);
      errors.push(...r.errors);
      filePolicies.push(...r.policies);
    }
  });

  // Checks across fields run on whatever parsed, so one pass reports every problem.
  if (js && typeof js === 'object') {
    crossCheck(p, js, topology, opts, errors);
    if (quickTopology) checkNodes(p, js, quickTopology, errors, 'quick.topology');
  }
  if (errors.length || !raw || !topology) throw inputError(`${shownPath(abs)} is not a valid scenario`, sortByLine(errors));
  return { ...raw, policies: [...raw.policies, ...filePolicies], inlinePolicies: raw.policies.length, topology, file: abs, topologyFile, quickTopology };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;
const arr = (x: unknown): Loose[] => (Array.isArray(x) ? x : []);

// Checks that need more than one field: names that must refer to something that exists. They
// read the raw document defensively, since the schema may have rejected parts of it.
/** The client's and the services' nodes must exist in the topology (`which` names it in messages). */
function checkNodes(p: Parsed, s: Loose, t: Topology, errors: string[], which = 'topology'): void {
  const err = (path: PropertyKey[], msg: string) => errors.push(`${shownPath(p.file)}:${lineOf(p, path)}: ${path.map(String).join('.')}: ${msg}`);
  const nodes = new Set(nodeNames(t));
  const nodeList = [...nodes].join(', ');
  const clientNode = s.client?.node;
  if (typeof clientNode === 'string' && !nodes.has(clientNode)) err(['client', 'node'], `unknown node "${clientNode}" (${which} has: ${nodeList})`);
  arr(s.services).forEach((svc, i) =>
    arr(svc?.nodes).forEach((n, j) => {
      if (typeof n === 'string' && !nodes.has(n)) err(['services', i, 'nodes', j], `unknown node "${n}" (${which} has: ${nodeList})`);
    }),
  );
}

function crossCheck(p: Parsed, s: Loose, t: Topology | undefined, opts: LoadOptions, errors: string[]): void {
  const err = (path: PropertyKey[], msg: string) => errors.push(`${shownPath(p.file)}:${lineOf(p, path)}: ${path.map(String).join('.')}: ${msg}`);
  if (t) checkNodes(p, s, t, errors);

  const services = arr(s.services);
  const seen = new Map<string, number>();
  services.forEach((svc, i) => {
    if (typeof svc?.name !== 'string') return;
    if (seen.has(svc.name)) err(['services', i, 'name'], `service "${svc.name}" is declared twice (first at services.${seen.get(svc.name)})`);
    else seen.set(svc.name, i);
  });
  for (const name of Object.keys(s.quick?.replicas ?? {})) {
    if (!seen.has(name)) err(['quick', 'replicas', name], `unknown service "${name}" (services: ${[...seen.keys()].join(', ')})`);
  }

  const workloads = arr(s.workloads);
  workloads.forEach((w, i) => {
    const chain = arr(w?.chain);
    chain.forEach((name, j) => {
      const svc = services.find((x) => x?.name === name);
      const proto = svc?.protocol ?? 'http';
      if (!svc) err(['workloads', i, 'chain', j], `unknown service "${name}" (declared: ${[...seen.keys()].join(', ') || 'none'})`);
      else if (j > 0 && proto !== 'http') err(['workloads', i, 'chain', j], `service "${name}" speaks ${proto}; only http services can be later links of a call chain`);
      else if (j === 0 && typeof w.protocol === 'string' && (w.protocol === 'grpc') !== (proto === 'grpc'))
        err(['workloads', i, 'protocol'], `workload protocol ${w.protocol} does not match service "${name}" (protocol ${proto})`);
    });
    if (chain.length > 1 && w.protocol === 'grpc') err(['workloads', i, 'chain'], 'a call chain needs an http1 or http2 workload (the chain hops are HTTP)');
    if (new Set(chain).size !== chain.length) err(['workloads', i, 'chain'], 'a service appears twice in the call chain');
  });
  const wnames = workloads.map((w) => w?.name ?? 'default');
  wnames.forEach((n, i) => {
    if (wnames.indexOf(n) !== i) err(['workloads', i, 'name'], `workload name "${n}" is used twice`);
  });

  const svcNames = new Set(services.map((x) => x?.name));
  arr(s.routes).forEach((r, i) => {
    if (typeof r?.service === 'string' && !svcNames.has(r.service)) err(['routes', i, 'service'], `unknown service "${r.service}"`);
    arr(r?.rules).forEach((rule, j) =>
      arr(rule?.to).forEach((d, k) => {
        if (typeof d?.service === 'string' && !svcNames.has(d.service)) err(['routes', i, 'rules', j, 'to', k, 'service'], `unknown service "${d.service}"`);
      }),
    );
  });
  const pnames = arr(s.policies).map((x) => `${x?.namespace ?? 'default'}/${x?.name}`);
  pnames.forEach((n, i) => {
    if (pnames.indexOf(n) !== i) err(['policies', i, 'name'], `policy "${n}" is declared twice`);
  });

  const named: [PropertyKey[], unknown][] = [[['reference', 'table'], s.reference?.table], ...arr(s.reference?.also).map((t, i): [PropertyKey[], unknown] => [['reference', 'also', i], t])];
  const tables = named.filter(([, t]) => typeof t === 'string' && t !== '');
  if (tables.length) {
    const ids = referenceTableIds(opts.claimsFile);
    for (const [path, table] of tables) {
      if (!Array.isArray(ids)) err(path, `cannot check table "${table}": ${ids.error}`);
      else if (!ids.includes(table as string)) err(path, `unknown table "${table}" (known: ${ids.join(', ')})`);
      else if (named.findIndex(([, t]) => t === table) !== named.findIndex(([p]) => p === path)) err(path, `table "${table}" is named twice`);
    }
  }

  const dn = arr(s.dataplanes);
  dn.forEach((d, i) => {
    if (opts.knownDataplanes && typeof d === 'string' && !opts.knownDataplanes.includes(d))
      err(['dataplanes', i], `unknown dataplane "${d}" (known: ${opts.knownDataplanes.join(', ')})`);
    if (dn.indexOf(d) !== i) err(['dataplanes', i], `dataplane "${d}" is listed twice`);
  });
}

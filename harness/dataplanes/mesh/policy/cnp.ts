// CiliumNetworkPolicy YAML → the lab's policy model (scenario/policy-schema.ts), so a scenario
// can reuse policies written for a real cluster. Only the subset every lab dataplane can enforce
// is accepted; anything else is reported as `file:line: path: message`, every problem of the file
// at once (like scenario/load.ts). The file is hostile until checked, like a scenario. The
// accepted subset and how Cilium's special cases convert: docs/policies.md.
import { relative } from 'node:path';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { inputError } from '../../../errors.js';
import { readInputFile, safeLine, safeToJS, token, yamlErrorMessage, yamlLine, YAML_PARSE_OPTIONS } from '../../../util/yaml.js';
import {
  PolicySchema,
  HTTP_METHOD_RE,
  DNS_LABEL_RE,
  LABEL_KEY_RE,
  LABEL_KEY_MSG,
  LABEL_VALUE_RE,
  LABEL_VALUE_MSG,
  MAX_LABELS,
  GRPC_SERVICE_RE,
  GRPC_METHOD_RE,
  parseHeader,
  pathError,
  type Policy,
  type LabelSelector,
  type HttpRule,
  type GrpcRule,
} from '../../../scenario/policy-schema.js';

export interface CiliumLoadResult {
  /** Policies of the documents that had no problem, in file order. */
  policies: Policy[];
  /** Every problem, each `file:line: path: message`; empty when the whole file converted. */
  errors: string[];
  /** `file:line` of each returned policy's document, for later messages about it. */
  origins: string[];
}

/** Same rule as scenario/load.ts: relative to the working directory when that is shorter. */
function shown(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && rel.length < file.length ? rel : file;
}

/** Read and convert a CiliumNetworkPolicy file; problems are returned, not thrown. */
export function readCiliumPolicies(file: string): CiliumLoadResult {
  const r = readInputFile(file);
  if ('error' in r) return { policies: [], errors: [`${shown(file)}:1: ${r.error}`], origins: [] };
  return parseCiliumPolicies(r.text, file);
}

/** Most problems reported per file, and most policies (documents) a file may hold. */
const MAX_REPORTED = 100;
export const MAX_POLICIES_PER_FILE = 256;

/** Read and convert a CiliumNetworkPolicy file; throws one E_INPUT error listing every problem. */
export function loadCiliumPolicies(file: string): Policy[] {
  const r = readCiliumPolicies(file);
  if (r.errors.length) throw inputError(`${shown(file)} is not a supported CiliumNetworkPolicy file`, r.errors);
  return r.policies;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;
type Path = (string | number)[];

/** Convert YAML text; `file` is used in messages only. */
export function parseCiliumPolicies(text: string, file: string): CiliumLoadResult {
  const errors: string[] = [];
  const policies: Policy[] = [];
  const origins: string[] = [];
  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lines, ...YAML_PARSE_OPTIONS });
  const docs = Array.isArray(parsed) ? parsed : [];
  const seen = new Map<string, number>();
  for (const doc of docs) {
    if (errors.length >= MAX_REPORTED) break;
    if (doc.errors.length) {
      for (const e of doc.errors) errors.push(`${shown(file)}:${e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line}: ${yamlErrorMessage(e)}`);
      continue;
    }
    const tree = safeToJS(doc, lines);
    if ('error' in tree) {
      errors.push(`${shown(file)}:${tree.line}: ${tree.error}`);
      continue;
    }
    const js = tree.value as Loose;
    if (js === null || js === undefined) continue; // an empty document between two `---`
    if (policies.length >= MAX_POLICIES_PER_FILE) {
      errors.push(`${shown(file)}:${lineOf(doc, lines, [])}: more than ${MAX_POLICIES_PER_FILE} policies in one file`);
      break;
    }
    const docErrors: string[] = [];
    const c = new Converter((path, msg) => {
      // Past the cap, stop locating problems too (each lookup walks the document).
      if (errors.length + docErrors.length < MAX_REPORTED) docErrors.push(safeLine(`${shown(file)}:${lineOf(doc, lines, path)}: ${pathText(path)}${msg}`));
    });
    const policy = c.policy(js);
    if (policy) {
      const key = `${policy.namespace}/${policy.name}`;
      const line = lineOf(doc, lines, ['metadata', 'name']);
      if (seen.has(key)) docErrors.push(`${shown(file)}:${line}: metadata.name: policy ${key} is defined twice (first at line ${seen.get(key)})`);
      else seen.set(key, line);
    }
    errors.push(...docErrors);
    if (policy && !docErrors.length) {
      policies.push(policy);
      origins.push(`${shown(file)}:${lineOf(doc, lines, [])}`);
    }
  }
  return { policies, errors, origins };
}

const lineOf = (doc: Document.Parsed, lines: LineCounter, path: Path): number => yamlLine(doc, lines, path);
/** "a.b.0: " for a message, keys from the file cut short. */
const pathText = (path: Path) => (path.length ? `${path.map((k) => (typeof k === 'string' && k.length > 40 ? token(k) : String(k))).join('.')}: ` : '');

const isObj = (x: unknown): x is Record<string, Loose> => typeof x === 'object' && x !== null && !Array.isArray(x);
const NS_KEY = 'io.kubernetes.pod.namespace';
const DNS_LABEL_MSG = 'must be a lowercase DNS label (a-z, 0-9, "-", at most 63 characters)';

// What is said about well-known Cilium fields outside the subset.
const UNSUPPORTED: Record<string, string> = {
  matchExpressions: 'matchExpressions are not supported; use matchLabels',
  ingressDeny: 'deny rules are not supported; policies here only allow',
  egressDeny: 'deny rules are not supported; policies here only allow',
  enableDefaultDeny: 'enableDefaultDeny is not supported: a policy with an ingress/egress section always turns default-deny on',
  nodeSelector: 'host (node) policies are not supported; select pods with endpointSelector',
  specs: 'a list of specs is not supported; write one document per policy',
  fromCIDR: 'CIDR peers are not supported; select pods with fromEndpoints',
  fromCIDRSet: 'CIDR peers are not supported; select pods with fromEndpoints',
  toCIDR: 'CIDR peers are not supported; select pods with toEndpoints',
  toCIDRSet: 'CIDR peers are not supported; select pods with toEndpoints',
  fromEntities: 'entities (world, host, cluster …) are not supported; select pods with fromEndpoints, or omit it for any peer',
  toEntities: 'entities (world, host, cluster …) are not supported; select pods with toEndpoints, or omit it for any peer',
  toFQDNs: 'DNS-name (toFQDNs) peers are not supported; the lab has no DNS proxy',
  toServices: 'toServices is not supported; select the backend pods with toEndpoints',
  fromRequires: 'fromRequires is not supported',
  toRequires: 'toRequires is not supported',
  fromGroups: 'cloud groups are not supported',
  toGroups: 'cloud groups are not supported',
  fromNodes: 'node peers are not supported',
  toNodes: 'node peers are not supported',
  icmps: 'ICMP rules are not supported; the lab carries TCP only',
  endPort: 'port ranges (endPort) are not supported; list each port',
  terminatingTLS: 'TLS interception is not supported',
  originatingTLS: 'TLS interception is not supported',
  serverNames: 'SNI rules (serverNames) are not supported',
  listener: 'custom Envoy listeners are not supported',
  kafka: 'Kafka rules are not supported; use http or l7proto: grpc',
  dns: 'DNS rules are not supported; use http or l7proto: grpc',
  host: 'HTTP host rules are not supported; use method, path and headers',
  headerMatches: 'headerMatches is not supported; use headers: ["Name: value"]',
};

class Converter {
  private namespace = 'default';
  /** Problems reported for this document so far. */
  private count = 0;
  private err: (path: Path, msg: string) => void;
  constructor(report: (path: Path, msg: string) => void) {
    this.err = (path, msg) => {
      this.count++;
      report(path, msg);
    };
  }

  /** Report keys of `o` outside `allowed`; true when there were none. */
  private keys(o: Record<string, Loose>, path: Path, allowed: string[]): boolean {
    let ok = true;
    for (const k of Object.keys(o)) {
      if (allowed.includes(k)) continue;
      ok = false;
      this.err(
        [...path, k],
        (Object.hasOwn(UNSUPPORTED, k) ? UNSUPPORTED[k] : undefined) ?? `unsupported key ${token(k)} (supported here: ${allowed.join(', ')})`,
      );
    }
    return ok;
  }

  private object(x: unknown, path: Path, what: string): x is Record<string, Loose> {
    if (isObj(x)) return true;
    this.err(path, `expected ${what}`);
    return false;
  }

  private list(x: unknown, path: Path, what: string): x is Loose[] {
    if (Array.isArray(x) && x.length) return true;
    this.err(path, Array.isArray(x) ? `empty list of ${what}` : `expected a list of ${what}`);
    return false;
  }

  policy(js: Loose): Policy | undefined {
    if (!this.object(js, [], 'a CiliumNetworkPolicy (a YAML map)')) return undefined;
    const before = this.count;
    // Not a policy at all (a file named by mistake): one line, none of its content quoted back.
    if (js.kind !== 'CiliumNetworkPolicy' && js.kind !== 'CiliumClusterwideNetworkPolicy') {
      this.err(
        ['kind' in js ? 'kind' : []].flat(),
        `not a CiliumNetworkPolicy: ${'kind' in js ? 'kind' : 'the key "kind"'} must be CiliumNetworkPolicy${'kind' in js ? '' : ' (missing)'}`,
      );
      return undefined;
    }
    if (js.kind === 'CiliumClusterwideNetworkPolicy')
      this.err(['kind'], 'CiliumClusterwideNetworkPolicy is not supported; write a CiliumNetworkPolicy in each namespace');
    if (js.apiVersion !== 'cilium.io/v2') this.err(['apiVersion'], `unsupported apiVersion ${token(js.apiVersion ?? null)} (supported: cilium.io/v2)`);
    this.keys(js, [], ['apiVersion', 'kind', 'metadata', 'spec']);
    let name: unknown;
    if (this.object(js.metadata, ['metadata'], 'metadata with a name')) {
      name = js.metadata.name;
      if (name === undefined) this.err(['metadata'], 'metadata.name is missing');
      else if (typeof name !== 'string' || !DNS_LABEL_RE.test(name)) this.err(['metadata', 'name'], `${DNS_LABEL_MSG}`);
      if (js.metadata.namespace !== undefined) {
        if (typeof js.metadata.namespace === 'string' && DNS_LABEL_RE.test(js.metadata.namespace)) this.namespace = js.metadata.namespace;
        else this.err(['metadata', 'namespace'], `${DNS_LABEL_MSG}`);
      }
    }
    if (!this.object(js.spec, ['spec'], 'a spec')) return undefined;
    const spec = js.spec;
    this.keys(spec, ['spec'], ['endpointSelector', 'ingress', 'egress', 'description']);
    let selector: LabelSelector | undefined;
    if (spec.endpointSelector === undefined) this.err(['spec'], 'spec.endpointSelector is missing (use {} for every pod of the namespace)');
    else {
      const s = this.selector(spec.endpointSelector, ['spec', 'endpointSelector']);
      if (s?.namespace !== undefined)
        this.err(['spec', 'endpointSelector', 'matchLabels'], `a CiliumNetworkPolicy selects pods of its own namespace; ${NS_KEY} is not allowed here`);
      selector = s?.labels;
    }
    const ingress = this.rules(spec.ingress, 'ingress');
    const egress = this.rules(spec.egress, 'egress');
    if (this.count !== before || !selector) return undefined;

    const raw: Record<string, unknown> = { name, namespace: this.namespace, selector };
    if (ingress) raw.ingress = ingress;
    if (egress) raw.egress = egress;
    const r = PolicySchema.safeParse(raw);
    if (r.success) return r.data;
    for (const issue of r.error.issues) {
      const [head] = issue.path;
      const path: Path = head === 'name' || head === 'namespace' ? ['metadata', head] : ['spec'];
      this.err(path, `${issue.path.join('.')}: ${issue.message}`);
    }
    return undefined;
  }

  /** {matchLabels} → labels, with the namespace label split out. */
  private selector(x: unknown, path: Path): { labels: LabelSelector; namespace?: string } | undefined {
    if (!this.object(x, path, 'a label selector ({matchLabels: {…}} or {})')) return undefined;
    if (!this.keys(x, path, ['matchLabels'])) return undefined;
    if (x.matchLabels === undefined || x.matchLabels === null) return { labels: {} };
    if (!this.object(x.matchLabels, [...path, 'matchLabels'], 'a map of labels')) return undefined;
    const labels: LabelSelector = {};
    let namespace: string | undefined;
    let ok = true;
    const entries = Object.entries(x.matchLabels);
    if (entries.length > MAX_LABELS) {
      this.err([...path, 'matchLabels'], `at most ${MAX_LABELS} labels`);
      return undefined;
    }
    for (const [rawKey, value] of entries) {
      const at = [...path, 'matchLabels', rawKey];
      const key = rawKey.replace(/^(k8s|any):/, '');
      if (typeof value !== 'string') {
        this.err(at, 'label values must be strings (quote it)');
        ok = false;
      } else if (key === NS_KEY) {
        if (DNS_LABEL_RE.test(value)) namespace = value;
        else {
          this.err(at, `namespace ${DNS_LABEL_MSG}`);
          ok = false;
        }
      } else if (key.includes(':')) {
        this.err(at, `label source ${token(key.split(':')[0] + ':')} is not supported (use plain keys, k8s: or any:)`);
        ok = false;
      } else if (!LABEL_KEY_RE.test(key)) {
        this.err(at, LABEL_KEY_MSG);
        ok = false;
      } else if (!LABEL_VALUE_RE.test(value)) {
        this.err(at, LABEL_VALUE_MSG);
        ok = false;
      } else labels[key] = value;
    }
    return ok ? { labels, namespace } : undefined;
  }

  /** One ingress or egress section → native rules; undefined when it does not turn enforcement on. */
  private rules(x: unknown, dir: 'ingress' | 'egress'): Record<string, unknown>[] | undefined {
    if (x === undefined || x === null) return undefined;
    const path: Path = ['spec', dir];
    if (!Array.isArray(x)) {
      this.err(path, `expected a list of ${dir} rules`);
      return undefined;
    }
    if (!x.length) return undefined; // Cilium: an empty section does not enable default-deny
    const peersKey = dir === 'ingress' ? 'fromEndpoints' : 'toEndpoints';
    const nativePeers = dir === 'ingress' ? 'from' : 'to';
    const out: Record<string, unknown>[] = [];
    x.forEach((rule, i) => {
      const at = [...path, i];
      if (!this.object(rule, at, `an ${dir} rule`)) return;
      this.keys(rule, at, [peersKey, 'toPorts', 'authentication']);

      // Peers, grouped by namespace: undefined = any peer at all.
      let groups: { namespaces?: string[]; selectors: LabelSelector[] }[] | undefined;
      if (rule[peersKey] !== undefined) {
        const sels = rule[peersKey];
        if (this.list(sels, [...at, peersKey], 'endpoint selectors (omit the key for any peer)')) {
          const byNs = new Map<string, LabelSelector[]>();
          sels.forEach((s: unknown, j: number) => {
            const sel = this.selector(s, [...at, peersKey, j]);
            if (!sel) return;
            const ns = sel.namespace ?? this.namespace;
            byNs.set(ns, [...(byNs.get(ns) ?? []), sel.labels]);
          });
          groups = [...byNs].map(([ns, selectors]) => (ns === this.namespace ? { selectors } : { namespaces: [ns], selectors }));
        }
      }

      let auth: 'required' | undefined;
      if (rule.authentication !== undefined && this.object(rule.authentication, [...at, 'authentication'], 'authentication: {mode: required}')) {
        this.keys(rule.authentication, [...at, 'authentication'], ['mode']);
        const mode = rule.authentication.mode;
        if (mode === 'required') auth = 'required';
        else if (mode !== 'disabled')
          this.err([...at, 'authentication', 'mode'], `unsupported authentication mode ${token(mode ?? null)} (supported: required, disabled)`);
      }

      // Port sections: undefined = every port.
      let sections: { ports: number[]; http?: HttpRule[]; grpc?: GrpcRule[] }[] | undefined;
      if (rule.toPorts !== undefined && this.list(rule.toPorts, [...at, 'toPorts'], 'port sections')) {
        sections = [];
        rule.toPorts.forEach((tp: unknown, k: number) => {
          const s = this.portSection(tp, [...at, 'toPorts', k]);
          if (s) sections!.push(s);
        });
      }

      // `- {}` (no peers, no ports): selects nothing; it only enables default-deny.
      if (rule[peersKey] === undefined && rule.toPorts === undefined) return;
      for (const g of groups ?? [{ selectors: undefined }]) {
        for (const s of sections ?? [undefined]) {
          const r: Record<string, unknown> = {};
          if (g.selectors) r[nativePeers] = g.selectors;
          if ('namespaces' in g && g.namespaces) r.namespaces = g.namespaces;
          if (s) {
            r.ports = s.ports;
            if (s.http) r.http = s.http;
            if (s.grpc) r.grpc = s.grpc;
          }
          if (auth) r.auth = auth;
          out.push(r);
        }
      }
    });
    return out;
  }

  private portSection(x: unknown, at: Path): { ports: number[]; http?: HttpRule[]; grpc?: GrpcRule[] } | undefined {
    if (!this.object(x, at, 'a port section ({ports: [...], rules: {...}})')) return undefined;
    this.keys(x, at, ['ports', 'rules']);
    const ports: number[] = [];
    if (this.list(x.ports, [...at, 'ports'], 'ports')) {
      x.ports.forEach((p: unknown, i: number) => {
        const pat = [...at, 'ports', i];
        if (!this.object(p, pat, 'a port ({port: "8080", protocol: TCP})')) return;
        this.keys(p, pat, ['port', 'protocol']);
        const n = typeof p.port === 'number' ? p.port : typeof p.port === 'string' && /^\d+$/.test(p.port) ? Number(p.port) : NaN;
        if (!Number.isInteger(n) || n < 1 || n > 65535)
          this.err(
            [...pat, 'port'],
            p.port === undefined ? 'port is missing' : `unsupported port ${token(p.port)} (supported: a number 1-65535; no named ports, no 0 = all ports)`,
          );
        else ports.push(n);
        if (p.protocol !== undefined && p.protocol !== 'TCP' && p.protocol !== 'ANY')
          this.err([...pat, 'protocol'], `unsupported protocol ${token(p.protocol)} (supported: TCP; the lab carries TCP only)`);
      });
    }
    if (x.rules === undefined || x.rules === null) return { ports };
    const rat = [...at, 'rules'];
    if (!this.object(x.rules, rat, 'rules: {http: [...]} or {l7proto: grpc, l7: [...]}')) return undefined;
    const rules = x.rules;
    this.keys(rules, rat, ['http', 'l7proto', 'l7']);
    if (rules.http !== undefined && (rules.l7proto !== undefined || rules.l7 !== undefined)) {
      this.err(rat, 'give either http or l7proto/l7 rules, not both');
      return undefined;
    }
    if (rules.http !== undefined) {
      const http: HttpRule[] = [];
      if (this.list(rules.http, [...rat, 'http'], 'HTTP rules'))
        rules.http.forEach((h: unknown, i: number) => {
          const r = this.httpRule(h, [...rat, 'http', i]);
          if (r) http.push(r);
        });
      return { ports, http };
    }
    if (rules.l7proto !== undefined || rules.l7 !== undefined) {
      if (rules.l7proto !== 'grpc') {
        this.err([...rat, 'l7proto'], `unsupported l7proto ${token(rules.l7proto ?? null)} (supported: grpc)`);
        return undefined;
      }
      const grpc: GrpcRule[] = [];
      if (this.list(rules.l7, [...rat, 'l7'], 'gRPC rules ({service, method})'))
        rules.l7.forEach((g: unknown, i: number) => {
          const gat = [...rat, 'l7', i];
          if (!this.object(g, gat, 'a gRPC rule ({service, method})')) return;
          this.keys(g, gat, ['service', 'method']);
          let ok = true;
          if (typeof g.service !== 'string' || !GRPC_SERVICE_RE.test(g.service)) {
            this.err([...gat, 'service'], 'expected a fully qualified gRPC service such as pkg.v1.Service');
            ok = false;
          }
          if (g.method !== undefined && (typeof g.method !== 'string' || !GRPC_METHOD_RE.test(g.method))) {
            this.err([...gat, 'method'], 'expected a gRPC method name such as CheckStock');
            ok = false;
          }
          if (ok) grpc.push(g.method === undefined ? { service: g.service } : { service: g.service, method: g.method });
        });
      return { ports, grpc };
    }
    return { ports };
  }

  private httpRule(x: unknown, at: Path): HttpRule | undefined {
    if (!this.object(x, at, 'an HTTP rule ({method, path, headers})')) return undefined;
    this.keys(x, at, ['method', 'path', 'headers']);
    const r: HttpRule = {};
    let ok = true;
    if (x.method !== undefined) {
      if (typeof x.method === 'string' && HTTP_METHOD_RE.test(x.method)) r.method = x.method;
      else {
        this.err([...at, 'method'], `unsupported method ${token(x.method)} (supported: one method name such as GET; method regexes are not)`);
        ok = false;
      }
    }
    if (x.path !== undefined) {
      const e = typeof x.path === 'string' ? pathError(x.path) : 'expected a string';
      if (e) {
        this.err([...at, 'path'], e);
        ok = false;
      } else r.path = x.path;
    }
    if (x.headers !== undefined) {
      if (this.list(x.headers, [...at, 'headers'], 'headers ("Name: value")')) {
        x.headers.forEach((h: unknown, i: number) => {
          if (typeof h !== 'string' || !parseHeader(h)) {
            this.err(
              [...at, 'headers', i],
              'expected "Name: value" with a value of printable ASCII without quotes or backslash (header presence without a value is not supported)',
            );
            ok = false;
          }
        });
        if (ok) r.headers = x.headers;
      } else ok = false;
    }
    return ok ? r : undefined;
  }
}

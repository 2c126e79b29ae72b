// `meshbench observe`: the eBPF dataplane's flow log, printed and filtered like `hubble observe`.
// Reads flows/<node>.jsonl (written by mb-flowd) under a run record, a run directory or a case
// directory, names addresses and identities from flows/identities.json, and prints one line per
// flow in time order.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { inputError } from '../errors.js';
import { readFlowDir, type Flow } from '../probes/flows.js';

export type { Flow } from '../probes/flows.js';

/** Every flows/ directory under `path` (a run.json, a run directory or a case directory). */
function flowDirs(path: string): string[] {
  if (!existsSync(path)) throw inputError(`${path}: no such file or directory`, [], 'give a run.json, a run directory or a case directory');
  const root = statSync(path).isDirectory() ? path : dirname(path);
  if (existsSync(join(root, 'flows'))) return [join(root, 'flows')];
  const cases = join(root, 'cases');
  const dirs = existsSync(cases)
    ? readdirSync(cases)
        .map((c) => join(cases, c, 'flows'))
        .filter(existsSync)
    : [];
  if (!dirs.length) throw inputError(`${path}: no flow log here`, [], 'flow logs are written by the eBPF dataplanes (ebpf, ebpf-l7); run one of them first');
  return dirs;
}

/** Every flow under `path`; lines that are not JSON records (a record cut short) are skipped and passed to `warn`. */
export function readFlows(path: string, warn: (msg: string) => void = () => {}): Flow[] {
  const out: Flow[] = [];
  for (const dir of flowDirs(path)) {
    const log = readFlowDir(dir);
    for (const at of log.unreadable) warn(`${at}: not a JSON flow record, skipped`);
    out.push(...log.flows);
  }
  return out.sort((a, b) => a.timeNs - b.timeNs);
}

export interface ObserveFilter {
  verdict?: string;
  pod?: string;
  namespace?: string;
}

export function filterFlows(flows: Flow[], f: ObserveFilter): Flow[] {
  const podMatch = (ns: string | undefined, pod: string | undefined) => {
    if (!f.pod) return true;
    const [want, name] = f.pod.includes('/') ? f.pod.split('/') : [undefined, f.pod];
    return pod === name && (!want || ns === want);
  };
  return flows.filter(
    (x) =>
      (!f.verdict || x.verdict === f.verdict.toUpperCase()) &&
      (podMatch(x.sourceNamespace, x.sourcePod) || podMatch(x.destinationNamespace, x.destinationPod)) &&
      (!f.namespace || x.sourceNamespace === f.namespace || x.destinationNamespace === f.namespace),
  );
}

/** One line per flow, in Hubble's shape: time, source -> destination, verdict, direction, node. */
export function formatFlow(x: Flow): string {
  const t = new Date(Math.floor(x.timeNs / 1e6)).toISOString().replace('T', ' ').replace('Z', '');
  const end = (ns: string | undefined, pod: string | undefined, ip: string, port: number, id: number) => `${pod ? `${ns}/${pod}` : ip}:${port} (ID:${id})`;
  const svc = x.destinationService;
  const verdict = x.verdict + (x.dropReason ? ` (${x.dropReason})` : '') + (x.proxyPort ? ` to-proxy:${x.proxyPort}` : '');
  const l7 = x.l7 ? ` ${x.l7.method} ${x.l7.path} ${x.l7.status}${x.l7.route ? ` route ${x.l7.route} → ${x.l7.upstream ?? '-'}` : ''}` : '';
  return `${t}: ${end(x.sourceNamespace, x.sourcePod, x.source.ip, x.source.port, x.source.identity)} -> ${svc ? `${svc.namespace}/${svc.name} (Service ${x.destination.ip}:${x.destination.port})` : end(x.destinationNamespace, x.destinationPod, x.destination.ip, x.destination.port, x.destination.identity)} ${verdict} ${x.direction} ${x.protocol}${l7} ${x.node}`;
}

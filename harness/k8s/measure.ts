// What a case measures on a cluster, from what the cluster gives: the client Job's log (fortio's
// JSON summary on stdout and its per-request access log on stderr, or mb-load's JSON), the
// kubelet's resource metrics (through the API server: /api/v1/nodes/<node>/proxy/metrics/resource)
// scraped at the start and end of the measured window, and pod conditions for start-up. Pure
// parsing here; run.ts does the talking.
import { latencySummary, parseFortioJson, type FortioSummary } from '../load/fortio.js';
import type { Resources, RoleResources } from '../results/types.js';

/** fortio's log as the pod's log holds it: the access log's one-line JSON objects and the -json summary. */
export function parseFortioLog(log: string): { summary: FortioSummary; latenciesUs: Float64Array; errors: number; summaryText: string } {
  const lines = log.split('\n');
  const vals: number[] = [];
  let errors = 0;
  const start = lines.indexOf('{');
  const end = lines.lastIndexOf('}');
  for (const line of lines) {
    if (!line.startsWith('{"') || !line.includes('"latency"')) continue;
    const j = JSON.parse(line) as { latency: number; ok: boolean };
    if (j.ok) vals.push(j.latency * 1e6);
    else errors++;
  }
  if (start < 0 || end < start) throw new Error('the load container printed no fortio JSON summary');
  const summaryText = lines.slice(start, end + 1).join('\n');
  const summary = parseFortioJson(summaryText);
  // The kubelet rotates container logs (10 MiB by default) and a pod's log is the current file only.
  if (vals.length + errors < summary.count)
    throw new Error(
      `the pod's log holds ${vals.length + errors} of fortio's ${summary.count} requests: the kubelet rotated its log (a run too long or too fast for the per-request access log)`,
    );
  return { summary, latenciesUs: Float64Array.from(vals).sort(), errors, summaryText };
}

/** fortio figures of a Job's log as the record's latency (the same access-log method as on the lab). */
export function fortioLatency(log: string) {
  const p = parseFortioLog(log);
  return { ...p, latency: p.latenciesUs.length ? latencySummary(p.latenciesUs, p.summary) : undefined };
}

export interface ContainerSample {
  namespace: string;
  pod: string;
  container: string;
  cpuSeconds?: number;
  workingSetBytes?: number;
}

const METRIC = /^(container_cpu_usage_seconds_total|container_memory_working_set_bytes)\{([^}]*)\}\s+(\S+)/;

/** The kubelet's /metrics/resource (Prometheus text): per container, CPU seconds and working set. */
export function parseResourceMetrics(text: string): ContainerSample[] {
  const by = new Map<string, ContainerSample>();
  for (const line of text.split('\n')) {
    const m = METRIC.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (!labels.namespace || !labels.pod || !labels.container) continue;
    const key = `${labels.namespace}/${labels.pod}/${labels.container}`;
    const s = by.get(key) ?? { namespace: labels.namespace, pod: labels.pod, container: labels.container };
    if (m[1] === 'container_cpu_usage_seconds_total') s.cpuSeconds = Number(m[3]);
    else s.workingSetBytes = Number(m[3]);
    by.set(key, s);
  }
  return [...by.values()];
}

/** Which role a container plays (the record's role names, as on the lab); undefined: not the case's. */
export function roleOf(c: Pick<ContainerSample, 'namespace' | 'pod' | 'container'>, runNamespaces: readonly string[]): string | undefined {
  if (runNamespaces.includes(c.namespace)) {
    if (c.container === 'istio-proxy' || c.container === 'linkerd-proxy') return c.pod.startsWith('waypoint-') ? 'waypoint' : 'proxy';
    if (c.container === 'load' || c.container === 'warmup') return 'load';
    if (c.pod.startsWith('waypoint-')) return 'waypoint';
    return 'app';
  }
  if (c.namespace === 'istio-system' && c.pod.startsWith('ztunnel-')) return 'node-proxy';
  // The node Envoy: the lab's role for it (ebpf-l7's node L7 proxy) is l7-proxy.
  if (c.namespace === 'kube-system' && c.pod.startsWith('cilium-envoy-')) return 'l7-proxy';
  if (c.namespace === 'kube-system' && /^cilium-[a-z0-9]{5}$/.test(c.pod) && c.container === 'cilium-agent') return 'agent';
  return undefined;
}

/**
 * Resources of the window between two scrapes of every node: each role's CPU seconds (end − start
 * per container; a container that restarted counts from zero) and working set at the end. The
 * kubelet has no PSS: pssBytes is the working set, as `method` says.
 */
export function windowResources(before: ContainerSample[], after: ContainerSample[], runNamespaces: readonly string[], windowS: number): Resources {
  const byRole: Record<string, RoleResources> = {};
  const processes: Resources['processes'] = [];
  const key = (c: ContainerSample) => `${c.namespace}/${c.pod}/${c.container}`;
  const start = new Map(before.map((c) => [key(c), c]));
  for (const c of after) {
    const role = roleOf(c, runNamespaces);
    if (!role) continue;
    const b = start.get(key(c));
    const cpu = Math.max(0, (c.cpuSeconds ?? 0) - (b && (b.cpuSeconds ?? 0) <= (c.cpuSeconds ?? 0) ? (b.cpuSeconds ?? 0) : 0));
    const ws = c.workingSetBytes ?? 0;
    const r = (byRole[role] ??= { processes: 0, rssBytes: 0, pssBytes: 0, rssPeakBytes: 0, cpuSeconds: 0 });
    r.processes++;
    r.rssBytes += ws;
    r.pssBytes += ws;
    r.rssPeakBytes += ws;
    r.cpuSeconds = Math.round((r.cpuSeconds + cpu) * 1e6) / 1e6;
    processes.push({
      name: `${c.namespace}/${c.pod}/${c.container}`,
      role,
      pid: 0,
      rssBytes: ws,
      pssBytes: ws,
      rssPeakBytes: ws,
      cpuSeconds: Math.round(cpu * 1e6) / 1e6,
    });
  }
  return {
    windowS,
    byRole,
    processes,
    kernel: { bpfMapBytes: 0, bpfRunTimeNs: 0, softirqSeconds: 0 },
    method:
      "kubelet resource metrics through the API server (container_cpu_usage_seconds_total, container_memory_working_set_bytes), scraped on every node at the start and end of the load container's run; memory is the working set (the kubelet has no PSS); kernel figures are not read on a cluster",
  };
}

/** Pod start-up: PodScheduled → Ready, ms, from the pods' conditions. */
export function podReadyMs(
  pods: { metadata: { name: string }; status?: { conditions?: { type: string; status: string; lastTransitionTime?: string }[] } }[],
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of pods) {
    const at = (t: string) => p.status?.conditions?.find((c) => c.type === t && c.status === 'True')?.lastTransitionTime;
    const from = at('PodScheduled');
    const to = at('Ready');
    if (from && to) out[p.metadata.name] = Date.parse(to) - Date.parse(from);
  }
  return out;
}

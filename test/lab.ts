// A small lab for dataplane integration tests: build the fixture cluster with one dataplane, run
// a check inside it, always tear down; plus a capture of the underlay for "only TLS on the wire".
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { readCiliumPolicies } from '../harness/dataplanes/mesh/policy/cnp.js';
import { loadScenario } from '../harness/scenario/load.js';
import { expandCases } from '../harness/scenario/expand.js';
import { buildCluster, type Cluster, type PodSpec } from '../harness/topology/graph.js';
import { clusterUp } from '../harness/topology/netns.js';
import { sweep } from '../harness/topology/cleanup.js';
import { getDataplane, dataplaneChecks } from '../harness/dataplanes/registry.js';
import type { Deployed } from '../harness/dataplanes/types.js';
import { startApps } from '../harness/workloads/fortio-server.js';
import { exec } from '../harness/util/exec.js';
import { haproxy } from '../harness/dataplanes/engine/haproxy.js';
import { ProcessGroup } from '../harness/util/procs.js';
import { requireTool } from '../harness/util/tools.js';

export const MARKER = 'MESHBENCH-PLAINTEXT-MARKER-7f3a';

export interface Lab {
  c: Cluster;
  d: Deployed;
  procs: ProcessGroup;
  dir: string;
  fortio: string;
  pod: (name: string) => PodSpec;
  curl: (from: PodSpec, url: string, args?: string[], opts?: { uid?: number }) => Promise<{ code: number; out: string }>;
}

/** Build the fixture cluster with one dataplane, run `fn`, always tear down. */
export async function withLab(
  dataplane: string,
  prefix: string,
  fn: (lab: Lab) => Promise<void>,
  scenario = 'test/fixtures/scenarios/sidecar-policy.yaml',
): Promise<void> {
  const fortio = await requireTool('fortio');
  const s = loadScenario(scenario, { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
  const c = buildCluster(s, prefix);
  const dir = mkdtempSync(join(tmpdir(), `mb-${dataplane}-`));
  const procs = new ProcessGroup(prefix, dir);
  const dp = getDataplane(dataplane);
  const ctx = { cluster: c, scenario: s, procs, caseDir: dir, log: () => {} };
  let d: Deployed | undefined;
  try {
    await clusterUp(c);
    d = await dp.deploy(ctx);
    await startApps({ cluster: c, workload: expandCases(s)[0].workload, procs, fortio, logDir: dir });
    const pod = (name: string) => c.pods.find((p) => p.name === name)!;
    const curl = async (from: PodSpec, url: string, args: string[] = [], opts: { uid?: number } = {}) => {
      const wrap = opts.uid !== undefined ? ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups'] : [];
      const r = await exec(
        wrap[0] ?? fortio,
        [...wrap.slice(1), ...(wrap.length ? [fortio] : []), 'curl', '-loglevel', 'error', '-timeout', '3s', ...args, url],
        { netns: from.netns, cgroup: procs.cgroupFor('test'), allowFail: true },
      );
      return { code: r.code, out: r.stdout + r.stderr };
    };
    await fn({ c, d, procs, dir, fortio, pod, curl });
  } finally {
    await d?.beforeStop?.();
    await procs.stopAll();
    await dp.teardown(ctx);
    await procs.close();
    await sweep(prefix);
  }
}

export const vip = (c: Cluster, svc: string) => {
  const s = c.services.find((x) => x.name === svc)!;
  return `http://${s.vip}:${s.port}`;
};

/** Capture on node1's underlay link while `fn` runs; returns what tcpdump printed in ASCII. */
export async function captureUnderlay(c: Cluster, fn: () => Promise<void>, filter = 'tcp'): Promise<string> {
  const child = spawn('nsenter', [`--net=/run/netns/${c.nodes[0].netns}`, 'tcpdump', '-l', '-n', '-A', '-s', '0', '-i', `${c.prefix}-ul`, filter], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('latin1').on('data', (d) => (out += d));
  let ready = false;
  child.stderr.on('data', (d) => (ready ||= /listening on/.test(String(d))));
  for (let i = 0; i < 100 && !ready; i++) await sleep(20);
  try {
    await fn();
    await sleep(300);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => child.on('close', r));
  }
  return out;
}

/**
 * routes-path.yaml through one HAProxy (a sidecar or a waypoint, its admin socket `sock`): for each
 * [path, fortio args, backend], 50 requests from the client all reach that backend, counted on
 * the proxy's backends `key(svc)`.
 */
export async function checkPathRoutes(
  t: import('ava').ExecutionContext,
  { c, fortio }: Pick<Lab, 'c' | 'fortio'>,
  sock: string,
  key: (svc: string) => string,
  cases: [string, string[], string][],
): Promise<void> {
  for (const [path, args, want] of cases) {
    const before = await haproxy.counters(sock);
    const r = await exec(fortio, ['load', '-loglevel', 'error', '-qps', '0', '-c', '2', '-n', '50', ...args, `${vip(c, 'api-service')}${path}`], {
      netns: c.client.netns,
    });
    t.regex(r.stdout + r.stderr, /Code 200 : 50 /, `${path} ${args.join(' ')}`);
    const after = await haproxy.counters(sock);
    const n = (svc: string) => (after.backends[key(svc)] ?? 0) - (before.backends[key(svc)] ?? 0);
    t.deepEqual([n('api-service-v1'), n('api-service-v2')], want === 'api-service-v1' ? [50, 0] : [0, 50], `${path} ${args.join(' ')} → ${want}`);
  }
}

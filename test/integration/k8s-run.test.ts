// Issue 18's run loop against a real API server: `meshbench run --target kubernetes` applies a
// case's objects, waits for its Deployments, runs the client Job, scrapes the nodes' resource
// metrics through the API server, reads the Job's log, and deletes the run's namespaces, case by
// case. The API server, etcd, controller-manager and scheduler are real (v1.34.4, built by
// scripts/k8s-tools.sh); THE KUBELET IS SIMULATED (test/k8s/sim-kubelet.ts): there is no container
// runtime here, so pods are marked Running by it, the load container's log is a recorded fortio
// run and the resource metrics are synthetic. What this tests is the loop and its bookkeeping,
// never a figure. Everything runs in a lab network namespace (mbk8sr-k8s, 198.18.250.0/24).
import test from 'ava';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunRecord } from '../../harness/results/types.js';
import { cleanAround, cli, rootTest } from '../helpers.js';
import { ensureK8sTools, startApiServer, type TestApiServer } from '../k8s/apiserver.js';

let api: TestApiServer;
cleanAround();

test.before(async (t) => {
  t.timeout(20 * 60_000);
  await ensureK8sTools((m) => t.log(m));
  if (process.getuid?.() !== 0) return;
  api = await startApiServer(mkdtempSync(join(tmpdir(), 'mb-k8s-run-')), {
    cluster: { prefix: 'mbk8sr', nodes: ['node1', 'node2'], jobSeconds: 3 },
    log: (m) => t.log(m),
  });
});

test.after.always(async () => {
  await api?.stop();
});

/** The CLI inside the fixture's namespace (where the API server and the simulated kubelet are). */
const meshbench = (args: string[], o: Parameters<typeof cli>[1] = {}) => cli(args, { ...o, wrap: ['ip', 'netns', 'exec', api.netns!], timeoutMs: 300_000 });
const runNamespaces = async () => (await api.kubectl(['get', 'namespaces', '-l', 'meshbench.dev/run', '-o', 'name'])).stdout.trim();

rootTest(
  'run --target kubernetes (baseline, 2 repeats): apply → ready → load Job → metrics → log → teardown, a record and a report; nothing left [kubelet SIMULATED]',
  async (t) => {
    t.timeout(10 * 60_000);
    const dir = mkdtempSync(join(tmpdir(), 'mb-k8s-run-out-'));
    const r = await meshbench([
      'run',
      'scenarios/quick.yaml',
      '--target',
      'kubernetes',
      '--kubeconfig',
      api.kubeconfig,
      '--dataplanes',
      'baseline',
      '--repeats',
      '2',
      '--duration',
      '2',
      '--warmup',
      '1',
      '--results',
      join(dir, 'results'),
      '--reports',
      join(dir, 'reports'),
      '--json',
    ]);
    t.is(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    const rec = JSON.parse(readFileSync(summary.runJson, 'utf8')) as RunRecord;
    t.is(rec.status, 'complete', rec.error);
    t.is(rec.environment.kubernetes?.server, 'v1.34.4');
    t.deepEqual(
      rec.environment.kubernetes?.nodes.map((n) => [n.name, n.labNode, n.kubelet]),
      [
        ['node1', 'node1', 'simulated'],
        ['node2', 'node2', 'simulated'],
      ],
    );
    t.is(rec.cases.length, 2);
    for (const c of rec.cases) {
      t.is(c.status, 'ok', JSON.stringify(c.validity));
      // The recorded fortio run the simulated kubelet serves as the load container's log: 300 requests.
      t.is(c.latencyUs?.count, 300);
      t.is(c.load.actual.requests, 300);
      t.regex(c.latencyUs!.source, /access log/);
      t.regex(String(c.provenance.load?.mechanism), /^Job mb[0-9a-z]{4}-default\/load-\d+ on node1$/);
      // The app pod went where the topology put it (quick.yaml: the service on node2).
      t.true((c.provenance.apps?.pods as string[] | undefined)?.length === 1);
      t.true(
        ((c.provenance.apps?.pods ?? []) as string[]).every((p) => p.endsWith('@node2')),
        JSON.stringify(c.provenance.apps),
      );
      t.true(Object.keys(c.startup?.podReadyMs ?? {}).length >= 1);
      // Resource metrics through the API server, split by role: the app and the load container.
      t.true(c.resources!.byRole.app!.cpuSeconds > 0);
      t.regex(c.resources!.method, /kubelet resource metrics through the API server/);
    }
    t.truthy(summary.report, 'a report');
    const html = readFileSync(summary.report, 'utf8');
    t.regex(html, /Kubernetes <code>v1\.34\.4<\/code>/);
    t.regex(html, /kubelet simulated/, 'the report names the simulated kubelet the record names');
    // The same claims as on the lab: the record carries the scenario's reference tables, the report judges them.
    t.truthy(rec.reference?.tables.length);
    t.regex(html, /<section id="claims">/);
    t.is(await runNamespaces(), '', 'every namespace of the run is gone');
  },
);

rootTest(
  'a dataplane whose mesh the cluster does not run is exit 3 before anything is applied; --node-map to a node the cluster lacks is exit 2',
  async (t) => {
    const r = await meshbench(['run', 'scenarios/quick.yaml', '--target', 'kubernetes', '--kubeconfig', api.kubeconfig, '--dataplanes', 'istio-sidecar']);
    t.is(r.code, 3, r.stderr);
    t.regex(r.stderr, /istio-sidecar needs istiod, but the cluster has no deployment istio-system\/istiod/);
    t.is(await runNamespaces(), '');
    const bad = await meshbench([
      'run',
      'scenarios/quick.yaml',
      '--target',
      'kubernetes',
      '--kubeconfig',
      api.kubeconfig,
      '--dataplanes',
      'baseline',
      '--node-map',
      'node1=node9',
    ]);
    t.is(bad.code, 2, bad.stderr);
    t.regex(bad.stderr, /--node-map node1=node9: the cluster has no node node9/);
  },
);

rootTest("SIGINT during a cluster run: exit 130, the record marked incomplete, the run's namespaces deleted [kubelet SIMULATED]", async (t) => {
  t.timeout(5 * 60_000);
  const dir = mkdtempSync(join(tmpdir(), 'mb-k8s-int-'));
  let sent = false;
  const r = await meshbench(
    [
      'run',
      'scenarios/quick.yaml',
      '--target',
      'kubernetes',
      '--kubeconfig',
      api.kubeconfig,
      '--dataplanes',
      'baseline',
      '--repeats',
      '3',
      '--duration',
      '2',
      '--warmup',
      '1',
      '--results',
      join(dir, 'results'),
      '--no-report',
    ],
    {
      onStderr: (chunk, child) => {
        if (!sent && /applying \d+ objects/.test(chunk)) {
          sent = true;
          setTimeout(() => child.kill('SIGINT'), 1500);
        }
      },
    },
  );
  t.true(sent, r.stderr);
  t.is(r.code, 130, r.stderr);
  const file = /run record: (\S+)/.exec(r.stdout)?.[1];
  t.truthy(file, r.stdout);
  const rec = JSON.parse(readFileSync(file!, 'utf8')) as RunRecord;
  t.is(rec.status, 'incomplete');
  t.regex(rec.error ?? '', /interrupted/);
  t.is(await runNamespaces(), '');
});

rootTest('down --target kubernetes removes the namespaces of meshbench runs (by label) and nothing else', async (t) => {
  await api.kubectl(['create', 'namespace', 'mbzzzz-default']);
  await api.kubectl(['label', 'namespace', 'mbzzzz-default', 'meshbench.dev/run=mbzzzz']);
  await api.kubectl(['create', 'namespace', 'not-ours']);
  const r = await meshbench(['down', '--target', 'kubernetes', '--kubeconfig', api.kubeconfig]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /removed 1 namespace\(s\) of meshbench runs/);
  t.is(await runNamespaces(), '');
  t.is((await api.kubectl(['get', 'namespace', 'not-ours', '-o', 'name'])).stdout.trim(), 'namespace/not-ours');
});

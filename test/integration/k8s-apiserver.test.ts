// The real kube-apiserver fixture (issue 18): built from Go modules when missing (not skipped),
// started on 127.0.0.1 with etcd, the meshes' real CRDs applied. Checks the version it reports,
// that every CRD is Established, that their schemas accept valid policies and refuse malformed
// ones on a server-side dry run, and that stop() leaves no process behind. Needs no root.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { which } from '../../harness/util/exec.js';
import { ensureK8sTools, k8sToolsMissing, startApiServer, type TestApiServer } from '../k8s/apiserver.js';

let api: TestApiServer | undefined;
let dir = '';
const NS = 'mb-k8s-test';

test.before(async (t) => {
  t.timeout(20 * 60_000, 'cold build of kube-apiserver, kubectl and etcd (~4 min) plus start');
  if (k8sToolsMissing() && !(await which('go')))
    throw new Error('go is not on PATH: the Kubernetes fixture builds kube-apiserver, kubectl and etcd with it (install Go 1.24 or later)');
  const t0 = Date.now();
  await ensureK8sTools((m) => t.log(m));
  t.log(`tools ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  dir = mkdtempSync(join(tmpdir(), 'mb-k8s-'));
  api = await startApiServer(dir, { log: (m) => t.log(m) });
  const ns = await api.kubectl(['create', 'namespace', NS]);
  if (ns.code !== 0) throw new Error(`create namespace: ${ns.stderr}`);
});

test.after.always(async () => {
  await api?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test.serial('kube-apiserver built from the pinned module reports v1.34.4', async (t) => {
  const r = await api!.kubectl(['version', '-o', 'json']);
  t.is(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  t.is(v.serverVersion.gitVersion, 'v1.34.4');
  t.is(v.serverVersion.major, '1');
  t.is(v.serverVersion.minor, '34');
  t.is(v.clientVersion.gitVersion, 'v1.34.4');
});

test.serial('every fetched CRD (Gateway API, Istio, Cilium) is Established', async (t) => {
  const r = await api!.kubectl(['get', 'crd', '-o', 'json']);
  t.is(r.code, 0, r.stderr);
  const items: { metadata: { name: string }; spec: { group: string }; status?: { conditions?: { type: string; status: string }[] } }[] = JSON.parse(
    r.stdout,
  ).items;
  const established = items.filter((c) => c.status?.conditions?.some((k) => k.type === 'Established' && k.status === 'True'));
  t.log(`${established.length} of ${items.length} CRDs Established; groups: ${[...new Set(items.map((c) => c.spec.group))].sort().join(', ')}`);
  t.is(established.length, items.length);
  t.true(items.length >= 21, `only ${items.length} CRDs`);
  for (const name of ['ciliumnetworkpolicies.cilium.io', 'httproutes.gateway.networking.k8s.io', 'authorizationpolicies.security.istio.io'])
    t.true(
      items.some((c) => c.metadata.name === name),
      name,
    );
});

// One valid object per mesh; each bad one differs from it in a single field, so a refusal is
// for that field and not for something else in the object.
const cnp = (protocol: string) => ({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'allow-client', namespace: NS },
  spec: {
    endpointSelector: { matchLabels: { app: 'server' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: '8080', protocol }] }] }],
  },
});
const route = (port: number) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'server-canary', namespace: NS },
  spec: {
    parentRefs: [{ group: '', kind: 'Service', name: 'server' }],
    rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'server-v2', port, weight: 10 }] }],
  },
});
const authz = (action: string) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'allow-client', namespace: NS },
  spec: {
    selector: { matchLabels: { app: 'server' } },
    action,
    rules: [{ from: [{ source: { principals: [`cluster.local/ns/${NS}/sa/client`] } }], to: [{ operation: { methods: ['GET'] } }] }],
  },
});

const CASES: { name: string; good: object; bad: object; field: RegExp }[] = [
  { name: 'CiliumNetworkPolicy protocol: TCPX', good: cnp('TCP'), bad: cnp('TCPX'), field: /TCPX|protocol/i },
  { name: 'HTTPRoute backend port 70000', good: route(8080), bad: route(70000), field: /70000|port/i },
  { name: 'AuthorizationPolicy action: PERMIT', good: authz('ALLOW'), bad: authz('PERMIT'), field: /PERMIT|action/i },
];

const dryRun = (obj: object) => api!.kubectl(['apply', '--server-side', '--dry-run=server', '--field-manager=meshbench-test', '-f', '-'], stringify(obj));

for (const c of CASES) {
  test.serial(`server-side dry run accepts the valid object and refuses ${c.name}`, async (t) => {
    const good = await dryRun(c.good);
    t.is(good.code, 0, good.stderr);
    t.regex(good.stdout, /serverside-applied \(server dry run\)/);
    // Any non-2xx is a refusal: SSA answers some type errors with HTTP 500, not 422 (upstream bug).
    const bad = await dryRun(c.bad);
    t.log(`refused: ${bad.stderr.trim().slice(0, 300)}`);
    t.not(bad.code, 0, `accepted: ${bad.stdout}`);
    t.regex(bad.stderr, c.field);
  });
}

test.serial('a dry run still needs the namespace to exist', async (t) => {
  const r = await dryRun({ ...cnp('TCP'), metadata: { name: 'x', namespace: 'mb-no-such-ns' } });
  t.not(r.code, 0);
  t.regex(r.stderr, /namespaces? "mb-no-such-ns" not found/);
});

test.serial('stop() ends every process the fixture started, and is safe to call twice', async (t) => {
  const pids = [...api!.pids];
  t.is(pids.length, 2);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  t.true(pids.every(alive));
  await api!.stop();
  await api!.stop();
  t.deepEqual(pids.filter(alive), []);
});

// Issue 18: a scenario as Kubernetes objects, rendered without a cluster (harness/k8s/render.ts,
// policy.ts): namespaces of the run enrolled in each mesh, apps, the shared policy model as each
// mesh's own objects, routes, the client Job; refusals at the scenario's file:line. The API
// server's verdict on these objects is test/integration/k8s-dryrun.test.ts.
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Scenario } from '../../harness/scenario/schema.js';
import { dataplaneChecks } from '../../harness/dataplanes/registry.js';
import { readCiliumPolicies } from '../../harness/dataplanes/mesh/policy/cnp.js';
import { renderCase, renderLoadJob } from '../../harness/k8s/render.js';
import { istioPath } from '../../harness/k8s/policy.js';
import { percentWeights } from '../../harness/k8s/routes.js';
import { renderScenario, resolveWorkload } from '../../harness/k8s/check.js';
import { RUN_LABEL, type K8sObject } from '../../harness/k8s/objects.js';
import { MeshbenchError } from '../../harness/errors.js';
import { cli } from '../helpers.js';

const load = (f: string): Scenario => loadScenario(f, { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
const SEED1 = load('scenarios/seed-001-mesh-comparison.yaml');
const SEED3 = load('scenarios/seed-003-three-service-chain.yaml');
const CANARY = load('test/fixtures/scenarios/sidecar-policy.yaml');
const render = (s: Scenario, dataplane: string, w = 0) => renderCase(s, resolveWorkload(s, w), { prefix: 'mbk8s0', dataplane }).objects.map((r) => r.object);
const ofKind = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
const spec = (o: K8sObject | undefined) => o?.spec as any;

test('every object carries the run label, lives in <prefix>-<namespace>, and has a DNS-label name; rendering is pure', (t) => {
  for (const s of [SEED1, SEED3, CANARY])
    for (const dp of ['baseline', 'istio-sidecar', 'linkerd-sidecar', 'ambient-waypoint', 'ebpf-l7']) {
      let objs: K8sObject[];
      try {
        objs = render(s, dp);
      } catch {
        continue; // refusals are their own tests
      }
      t.deepEqual(render(s, dp), objs, `${s.name} ${dp}: same inputs, same objects`);
      for (const o of objs) {
        t.is(o.metadata.labels?.[RUN_LABEL], 'mbk8s0', `${o.kind}/${o.metadata.name}`);
        if (o.kind !== 'Namespace') t.regex(o.metadata.namespace ?? '', /^mbk8s0-[a-z0-9-]+$/);
        t.regex(o.metadata.name, /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/);
      }
    }
});

test('apps: a Deployment and Service per scenario Service, the chain link forwarding to the next Service by its cluster name, pods on their lab node', (t) => {
  const objs = render(SEED3, 'baseline');
  const dep = ofKind(objs, 'Deployment').find((d) => d.metadata.name === 'frontend-api')!;
  const pod = spec(dep).template.spec;
  t.deepEqual(pod.nodeSelector, { 'meshbench.dev/node': 'node1' });
  t.is(pod.serviceAccountName, 'frontend-api');
  t.deepEqual(pod.containers[0].args, ['-role', 'frontend', '-listen', ':8080', '-next', 'order-service.mbk8s0-default.svc.cluster.local:80']);
  const svc = ofKind(objs, 'Service').find((d) => d.metadata.name === 'frontend-api')!;
  t.like(spec(svc).ports[0], { port: 80, targetPort: 8080, appProtocol: 'grpc' });
  // --node-map pins to cluster node names instead.
  const pinned = renderCase(SEED3, resolveWorkload(SEED3, 0), {
    prefix: 'mbk8s0',
    dataplane: 'baseline',
    placement: { node1: 'worker-a', node2: 'worker-b', node3: 'worker-c' },
  });
  t.deepEqual(spec(pinned.objects.find((r) => r.object.kind === 'Deployment')!.object).template.spec.nodeSelector, { 'kubernetes.io/hostname': 'worker-a' });
});

test('the client Job: warm-up as an init container, the measured fortio run printing JSON on stdout, the client identity and node', (t) => {
  const w = resolveWorkload(SEED1, 0);
  const job = renderLoadJob(SEED1, w, { prefix: 'mbk8s0', dataplane: 'istio-sidecar', name: 'load-grpc-ping' });
  t.regex(job.origin, /seed-001-mesh-comparison\.yaml:\d+$/);
  const pod = spec(job.object).template;
  t.is(pod.metadata.annotations['sidecar.istio.io/nativeSidecar'], 'true');
  t.is(pod.spec.serviceAccountName, 'client');
  t.deepEqual(pod.spec.nodeSelector, { 'meshbench.dev/node': 'node1' });
  const args: string[] = pod.spec.containers[0].args;
  t.deepEqual(args.slice(0, 7), ['load', '-qps', '200', '-c', '10', '-t', `${w.durationS}s`]);
  t.deepEqual(args.slice(-7), [
    '-json',
    '-',
    '-access-log-file',
    '/dev/stderr',
    '-access-log-format',
    'json',
    'api-service.mbk8s0-production.svc.cluster.local:8080',
  ]);
  t.true(pod.spec.initContainers[0].args.includes(`${w.warmupS}s`));
  t.false(pod.spec.initContainers[0].args.includes('-json'));
});

test('Istio sidecar: injection label, STRICT mTLS, and the gRPC method rule as an AuthorizationPolicy naming the client by its identity', (t) => {
  const objs = render(SEED1, 'istio-sidecar');
  t.is(ofKind(objs, 'Namespace')[0]!.metadata.labels!['istio-injection'], 'enabled');
  t.deepEqual(spec(ofKind(objs, 'PeerAuthentication')[0]), { mtls: { mode: 'STRICT' } });
  t.deepEqual(spec(ofKind(objs, 'AuthorizationPolicy')[0]), {
    selector: { matchLabels: { app: 'api-service' } },
    action: 'ALLOW',
    rules: [
      {
        from: [{ source: { principals: ['cluster.local/ns/mbk8s0-production/sa/client'] } }],
        to: [{ operation: { ports: ['8080'], methods: ['POST'], paths: ['/fgrpc.PingServer/Ping'] } }],
      },
    ],
  });
  // l7=off: the port is TCP to Istio and the rule keeps only its L4 part.
  const l4 = render(SEED1, 'istio-sidecar[l7=off]');
  t.is(spec(ofKind(l4, 'Service')[0]).ports[0].appProtocol, 'tcp');
  t.deepEqual(spec(ofKind(l4, 'AuthorizationPolicy')[0]).rules[0].to, [{ operation: { ports: ['8080'] } }]);
});

test('Istio paths: exact and prefix regexes become Istio matches; anything else is refused at its line', (t) => {
  t.is(istioPath('/api/v1/orders'), '/api/v1/orders');
  t.is(istioPath('/api/v1/products.*'), '/api/v1/products*');
  t.is(istioPath('.*\\.json'), '*.json');
  t.is(istioPath('/v[12]/x'), undefined);
  const s: Scenario = {
    ...CANARY,
    routes: [],
    policies: [{ ...CANARY.policies[0]!, ingress: [{ from: [{ app: 'frontend' }], ports: [8080], http: [{ path: '/v[12]/items' }] }] }],
  };
  const e = t.throws(() => render(s, 'istio-sidecar'), { instanceOf: MeshbenchError })!;
  t.is(e.exitCode, 2);
  t.regex(e.details[0]!, /sidecar-policy\.yaml:\d+: policies\.0\.ingress\.0\.http\.0\.path: Istio matches paths exactly, by prefix/);
  // Cilium takes the same rule as a regex.
  t.is(spec(ofKind(render(s, 'ebpf-l7'), 'CiliumNetworkPolicy')[0]).ingress[0].toPorts[0].rules.http[0].path, '/v[12]/items');
});

test('ambient: namespaces in ambient mode; with a waypoint, a Gateway and policies attached to the Services (the node proxy sees the waypoint, not the client)', (t) => {
  const l4 = render(SEED1, 'ambient');
  t.is(ofKind(l4, 'Namespace')[0]!.metadata.labels!['istio.io/dataplane-mode'], 'ambient');
  t.deepEqual(spec(ofKind(l4, 'AuthorizationPolicy')[0]).rules[0].to, [{ operation: { ports: ['8080'] } }], 'ztunnel: L4 only');
  const wp = render(SEED1, 'ambient-waypoint');
  t.like(spec(ofKind(wp, 'Gateway')[0]), { gatewayClassName: 'istio-waypoint' });
  t.is(ofKind(wp, 'Namespace')[0]!.metadata.labels!['istio.io/use-waypoint'], 'waypoint');
  const ap = spec(ofKind(wp, 'AuthorizationPolicy')[0]);
  t.deepEqual(ap.targetRefs, [{ group: '', kind: 'Service', name: 'api-service' }]);
  t.is(ap.selector, undefined);
  t.deepEqual(ap.rules[0].to[0].operation.paths, ['/fgrpc.PingServer/Ping']);
});

test('Linkerd: a Server per port, identities by ServiceAccount, the gRPC rule as an HTTPRoute the AuthorizationPolicy targets', (t) => {
  const objs = render(SEED3, 'linkerd-sidecar');
  t.is(ofKind(objs, 'Namespace')[0]!.metadata.annotations!['linkerd.io/inject'], 'enabled');
  const server = ofKind(objs, 'Server').find((o) => spec(o).podSelector.matchLabels.app === 'order-service')!;
  t.like(spec(server), { port: 8080, proxyProtocol: 'gRPC' });
  const route = ofKind(objs, 'HTTPRoute').find((o) => spec(o).parentRefs[0].name === server.metadata.name)!;
  t.deepEqual(spec(route).rules[0].matches, [{ method: 'POST', path: { type: 'Exact', value: '/order.v1.OrderService/Create' } }]);
  const authz = ofKind(objs, 'AuthorizationPolicy').find((o) => spec(o).targetRef.name === route.metadata.name)!;
  const mtls = ofKind(objs, 'MeshTLSAuthentication').find((o) => o.metadata.name === spec(authz).requiredAuthenticationRefs[0].name)!;
  t.deepEqual(spec(mtls).identityRefs, [{ kind: 'ServiceAccount', name: 'frontend-api', namespace: 'mbk8s0-default' }]);
  // l7=off: opaque ports, no routes.
  const opaque = render(SEED3, 'linkerd-sidecar[l7=off]');
  t.is(ofKind(opaque, 'HTTPRoute').length, 0);
  t.is(spec(ofKind(opaque, 'Server')[0]).proxyProtocol, 'opaque');
});

test("Cilium: CiliumNetworkPolicy with the namespace in the peer selector; L7 rules only for ebpf-l7; users' CNP files pass through into the run's namespace", (t) => {
  const l7 = spec(ofKind(render(SEED1, 'ebpf-l7'), 'CiliumNetworkPolicy')[0]);
  t.deepEqual(l7.ingress[0].fromEndpoints, [{ matchLabels: { app: 'client', 'k8s:io.kubernetes.pod.namespace': 'mbk8s0-production' } }]);
  t.deepEqual(l7.ingress[0].toPorts[0].rules.http, [{ method: 'POST', path: '/fgrpc\\.PingServer/Ping' }]);
  t.is(spec(ofKind(render(SEED1, 'ebpf[encryption=none]'), 'CiliumNetworkPolicy')[0]).ingress[0].toPorts[0].rules, undefined);
  const files = load('test/fixtures/scenarios/ebpf-l7.yaml');
  const passed = ofKind(render(files, 'ebpf-l7'), 'CiliumNetworkPolicy').filter((o) => o.metadata.name === 'orders-from-frontend');
  t.is(passed.length, 1);
  t.is(passed[0]!.metadata.namespace, 'mbk8s0-order-processing');
  t.deepEqual(spec(passed[0]).ingress[0].toPorts[0].rules, { http: [{ method: 'POST', path: '/orders' }] });
  const l4 = ofKind(render(files, 'ebpf'), 'CiliumNetworkPolicy').find((o) => o.metadata.name === 'orders-from-frontend')!;
  t.is(spec(l4).ingress[0].toPorts[0].rules, undefined, 'ebpf has no node proxy: the L7 part is dropped');
});

test('routes: the 90/10 canary as a VirtualService, an HTTPRoute (Linkerd, ambient waypoint) and a CiliumEnvoyConfig', (t) => {
  t.deepEqual(percentWeights([90, 10]), [90, 10]);
  t.deepEqual(percentWeights([1, 1, 1]), [34, 33, 33]);
  const vs = spec(ofKind(render(CANARY, 'istio-sidecar', 1), 'VirtualService')[0]);
  t.deepEqual(vs.hosts, ['api-service.mbk8s0-default.svc.cluster.local']);
  t.deepEqual(vs.http[0].match, [{ headers: { 'x-canary': { exact: 'true' } } }]);
  t.deepEqual(
    vs.http[1].route.map((r: any) => [r.destination.host, r.weight]),
    [
      ['api-service-v1.mbk8s0-default.svc.cluster.local', 90],
      ['api-service-v2.mbk8s0-default.svc.cluster.local', 10],
    ],
  );
  for (const dp of ['linkerd-sidecar', 'ambient-waypoint']) {
    const hr = spec(ofKind(render(CANARY, dp, 1), 'HTTPRoute').find((o) => spec(o).parentRefs[0].kind === 'Service'));
    t.deepEqual(hr.parentRefs, [{ group: '', kind: 'Service', name: 'api-service', port: 80 }], dp);
    t.deepEqual(
      hr.rules[1].backendRefs.map((b: any) => [b.name, b.weight]),
      [
        ['api-service-v1', 90],
        ['api-service-v2', 10],
      ],
      dp,
    );
  }
  const cec = spec(ofKind(render(CANARY, 'ebpf-l7', 1), 'CiliumEnvoyConfig')[0]);
  t.deepEqual(cec.services, [{ name: 'api-service', namespace: 'mbk8s0-default' }]);
  const routes = cec.resources.find((r: any) => r['@type'].endsWith('RouteConfiguration')).virtual_hosts[0].routes;
  t.deepEqual(routes[1].route.weighted_clusters.clusters, [
    { name: 'mbk8s0-default/api-service-v1', weight: 90 },
    { name: 'mbk8s0-default/api-service-v2', weight: 10 },
  ]);
});

test('refused before anything is applied, at the scenario line: lab-only ablations, what a mesh cannot turn off, egress policy for Istio', (t) => {
  const refused = (s: Scenario, dp: string, re: RegExp) => {
    const e = t.throws(() => renderScenario({ ...s, dataplanes: [dp] }, { prefix: 'mbk8s0' }), { instanceOf: MeshbenchError })!;
    t.is(e.exitCode, 2, dp);
    t.regex(e.details.join('\n'), re, dp);
  };
  refused(SEED3, 'istio-sidecar[mode=capture-only]', /seed-003-three-service-chain\.yaml:\d+: .*capture-only is a lab ablation/);
  refused(SEED1, 'linkerd-sidecar[mtls=off]', /Linkerd always speaks mTLS/);
  refused(SEED1, 'ambient[mtls=off]', /ztunnel always tunnels over mTLS/);
  refused(SEED1, 'istio-sidecar[mtls=off]', /seed-001-mesh-comparison\.yaml:\d+: policies\.0\.ingress\.0: with mtls=off Istio sees no peer identity/);
  const egress: Scenario = {
    ...SEED1,
    policies: [{ name: 'out', namespace: 'production', selector: { app: 'client' }, egress: [{ to: [{ app: 'api-service' }] }] }],
    inlinePolicies: 1,
  };
  refused(egress, 'istio-sidecar', /policies\.0\.egress: Istio authorizes at the destination only/);
  t.notThrows(() => renderScenario({ ...egress, dataplanes: ['ebpf'] }, { prefix: 'mbk8s0' }), 'Cilium has egress policy');
});

test('CLI: run --target kubernetes --render writes one YAML file per case; kubernetes options without the target are bad input', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-k8s-render-'));
  const r = await cli(['run', 'scenarios/seed-001-mesh-comparison.yaml', '--target', 'kubernetes', '--render', dir, '--dataplanes', 'baseline,istio-sidecar']);
  t.is(r.code, 0, r.stderr);
  const files = readdirSync(dir).sort();
  t.deepEqual(files, ['baseline--grpc-ping.yaml', 'istio-sidecar--grpc-ping.yaml']);
  const kinds = parseAllDocuments(readFileSync(join(dir, files[1]!), 'utf8')).map((d) => (d.toJS() as K8sObject).kind);
  t.deepEqual([kinds[0], kinds.at(-1)], ['Namespace', 'Job']);
  t.true(kinds.includes('AuthorizationPolicy'));
  const bad = await cli(['run', 'scenarios/quick.yaml', '--kubeconfig', '/nonexistent']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--kubeconfig is for --target kubernetes/);
  const stub = await cli(['run', 'scenarios/quick.yaml', '--target', 'kubernetes', '--image', 'nginx=x']);
  t.is(stub.code, 2);
  t.regex(stub.stderr, /--image: "nginx=x" is not name=reference/);
});

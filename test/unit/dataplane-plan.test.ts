// The plan step (issue 13): every config of every dataplane is rendered before the host is touched,
// and a string HAProxy cannot hold is bad input with the scenario's file:line. The schema already
// refuses quotes and line breaks, so these tests put them into a loaded scenario behind its back.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Scenario } from '../../harness/scenario/schema.js';
import { allDataplanes, dataplaneChecks, dataplaneNames, getDataplane } from '../../harness/dataplanes/registry.js';
import { readCiliumPolicies } from '../../harness/dataplanes/mesh/policy/cnp.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { MeshbenchError } from '../../harness/errors.js';
import { planDataplanes } from '../../harness/run/checks.js';

const FILE = new URL('../fixtures/scenarios/routes-path.yaml', import.meta.url).pathname;
const load = (): Scenario => loadScenario(FILE, { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
/** The 1-based line of the fixture holding `text`. */
const lineOf = (text: string) =>
  readFileSync(FILE, 'utf8')
    .split('\n')
    .findIndex((l) => l.includes(text)) + 1;

function refused(t: import('ava').ExecutionContext, s: Scenario, line: number): MeshbenchError {
  const e = t.throws(() => planDataplanes(s), { instanceOf: MeshbenchError }) as MeshbenchError;
  t.is(e.code, 'E_INPUT');
  t.is(e.exitCode, 2);
  t.regex(e.details[0], new RegExp(`routes-path\\.yaml:${line}: .*HAProxy config word`));
  return e;
}

test('every registered dataplane plans the fixture without touching the host, and renders its proxies', (t) => {
  const s = { ...load(), dataplanes: dataplaneNames() };
  const plans = planDataplanes(s);
  t.deepEqual(Object.keys(plans), dataplaneNames());
  // Every family that writes a config shows it; the plain eBPF dataplane writes none (maps are filled from the cluster).
  for (const d of allDataplanes()) t.is(typeof plans[d.name].configs, 'object', d.name);
  t.regex(plans.baseline.configs['kube-proxy rules'], /^\*nat/);
  // The sidecars render one HAProxy config per meshed pod, with the L7 rule in it.
  const c = buildCluster(s, 'mbplan');
  const istio = plans['istio-sidecar'].configs;
  for (const p of c.pods.filter((x) => x.role !== 'idle')) t.regex(istio[p.name], /^# meshbench sidecar for pod /);
  t.true(Object.values(istio).some((cfg) => cfg.includes('/api/v1/products.*')));
});

test("a sidecar scenario with a single quote in an L7 path is refused at plan time with the path's file:line", (t) => {
  const s = load();
  s.dataplanes = ['istio-sidecar'];
  s.policies[0].ingress![0].http![0].path = "/api/v1/it's";
  const e = refused(t, s, lineOf('/api/v1/products.*'));
  t.regex(e.message, /istio-sidecar cannot render its proxy configs/);
});

test('a line break in a route header value is refused at its line, for the sidecar, waypoint and eBPF L7 proxies', (t) => {
  for (const dp of ['linkerd-sidecar', 'ambient-waypoint', 'ebpf-l7']) {
    const s = load();
    s.dataplanes = [dp];
    s.routes![0].rules[1].match!.headers!['x-canary'] = 'true\n  http-request allow';
    refused(t, s, lineOf("x-canary: 'true'"));
  }
});

test('each dataplane either refuses the bad string or renders no config that holds it (it has no L7 proxy)', (t) => {
  for (const name of dataplaneNames()) {
    const s = load();
    s.dataplanes = [name];
    s.policies[0].ingress![0].http![0].path = "/x'y";
    let configs: Record<string, string> | undefined;
    try {
      configs = getDataplane(name).plan({ cluster: buildCluster(s, 'mbplan'), scenario: s }).configs;
    } catch (e) {
      t.is((e as Error).constructor.name, 'ConfigWordError', name);
      continue;
    }
    t.false(
      Object.values(configs).some((c) => c.includes("/x'y")),
      `${name} wrote the unquotable string into a config`,
    );
  }
});

test('run refuses before anything else: preflight plans first, so the input error comes even without root or tools', async (t) => {
  const { preflight } = await import('../../harness/run/run.js');
  const s = load();
  s.policies[0].ingress![0].http![0].path = "/a'b";
  const e = (await t.throwsAsync(() => preflight(s), { instanceOf: MeshbenchError })) as MeshbenchError;
  t.is(e.code, 'E_INPUT');
});

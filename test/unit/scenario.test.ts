import test from 'ava';
import { loadScenario, loadTopology, namesOnly } from '../../harness/scenario/load.js';
import { applyOverrides, expandCases } from '../../harness/scenario/expand.js';
import { durationSeconds } from '../../harness/scenario/schema.js';
import { MeshbenchError } from '../../harness/errors.js';
import { dataplaneChecks } from '../../harness/dataplanes/registry.js';

const fx = (f: string) => `test/fixtures/scenarios/${f}`;
const known = { dataplanes: namesOnly(['baseline', 'istio-sidecar']) };
/** The shipped scenarios name every dataplane the registry knows. */
const registry = { dataplanes: dataplaneChecks };

function problems(file: string): string[] {
  try {
    loadScenario(file, known);
  } catch (e) {
    if (e instanceof MeshbenchError) {
      return e.details;
    }
    throw e;
  }
  return [];
}

test('the shipped scenarios are valid', (t) => {
  for (const f of ['scenarios/quick.yaml', 'scenarios/chain.yaml']) t.notThrows(() => loadScenario(f, registry), f);
  for (const f of ['topologies/two-node.yaml', 'topologies/three-node.yaml', 'topologies/scale-100x10.yaml']) t.notThrows(() => loadTopology(f), f);
});

test('a broken scenario reports every problem at once, each as file:line: message', (t) => {
  const d = problems(fx('broken.yaml'));
  const at = (line: number, re: RegExp) =>
    t.true(
      d.some((x) => x.startsWith(`${fx('broken.yaml')}:${line}: `) && re.test(x)),
      `line ${line} ${re}`,
    );
  at(3, /name: must be a lowercase DNS label/);
  at(6, /client\.node: unknown node "node9"/);
  at(10, /targetPort: Too big/);
  at(11, /declared twice/);
  at(15, /protocol: Invalid option/);
  at(18, /unknown service "nosuch"/);
  at(19, /unknown dataplane "warp-drive" \(known: baseline, istio-sidecar\)/);
  at(20, /unknown key\(s\) "colour"/);
  t.is(d.length, 8);
});

test('the error is E_INPUT, which the CLI maps to exit 2', (t) => {
  const e = t.throws(() => loadScenario(fx('broken.yaml'), known), { instanceOf: MeshbenchError });
  t.is(e?.code, 'E_INPUT');
  t.is(e?.exitCode, 2);
});

test('YAML syntax errors carry their line', (t) => {
  const d = problems(fx('bad-syntax.yaml'));
  t.is(d.length, 1);
  t.regex(d[0], /bad-syntax\.yaml:6: /);
});

test('errors in a referenced topology name the topology file', (t) => {
  const d = problems(fx('bad-topology-ref.yaml'));
  t.true(d.some((x) => /bad-topology\.yaml:3: nodes: Too small/.test(x)));
  t.true(d.some((x) => /bad-topology\.yaml:4: podsPerNode/.test(x)));
});

test('a missing file is reported as file:1', (t) => {
  t.regex(problems(fx('nope.yaml'))[0], /nope\.yaml:1: file not found/);
});

test('defaults are filled in', (t) => {
  const s = loadScenario(fx('ok-inline.yaml'), known);
  t.is(s.services[0].namespace, 'default');
  t.is(s.services[0].protocol, 'http');
  t.is(s.workloads[0].connections, 4);
  t.is(s.workloads[0].warmup, '3s');
  t.is(s.client.name, 'client');
  t.is(s.pinning, 'auto');
});

test('cases interleave dataplanes inside each repeat', (t) => {
  const s = applyOverrides(loadScenario(fx('ok-inline.yaml'), known), { dataplanes: ['baseline', 'istio-sidecar'] }, known.dataplanes);
  const cases = expandCases(s);
  t.is(cases.length, 2 * 2 * 2);
  t.deepEqual(
    cases.map((c) => `${c.repeat}:${c.workload.name}:${c.dataplane}`),
    ['0:a:baseline', '0:a:istio-sidecar', '0:b:baseline', '0:b:istio-sidecar', '1:a:baseline', '1:a:istio-sidecar', '1:b:baseline', '1:b:istio-sidecar'],
  );
});

test('overrides: flag beats --quick beats the scenario', (t) => {
  const s = loadScenario('scenarios/quick.yaml', registry);
  t.is(expandCases(applyOverrides(s, {}))[0].workload.durationS, 20);
  t.is(expandCases(applyOverrides(s, { quick: true }))[0].workload.durationS, 10);
  t.is(expandCases(applyOverrides(s, { quick: true, durationS: 3 }))[0].workload.durationS, 3);
  t.is(expandCases(applyOverrides(s, { quick: true, warmupS: 1 }))[0].workload.warmupS, 1);
  t.throws(() => applyOverrides(s, { dataplanes: ['nope'] }, known.dataplanes), { message: /unknown dataplane "nope"/ });
});

test('durations', (t) => {
  t.is(durationSeconds('1m30s'), 90);
  t.is(durationSeconds('500ms'), 0.5);
  t.is(durationSeconds(7), 7);
});

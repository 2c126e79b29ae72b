import test from 'ava';
import { readdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadScenario, referenceTableIds, CLAIMS_FILE } from '../../harness/scenario/load.js';
import { applyOverrides, expandCases } from '../../harness/scenario/expand.js';
import { MeshbenchError } from '../../harness/errors.js';
import { dataplaneChecks } from '../../harness/dataplanes/registry.js';

const dataplanes = dataplaneChecks;
const seeds = readdirSync('scenarios')
  .filter((f) => /^seed-.*\.yaml$/.test(f))
  .sort()
  .map((f) => `scenarios/${f}`);
const ids = referenceTableIds();

function problems(file: string, opts = {}): string[] {
  try {
    loadScenario(file, { dataplanes, ...opts });
  } catch (e) {
    if (e instanceof MeshbenchError) return e.details;
    throw e;
  }
  return [];
}

test('the claims file is the project copy of the shared reference and has table ids', (t) => {
  t.true(Array.isArray(ids));
  t.true((ids as string[]).includes('mesh-comparison-grpc'));
  t.true(CLAIMS_FILE.endsWith('reference/claims.yaml'));
});

test('the five seed scenarios are shipped', (t) => {
  t.deepEqual(seeds, [
    'scenarios/seed-000-cluster-memory.yaml',
    'scenarios/seed-001-mesh-comparison.yaml',
    'scenarios/seed-002-proxy-path.yaml',
    'scenarios/seed-002-visibility.yaml',
    'scenarios/seed-003-three-service-chain.yaml',
  ]);
});

for (const f of seeds)
  test(`${f} loads, names a known table, records its scaling and has a quick form`, (t) => {
    t.deepEqual(problems(f), []);
    const s = loadScenario(f, { dataplanes });
    t.truthy(s.reference, 'has a reference block');
    for (const id of [s.reference!.table, ...(s.reference!.also ?? [])]) t.true((ids as string[]).includes(id), id);
    t.true(Object.keys(s.reference!.scaling ?? {}).length > 0, 'records what was scaled');
    t.truthy(s.quick, 'has a quick block');
  });

test('the quick forms of all seed scenarios together stay under 15 minutes (15 s set-up per case, 45 s for 100 pods)', (t) => {
  let total = 0;
  for (const f of seeds) {
    const q = applyOverrides(loadScenario(f, { dataplanes }), { quick: true });
    const cases = expandCases(q);
    const pods = q.services.reduce((n, x) => n + x.replicas, 0);
    t.true(pods <= 100, `${f}: ${pods} pods in the quick form`);
    const setup = pods > 20 ? 45 : 15;
    for (const c of cases) total += setup + c.workload.warmupS + c.workload.durationS;
  }
  t.true(total > 0);
  t.true(total < 15 * 60, `${total} s`);
});

test('an unknown reference table is a file:line error that lists the known tables', (t) => {
  const f = 'test/fixtures/scenarios/bad-reference.yaml';
  const d = problems(f);
  t.is(d.length, 1);
  t.regex(d[0], /^test\/fixtures\/scenarios\/bad-reference\.yaml:6: reference\.table: unknown table "no-such-table" \(known: /);
  for (const id of ids as string[]) t.true(d[0].includes(id), id);
  const e = t.throws(() => loadScenario(f), { instanceOf: MeshbenchError });
  t.is(e?.code, 'E_INPUT');
});

test('reference.table is checked against the claims file given, and a missing one is reported', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-claims-'));
  const claims = join(dir, 'claims.yaml');
  writeFileSync(claims, 'tables:\n  - {id: no-such-table, rows: []}\n');
  t.deepEqual(problems('test/fixtures/scenarios/bad-reference.yaml', { claimsFile: claims }), []);
  const d = problems('test/fixtures/scenarios/bad-reference.yaml', { claimsFile: join(dir, 'absent.yaml') });
  t.is(d.length, 1);
  t.regex(d[0], /bad-reference\.yaml:6: reference\.table: cannot check table "no-such-table": .*absent\.yaml not found/);
});

test('reference keys are checked by the schema', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-ref-'));
  const src = parse(`kind: Scenario
name: x
topology: {kind: Topology, name: t, nodes: 2}
reference: {table: mesh-comparison-grpc, scaling: {qps: 5}, colour: red}
client: {node: node1}
services: [{name: echo, port: 80, targetPort: 8080}]
workloads: [{protocol: http1, qps: 10, duration: 2s, chain: [echo]}]
dataplanes: [baseline]
`);
  const f = join(dir, 's.yaml');
  writeFileSync(f, JSON.stringify(src));
  const d = problems(f);
  t.true(
    d.some((x) => /reference: unknown key\(s\) "colour"/.test(x)),
    d.join('\n'),
  );
  t.true(
    d.some((x) => /reference\.scaling\.qps: /.test(x)),
    d.join('\n'),
  );
});

test('seed-000 runs 500 pods on 50 nodes, and its quick form 100 pods on 4 (quick.topology, quick.replicas)', (t) => {
  const s = loadScenario('scenarios/seed-000-cluster-memory.yaml', { dataplanes });
  const full = applyOverrides(s, {});
  const quick = applyOverrides(s, { quick: true });
  const pods = (x: typeof s) => x.services.reduce((n, svc) => n + svc.replicas, 0);
  t.is(pods(full), 500);
  t.is(full.topology.nodes, 50);
  t.is(pods(quick), 100);
  t.is(quick.topology.nodes, 4);
  t.deepEqual(s.reference!.also, ['sidecar-cost-per-pod']);
});

test('quick.replicas must name services and quick.topology must hold the nodes the scenario names', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-quick-'));
  const f = join(dir, 's.yaml');
  writeFileSync(
    f,
    [
      'kind: Scenario',
      'name: q',
      'topology: {kind: Topology, name: t, nodes: 3, podsPerNode: 0}',
      'client: {node: node3}',
      'services: [{name: a, port: 80, targetPort: 8080}]',
      'workloads: [{name: w, protocol: http1, qps: 10, duration: 1s, chain: [a]}]',
      'dataplanes: [baseline]',
      'quick:',
      '  topology: {kind: Topology, name: small, nodes: 2, podsPerNode: 0}',
      '  replicas: {a: 2, nope: 1}',
      '',
    ].join('\n'),
  );
  const d = problems(f);
  t.is(d.length, 2, d.join('\n'));
  t.regex(d[0]!, /s\.yaml:4: client\.node: unknown node "node3" \(quick\.topology has: node1, node2\)/);
  t.regex(d[1]!, /s\.yaml:10: quick\.replicas\.nope: unknown service "nope" \(services: a\)/);
});

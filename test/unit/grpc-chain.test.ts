// The gRPC chain's pieces that need no root: `services[].app: mb-grpc` and the workload's
// method/metadata in the scenario (with file:line errors), mb-grpc's command line per chain link
// (harness/workloads/mb-grpc-server.ts), and mb-load's gRPC flags (harness/load/openloop.ts).
import test from 'ava';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MeshbenchError } from '../../harness/errors.js';
import { openLoopArgs, openLoopModel } from '../../harness/load/openloop.js';
import type { ResolvedWorkload } from '../../harness/scenario/expand.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { findMbGrpc, mbGrpcArgs, requireMbGrpc, usesMbGrpc } from '../../harness/workloads/mb-grpc-server.js';
import { serverArgs } from '../../harness/workloads/fortio-server.js';

const SEED = 'scenarios/seed-003-three-service-chain.yaml';

test('seed-003 runs its chain on mb-grpc with gRPC-method rules and an open-loop gRPC workload', (t) => {
  const s = loadScenario(SEED);
  t.true(usesMbGrpc(s));
  t.deepEqual(
    s.services.map((x) => [x.app, x.protocol]),
    [
      ['mb-grpc', 'grpc'],
      ['mb-grpc', 'grpc'],
      ['mb-grpc', 'grpc'],
    ],
  );
  t.like(s.workloads[0], { protocol: 'grpc', engine: 'openloop', method: '/frontend.v1.FrontendService/Get', payloadBytes: 1024 });
  const inv = s.policies.find((p) => p.selector.app === 'inventory-service')!;
  t.deepEqual(inv.ingress![0].grpc, [{ service: 'inventory.v1.InventoryService', method: 'CheckStock' }], "the document's rule: only CheckStock");
  t.false(JSON.stringify(s.reference).includes('cannot be exercised'));
});

test('each chain link runs its role on :targetPort and calls the NEXT Service VIP', (t) => {
  const s = loadScenario(SEED);
  const c = buildCluster(s, 'mbt0');
  const [fe, order, inv] = c.services;
  const w = s.workloads[0];
  t.deepEqual(mbGrpcArgs(fe, w, c.services), ['-role', 'frontend', '-listen', ':8080', '-next', `${order.vip}:80`]);
  t.deepEqual(mbGrpcArgs(order, w, c.services), ['-role', 'order', '-listen', ':8080', '-next', `${inv.vip}:80`]);
  t.deepEqual(mbGrpcArgs(inv, w, c.services), ['-role', 'inventory', '-listen', ':8080']);
  // Roles count from the chain's end: a two-link chain is order → inventory.
  t.deepEqual(mbGrpcArgs(order, { chain: ['order-service', 'inventory-service'] }, c.services).slice(0, 2), ['-role', 'order']);
  t.deepEqual(mbGrpcArgs(fe, { chain: ['inventory-service'] }, c.services).slice(0, 2), ['-role', 'inventory'], 'outside the chain: the last hop');
  // fortio services are unchanged.
  t.deepEqual(serverArgs({ ...fe, app: undefined, protocol: 'http' }, undefined).slice(0, 3), ['server', '-http-port', '8080']);
});

test('mb-load gets the method and metadata; the model names the call', (t) => {
  const w = {
    ...loadScenario(SEED).workloads[0],
    metadata: { 'x-inventory-method': 'Reserve' },
    durationS: 2,
    warmupS: 1,
  } as ResolvedWorkload;
  const a = openLoopArgs(w, { host: '198.18.64.1', port: 80 }, 2, 'x.json');
  const flag = (f: string) => a[a.indexOf(f) + 1];
  t.is(flag('-target'), '198.18.64.1:80');
  t.is(flag('-protocol'), 'grpc');
  t.is(flag('-method'), '/frontend.v1.FrontendService/Get');
  t.is(flag('-header'), 'x-inventory-method:Reserve');
  t.is(flag('-payload'), '1024');
  t.regex(openLoopModel(w), /^open-loop: 100 qps calling \/frontend\.v1\.FrontendService\/Get with \{"x-inventory-method":"Reserve"\}, uniform/);
});

test('mb-grpc is looked up in .tools/bin then PATH; missing is E_ENV', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mb-grpc-find-'));
  mkdirSync(join(root, '.tools/bin'), { recursive: true });
  t.is(findMbGrpc({ root, path: '' }), undefined);
  t.throws(() => requireMbGrpc({ root, path: '' }), { message: /mb-grpc not found/ });
  const bin = join(root, '.tools/bin/mb-grpc');
  writeFileSync(bin, '#!/bin/sh\n');
  chmodSync(bin, 0o755);
  t.is(findMbGrpc({ root, path: '' }), bin);
});

/** seed-003 with `edit` applied, written beside a copy of its topology path made absolute. */
function seedCopy(edit: (s: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mb-grpc-scn-'));
  const file = join(dir, 'chain.yaml');
  const text = readFileSync(SEED, 'utf8').replace('../topologies/three-node.yaml', join(process.cwd(), 'topologies/three-node.yaml'));
  writeFileSync(file, edit(text));
  return file;
}
const problems = (file: string): string => {
  try {
    loadScenario(file);
  } catch (err) {
    const e = err as MeshbenchError;
    if (e.code !== 'E_INPUT') throw e;
    return e.details.join('\n');
  }
  throw new Error(`${file} loaded`);
};
const lineOf = (file: string, needle: string): number => {
  return (
    readFileSync(file, 'utf8')
      .split('\n')
      .findIndex((l) => l.includes(needle)) + 1
  );
};

test('bad gRPC chains are E_INPUT at their line, listing what is valid', (t) => {
  const unknown = seedCopy((s) => s.replace('app: mb-grpc, nodes: [node1]', 'app: grpc-echo, nodes: [node1]'));
  t.regex(problems(unknown), new RegExp(`chain\\.yaml:${lineOf(unknown, 'grpc-echo')}: services\\.0\\.app: .*"fortio"\\|"mb-grpc"`));

  const http = seedCopy((s) => s.replace('protocol: grpc, app: mb-grpc, nodes: [node3]', 'app: mb-grpc, nodes: [node3]'));
  t.regex(problems(http), /services\.2\.protocol: app mb-grpc serves gRPC: set protocol: grpc/);

  const mixed = seedCopy((s) => s.replace('protocol: grpc, app: mb-grpc, nodes: [node3]', 'protocol: grpc, app: fortio, nodes: [node3]'));
  t.regex(problems(mixed), /workloads\.0\.chain\.2: service "inventory-service" runs fortio but frontend-api runs mb-grpc/);
  const implicit = seedCopy((s) => s.replace('protocol: grpc, app: mb-grpc, nodes: [node3]', 'nodes: [node3]'));
  t.regex(problems(implicit), /workloads\.0\.chain\.2: service "inventory-service" runs fortio/, 'no app is fortio');

  const wrongMethod = seedCopy((s) => s.replace('method: /frontend.v1.FrontendService/Get', 'method: /inventory.v1.InventoryService/Reserve'));
  t.regex(
    problems(wrongMethod),
    new RegExp(
      `chain\\.yaml:${lineOf(wrongMethod, 'method: /inventory')}: workloads\\.0\\.method: .*frontend here \\(link 1 of 3\\); it serves /frontend\\.v1\\.FrontendService/Get, not`,
    ),
  );
  // A direct call to the last link may call Reserve.
  const direct = seedCopy((s) =>
    s
      .replace('method: /frontend.v1.FrontendService/Get', 'method: /inventory.v1.InventoryService/Reserve')
      .replace('chain: [frontend-api, order-service, inventory-service]', 'chain: [inventory-service]'),
  );
  t.notThrows(() => loadScenario(direct));

  const fortio = seedCopy((s) => s.replace('    engine: openloop\n', ''));
  const f = problems(fortio);
  t.regex(f, /workloads\.0\.engine: an mb-grpc chain is driven by engine openloop/);
  t.regex(f, /workloads\.0\.method: method is for protocol grpc with engine openloop/);

  const noMethod = seedCopy((s) => s.replace('    method: /frontend.v1.FrontendService/Get\n', ''));
  t.regex(problems(noMethod), /workloads\.0\.method: engine openloop over grpc calls one method/);

  const badMethod = seedCopy((s) => s.replace('method: /frontend.v1.FrontendService/Get', 'method: frontend/Get'));
  t.regex(problems(badMethod), /workloads\.0\.method: must be a gRPC full method name/);

  const badKey = seedCopy((s) =>
    s.replace('    method: /frontend.v1.FrontendService/Get\n', '    method: /frontend.v1.FrontendService/Get\n    metadata: {grpc-timeout: 1S}\n'),
  );
  t.regex(problems(badKey), /workloads\.0\.metadata\.grpc-timeout: metadata keys are lowercase/);

  const fourLinks = seedCopy((s) =>
    s
      .replace(
        '  - {name: inventory-service,',
        '  - {name: stock-service, port: 80, targetPort: 8080, protocol: grpc, app: mb-grpc, nodes: [node3]}\n  - {name: inventory-service,',
      )
      .replace('chain: [frontend-api, order-service, inventory-service]', 'chain: [frontend-api, order-service, stock-service, inventory-service]'),
  );
  t.regex(problems(fourLinks), /workloads\.0\.chain: an mb-grpc chain has at most 3 links/);

  // fortio's HTTP chains keep their rule: a grpc workload cannot chain fortio services.
  const fortioGrpcChain = seedCopy((s) => s.replaceAll(', app: mb-grpc', ''));
  t.regex(problems(fortioGrpcChain), /a gRPC call chain needs app: mb-grpc on each of its services/);
});

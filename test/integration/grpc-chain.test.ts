// seed-003 over real gRPC (issue 16, point 2): frontend → order → inventory as mb-grpc services,
// mb-load calling frontend.v1.FrontendService/Get, the document's gRPC-method rule on inventory
// (only CheckStock from order). Through every dataplane that enforces L7, x-inventory-method
// CheckStock is answered OK and Reserve PERMISSION_DENIED (gRPC status 7), as the gRPC client
// counts them; baseline (no L7) answers Reserve OK, so the denial is the mesh's. One run of
// seed-003 with its windows cut to 1 s warm-up + 2 s at 50 qps: 5 dataplanes × 2 workloads.
// Skipped (with the reason) until set-up has built mb-grpc and mb-load.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanAround, cli, rootTestWhenBuilt } from '../helpers.js';
import type { RunRecord } from '../../harness/results/types.js';

const run = rootTestWhenBuilt(['mb-grpc', 'mb-load']);

/** The dataplanes that enforce L7 rules; each takes gRPC-method rules (compiled to HTTP/2 POST /<service>/<method>). */
const L7 = ['ebpf-l7', 'istio-sidecar', 'linkerd-sidecar', 'ambient-waypoint'];
const QPS = 50;
const WINDOW_S = 2;

/** seed-003 with two copies of its workload, one per x-inventory-method, at QPS. */
function chainScenario(dir: string): string {
  let s = readFileSync('scenarios/seed-003-three-service-chain.yaml', 'utf8')
    .replace('../topologies/three-node.yaml', join(process.cwd(), 'topologies/three-node.yaml'))
    .replace('name: seed-003-three-service-chain', 'name: grpc-chain-test');
  const w = s.slice(s.indexOf('  - name: chain-1k'), s.indexOf('dataplanes:'));
  const withMethod = (name: string, m: string) =>
    w
      .replace('name: chain-1k', `name: ${name}`)
      .replace('    qps: 100', `    qps: ${QPS}`)
      .replace('    method: /frontend.v1.FrontendService/Get\n', `    method: /frontend.v1.FrontendService/Get\n    metadata: {x-inventory-method: ${m}}\n`);
  s = s.replace(w, withMethod('checkstock', 'CheckStock') + withMethod('reserve', 'Reserve'));
  const file = join(dir, 'grpc-chain.yaml');
  writeFileSync(file, s);
  return file;
}

cleanAround();

run('seed-003 over gRPC: CheckStock OK, Reserve PERMISSION_DENIED through every L7 dataplane, Reserve OK under baseline', async (t: any) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-grpc-chain-'));
  const file = chainScenario(dir);
  const dataplanes = ['baseline', ...L7];
  const r = await cli(
    [
      'run',
      file,
      '--dataplanes',
      dataplanes.join(','),
      '--repeats',
      '1',
      '--duration',
      String(WINDOW_S),
      '--warmup',
      '1',
      '--results',
      join(dir, 'results'),
      '--reports',
      join(dir, 'reports'),
      '--json',
    ],
    { timeoutMs: 240_000 },
  );
  // The denied cases are not results (every request failed), so the run as a whole fails: exit 1.
  t.is(r.code, 1, r.stderr);
  const rec: RunRecord = JSON.parse(readFileSync(JSON.parse(r.stdout).runJson, 'utf8'));
  t.is(rec.status, 'failed');
  t.truthy(rec.environment.tools['mb-grpc'], 'the record names mb-grpc with its version');
  t.is(rec.cases.length, dataplanes.length * 2);
  const requests = QPS * WINDOW_S;
  for (const c of rec.cases) {
    const what = `${c.dataplane} ${c.workload}: ${JSON.stringify(c.load.actual.retCodes)} ${c.error ?? ''}`;
    t.is(c.provenance.app?.engine, 'mb-grpc', what);
    t.is(c.provenance.load?.engine, 'mb-load', what);
    t.is(c.load.actual.requests, requests, what);
    const denied = c.workload === 'reserve' && c.dataplane !== 'baseline';
    if (denied) {
      t.deepEqual(c.load.actual.retCodes, { PERMISSION_DENIED: requests }, what);
      t.not(c.status, 'ok', what);
    } else {
      t.deepEqual(c.load.actual.retCodes, { OK: requests }, what);
      t.is(c.status, 'ok', what);
      // The chain's end-to-end latency is the gRPC client's, from each call's intended send time.
      t.regex(c.latencyUs!.source, /intended send time/, what);
      t.true(c.latencyUs!.count === requests && c.latencyUs!.p50 > 0, what);
    }
  }
});

// Two lab pods joined by one veth pair and nothing else (no Service, proxy or dataplane): where
// the load engine itself is measured (test/integration/openloop-stall.test.ts, bench/load-*.ts).
// Processes run through a ProcessGroup, so they are recorded in the lab's state file and a sweep
// kills them if the caller dies. Server and load run at nice -10: the 2 cores here are shared with
// other work (parallel test runs), whose bursts would otherwise hold them off the CPU for tens of
// milliseconds, indistinguishable from the stalls being measured.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sweep } from '../harness/topology/cleanup.js';
import { exec } from '../harness/util/exec.js';
import { waitListening } from '../harness/util/net.js';
import { type LabProcess, ProcessGroup } from '../harness/util/procs.js';
import { findTool } from '../harness/util/tools.js';

export const CLIENT_IP = '198.18.250.1';
export const SERVER_IP = '198.18.250.2';
export const HTTP_PORT = 8080;
export const GRPC_PORT = 8079;

/** A fresh lab prefix, as test/helpers.ts newLabPrefix (which benches cannot import: it loads ava). */
export const pairPrefix = (): string => `mb${(randomBytes(4).readUInt32BE() % 36 ** 4).toString(36).padStart(4, '0')}`;

/** `nice` arguments for the processes measured (each execs into its command: pids stay theirs). */
export const NICE = ['-n', '-10'];

export interface PodPair {
  prefix: string;
  client: string;
  server: string;
  procs: ProcessGroup;
  dir: string;
}

/** mb-load and fortio, or the reason one is missing. */
export async function loadTools(): Promise<{ mbLoad?: string; fortio?: string; missing?: string }> {
  const [mbLoad, fortio] = await Promise.all([findTool('mb-load'), findTool('fortio')]);
  const missing = [!mbLoad && 'mb-load', !fortio && 'fortio'].filter(Boolean).join(', ');
  return { mbLoad, fortio, missing: missing ? `${missing} not built (run scripts/setup.sh)` : undefined };
}

export async function podPairUp(prefix: string): Promise<PodPair> {
  await sweep(prefix);
  const client = `${prefix}-client`;
  const server = `${prefix}-server`;
  await exec('ip', ['netns', 'add', client]);
  await exec('ip', ['netns', 'add', server]);
  await exec('ip', ['link', 'add', `${prefix}-c`, 'netns', client, 'type', 'veth', 'peer', 'name', `${prefix}-s`, 'netns', server]);
  for (const [ns, dev, ip] of [
    [client, `${prefix}-c`, CLIENT_IP],
    [server, `${prefix}-s`, SERVER_IP],
  ])
    await exec('ip', ['-batch', '-'], { netns: ns, input: ['link set lo up', `addr add ${ip}/30 dev ${dev}`, `link set ${dev} up`, ''].join('\n') });
  const dir = mkdtempSync(join(tmpdir(), 'mb-load-'));
  return { prefix, client, server, procs: new ProcessGroup(prefix, dir), dir };
}

export async function podPairDown(p: PodPair | undefined): Promise<void> {
  if (!p) return;
  await p.procs.stopAll();
  await p.procs.close();
  await sweep(p.prefix);
}

const FORTIO_QUIET = ['-redirect-port', 'disabled', '-tcp-port', 'disabled', '-udp-port', 'disabled', '-loglevel', 'warning'];

/** fortio server in the server pod: HTTP on HTTP_PORT and gRPC (fgrpc.PingServer) on GRPC_PORT. */
export async function startFortioServer(p: PodPair, fortio: string): Promise<LabProcess> {
  const proc = p.procs.start({
    name: 'server',
    role: 'app',
    cmd: 'nice',
    args: [...NICE, fortio, 'server', '-http-port', `${SERVER_IP}:${HTTP_PORT}`, '-grpc-port', `${SERVER_IP}:${GRPC_PORT}`, ...FORTIO_QUIET],
    netns: p.server,
    logFile: join(p.dir, 'server.log'),
  });
  await waitListening(p.server, [HTTP_PORT, GRPC_PORT], 15_000, proc);
  return proc;
}

/** Stop `pid` (the server) for `ms` once; returns how long it really was stopped (ms). */
export async function stall(pid: number, ms: number): Promise<number> {
  const t0 = performance.now();
  process.kill(pid, 'SIGSTOP');
  try {
    await sleep(ms);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  return performance.now() - t0;
}

/** One mb-load run from the client pod; its result JSON. */
export async function mbLoad(p: PodPair, bin: string, args: string[]): Promise<MbLoadResult> {
  const r = await exec('nice', [...NICE, bin, '-quiet', ...args], { netns: p.client, cgroup: p.procs.cgroupFor('load'), allowFail: true, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`mb-load ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as MbLoadResult;
}

export interface TimeSummary {
  count: number;
  min: number | null;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  histogram: { leUs: number; count: number }[];
}

/** The fields of meshbench/mb-load/v1 these tests read. */
export interface MbLoadResult {
  actual: { qps: number; requests: number; ok: number; errors: number; codes: Record<string, number>; windowS: number };
  responseTimeUs: TimeSummary;
  serviceTimeUs: TimeSummary;
  sendLagUs: { p50: number | null; p99: number | null; max: number | null };
  generator: { cpuSeconds: number; wallSeconds: number; cpuUtilisation: number; gomaxprocs: number };
}

/** Requests slower than `us` (bucket edges are round, so a round threshold is exact). */
export const countAbove = (s: TimeSummary, us: number): number => s.histogram.filter((b) => b.leUs > us).reduce((n, b) => n + b.count, 0);

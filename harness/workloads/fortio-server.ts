// The applications: one fortio server per app pod. A service that is not the last link of the
// workload's call chain runs fortio's multi-target proxy (-M) instead, forwarding every request
// (path mirrored) to the next service's VIP, so client → A → B → C is one request per hop.
// Services with `app: mb-grpc` run the project's gRPC chain services instead (mb-grpc-server.ts).
import { join } from 'node:path';
import { envError } from '../errors.js';
import { MB_GRPC_HINT, mbGrpcArgs } from './mb-grpc-server.js';
import type { Cluster, PodSpec, ServiceSpec } from '../topology/graph.js';
import type { ResolvedWorkload } from '../scenario/expand.js';
import { waitListening } from '../util/net.js';
import type { LabProcess, ProcessGroup } from '../util/procs.js';

const DISABLED = ['-redirect-port', 'disabled', '-tcp-port', 'disabled', '-udp-port', 'disabled'];

/** fortio server arguments for one backend pod of `svc`, given the service it forwards to (if any). */
export function serverArgs(svc: ServiceSpec, next: ServiceSpec | undefined): string[] {
  const port = String(svc.targetPort);
  if (next)
    return [
      'server',
      '-http-port',
      'disabled',
      '-grpc-port',
      'disabled',
      ...DISABLED,
      '-M',
      `:${port} http://${next.vip}:${next.port}`,
      '-loglevel',
      'warning',
    ];
  if (svc.protocol === 'grpc') return ['server', '-http-port', 'disabled', '-grpc-port', port, ...DISABLED, '-loglevel', 'warning'];
  return ['server', '-http-port', port, '-grpc-port', 'disabled', ...DISABLED, '-loglevel', 'warning'];
}

export interface StartedApps {
  procs: LabProcess[];
  /** ms from spawn to listening, per pod name. */
  readyMs: Record<string, number>;
}

export async function startApps(opts: {
  cluster: Cluster;
  workload: ResolvedWorkload;
  procs: ProcessGroup;
  fortio: string;
  /** mb-grpc, when a service runs it (app: mb-grpc). */
  mbGrpc?: string;
  logDir: string;
  cpus?: string;
}): Promise<StartedApps> {
  const { cluster, workload } = opts;
  const nextOf = new Map<string, ServiceSpec | undefined>();
  workload.chain.forEach((name, i) =>
    nextOf.set(
      name,
      cluster.services.find((s) => s.name === workload.chain[i + 1]),
    ),
  );
  const started: { pod: PodSpec; svc: ServiceSpec; proc: LabProcess; t0: number }[] = [];
  for (const svc of cluster.services)
    for (const pod of svc.backends) {
      if (started.some((s) => s.pod === pod)) continue; // a pod matched by two selectors runs once
      const grpcApp = svc.app === 'mb-grpc';
      if (grpcApp && !opts.mbGrpc) throw envError(`service ${svc.name} runs mb-grpc, which was not found`, MB_GRPC_HINT);
      const t0 = performance.now();
      const proc = await opts.procs.startAsync({
        name: `app-${pod.name}`,
        role: 'app',
        cmd: grpcApp ? opts.mbGrpc! : opts.fortio,
        args: grpcApp ? mbGrpcArgs(svc, workload, cluster.services) : serverArgs(svc, nextOf.get(svc.name)),
        netns: pod.netns,
        cpus: opts.cpus,
        logFile: join(opts.logDir, `app-${pod.name}.log`),
        cwd: opts.logDir,
      });
      started.push({ pod, svc, proc, t0 });
    }
  const readyMs: Record<string, number> = {};
  await Promise.all(
    started.map(async ({ pod, svc, proc, t0 }) => {
      await waitListening(pod.netns, svc.targetPort, 15000, proc);
      readyMs[pod.name] = performance.now() - t0;
    }),
  );
  return { procs: started.map((s) => s.proc), readyMs };
}

// The project's gRPC chain services (apps/cmd/mb-grpc) as a Service's app (`services[].app:
// mb-grpc`). Each mb-grpc service of the workload's chain takes its role from its place in the
// chain, counted from the end (the last link is inventory, the one before order, the one before
// that frontend), and calls the NEXT Service's VIP:port, so the mesh's Service routing and L7
// policy apply on every hop. It listens on :port (every address of the pod namespace): a sidecar
// hands inbound calls to 127.0.0.1, node proxies and waypoints to the pod IP.
import { accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { envError } from '../errors.js';
import type { Place } from '../place/index.js';
import type { ResolvedWorkload } from '../scenario/expand.js';
import { MB_GRPC_ROLES, mbGrpcRoleAt, type Scenario } from '../scenario/schema.js';
import type { ServiceSpec } from '../topology/graph.js';
import { exec } from '../util/exec.js';
import { PROJECT_ROOT } from '../util/host.js';

export const MB_GRPC = 'mb-grpc';
export const MB_GRPC_HINT = 'run `bash scripts/setup.sh`, which builds it from apps/cmd/mb-grpc into .tools/bin';

/** True when some Service of the scenario runs mb-grpc. */
export const usesMbGrpc = (s: Pick<Scenario, 'services'>): boolean => s.services.some((x) => x.app === 'mb-grpc');

/** mb-grpc's arguments for a backend of `svc` in `workload`'s case. */
export function mbGrpcArgs(svc: ServiceSpec, workload: Pick<ResolvedWorkload, 'chain'>, services: readonly ServiceSpec[]): string[] {
  const i = workload.chain.indexOf(svc.name);
  // A Service outside this workload's chain answers as the last hop: it has nothing to call.
  const role = i < 0 ? MB_GRPC_ROLES[0] : mbGrpcRoleAt(i, workload.chain.length);
  if (!role)
    throw new Error(`${svc.name}: link ${i + 1} of a ${workload.chain.length}-link chain has no mb-grpc role (the scenario check should have said so)`);
  const next = i < 0 ? undefined : services.find((s) => s.name === workload.chain[i + 1]);
  return ['-role', role.role, '-listen', `:${svc.targetPort}`, ...(next && role.role !== 'inventory' ? ['-next', `${next.vip}:${next.port}`] : [])];
}

const executable = (p: string) => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** mb-grpc on this host: the checkout's .tools/bin first (set-up builds it there), then PATH. */
export function findMbGrpc(o: { root?: string; path?: string } = {}): string | undefined {
  const dirs = [
    join(o.root ?? PROJECT_ROOT, '.tools/bin'),
    ...(o.path ?? process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((d) => resolve(d)),
  ];
  return dirs.map((d) => join(d, MB_GRPC)).find(executable);
}

export function requireMbGrpc(o: { root?: string; path?: string } = {}): string {
  const p = findMbGrpc(o);
  if (!p) throw envError(`${MB_GRPC} not found (in ${join(o.root ?? PROJECT_ROOT, '.tools/bin')} or on PATH): services with app mb-grpc need it`, MB_GRPC_HINT);
  return p;
}

/** mb-grpc on every machine of a --hosts run, at one path (any node may hold a backend). */
export async function mbGrpcOnPlaces(places: readonly Place[]): Promise<string> {
  const paths = await Promise.all(places.map((p) => p.findTool(MB_GRPC)));
  const distinct = [...new Set(paths)];
  if (distinct.length !== 1 || !distinct[0])
    throw envError(
      `${MB_GRPC} is missing or at different paths on the hosts (${places.map((p, i) => `${p.name}: ${paths[i] ?? 'missing'}`).join(', ')})`,
      MB_GRPC_HINT,
    );
  return distinct[0];
}

/** "0.1.0" from `mb-grpc version`, or undefined. */
export async function mbGrpcVersion(bin: string, place?: Place): Promise<string | undefined> {
  const r = await exec(bin, ['version'], { allowFail: true, timeoutMs: 5000, place });
  const m = /^mb-grpc\s+(\S+)/m.exec(r.stdout);
  return r.code === 0 && m ? m[1] : undefined;
}

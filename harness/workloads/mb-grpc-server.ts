// The project's gRPC chain services (apps/cmd/mb-grpc) as a Service's app (`services[].app:
// mb-grpc`). Each mb-grpc service of the workload's chain takes its role from its place in the
// chain, counted from the end (the last link is inventory, the one before order, the one before
// that frontend), and calls the NEXT Service's VIP:port, so the mesh's Service routing and L7
// policy apply on every hop. It listens on :port (every address of the pod namespace): a sidecar
// hands inbound calls to 127.0.0.1, node proxies and waypoints to the pod IP.
import type { Place } from '../place/index.js';
import type { ResolvedWorkload } from '../scenario/expand.js';
import { MB_GRPC_ROLES, mbGrpcRoleAt, type Scenario } from '../scenario/schema.js';
import type { ServiceSpec } from '../topology/graph.js';
import {
  buildHint,
  findProjectBinary,
  type Lookup,
  type ProjectBinary,
  projectBinaryOnPlaces,
  projectBinaryVersion,
  requireProjectBinary,
} from '../util/project-bins.js';

export const MB_GRPC = 'mb-grpc';
export const MB_GRPC_HINT = buildHint(MB_GRPC);

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

const BIN: ProjectBinary = { name: MB_GRPC, why: 'services with app mb-grpc need it' };
/** mb-grpc on this host (util/project-bins.ts: the checkout's .tools/bin first, then PATH). */
export const findMbGrpc = (o: Lookup = {}): string | undefined => findProjectBinary(MB_GRPC, o);
export const requireMbGrpc = (o: Lookup = {}): string => requireProjectBinary(BIN, o);
/** mb-grpc on every machine of a --hosts run, at one path (any node may hold a backend). */
export const mbGrpcOnPlaces = (places: readonly Place[]): Promise<string> => projectBinaryOnPlaces(BIN, places);
export const mbGrpcVersion = (bin: string, place?: Place): Promise<string | undefined> => projectBinaryVersion(MB_GRPC, bin, place);

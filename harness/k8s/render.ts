// A scenario as Kubernetes objects (`target: kubernetes`, docs/kubernetes.md): per scenario
// namespace a namespace of the run, enrolled in the mesh the way each mesh's own docs say (Istio's
// injection and ambient labels, Linkerd's inject annotation, a waypoint Gateway); per Service a
// ServiceAccount (the identity policies name), a Deployment of its app and a Service; the policy
// and routes as the mesh's own objects (policy.ts); per case the client as a Job. Pure: the same
// inputs give the same objects, and nothing here needs a cluster.
import { locate } from '../scenario/load.js';
import type { Scenario } from '../scenario/schema.js';
import type { ResolvedWorkload } from '../scenario/expand.js';
import { buildCluster, type ServiceSpec } from '../topology/graph.js';
import { serverArgs } from '../workloads/fortio-server.js';
import { mbGrpcArgs } from '../workloads/mb-grpc-server.js';
import { loadArgs } from '../load/fortio.js';
import { openLoopArgs } from '../load/openloop.js';
import { variantOf } from '../dataplanes/registry.js';
import { inputError } from '../errors.js';
import { k8sNamespace, runLabels, type Rendered } from './objects.js';
import { type Mesh, meshOf, renderPolicies, type MeshContext } from './policy.js';
import { renderRoutes } from './routes.js';

/** Container images; every one pinned (fortio's is the version setup installs). */
export const DEFAULT_IMAGES = {
  fortio: 'fortio/fortio:1.68.2',
  /** The topology's idle pods (podsPerNode): a container that only sleeps. */
  pause: 'registry.k8s.io/pause:3.10',
  'mb-grpc': 'ghcr.io/meshbench/mb-grpc:0.1.0',
  'mb-load': 'ghcr.io/meshbench/mb-load:0.1.0',
} as const;
export type ImageName = keyof typeof DEFAULT_IMAGES;

/** Where a lab node's pods go: a node name of the cluster (kubernetes.io/hostname), else pods select nodes labelled `meshbench.dev/node=<lab node>`. */
export const NODE_LABEL = 'meshbench.dev/node';

export interface RenderOptions {
  /** The run's prefix (mb + 4): namespaces are `<prefix>-<namespace>`, every object carries it. */
  prefix: string;
  /** The dataplane as written (`istio-sidecar`, `ebpf[encryption=none]` …). */
  dataplane: string;
  /** Lab node → cluster node name; absent nodes are chosen by the NODE_LABEL label. */
  placement?: Readonly<Record<string, string>>;
  images?: Partial<Record<ImageName, string>>;
  clusterDomain?: string;
}

const HOSTNAME = 'kubernetes.io/hostname';

/** What the cluster must run for a case's objects (checked before a run applies anything, and recorded). */
export interface MeshNeeds {
  mesh: Mesh;
  ambient?: boolean;
  waypoint?: boolean;
  /** Cilium: WireGuard between nodes; Envoy for L7 rules. */
  wireguard?: boolean;
  l7?: boolean;
}

/** The dataplane's mesh, settings and the context policy.ts works in; E_INPUT for a variant no real mesh has. */
export function meshContext(s: Scenario, o: RenderOptions): MeshContext {
  const v = variantOf(o.dataplane);
  if (!v) throw inputError(`unknown dataplane "${o.dataplane}"`, [locate(s.file, ['dataplanes'])]);
  const at = locate(s.file, ['dataplanes']);
  const refuse = (why: string, hint: string) => {
    throw inputError(`${o.dataplane} cannot run on Kubernetes`, [`${at}: ${o.dataplane}: ${why}`], hint);
  };
  const set = v.settings;
  if (set.mode === 'capture-only')
    refuse('capture-only is a lab ablation (capture rules into a pass-through); no mesh has such a setting', 'run the ablation on the local lab');
  if (v.kind === 'linkerd-sidecar' && set.mtls === 'off')
    refuse('Linkerd always speaks mTLS between meshed pods; it has no switch to turn it off', 'run linkerd-sidecar');
  if (v.kind === 'ambient' && set.mtls === 'off') refuse('ztunnel always tunnels over mTLS (HBONE); ambient has no switch to turn it off', 'run ambient');
  const cluster = buildCluster(s, o.prefix);
  return {
    s,
    cluster,
    prefix: o.prefix,
    kind: v.kind,
    mesh: meshOf(v.kind),
    mtls: set.mtls !== 'off',
    l7: set.l7 !== 'off' && v.kind !== 'ebpf' && v.kind !== 'ambient',
    fqdn: (svc) => `${svc.name}.${k8sNamespace(o.prefix, svc.namespace)}.svc.${o.clusterDomain ?? 'cluster.local'}`,
  };
}

/** What the cluster must run for this dataplane. */
export function meshNeeds(m: MeshContext, o: RenderOptions): MeshNeeds {
  const set = variantOf(o.dataplane)!.settings;
  if (m.mesh === 'cilium') return { mesh: 'cilium', wireguard: set.encryption === 'wireguard', l7: m.kind === 'ebpf-l7' };
  if (m.mesh === 'istio') return { mesh: 'istio', ambient: m.kind.startsWith('ambient'), waypoint: m.kind === 'ambient-waypoint', l7: m.l7 };
  return { mesh: m.mesh };
}

const image = (o: RenderOptions, name: ImageName) => o.images?.[name] ?? DEFAULT_IMAGES[name];

/** Pod placement: pinned to one lab node, or spread over several. */
function placement(o: RenderOptions, nodes: string[], selector: Record<string, string>): Record<string, unknown> {
  const pinned = nodes.every((n) => o.placement?.[n]);
  const key = pinned ? HOSTNAME : NODE_LABEL;
  const values = nodes.map((n) => (pinned ? o.placement![n]! : n));
  if (values.length === 1) return { nodeSelector: { [key]: values[0] } };
  return {
    affinity: {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key, operator: 'In', values }] }] } },
    },
    topologySpreadConstraints: [{ maxSkew: 1, topologyKey: key, whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: selector } }],
  };
}

/** Pod annotations a mesh needs on the lab's pods. */
function podAnnotations(m: MeshContext, job: boolean, port?: number): Record<string, string> | undefined {
  const a: Record<string, string> = {};
  // A Job ends when its container does: the proxy must be a native sidecar (an init container that keeps running).
  if (job && m.kind === 'istio-sidecar') a['sidecar.istio.io/nativeSidecar'] = 'true';
  if (job && m.mesh === 'linkerd') a['config.alpha.linkerd.io/proxy-enable-native-sidecar'] = 'true';
  if (m.mesh === 'linkerd' && !m.l7 && port) a['config.linkerd.io/opaque-ports'] = String(port);
  return Object.keys(a).length ? a : undefined;
}

/** The namespaces of the run, enrolled in the mesh, and the mesh's namespace-wide objects. */
function renderNamespaces(m: MeshContext): Rendered[] {
  const { s, prefix } = m;
  const used = [
    ...new Set([s.client.namespace, ...s.services.map((x) => x.namespace), ...s.policies.map((p) => p.namespace), ...s.routes.map((r) => r.namespace)]),
  ];
  const out: Rendered[] = [];
  for (const ns of used) {
    const name = k8sNamespace(prefix, ns);
    const labels: Record<string, string> = {};
    const annotations: Record<string, string> = {};
    if (m.kind === 'istio-sidecar') labels['istio-injection'] = 'enabled';
    if (m.kind === 'ambient' || m.kind === 'ambient-waypoint') labels['istio.io/dataplane-mode'] = 'ambient';
    const waypoint = m.kind === 'ambient-waypoint' && s.services.some((x) => x.namespace === ns);
    if (waypoint) labels['istio.io/use-waypoint'] = 'waypoint';
    if (m.mesh === 'linkerd') annotations['linkerd.io/inject'] = 'enabled';
    const origin = locate(s.file, s.client.namespace === ns ? ['client'] : ['services']);
    out.push({
      origin,
      object: {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, labels: runLabels(prefix, labels), ...(Object.keys(annotations).length ? { annotations } : {}) },
      },
    });
    if (waypoint)
      out.push({
        origin: locate(s.file, ['dataplanes']),
        object: {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'Gateway',
          metadata: { name: 'waypoint', namespace: name, labels: runLabels(prefix, { 'istio.io/waypoint-for': 'service' }) },
          spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
        },
      });
    if (m.kind === 'istio-sidecar')
      out.push({
        origin: locate(s.file, ['dataplanes']),
        object: {
          apiVersion: 'security.istio.io/v1',
          kind: 'PeerAuthentication',
          metadata: { name: 'default', namespace: name, labels: runLabels(prefix) },
          spec: { mtls: { mode: m.mtls ? 'STRICT' : 'DISABLE' } },
        },
      });
  }
  return out;
}

/** The Service's port as each mesh reads its protocol (Istio: name and appProtocol; l7=off is TCP). */
function servicePort(m: MeshContext, svc: ServiceSpec): Record<string, unknown> {
  const proto = !m.l7 && m.mesh !== 'cilium' && m.mesh !== 'none' ? 'tcp' : svc.protocol;
  return { name: `${proto}-${svc.port}`, port: svc.port, targetPort: svc.targetPort, protocol: 'TCP', appProtocol: proto === 'grpc' ? 'grpc' : proto };
}

/** ServiceAccounts, Deployments and Services of the scenario for one workload (a chain link forwards to the next). */
function renderApps(m: MeshContext, w: ResolvedWorkload, o: RenderOptions): Rendered[] {
  const { s, cluster, prefix } = m;
  const out: Rendered[] = [];
  const sa = new Set<string>();
  const account = (name: string, ns: string, origin: string) => {
    const key = `${ns}/${name}`;
    if (sa.has(key)) return;
    sa.add(key);
    out.push({
      origin,
      object: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: k8sNamespace(prefix, ns), labels: runLabels(prefix) } },
    });
  };
  account(s.client.name, s.client.namespace, locate(s.file, ['client']));
  const inCluster = (svc: ServiceSpec): ServiceSpec => ({ ...svc, vip: m.fqdn(svc) });
  s.services.forEach((declared, i) => {
    const svc = cluster.services.find((x) => x.name === declared.name && x.namespace === declared.namespace)!;
    const origin = locate(s.file, ['services', i]);
    const ns = k8sNamespace(prefix, svc.namespace);
    const annotations = podAnnotations(m, false, svc.targetPort);
    out.push({
      origin,
      object: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: svc.name, namespace: ns, labels: runLabels(prefix), ...(annotations ? { annotations } : {}) },
        spec: { type: 'ClusterIP', selector: svc.selector, ports: [servicePort(m, svc)] },
      },
    });
    if (!svc.replicas) return;
    account(svc.name, svc.namespace, origin);
    const labels = svc.backends[0]?.labels ?? { ...svc.selector, ...(svc.labels ?? {}) };
    const link = w.chain.indexOf(svc.name);
    const next = link >= 0 ? cluster.services.find((x) => x.name === w.chain[link + 1]) : undefined;
    const grpcApp = svc.app === 'mb-grpc';
    const args = grpcApp ? mbGrpcArgs(inCluster(svc), w, cluster.services.map(inCluster)) : serverArgs(inCluster(svc), next && inCluster(next));
    out.push({
      origin,
      object: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: svc.name, namespace: ns, labels: runLabels(prefix) },
        spec: {
          replicas: svc.replicas,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels: runLabels(prefix, labels), ...(annotations ? { annotations } : {}) },
            spec: {
              serviceAccountName: svc.name,
              ...placement(o, nodeNames(s, svc), labels),
              containers: [
                {
                  name: 'app',
                  image: image(o, grpcApp ? 'mb-grpc' : 'fortio'),
                  ...(grpcApp ? { args } : { command: ['fortio'], args }),
                  ports: [{ name: 'app', containerPort: svc.targetPort, protocol: 'TCP' }],
                  readinessProbe: { tcpSocket: { port: svc.targetPort }, periodSeconds: 1 },
                },
              ],
            },
          },
        },
      },
    });
  });
  return out;
}

/** The topology's idle pods (podsPerNode, for scale): per lab node a Deployment of pause containers in namespace idle, as on the lab. */
function renderIdle(m: MeshContext, o: RenderOptions): Rendered[] {
  const { s, prefix } = m;
  if (!s.topology.podsPerNode) return [];
  const origin = locate(s.topologyFile ?? s.file, s.topologyFile ? ['podsPerNode'] : ['topology', 'podsPerNode']);
  return allNodes(s).map((node) => {
    const labels = { app: 'idle', 'meshbench.dev/idle-on': node };
    return {
      origin,
      object: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: `idle-${node}`, namespace: k8sNamespace(prefix, IDLE_NS), labels: runLabels(prefix) },
        spec: {
          replicas: s.topology.podsPerNode,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels: runLabels(prefix, labels) },
            spec: { ...placement(o, [node], labels), containers: [{ name: 'idle', image: image(o, 'pause') }] },
          },
        },
      },
    };
  });
}

const IDLE_NS = 'idle';
const allNodes = (s: Scenario): string[] =>
  Array.isArray(s.topology.nodes) ? s.topology.nodes : Array.from({ length: s.topology.nodes }, (_, i) => `node${i + 1}`);

/** The lab nodes a Service's replicas go to (the topology's, when it names none). */
function nodeNames(s: Scenario, svc: ServiceSpec): string[] {
  return svc.nodes ?? allNodes(s);
}

export interface CaseRender {
  /** In apply order: namespaces and mesh objects, apps, policies and routes. */
  objects: Rendered[];
  needs: MeshNeeds;
}

/** Every object of one case but the client's Job. Throws E_INPUT (file:line) for what the mesh cannot express. */
export function renderCase(s: Scenario, w: ResolvedWorkload, o: RenderOptions): CaseRender {
  const m = meshContext(s, o);
  const objects = [...renderNamespaces(m), ...renderApps(m, w, o), ...renderIdle(m, o), ...renderPolicies(m), ...renderRoutes(m)];
  return { objects, needs: meshNeeds(m, o) };
}

export interface JobOptions extends RenderOptions {
  /** The Job's name (a DNS label), e.g. load-003. */
  name: string;
}

/**
 * The client of one case: a Job in the client's namespace, with its labels and identity, on its
 * node. The warm-up is an init container; the measured run prints its figures into the pod's log.
 */
export function renderLoadJob(s: Scenario, w: ResolvedWorkload, o: JobOptions): Rendered {
  const m = meshContext(s, o);
  const entry = m.cluster.services.find((x) => x.name === w.chain[0])!;
  const target = { host: m.fqdn(entry), port: entry.port };
  const openloop = w.engine === 'openloop';
  // The measured run's JSON goes to stdout and fortio's per-request access log to stderr (both the pod's log); the warm-up's nowhere.
  const run = (durationS: number, json: boolean) => {
    if (openloop) return openLoopArgs(w, target, durationS, json ? '/dev/stdout' : '/dev/null');
    return loadArgs(w, target, durationS, json ? { json: '-', accessLog: '/dev/stderr' } : undefined);
  };
  const container = (name: string, durationS: number, json: boolean) => ({
    name,
    image: image(o, openloop ? 'mb-load' : 'fortio'),
    ...(openloop ? {} : { command: ['fortio'] }),
    args: run(durationS, json),
  });
  const labels = runLabels(o.prefix, { app: s.client.name, ...(s.client.labels ?? {}), 'meshbench.dev/role': 'client' });
  const annotations = podAnnotations(m, true);
  return {
    origin: locate(s.file, ['workloads', s.workloads.findIndex((x) => x.name === w.name)]),
    object: {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: o.name, namespace: k8sNamespace(o.prefix, s.client.namespace), labels: runLabels(o.prefix, { 'meshbench.dev/workload': w.name }) },
      spec: {
        backoffLimit: 0,
        activeDeadlineSeconds: Math.ceil(w.warmupS + w.durationS) + 300,
        template: {
          metadata: { labels, ...(annotations ? { annotations } : {}) },
          spec: {
            restartPolicy: 'Never',
            serviceAccountName: s.client.name,
            ...placement(o, [s.client.node], labels),
            initContainers: [container('warmup', w.warmupS, false)],
            containers: [container('load', w.durationS, true)],
          },
        },
      },
    },
  };
}

// Talking to a cluster, through kubectl: it already knows every way a kubeconfig authenticates
// (client certificates, tokens, cloud exec plugins), so the lab does not. Objects go in with
// server-side apply under one field manager; a refusal (any non-2xx: the API server answers some
// type errors of server-side apply with 500, not 422) is reported at the scenario line the
// object came from. Only objects carrying the run's label are ever deleted.
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { stringify } from 'yaml';
import { envError, inputError, runError } from '../errors.js';
import { exec } from '../util/exec.js';
import { PROJECT_ROOT } from '../util/host.js';
import { FIELD_MANAGER, objectRef, RUN_LABEL, runSelector, type K8sObject, type Rendered } from './objects.js';

export interface Kube {
  /** kubectl's path. */
  kubectl: string;
  kubeconfig?: string;
  context?: string;
}

/** kubectl: $MESHBENCH_KUBECTL, then PATH, then the one the tests build (.tools/k8s/bin). */
export function findKubectl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.MESHBENCH_KUBECTL) return existsSync(env.MESHBENCH_KUBECTL) ? env.MESHBENCH_KUBECTL : undefined;
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) if (existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  const built = join(PROJECT_ROOT, '.tools/k8s/bin/kubectl');
  return existsSync(built) ? built : undefined;
}

export function requireKube(o: { kubeconfig?: string; context?: string }): Kube {
  const kubectl = findKubectl();
  if (!kubectl)
    throw envError('kubectl not found (target kubernetes talks to the cluster through it)', 'install kubectl, put it on PATH or set MESHBENCH_KUBECTL');
  if (o.kubeconfig && !existsSync(o.kubeconfig)) throw inputError(`--kubeconfig ${o.kubeconfig}: no such file`);
  return { kubectl, ...o };
}

export async function kubectl(k: Kube, args: string[], o: { input?: string; timeoutMs?: number } = {}) {
  const base = [...(k.kubeconfig ? ['--kubeconfig', k.kubeconfig] : []), ...(k.context ? ['--context', k.context] : [])];
  return exec(k.kubectl, [...base, ...args], { input: o.input, allowFail: true, timeoutMs: o.timeoutMs ?? 120_000 });
}

const MISSING_KIND = /no matches for kind "([^"]+)" in version "([^"]+)"|the server doesn't have a resource type "([^"]+)"/;

/** The first field path (spec.ingress[0].toPorts[0]…) an API server message names, as a path. */
export function fieldPath(message: string): (string | number)[] | undefined {
  const m = /\b((?:spec|metadata)(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])+)/.exec(message);
  return m ? [...m[1]!.matchAll(/[A-Za-z_][A-Za-z0-9_]*|\d+/g)].map((x) => (/^\d+$/.test(x[0]) ? Number(x[0]) : x[0])) : undefined;
}

/** A refusal as a message naming the object and where it came from (the field's line, for a file the user wrote). */
function refusal(r: Rendered, stderr: string): string {
  const why = stderr
    .trim()
    .split('\n')
    .map((l) => l.replace(/^error: /, '').replace(/^Error from server \((\w+)\): /, '$1: '))
    .join(' ')
    .slice(0, 600);
  const path = r.locate && fieldPath(why);
  return `${path ? r.locate!(path) : r.origin}: ${objectRef(r.object)}: ${why}`;
}

/**
 * Server-side apply of `objects` in order (with `dryRun`, validated by the API server and
 * admission, nothing stored). CRDs the cluster lacks are E_ENV (the mesh is not installed);
 * objects the API server refuses are E_INPUT, each at its scenario line, all of them at once.
 */
export async function applyObjects(k: Kube, objects: Rendered[], o: { dryRun?: boolean } = {}): Promise<void> {
  const args = [
    'apply',
    '--server-side',
    `--field-manager=${FIELD_MANAGER}`,
    '--force-conflicts',
    '-o',
    'name',
    '-f',
    '-',
    ...(o.dryRun ? ['--dry-run=server'] : []),
  ];
  const all = await kubectl(k, args, { input: toYaml(objects.map((r) => r.object)) });
  if (all.code === 0) return;
  // One of them was refused: apply one by one to say which (and why).
  const missing = new Set<string>();
  const refused: string[] = [];
  for (const r of objects) {
    const one = await kubectl(k, args, { input: toYaml([r.object]) });
    if (one.code === 0) continue;
    const m = MISSING_KIND.exec(one.stderr);
    if (m) missing.add(m[1] ? `${m[1]} (${m[2]})` : m[3]!);
    else refused.push(refusal(r, one.stderr));
  }
  if (missing.size)
    throw envError(
      `the cluster does not know ${[...missing].join(', ')}: the mesh these objects are for is not installed`,
      'install the mesh (docs/kubernetes.md) or run a dataplane the cluster has',
    );
  if (refused.length) throw inputError('the API server refused objects rendered from the scenario', refused);
  throw runError(`kubectl apply failed: ${all.stderr.trim().slice(0, 600)}`);
}

export const toYaml = (objects: K8sObject[]): string => objects.map((x) => stringify(x, { lineWidth: 0 })).join('---\n');

/** Kinds `down` removes, namespaced ones inside the run's namespaces go with them. */
const CLUSTER_KINDS = ['namespaces'];

/**
 * Delete everything of run `prefix` (every run's, without one): the run's namespaces, which take
 * their objects with them. Waits until they are gone (up to `timeoutS`). Returns what was deleted.
 */
export async function deleteRun(k: Kube, prefix?: string, timeoutS = 120): Promise<string[]> {
  const r = await kubectl(k, [
    'delete',
    CLUSTER_KINDS.join(','),
    '-l',
    runSelector(prefix),
    '--wait=true',
    `--timeout=${timeoutS}s`,
    '-o',
    'name',
    '--ignore-not-found',
  ]);
  if (r.code !== 0) throw runError(`kubectl delete -l ${runSelector(prefix)}: ${r.stderr.trim().slice(0, 600)}`);
  return r.stdout.split('\n').filter(Boolean);
}

/** Namespaces of the run (or of every run) the cluster still has. */
export async function runNamespaces(k: Kube, prefix?: string): Promise<string[]> {
  const r = await kubectl(k, [
    'get',
    'namespaces',
    '-l',
    runSelector(prefix),
    '-o',
    `jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.${RUN_LABEL.replace(/\./g, '\\.')}}{"\\n"}{end}`,
  ]);
  if (r.code !== 0) throw runError(`kubectl get namespaces: ${r.stderr.trim().slice(0, 600)}`);
  return r.stdout.split('\n').filter(Boolean);
}

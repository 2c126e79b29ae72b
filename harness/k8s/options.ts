// The `--target kubernetes` options of `run` and `down` (docs/kubernetes.md), kept out of cli/.
import { InvalidArgumentError, type Command } from 'commander';
import { inputError } from '../errors.js';
import type { RunOverrides } from '../scenario/expand.js';
import type { Progress } from '../util/progress.js';
import type { RunOutcome } from '../run/run.js';
import { checkPrefix } from '../topology/cleanup.js';
import { deleteRun, requireKube } from './kubectl.js';
import { DEFAULT_IMAGES, type ImageName } from './render.js';

const pairs =
  (what: string, ok: (k: string) => boolean) =>
  (v: string, prev: Record<string, string> = {}) => {
    const out = { ...prev };
    for (const part of v.split(',')) {
      const [k, val, ...rest] = part.split('=');
      if (!k || !val || rest.length || !ok(k))
        throw new InvalidArgumentError(
          `${what}: "${part}" is not ${what === '--image' ? `name=reference (names: ${Object.keys(DEFAULT_IMAGES).join(', ')})` : 'labnode=clusternode'}`,
        );
      out[k] = val;
    }
    return out;
  };

/** Add the target options to a command. */
export function kubernetesOptions(cmd: Command): Command {
  return cmd
    .option(
      '--target <where>',
      'local (this host, a VM or --hosts) or kubernetes: the scenario as Kubernetes objects on a cluster (docs/kubernetes.md)',
      'local',
    )
    .option('--kubeconfig <file>', "with --target kubernetes: the kubeconfig (default: kubectl's)")
    .option('--context <name>', 'with --target kubernetes: the kubeconfig context')
    .option('--render <dir>', "with --target kubernetes: write every case's objects as YAML into <dir> and stop (no cluster needed)")
    .option(
      '--dry-run',
      "with --target kubernetes: have the API server validate every object (server-side dry-run); only the run's namespaces are created, and removed again",
    )
    .option(
      '--node-map <lab=cluster,…>',
      'with --target kubernetes: the cluster node of each topology node (default: nodes labelled meshbench.dev/node=<lab node>)',
      pairs('--node-map', () => true),
    )
    .option(
      '--image <name=ref,…>',
      `with --target kubernetes: container images (defaults: ${Object.entries(DEFAULT_IMAGES)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')})`,
      pairs('--image', (k) => k in DEFAULT_IMAGES),
    );
}

export interface KubernetesCliOptions {
  target?: string;
  kubeconfig?: string;
  context?: string;
  render?: string;
  dryRun?: boolean;
  nodeMap?: Record<string, string>;
  image?: Partial<Record<ImageName, string>>;
  json?: boolean;
}

/** Options only --target kubernetes reads are refused elsewhere. */
export function checkTargetOptions(o: KubernetesCliOptions & { kernel?: string; kernels?: string[]; hosts?: string }): boolean {
  if (o.target !== 'local' && o.target !== 'kubernetes') throw inputError(`--target ${o.target}: must be local or kubernetes`);
  const k8sOnly = (['kubeconfig', 'context', 'render', 'dryRun', 'nodeMap', 'image'] as const).filter((x) => o[x] !== undefined);
  if (o.target === 'local' && k8sOnly.length) throw inputError(`--${k8sOnly[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for --target kubernetes`);
  if (o.target === 'kubernetes' && (o.kernel || o.kernels || o.hosts !== undefined))
    throw inputError('--target kubernetes runs on the cluster: not with --kernel, --kernels or --hosts');
  return o.target === 'kubernetes';
}

/** `run --target kubernetes`: the measured run (run.ts), or with --render / --dry-run only those (then null: printed here). */
export async function runOnKubernetes(
  file: string,
  overrides: RunOverrides & { resultsRoot?: string },
  o: KubernetesCliOptions,
  progress: Progress,
): Promise<RunOutcome | null> {
  if (!o.render && !o.dryRun) return (await import('./run.js')).runOnCluster(file, { ...overrides, ...o, progress });
  const { dryRunCases, loadForKubernetes, renderScenario, writeRendered } = await import('./check.js');
  const s = loadForKubernetes(file, overrides, (m) => progress.warn(m));
  const { prefix } = (await import('../run/run.js')).newRunId();
  const cases = renderScenario(s, { prefix, placement: o.nodeMap, images: o.image });
  if (o.render) {
    const files = writeRendered(o.render, cases);
    process.stdout.write(`${files.length} case(s) rendered for run prefix ${prefix}:\n${files.map((f) => `  ${f}\n`).join('')}`);
  }
  if (o.dryRun) {
    const n = await dryRunCases(requireKube(o), prefix, cases, (m) => progress.log(m));
    process.stdout.write(
      `the API server accepts all ${n} objects of ${cases.length} case(s) (server-side dry-run; run prefix ${prefix}, its namespaces removed)\n`,
    );
  }
  return null;
}

/** `down --target kubernetes`: the namespaces of the lab's runs (by label), everything in them with them. */
export async function downOnKubernetes(o: KubernetesCliOptions & { prefix?: string }): Promise<string> {
  if (o.prefix !== undefined) checkPrefix(o.prefix);
  const gone = await deleteRun(requireKube(o), o.prefix);
  return `removed ${gone.length} namespace(s) of meshbench runs${o.prefix ? ` (prefix ${o.prefix})` : ''} from the cluster\n`;
}

// `meshbench validate`: check a scenario or topology file without touching the host.
import { readFileSync, existsSync } from 'node:fs';
import { inputError } from '../errors.js';
import { loadScenario, loadTopology, nodeNames, shownPath } from '../scenario/load.js';
import { applyOverrides, expandCases } from '../scenario/expand.js';
import { buildCluster, describeCluster } from '../topology/graph.js';
import { dataplaneNames } from '../dataplanes/registry.js';
import { readCiliumPolicies } from '../dataplanes/policy/cnp.js';
import { checkScenarioPolicies } from '../run/checks.js';

/** `quick`: describe the scenario as `run --quick` would run it (quick timing, topology and replicas). */
export function validateFile(file: string, opts: { quick?: boolean } = {}): string {
  if (!existsSync(file)) throw inputError(`${shownPath(file)}:1: file not found`);
  const kind = readFileSync(file, 'utf8').match(/^kind:\s*(\w+)/m)?.[1];
  if (kind === 'Topology') {
    const t = loadTopology(file);
    return `${shownPath(file)}: valid topology "${t.name}": ${nodeNames(t).length} node(s), ${t.podsPerNode} idle pod(s) per node`;
  }
  const loaded = loadScenario(file, { knownDataplanes: dataplaneNames(), readPolicyFile: readCiliumPolicies });
  const s = applyOverrides(loaded, { quick: opts.quick });
  const warnings: string[] = [];
  checkScenarioPolicies(s, (w) => warnings.push(`warning: ${w}`));
  const cases = expandCases(s);
  const cluster = buildCluster(s, 'mbxxxx');
  return [
    `${shownPath(file)}: valid scenario "${s.name}"${opts.quick ? ' (quick form)' : ''}: ${cases.length} case(s) = ${s.dataplanes.length} dataplane(s) × ${s.workloads.length} workload(s) × ${s.repeats} repeat(s)`,
    describeCluster(cluster),
    ...(s.policies.length || s.routes.length ? [`  ${s.policies.length} polic${s.policies.length === 1 ? 'y' : 'ies'}, ${s.routes.length} route(s)`] : []),
    ...warnings,
  ].join('\n');
}

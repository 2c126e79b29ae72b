// `meshbench validate`: check a scenario or topology file without touching the host.
import { inputError, MeshbenchError } from '../errors.js';
import { loadScenarioText, loadTopology, locate, nodeNames, shownPath } from '../scenario/load.js';
import { applyOverrides, expandCases } from '../scenario/expand.js';
import { buildCluster, describeCluster, type Cluster } from '../topology/graph.js';
import { dataplaneChecks } from '../dataplanes/registry.js';
import { readCiliumPolicies } from '../dataplanes/mesh/policy/cnp.js';
import { checkScenarioPolicies, planDataplanes } from '../run/checks.js';
import { readInputFile } from '../util/yaml.js';
import { resolve } from 'node:path';

/** `quick`: describe the scenario as `run --quick` would run it (quick timing, topology and replicas). */
export function validateFile(file: string, opts: { quick?: boolean } = {}): string {
  // Read once, through the same checks as every input file (regular, size-capped).
  const read = readInputFile(file);
  if ('error' in read) throw inputError(`${shownPath(file)} cannot be validated`, [`${shownPath(file)}:1: ${read.error}`]);
  const kind = read.text.match(/^kind:\s*(\w+)/m)?.[1];
  if (kind === 'Topology') {
    const t = loadTopology(file);
    return `${shownPath(file)}: valid topology "${t.name}": ${nodeNames(t).length} node(s), ${t.podsPerNode} idle pod(s) per node`;
  }
  const loaded = loadScenarioText(read.text, resolve(file), [], { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
  const s = applyOverrides(loaded, { quick: opts.quick });
  let cluster: Cluster;
  try {
    cluster = buildCluster(s, 'mbxxxx');
  } catch (e) {
    if (e instanceof MeshbenchError) throw e;
    // Sizes the schema allows one by one but the address plan cannot hold together.
    const at = `${locate(s.file, opts.quick && s.quickTopology ? ['quick', 'topology'] : ['topology'])}: ${(e as Error).message}`;
    throw inputError(`${shownPath(file)} does not fit the lab's address plan`, [at], 'use fewer nodes or fewer pods per node');
  }
  const warnings: string[] = [];
  checkScenarioPolicies(s, (w) => warnings.push(`warning: ${w}`));
  // Every config the dataplanes would write, rendered as `run` does before touching the host.
  planDataplanes(s);
  const cases = expandCases(s);
  return [
    `${shownPath(file)}: valid scenario "${s.name}"${opts.quick ? ' (quick form)' : ''}: ${cases.length} case(s) = ${s.dataplanes.length} dataplane(s) × ${s.workloads.length} workload(s) × ${s.repeats} repeat(s)`,
    describeCluster(cluster),
    ...(s.policies.length || s.routes.length ? [`  ${s.policies.length} polic${s.policies.length === 1 ? 'y' : 'ies'}, ${s.routes.length} route(s)`] : []),
    ...warnings,
  ].join('\n');
}

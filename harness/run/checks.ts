// Checks of a loaded scenario against the cluster it declares (policies and routes that name
// pods or services), shared by `run` and `validate`, and the dataplanes' plan step: every config
// each dataplane would write, rendered before the host is touched. Errors stop with file:line;
// warnings print.
import { MeshbenchError, inputError } from '../errors.js';
import { locate } from '../scenario/load.js';
import type { Scenario } from '../scenario/schema.js';
import { buildCluster, type Cluster } from '../topology/graph.js';
import { checkPolicies } from '../dataplanes/mesh/policy/model.js';
import { ConfigWordError } from '../dataplanes/engine/haproxy.js';
import { getDataplane } from '../dataplanes/registry.js';
import type { Plan } from '../dataplanes/types.js';

export function checkScenarioPolicies(s: Scenario, warn: (msg: string) => void): void {
  let cluster: Cluster;
  try {
    cluster = buildCluster(s, 'mbxxxx');
  } catch (e) {
    // Sizes the schema allows one by one but the address plan cannot hold together.
    throw inputError(`${locate(s.file, ['topology'])}: ${(e as Error).message}`, [], 'use fewer nodes or fewer pods per node');
  }
  const problems = checkPolicies(s.policies, s.routes, cluster);
  const fmt = (p: { path: (string | number)[]; message: string }) => {
    // A policy read from a policy file is pointed at by the scenario's policyFiles line.
    const fromFile = p.path[0] === 'policies' && typeof p.path[1] === 'number' && p.path[1] >= s.inlinePolicies;
    return `${locate(s.file, fromFile ? ['policyFiles'] : p.path)}: ${p.path.join('.')}: ${p.message}`;
  };
  for (const w of problems.filter((p) => p.severity === 'warning')) warn(fmt(w));
  const errors = problems.filter((p) => p.severity === 'error').map(fmt);
  if (errors.length) throw inputError(`${s.file} does not fit the cluster it declares`, errors);
}

/**
 * Render every config of every dataplane the scenario runs (no host touched). A string the proxy
 * engine cannot hold is pointed at the scenario line it came from; any other refusal of a
 * dataplane is bad input at its `dataplanes` line.
 */
export function planDataplanes(s: Scenario): Record<string, Plan> {
  const cluster = buildCluster(s, 'mbplan');
  const plans: Record<string, Plan> = {};
  for (const name of s.dataplanes) {
    try {
      plans[name] = getDataplane(name).plan({ cluster, scenario: s });
    } catch (e) {
      if (e instanceof ConfigWordError) {
        const at = findWord(s, e.word);
        throw inputError(
          `${name} cannot render its proxy configs for ${s.file}`,
          [`${at ?? locate(s.file, ['dataplanes'])}: ${e.message}`],
          'keep quotes and line breaks out of L7 rules (methods, paths, headers) and routes',
        );
      }
      if (e instanceof MeshbenchError) throw e;
      throw inputError(`${name} cannot run ${s.file}`, [`${locate(s.file, ['dataplanes'])}: ${name}: ${(e as Error).message}`]);
    }
  }
  return plans;
}

/** Where in the scenario's policies and routes a string the engine refused came from (file:line), if found. */
function findWord(s: Scenario, word: string): string | undefined {
  const w = word.toLowerCase();
  const hit = (x: string) => {
    const v = x.toLowerCase();
    return v === w || w.includes(v) || v.includes(w);
  };
  const walk = (v: unknown, path: (string | number)[]): (string | number)[] | undefined => {
    if (typeof v === 'string') return /['\r\n]/.test(v) && hit(v) ? path : undefined;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const p = walk(v[i], [...path, i]);
        if (p) return p;
      }
    } else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        const p = walk(x, [...path, k]);
        if (p) return p;
      }
    return undefined;
  };
  const path = walk(s.policies, ['policies']) ?? walk(s.routes ?? [], ['routes']);
  if (!path) return undefined;
  // A policy read from a policy file is pointed at by the scenario's policyFiles line.
  const fromFile = typeof path[1] === 'number' && path[0] === 'policies' && path[1] >= s.inlinePolicies;
  return locate(s.file, fromFile ? ['policyFiles'] : path);
}

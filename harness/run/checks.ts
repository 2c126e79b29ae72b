// Checks of a loaded scenario against the cluster it declares (policies and routes that name
// pods or services), shared by `run` and `validate`. Errors stop with file:line; warnings print.
import { inputError } from '../errors.js';
import { locate } from '../scenario/load.js';
import type { Scenario } from '../scenario/schema.js';
import { buildCluster } from '../topology/graph.js';
import { checkPolicies } from '../dataplanes/policy/model.js';

export function checkScenarioPolicies(s: Scenario, warn: (msg: string) => void): void {
  let cluster;
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

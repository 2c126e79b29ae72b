// `run --target kubernetes --render <dir>` and `--dry-run`: every case of the scenario rendered
// (the lab's own checks first: the same scenario must be valid for the local lab), written as
// YAML, and validated by the cluster's API server with server-side dry-run. Only the run's
// namespaces are created for real (namespaced objects cannot be dry-run into a namespace that
// does not exist), and they are deleted again, whatever happens.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCiliumPolicies } from '../dataplanes/mesh/policy/cnp.js';
import { dataplaneChecks } from '../dataplanes/registry.js';
import { checkScenarioPolicies, planDataplanes } from '../run/checks.js';
import { applyOverrides, type ResolvedWorkload, type RunOverrides } from '../scenario/expand.js';
import { loadScenario } from '../scenario/load.js';
import type { Scenario } from '../scenario/schema.js';
import { durationSeconds } from '../scenario/schema.js';
import { applyObjects, deleteRun, toYaml, type Kube } from './kubectl.js';
import { runLabels, type Rendered } from './objects.js';
import { renderCase, renderLoadJob, type MeshNeeds, type RenderOptions } from './render.js';

export interface RenderedCase {
  dataplane: string;
  workload: string;
  objects: Rendered[];
  job: Rendered;
  needs: MeshNeeds;
}

/** The scenario as `run` loads it, checked the way the local lab checks it. */
export function loadForKubernetes(file: string, o: RunOverrides, warn: (m: string) => void): Scenario {
  const loaded = loadScenario(file, { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
  checkScenarioPolicies(loaded, warn);
  const s = applyOverrides(loaded, o, dataplaneChecks);
  planDataplanes(s);
  return s;
}

export const resolveWorkload = (s: Scenario, i: number): ResolvedWorkload => {
  const w = s.workloads[i]!;
  return { ...w, durationS: durationSeconds(w.duration), warmupS: durationSeconds(w.warmup) };
};

/** Every dataplane × workload of the scenario as objects; E_INPUT (file:line) for the first dataplane that cannot express it. */
export function renderScenario(s: Scenario, o: Omit<RenderOptions, 'dataplane'>): RenderedCase[] {
  return s.dataplanes.flatMap((dataplane) =>
    s.workloads.map((_, i) => {
      const w = resolveWorkload(s, i);
      const { objects, needs } = renderCase(s, w, { ...o, dataplane });
      const job = renderLoadJob(s, w, { ...o, dataplane, name: `load-${w.name}` });
      return { dataplane, workload: w.name, objects, job, needs };
    }),
  );
}

/** One YAML file per case (`<dataplane>--<workload>.yaml`, objects in apply order, the Job last); returns the files. */
export function writeRendered(dir: string, cases: RenderedCase[]): string[] {
  mkdirSync(dir, { recursive: true });
  return cases.map((c) => {
    const file = join(dir, `${c.dataplane.replace(/[[\]=,]/g, '_')}--${c.workload}.yaml`);
    writeFileSync(
      file,
      `# meshbench: ${c.dataplane}, workload ${c.workload}; needs ${JSON.stringify(c.needs)}\n${toYaml([...c.objects, c.job].map((r) => r.object))}`,
    );
    return file;
  });
}

/** Validate every case with the API server (server-side dry-run); the run's namespaces are created and removed. */
export async function dryRunCases(k: Kube, prefix: string, cases: RenderedCase[], log: (m: string) => void): Promise<number> {
  const namespaces = [
    ...new Set(
      cases
        .flatMap((c) => c.objects)
        .filter((r) => r.object.kind === 'Namespace')
        .map((r) => r.object.metadata.name),
    ),
  ];
  let n = 0;
  try {
    await applyObjects(
      k,
      namespaces.map((name) => ({ origin: 'meshbench', object: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: runLabels(prefix) } } })),
    );
    for (const c of cases) {
      log(`dry-run ${c.dataplane} ${c.workload}: ${c.objects.length + 1} objects`);
      await applyObjects(k, [...c.objects, c.job], { dryRun: true });
      n += c.objects.length + 1;
    }
  } finally {
    await deleteRun(k, prefix);
  }
  return n;
}

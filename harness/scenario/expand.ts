// A scenario expands into cases: dataplane × workload × repeat. Repeats are the outer loop and
// dataplanes the inner one, so an A/B comparison interleaves its cases within one run and a slow
// drift of the host (thermal, noisy neighbour) spreads over every dataplane alike.
import { inputError } from '../errors.js';
import type { DataplaneChecks } from './load.js';
import { durationProblem, durationSeconds, MAX_REPEATS, type Scenario, type Workload } from './schema.js';

export interface RunOverrides {
  dataplanes?: string[];
  repeats?: number;
  durationS?: number;
  warmupS?: number;
  quick?: boolean;
}

export interface ResolvedWorkload extends Workload {
  durationS: number;
  warmupS: number;
}

export interface Case {
  index: number;
  dataplane: string;
  workload: ResolvedWorkload;
  repeat: number;
}

/** Apply CLI overrides (most specific first: flag → --quick → scenario) and return the effective scenario. */
export function applyOverrides(s: Scenario, o: RunOverrides, checks?: DataplaneChecks): Scenario {
  const dataplanes = o.dataplanes ?? s.dataplanes;
  if (checks) {
    const bad = dataplanes.flatMap((d) => checks.problem(d) ?? []);
    const keys = dataplanes.map((d) => checks.key(d));
    const twice = dataplanes.filter((_, i) => keys.indexOf(keys[i]!) !== i);
    if (bad.length || twice.length)
      throw inputError(
        `--dataplanes: ${[...bad, ...twice.map((d) => `${d} is listed twice (same settings)`)].join('; ')}`,
        [],
        'see `meshbench dataplanes` for the kinds and their options',
      );
  }
  // Flags are input too: the same bounds as the scenario's keys (a 0 duration never ends).
  const bad = [
    ...(o.durationS !== undefined ? [['--duration', durationProblem(o.durationS, 'duration')]] : []),
    ...(o.warmupS !== undefined ? [['--warmup', durationProblem(o.warmupS, 'warmup')]] : []),
    ...(o.repeats !== undefined && !(Number.isInteger(o.repeats) && o.repeats >= 1 && o.repeats <= MAX_REPEATS)
      ? [['--repeats', `must be a whole number from 1 to ${MAX_REPEATS}`]]
      : []),
  ].filter(([, p]) => p);
  if (bad.length)
    throw inputError(
      bad.map(([f, p]) => `${f}: ${p}`).join('; '),
      bad.map(([f, p]) => `${f}: ${p}`),
    );
  const q = o.quick ? (s.quick ?? {}) : {};
  const repeats = o.repeats ?? q.repeats ?? s.repeats;
  const workloads = s.workloads.map((w) => ({
    ...w,
    duration: o.durationS ?? q.duration ?? w.duration,
    warmup: o.warmupS ?? q.warmup ?? w.warmup,
  }));
  const services = q.replicas ? s.services.map((svc) => ({ ...svc, replicas: q.replicas?.[svc.name] ?? svc.replicas })) : s.services;
  const topology = o.quick && s.quickTopology ? s.quickTopology : s.topology;
  return { ...s, dataplanes, repeats, workloads, services, topology };
}

export function expandCases(s: Scenario): Case[] {
  const cases: Case[] = [];
  for (let repeat = 0; repeat < s.repeats; repeat++)
    for (const w of s.workloads)
      for (const dataplane of s.dataplanes)
        cases.push({
          index: cases.length,
          dataplane,
          repeat,
          workload: { ...w, durationS: durationSeconds(w.duration), warmupS: durationSeconds(w.warmup) },
        });
  return cases;
}

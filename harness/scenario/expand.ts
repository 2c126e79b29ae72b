// A scenario expands into cases: dataplane × workload × repeat. Repeats are the outer loop and
// dataplanes the inner one, so an A/B comparison interleaves its cases within one run and a slow
// drift of the host (thermal, noisy neighbour) spreads over every dataplane alike.
import { inputError } from '../errors.js';
import { durationSeconds, type Scenario, type Workload } from './schema.js';

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
export function applyOverrides(s: Scenario, o: RunOverrides, knownDataplanes?: string[]): Scenario {
  const dataplanes = o.dataplanes ?? s.dataplanes;
  if (knownDataplanes) {
    const unknown = dataplanes.filter((d) => !knownDataplanes.includes(d));
    if (unknown.length) throw inputError(`--dataplanes: unknown dataplane(s) ${unknown.join(', ')}`, [], `known: ${knownDataplanes.join(', ')}`);
  }
  const q = o.quick ? s.quick ?? {} : {};
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

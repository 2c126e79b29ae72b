// `meshbench run --find-capacity`: the objective's grammar, the run options and what `run` prints
// of a search. Kept apart from run/capacity.ts (which builds labs) so the CLI can register the
// options without loading the run machinery, and apart from cli/ so cli/ stays thin.
import { Option, type Command } from 'commander';
import { inputError } from '../errors.js';
import type { CapacityObjective, CapacitySearch, RunRecord } from '../results/types.js';

export const CAPACITY_METRICS = ['p50', 'p90', 'p99', 'p999'] as const;
export type CapacityMetric = (typeof CAPACITY_METRICS)[number];

/** How a search runs (docs/commands.md); every figure has a default. */
export interface CapacityOptions {
  objective: CapacityObjective;
  /** Measured seconds of each step, after its own warm-up. */
  stepDurationS: number;
  stepWarmupS: number;
  /** The search never offers more than this. */
  maxRps: number;
  /** Nor goes below this while looking for a rate that meets the objective. */
  minRps: number;
  /** Steps per search at most (growth, halving and bisection together). */
  maxSteps: number;
  /** Bisection stops once the rate that misses is within this fraction above the one that meets. */
  tolerance: number;
  /**
   * A step whose load generator was busier than this (fraction of its CPUs) is invalid: the
   * generator already delays its own sends there, and that lag would read as the dataplane's.
   */
  maxGeneratorCpu: number;
  /** A rate that misses is measured again this many times; it misses only when every attempt does. */
  retriesOnMiss: number;
}

export const CAPACITY_DEFAULTS = {
  stepDurationS: 2,
  stepWarmupS: 1,
  maxRps: 100_000,
  minRps: 10,
  maxSteps: 16,
  tolerance: 0.1,
  maxErrorRate: 0.001,
  maxGeneratorCpu: 0.75,
  retriesOnMiss: 1,
} as const;

const UNIT_US: Record<string, number> = { us: 1, µs: 1, ms: 1000, s: 1e6 };
const GRAMMAR = "<metric><=<value><unit>[,errors<=<percent>%], metric p50|p90|p99|p999, unit us|ms|s, e.g. 'p99<=5ms' or 'p99<=5ms,errors<=0.5%'";

/** Parse `p99<=5ms[,errors<=0.1%]`; anything else is bad input (exit 2) naming the part that is wrong. */
export function parseObjective(text: string, flag = '--find-capacity'): CapacityObjective {
  const bad = (why: string) => inputError(`${flag} ${JSON.stringify(text)}: ${why}`, [`${flag}: ${why}`], `write it as ${GRAMMAR}`);
  const parts = String(text)
    .split(',')
    .map((p) => p.replace(/\s+/g, ''));
  if (!parts[0]) throw bad('no objective given');
  const m = /^(p\d+(?:\.\d+)?)<=(\d+(?:\.\d+)?|\.\d+)(us|µs|ms|s)?$/i.exec(parts[0]);
  if (!m) throw bad(`"${parts[0]}" is not <metric><=<value><unit>`);
  const metric = (m[1]!.toLowerCase() === 'p99.9' ? 'p999' : m[1]!.toLowerCase()) as CapacityMetric;
  if (!CAPACITY_METRICS.includes(metric)) throw bad(`unknown metric ${m[1]} (known: ${CAPACITY_METRICS.join(', ')})`);
  if (!m[3]) throw bad(`the value ${m[2]} has no unit (us, ms or s)`);
  const maxUs = Number(m[2]) * UNIT_US[m[3].toLowerCase()]!;
  if (!(maxUs > 0)) throw bad('the latency bound must be above 0');
  let maxErrorRate: number = CAPACITY_DEFAULTS.maxErrorRate;
  for (const p of parts.slice(1)) {
    const e = /^errors<=(\d+(?:\.\d+)?)%$/i.exec(p);
    if (!e) throw bad(`"${p}" is not errors<=<percent>%`);
    maxErrorRate = Number(e[1]) / 100;
    if (!(maxErrorRate < 1)) throw bad('the error bound must be below 100%');
  }
  if (parts.length > 2) throw bad('one errors bound at most');
  return { metric, maxUs, maxErrorRate, text: `${metric}<=${m[2]}${m[3]},errors<=${Math.round(maxErrorRate * 1e6) / 1e4}%` };
}

/** The run command's options of the search. */
export function capacityOptions(cmd: Command): Command {
  return cmd
    .option('--find-capacity <objective>', `instead of the cases: per dataplane × workload, the highest offered rate meeting ${GRAMMAR} (open-loop engine)`)
    .addOption(new Option('--step-duration <seconds>', `measured seconds per step of --find-capacity (default ${CAPACITY_DEFAULTS.stepDurationS})`))
    .addOption(new Option('--step-warmup <seconds>', `warm-up seconds before each step (default ${CAPACITY_DEFAULTS.stepWarmupS})`))
    .addOption(new Option('--max-rps <n>', `highest rate the search offers (default ${CAPACITY_DEFAULTS.maxRps})`))
    .addOption(new Option('--max-steps <n>', `rates tried per search at most (default ${CAPACITY_DEFAULTS.maxSteps}; a rate that misses is measured twice)`));
}

/** `{ findCapacity }` for runScenario from the parsed command line; bad or misplaced values are bad input. */
export function capacityRunOptions(o: Record<string, unknown>): { findCapacity?: CapacityOptions } {
  const step = ['stepDuration', 'stepWarmup', 'maxRps', 'maxSteps'].filter((k) => o[k] !== undefined);
  const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (o.findCapacity === undefined) {
    if (step.length) throw inputError(`${step.map(flag).join(', ')} without --find-capacity`, [], "add --find-capacity '<objective>', or drop them");
    return {};
  }
  const clash = ['kernel', 'kernels', 'hosts', 'repeats', 'duration', 'warmup'].filter((k) => o[k] !== undefined);
  if (clash.length)
    throw inputError(
      `--find-capacity does not combine with ${clash.map(flag).join(', ')}`,
      [],
      'the search runs on this host, once per dataplane × workload; its steps take --step-duration and --step-warmup',
    );
  const num = (k: string, d: number, ok: (n: number) => boolean, what: string) => {
    if (o[k] === undefined) return d;
    const n = Number(o[k]);
    if (!ok(n)) throw inputError(`${flag(k)} ${JSON.stringify(o[k])}: must be ${what}`, [`${flag(k)}: must be ${what}`]);
    return n;
  };
  const seconds = (n: number) => n > 0 && n <= 600;
  const stepDurationS = num('stepDuration', CAPACITY_DEFAULTS.stepDurationS, seconds, 'a number of seconds > 0 (at most 600)');
  const stepWarmupS = num('stepWarmup', CAPACITY_DEFAULTS.stepWarmupS, seconds, 'a number of seconds > 0 (at most 600)');
  const maxRps = num('maxRps', CAPACITY_DEFAULTS.maxRps, (n) => Number.isInteger(n) && n >= 10 && n <= 100_000, 'a whole number from 10 to 100000');
  const maxSteps = num('maxSteps', CAPACITY_DEFAULTS.maxSteps, (n) => Number.isInteger(n) && n >= 2 && n <= 100, 'a whole number from 2 to 100');
  const objective = parseObjective(String(o.findCapacity));
  return {
    findCapacity: {
      objective,
      stepDurationS,
      stepWarmupS,
      maxRps,
      maxSteps,
      ...pick(CAPACITY_DEFAULTS, 'minRps', 'tolerance', 'maxGeneratorCpu', 'retriesOnMiss'),
    },
  };
}

const pick = <T, K extends keyof T>(o: T, ...k: K[]) => Object.fromEntries(k.map((x) => [x, o[x]])) as Pick<T, K>;

/** "≤ 5 ms" for an objective bound in µs. */
export function boundText(us: number): string {
  return us >= 1e6 ? `${us / 1e6} s` : us >= 1000 ? `${us / 1000} ms` : `${us} µs`;
}

/** One line per search: "capacity baseline http1: 8400 rps meets p99<=5ms,errors<=0.1% (…)". */
export function capacityLine(c: CapacitySearch): string {
  const found = c.foundRps !== null ? `${c.capped || c.lowerBound ? 'at least ' : ''}${c.foundRps} rps` : 'no rate';
  return `capacity ${c.dataplane} ${c.workload}: ${found} (${c.outcome}; ${c.objective.text}; ${c.steps.length} steps): ${c.why}`;
}

/** What `run` prints of a run's searches: a JSON list and a text line (the CLI prints one or the other). */
export function capacitySummary(r: RunRecord): {
  capacity?: { dataplane: string; workload: string; foundRps: number | null; outcome: string; why: string }[];
  capacityLine?: string;
} {
  if (!r.capacity) return {};
  return {
    capacity: r.capacity.map((c) => ({ dataplane: c.dataplane, workload: c.workload, foundRps: c.foundRps, outcome: c.outcome, why: c.why })),
    capacityLine: r.capacity.map(capacityLine).join('\n'),
  };
}

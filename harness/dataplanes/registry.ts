// Every dataplane kind, registered in one place. A new dataplane is a folder (or a file in its
// family's folder) exporting a Dataplane with its needs, plus one line here.
// A variant is a kind with some of its options set, `kind[key=value,…]` (types.ts DataplaneOption):
// parsed and checked here, so scenarios, `--dataplanes` and suites refuse the same strings.
import { inputError } from '../errors.js';
import { baseline } from './baseline/index.js';
import { istioSidecar } from './sidecar/istio.js';
import { linkerdSidecar } from './sidecar/linkerd.js';
import { ambient } from './ambient/ambient.js';
import { ambientWaypoint } from './ambient/waypoint.js';
import { ebpf } from './ebpf/ebpf.js';
import { ebpfL7 } from './ebpf/l7.js';
import type { Dataplane, Settings } from './types.js';

const registry = new Map<string, Dataplane>();

export function register(d: Dataplane): void {
  if (registry.has(d.name)) throw new Error(`dataplane ${d.name} registered twice`);
  registry.set(d.name, d);
}

register(baseline);
register(istioSidecar);
register(linkerdSidecar);
register(ambient);
register(ambientWaypoint);
register(ebpf);
register(ebpfL7);

export function dataplaneNames(): string[] {
  return [...registry.keys()];
}

/** A dataplane string taken apart: its kind, every option's value, and the options it set. */
export interface Variant {
  kind: string;
  settings: Settings;
  given: Settings;
}

const VARIANT = /^([a-z0-9][a-z0-9-]{0,31})(?:\[([^\]]*)\])?$/;

/** Every option of a kind, for messages: `encryption=none|wireguard (default wireguard)`. */
export function optionsText(d: Pick<Dataplane, 'options'>): string {
  const o = d.options ?? [];
  return o.length ? o.map((x) => `${x.key}=${x.values.join('|')} (default ${x.default})`).join(', ') : 'none';
}

/** Parse `kind` or `kind[key=value,…]`; undefined and a reason for anything the registry would refuse. */
function parse(text: string): Variant | string {
  const m = VARIANT.exec(text);
  if (!m) return 'must be a dataplane name (lowercase letters, digits, "-"), optionally with [key=value,…]';
  const d = registry.get(m[1]!);
  if (!d) return `unknown dataplane "${m[1]}" (known: ${dataplaneNames().join(', ')})`;
  const settings: Record<string, string> = Object.fromEntries((d.options ?? []).map((o) => [o.key, o.default]));
  const given: Record<string, string> = {};
  if (m[2] === undefined) return { kind: d.name, settings, given };
  if (!d.options?.length) return `${d.name} has no options`;
  for (const part of m[2].split(',')) {
    const [key, value, ...rest] = part.split('=');
    const o = d.options.find((x) => x.key === key?.trim());
    if (!o) return `${d.name} has no option "${key?.trim() ?? ''}" (its options: ${optionsText(d)})`;
    const v = value?.trim();
    if (rest.length || v === undefined || !o.values.includes(v)) return `${d.name}: ${o.key} must be one of ${o.values.join(', ')} (got "${part.trim()}")`;
    if (o.key in given) return `${d.name}: ${o.key} is set twice`;
    given[o.key] = v;
    settings[o.key] = v;
  }
  return { kind: d.name, settings, given };
}

/** What is wrong with a dataplane string, or undefined when the registry knows it. */
export function dataplaneProblem(text: string): string | undefined {
  const v = parse(text);
  return typeof v === 'string' ? v : undefined;
}

/** The kind and settings of a dataplane string the registry accepts (undefined otherwise). */
export function variantOf(text: string): Variant | undefined {
  const v = parse(text);
  return typeof v === 'string' ? undefined : v;
}

/** One string per distinct configuration: `ebpf` and `ebpf[encryption=wireguard]` are the same dataplane. */
export function dataplaneKey(text: string): string {
  const v = variantOf(text);
  if (!v) return text;
  const d = registry.get(v.kind)!;
  const set = (d.options ?? []).filter((o) => v.settings[o.key] !== o.default).map((o) => `${o.key}=${v.settings[o.key]}`);
  return set.length ? `${v.kind}[${set.join(',')}]` : v.kind;
}

export function getDataplane(text: string): Dataplane {
  const v = parse(text);
  if (typeof v === 'string')
    throw inputError(
      `dataplane "${text}": ${v}`,
      [],
      `known dataplanes: ${dataplaneNames().join(', ')}; variants: kind[key=value,…] (see meshbench dataplanes)`,
    );
  const d = registry.get(v.kind)!;
  if (!Object.keys(v.given).length) return d;
  if (!d.configure) throw new Error(`dataplane ${d.name} declares options but cannot be configured`);
  return d.configure(v.settings, text);
}

export function allDataplanes(): Dataplane[] {
  return [...registry.values()];
}

/** The scenario loader's view of the registry (scenario/ comes before dataplanes/). */
export const dataplaneChecks = { problem: dataplaneProblem, key: dataplaneKey };

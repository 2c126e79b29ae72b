// Every dataplane kind, registered in one place. A new dataplane is a folder (or a file in its
// family's folder) exporting a Dataplane with its needs, plus one line here.
import { inputError } from '../errors.js';
import { baseline } from './baseline/index.js';
import { istioSidecar } from './sidecar/istio.js';
import { linkerdSidecar } from './sidecar/linkerd.js';
import { ambient } from './ambient/ambient.js';
import { ambientWaypoint } from './ambient/waypoint.js';
import { ebpf } from './ebpf/ebpf.js';
import { ebpfL7 } from './ebpf/l7.js';
import type { Dataplane } from './types.js';

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

export function getDataplane(name: string): Dataplane {
  const d = registry.get(name);
  if (!d) throw inputError(`unknown dataplane "${name}"`, [], `known dataplanes: ${dataplaneNames().join(', ')}`);
  return d;
}

export function allDataplanes(): Dataplane[] {
  return [...registry.values()];
}

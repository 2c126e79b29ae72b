// Every dataplane kind, registered in one place (containerlab core/register.go). A new dataplane
// is a folder under harness/dataplanes/ exporting a Dataplane, plus one line here.
import { inputError } from '../errors.js';
import { baseline } from './baseline/index.js';
import { istioSidecar } from './istio-sidecar/index.js';
import { linkerdSidecar } from './linkerd-sidecar/index.js';
import { ambient } from './ambient/index.js';
import { ambientWaypoint } from './ambient-waypoint/index.js';
import { ebpf } from './ebpf/index.js';
import { ebpfL7 } from './ebpf-l7/index.js';
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

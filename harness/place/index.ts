// Which place a command runs on. The lab's namespace names carry the node index
// (topology/graph.ts: P-n<i>, P-n<i>p<j>, P-n<i>w<k>), so a command or process in a node's or
// pod's namespace goes to that node's place without its call site knowing; everything else (the
// root namespace, the fabric, the test fleet) runs where meshbench runs unless the caller names a
// place. `meshbench run --hosts` registers one remote place per node (run/hosts.ts).
import { localPlace } from './local.js';
import type { Place } from './types.js';

export { LocalPlace, localPlace, nsCommand } from './local.js';
export { makeDir, pullDir, putFile } from './files.js';
export type { ExecResult, Mount, Place, PlaceExecOptions, PlaceProcess, PlaceStartSpec } from './types.js';

// Kept here rather than imported from graph.ts: graph.ts reaches util/tools.ts, which reaches
// this file (an import cycle). test/unit/place.test.ts checks the two agree.
const NODE_NETNS_RE = /^mb[0-9a-z]{4}-n([1-9]\d*)(?:[pw]\d+)?$/;

/** The node index a lab namespace name carries (node, pod or infrastructure pod), else undefined. */
export function nodeOfNetns(netns: string | undefined): number | undefined {
  const m = netns ? NODE_NETNS_RE.exec(netns) : null;
  return m ? Number(m[1]) : undefined;
}

const places = new Map<number, Place>();

/** Node `index` (1-based) runs on `place` from now on. */
export function registerPlace(index: number, place: Place): void {
  places.set(index, place);
}

/** Every node back on this host (after a run on several machines, and between tests). */
export function resetPlaces(): void {
  places.clear();
}

/** True while some node runs on another machine (a run with --hosts). */
export function onHosts(): boolean {
  return places.size > 0;
}

/** The distinct places of these nodes, in node order: each machine once (for once-per-machine work). */
export function placesOf(nodes: { index: number }[]): Place[] {
  return [...new Set(nodes.map((n) => placeOfNode(n.index)))];
}

export const isLocal = (p: Place): boolean => p === localPlace;

export function placeOfNode(index: number): Place {
  return places.get(index) ?? localPlace;
}

/** The place that owns a network namespace; this host for the root namespace and unknown names. */
export function placeOf(netns: string | undefined): Place {
  const i = nodeOfNetns(netns);
  return i === undefined ? localPlace : placeOfNode(i);
}

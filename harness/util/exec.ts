// Running host commands. Every kernel change the lab makes goes through here: the command runs on
// the place that owns its network namespace (place/index.ts placeOf; this host unless an
// inventory registered another), or on the place the caller names. The spawning itself is in
// place/local.ts.
import { placeOf, type ExecResult, type Place, type PlaceExecOptions } from '../place/index.js';

export { nsCommand } from '../place/index.js';
export type { ExecResult } from '../place/index.js';

export interface ExecOptions extends PlaceExecOptions {
  /** Run on this place (root-namespace commands of another machine); default: the netns's place. */
  place?: Place;
}

export function exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const { place, ...rest } = opts;
  return (place ?? placeOf(opts.netns)).exec(cmd, args, rest);
}

/** Feed many iproute2 commands at once; far faster than one process per object. */
export async function ipBatch(lines: string[], opts: { force?: boolean; place?: Place } = {}): Promise<void> {
  if (lines.length === 0) return;
  await exec('ip', [...(opts.force ? ['-force'] : []), '-batch', '-'], { input: lines.join('\n') + '\n', allowFail: !!opts.force, place: opts.place });
}

/** True when `cmd` resolves on PATH (or is an executable path). */
export async function which(cmd: string, place?: Place): Promise<string | undefined> {
  const r = await exec('sh', ['-c', `command -v "$1"`, 'sh', cmd], { allowFail: true, place });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

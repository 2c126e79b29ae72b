// The project's own binaries (apps/: mb-load, mb-grpc), built by set-up into the checkout's
// .tools/bin. Looked up there first, then on PATH (a checkout's build wins over an older copy
// elsewhere); on a --hosts run every machine must have it at one path; its version from
// `<name> version` ("mb-load 0.1.0").
import { accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { envError } from '../errors.js';
import type { Place } from '../place/index.js';
import { exec } from './exec.js';
import { PROJECT_ROOT } from './host.js';

/** One of the project's binaries, and why a run needs it (for the error messages). */
export interface ProjectBinary {
  name: string;
  /** e.g. "engine openloop needs it". */
  why: string;
}

export interface Lookup {
  root?: string;
  path?: string;
}

export const buildHint = (name: string): string => `run \`bash scripts/setup.sh\`, which builds it from apps/cmd/${name} into .tools/bin`;

const executable = (p: string) => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

export function findProjectBinary(name: string, o: Lookup = {}): string | undefined {
  const dirs = [
    join(o.root ?? PROJECT_ROOT, '.tools/bin'),
    ...(o.path ?? process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((d) => resolve(d)),
  ];
  return dirs.map((d) => join(d, name)).find(executable);
}

export function requireProjectBinary(b: ProjectBinary, o: Lookup = {}): string {
  const p = findProjectBinary(b.name, o);
  if (!p) throw envError(`${b.name} not found (in ${join(o.root ?? PROJECT_ROOT, '.tools/bin')} or on PATH): ${b.why}`, buildHint(b.name));
  return p;
}

/** Its path on every machine of a --hosts run, which must be one path. */
export async function projectBinaryOnPlaces(b: ProjectBinary, places: readonly Place[]): Promise<string> {
  const paths = await Promise.all(places.map((p) => p.findTool(b.name)));
  const distinct = [...new Set(paths)];
  if (distinct.length !== 1 || !distinct[0])
    throw envError(
      `${b.name} is missing or at different paths on the hosts (${places.map((p, i) => `${p.name}: ${paths[i] ?? 'missing'}`).join(', ')})`,
      buildHint(b.name),
    );
  return distinct[0];
}

/** "0.1.0" from `<bin> version` printing "<name> 0.1.0", or undefined. */
export async function projectBinaryVersion(name: string, bin: string, place?: Place): Promise<string | undefined> {
  const r = await exec(bin, ['version'], { allowFail: true, timeoutMs: 5000, place });
  const m = new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(r.stdout);
  return r.code === 0 && m ? m[1] : undefined;
}

// Case files on several machines (docs/hosts.md, step 6). A file a lab process reads is written
// here (the controller's copy, kept with the results) and at the same absolute path on the place
// that runs the process; a file a lab process writes there is pulled back into the same path here
// at the end of the case. On this host each is a plain local write and pulling is a no-op.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runError } from '../errors.js';
import { localPlace } from './local.js';
import type { Place } from './types.js';

/** mkdir -p here and, for another place, there too. */
export async function makeDir(place: Place, path: string, opts: { mode?: number } = {}): Promise<void> {
  mkdirSync(path, { recursive: true, mode: opts.mode });
  if (place !== localPlace) await place.mkdir(path, opts);
}

/** Write `text` to `path` here and, for another place, at the same path there (its directory made). */
export async function putFile(place: Place, path: string, text: string, opts: { mode?: number } = {}): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await localPlace.writeFile(path, text, opts);
  if (place === localPlace) return;
  await place.mkdir(dirname(path));
  await place.writeFile(path, text, opts);
}

/** At most this much is pulled from one place per call: case files are logs and flow records, not data sets. */
const PULL_LIMIT_BYTES = 256 * 2 ** 20;

/**
 * Every regular file under `dir` on `place` copied to the same path here (text: logs, JSON, flow
 * records). Files only there are added, files on both are replaced by the place's. Returns how many.
 */
export async function pullDir(place: Place, dir: string): Promise<number> {
  if (place === localPlace) return 0;
  const r = await place.exec('find', [dir, '-type', 'f', '-printf', '%s %P\\0'], { allowFail: true });
  if (r.code !== 0) return 0;
  const entries = r.stdout
    .split('\0')
    .filter(Boolean)
    .map((l) => ({ size: Number(l.slice(0, l.indexOf(' '))), rel: l.slice(l.indexOf(' ') + 1) }));
  const total = entries.reduce((a, e) => a + e.size, 0);
  if (total > PULL_LIMIT_BYTES) throw runError(`${dir} on ${place.name} holds ${Math.round(total / 2 ** 20)} MiB: more than a case's files should`);
  const texts = await place.readFiles(entries.map((e) => join(dir, e.rel)));
  let n = 0;
  entries.forEach((e, i) => {
    const t = texts[i];
    if (t === undefined) return;
    const to = join(dir, e.rel);
    mkdirSync(dirname(to), { recursive: true });
    writeFileSync(to, t);
    n++;
  });
  return n;
}

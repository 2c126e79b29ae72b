// Debian kernels the VM stage can boot: a pinned registry, and a fetch into a cache through a
// private apt sources list and state directory, so the system's apt configuration is never touched.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { envError, inputError } from '../errors.js';
import { exec } from '../util/exec.js';

export interface KernelSpec {
  name: string;
  /** Debian suite that serves the package. */
  suite: string;
  /** Binary package holding vmlinuz and the modules. */
  package: string;
  /** Pinned package version (apt's `Version:`). */
  version: string;
}

export const KERNELS: Record<string, KernelSpec> = {
  'debian-6.1': { name: 'debian-6.1', suite: 'bookworm', package: 'linux-image-6.1.0-50-amd64', version: '6.1.176-1' },
  'debian-6.12': {
    name: 'debian-6.12',
    suite: 'bookworm-backports',
    package: 'linux-image-6.12.95+deb12-amd64',
    version: '6.12.95-1~bpo12+1',
  },
};

export function kernelSpec(name: string): KernelSpec {
  const spec = KERNELS[name];
  if (!spec) throw inputError(`unknown kernel "${name}"`, [], `known kernels: ${Object.keys(KERNELS).join(', ')}`);
  return spec;
}

/** What a fetched kernel left in the cache (also its manifest.json). */
export interface KernelFiles {
  name: string;
  package: string;
  version: string;
  /** `uname -r` inside the VM: the directory name under lib/modules. */
  release: string;
  /** SHA256 of the .deb, checked against the suite's Packages index. */
  sha256: string;
  vmlinuz: string;
  /** Directory holding modules.dep and the kernel/ tree (lib/modules/<release>). */
  modulesDir: string;
}

export interface AptSource {
  uri: string;
  suites: string[];
  signedBy?: string;
}

/**
 * The Debian mirror the system's apt already uses, from /etc/apt/sources.list (one-line form)
 * and sources.list.d/*.sources (deb822): the first `deb` entry carrying a main suite (no
 * -security/-updates), so a private list reaches the same host.
 */
export function parseAptSources(files: { path: string; text: string }[]): AptSource[] {
  const out: AptSource[] = [];
  for (const f of files) {
    if (f.path.endsWith('.sources')) {
      for (const stanza of f.text.split(/\n\s*\n/)) {
        const field = (k: string) => stanza.match(new RegExp(`^${k}:\\s*(.+)$`, 'mi'))?.[1].trim();
        if (!(field('Types') ?? '').split(/\s+/).includes('deb') || /^enabled:\s*no/im.test(stanza)) continue;
        const uris = field('URIs');
        if (!uris) continue;
        for (const uri of uris.split(/\s+/)) out.push({ uri, suites: (field('Suites') ?? '').split(/\s+/), signedBy: field('Signed-By') });
      }
    } else if (f.path.endsWith('.list')) {
      for (const raw of f.text.split('\n')) {
        const line = raw.replace(/#.*/, '').trim();
        const m = line.match(/^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)/);
        if (!m) continue;
        const signedBy = m[1]?.match(/signed-by=(\S+)/)?.[1];
        out.push({ uri: m[2], suites: [m[3]], signedBy });
      }
    }
  }
  return out;
}

export function debianMirror(sources: AptSource[]): AptSource | undefined {
  return sources.find((s) => s.suites.some((x) => /^[a-z]+$/.test(x)) && !/security/.test(s.uri));
}

function systemAptSources(): AptSource[] {
  const files: { path: string; text: string }[] = [];
  const add = (p: string) => {
    try {
      files.push({ path: p, text: readFileSync(p, 'utf8') });
    } catch {
      /* absent */
    }
  };
  add('/etc/apt/sources.list');
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort()) add(join('/etc/apt/sources.list.d', f));
  } catch {
    /* no directory */
  }
  return parseAptSources(files);
}

/** A one-line sources list for exactly one suite of `mirror`. */
export function renderSourcesList(mirror: AptSource, suite: string): string {
  const opts = mirror.signedBy ? `[signed-by=${mirror.signedBy}] ` : '';
  return `deb ${opts}${mirror.uri} ${suite} main\n`;
}

/** apt options that point every path apt writes to under `stateDir`, plus the private list. */
export function privateAptOptions(stateDir: string): string[] {
  return [
    `Dir::Etc::sourcelist=${join(stateDir, 'sources.list')}`,
    'Dir::Etc::sourceparts=-',
    `Dir::State::Lists=${join(stateDir, 'lists')}`,
    `Dir::Cache=${join(stateDir, 'cache')}`,
    'Debug::NoLocking=1',
  ].flatMap((o) => ['-o', o]);
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Fetch (or find in `cacheDir`) the kernel `name`; a second call is a cache hit. */
export async function fetchKernel(name: string, cacheDir: string): Promise<KernelFiles> {
  const spec = kernelSpec(name);
  const dir = join(cacheDir, name);
  const manifestPath = join(dir, 'manifest.json');
  if (existsSync(manifestPath)) {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as KernelFiles;
    if (m.package === spec.package && m.version === spec.version && existsSync(m.vmlinuz) && existsSync(join(m.modulesDir, 'modules.dep'))) return m;
  }
  const fail = (what: string, cause: unknown) =>
    envError(
      `cannot fetch kernel ${name} (${spec.package}=${spec.version} from ${spec.suite}): ${what}: ${cause instanceof Error ? cause.message : String(cause)}`,
      'check that the Debian mirror in /etc/apt/sources.list* is reachable and still serves this version (then update harness/vm/kernels.ts), and that apt-get, dpkg-deb and depmod (kmod) are installed',
    );
  const mirror = debianMirror(systemAptSources());
  if (!mirror) throw fail('no Debian mirror in /etc/apt/sources.list*', 'nothing to copy');
  // Built in a private directory and renamed into place, so a concurrent fetch of the same
  // kernel never sees half a cache entry.
  const work = join(cacheDir, `.${name}.${process.pid}.tmp`);
  rmSync(work, { recursive: true, force: true });
  const apt = join(work, 'apt');
  for (const d of [join(apt, 'lists', 'partial'), join(apt, 'cache', 'archives', 'partial')]) mkdirSync(d, { recursive: true });
  writeFileSync(join(apt, 'sources.list'), renderSourcesList(mirror, spec.suite));
  const opts = privateAptOptions(apt);
  const pin = `${spec.package}=${spec.version}`;
  try {
    await exec('apt-get', [...opts, '-qq', 'update'], { timeoutMs: 120_000 });
    const show = await exec('apt-cache', [...opts, 'show', pin]);
    const want = show.stdout.match(/^SHA256:\s*([0-9a-f]{64})$/m)?.[1];
    if (!want) throw new Error(`no SHA256 for ${pin} in the Packages index`);
    // apt-get download writes into the working directory; it checks the hash itself too.
    await exec('sh', ['-c', 'cd "$1" && shift && exec apt-get "$@"', 'sh', apt, ...opts, '-qq', 'download', pin], { timeoutMs: 600_000 });
    const file = readdirSync(apt).find((f) => f.endsWith('.deb'));
    if (!file) throw new Error('apt-get download left no .deb');
    const deb = join(apt, file);
    const got = await sha256File(deb);
    if (got !== want) throw new Error(`SHA256 mismatch: ${got}, Packages says ${want}`);
    const root = join(work, 'root');
    await exec('dpkg-deb', ['-x', deb, root]);
    const modBase = ['usr/lib/modules', 'lib/modules'].map((p) => join(root, p)).find((p) => existsSync(p));
    if (!modBase) throw new Error('no lib/modules in the package');
    const release = readdirSync(modBase)[0];
    const vmlinuzDir = [join(root, 'boot'), join(modBase, release)].find((p) => existsSync(p) && readdirSync(p).some((f) => f.startsWith('vmlinuz')));
    if (!vmlinuzDir) throw new Error('no vmlinuz in the package');
    renameSync(join(vmlinuzDir, readdirSync(vmlinuzDir).find((f) => f.startsWith('vmlinuz'))!), join(work, 'vmlinuz'));
    // Keep only the modules, at lib/modules/<release> (where depmod -b looks); the package
    // ships no modules.dep (its postinst makes it), so make it here.
    const modulesRoot = join(work, 'modules');
    mkdirSync(join(modulesRoot, 'lib', 'modules'), { recursive: true });
    renameSync(join(modBase, release), join(modulesRoot, 'lib', 'modules', release));
    await exec('depmod', ['-b', modulesRoot, release]);
    rmSync(root, { recursive: true, force: true });
    rmSync(apt, { recursive: true, force: true });
    const m: KernelFiles = {
      name,
      package: spec.package,
      version: spec.version,
      release,
      sha256: got,
      vmlinuz: join(dir, 'vmlinuz'),
      modulesDir: join(dir, 'modules', 'lib', 'modules', release),
    };
    writeFileSync(join(work, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    return m;
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw fail('fetch failed', e);
  }
}

// Kernels the VM stage can boot: a pinned registry of Debian kernels, fetched into a cache through
// a private apt sources list and state directory (the system's apt configuration is never
// touched), or a kernel directory of the user's, copied into the cache (never written to). Each
// cache entry keeps vmlinuz, lib/modules/<release> with modules.dep, and the kernel's config
// inside it (the guest sees it at /lib/modules/<release>/config), described by manifest.json.
import { createHash } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { envError, inputError } from '../errors.js';
import { exec, which } from '../util/exec.js';

export interface KernelSpec {
  name: string;
  /** Debian suite that serves the package. */
  suite: string;
  /** Binary package named for the kernel (the record's kernel package). */
  package: string;
  /** Pinned package version (apt's `Version:`). */
  version: string;
  /**
   * Further packages of the same version and suite that hold the kernel's files: from 7.x
   * linux-image is an empty package depending on linux-binary (vmlinuz), linux-modules and
   * linux-base (the config).
   */
  parts?: string[];
}

export const KERNELS: Record<string, KernelSpec> = {
  // bullseye had its last point release (11.11): its main suite no longer changes, so this pin
  // holds until bullseye leaves deb.debian.org for archive.debian.org.
  'debian-5.10': { name: 'debian-5.10', suite: 'bullseye', package: 'linux-image-5.10.0-32-amd64', version: '5.10.223-1' },
  'debian-6.1': { name: 'debian-6.1', suite: 'bookworm', package: 'linux-image-6.1.0-50-amd64', version: '6.1.176-1' },
  'debian-6.12': {
    name: 'debian-6.12',
    suite: 'bookworm-backports',
    package: 'linux-image-6.12.95+deb12-amd64',
    version: '6.12.95-1~bpo12+1',
  },
  // trixie-backports, not sid or forky: those two drop a kernel from their index the day the next
  // one arrives (weeks), while trixie-backports keeps superseded ABIs in its index (6.16.3 is
  // still served beside 7.3.4), so this pin stays fetchable.
  'debian-7': {
    name: 'debian-7',
    suite: 'trixie-backports',
    package: 'linux-image-7.3.4+deb13-amd64',
    version: '7.3.4-1~bpo13+1',
    parts: ['linux-binary-7.3.4+deb13-amd64', 'linux-modules-7.3.4+deb13-amd64', 'linux-base-7.3.4+deb13-amd64'],
  },
};

/** Names of the registered kernels, in registry order. */
export const knownKernels = (): string[] => Object.keys(KERNELS);

export const isKernelName = (s: string): boolean => Object.hasOwn(KERNELS, s);

/** What a kernel directory given instead of a name must hold (said in every error about one). */
export const KERNEL_DIR_HINT =
  'a kernel directory: a vmlinuz* (or bzImage) file at its top or under boot/, and lib/modules/<release>/ as `make modules_install INSTALL_MOD_PATH=<dir>` leaves it';

export function kernelSpec(name: string): KernelSpec {
  if (!isKernelName(name)) throw inputError(`unknown kernel "${name}"`, [], `known kernels: ${knownKernels().join(', ')}`);
  return KERNELS[name];
}

/** What a fetched kernel left in the cache (also its manifest.json). */
export interface KernelFiles {
  /** The registry name, or `custom:<release>` for a kernel directory of the user's. */
  name: string;
  package: string;
  version: string;
  /** `uname -r` inside the VM: the directory name under lib/modules. */
  release: string;
  /** SHA256 of the .deb (of vmlinuz for a user's kernel), checked against the suite's Packages index. */
  sha256: string;
  vmlinuz: string;
  /** Directory holding modules.dep and the kernel/ tree (lib/modules/<release>). */
  modulesDir: string;
  /** The kernel's config, inside modulesDir so the guest reads it at /lib/modules/<release>/config; absent when none was found. */
  config?: string;
  /** Debian suite it came from. */
  suite?: string;
  /** Every .deb fetched, with its checked SHA256. */
  debs?: { package: string; sha256: string }[];
  /** For a user's kernel: the directory it was read from (never written to). */
  source?: string;
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

const readManifest = (dir: string): KernelFiles | undefined => {
  try {
    return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as KernelFiles;
  } catch {
    return undefined;
  }
};

/** Written beside and renamed over, so a reader never sees half a manifest. */
function writeManifest(dir: string, m: KernelFiles): void {
  const tmp = join(dir, `.manifest.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(m, null, 2)}\n`);
  renameSync(tmp, join(dir, 'manifest.json'));
}

/** Put a cache entry built in `work` in place of `dir` (a concurrent reader never sees half of one). */
function publish(work: string, dir: string, m: KernelFiles): KernelFiles {
  writeManifest(work, m);
  rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  return m;
}

/** The kernel config a package or a build left: boot/config-<release>, else lib/modules/<release>/config. */
function findConfig(root: string, modulesDir: string, release: string): string | undefined {
  return [join(root, 'boot', `config-${release}`), join(modulesDir, 'config')].find((p) => existsSync(p));
}

/** Fetch (or find in `cacheDir`) the kernel `name`; a second call is a cache hit. */
export async function fetchKernel(name: string, cacheDir: string): Promise<KernelFiles> {
  const spec = kernelSpec(name);
  const dir = join(cacheDir, name);
  const cached = readManifest(dir);
  const same =
    cached?.package === spec.package && cached.version === spec.version && existsSync(cached.vmlinuz) && existsSync(join(cached.modulesDir, 'modules.dep'));
  if (same && cached.config && existsSync(cached.config)) return cached;
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
  const pins = [spec.package, ...(spec.parts ?? [])].map((p) => `${p}=${spec.version}`);
  try {
    await exec('apt-get', [...opts, '-qq', 'update'], { timeoutMs: 120_000 });
    const want = new Map<string, string>();
    for (const pin of pins) {
      const show = await exec('apt-cache', [...opts, 'show', pin]);
      const sha = show.stdout.match(/^SHA256:\s*([0-9a-f]{64})$/m)?.[1];
      if (!sha) throw new Error(`no SHA256 for ${pin} in the Packages index`);
      want.set(pin.split('=')[0], sha);
    }
    // apt-get download writes into the working directory; it checks the hashes itself too.
    await exec('sh', ['-c', 'cd "$1" && shift && exec apt-get "$@"', 'sh', apt, ...opts, '-qq', 'download', ...pins], { timeoutMs: 600_000 });
    const root = join(work, 'root');
    const debs: { package: string; sha256: string }[] = [];
    for (const [pkg, sha] of want) {
      const file = readdirSync(apt).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
      if (!file) throw new Error(`apt-get download left no .deb for ${pkg}`);
      const deb = join(apt, file);
      const got = await sha256File(deb);
      if (got !== sha) throw new Error(`SHA256 mismatch for ${pkg}: ${got}, Packages says ${sha}`);
      debs.push({ package: pkg, sha256: got });
      await exec('dpkg-deb', ['-x', deb, root]);
    }
    const modBase = ['usr/lib/modules', 'lib/modules'].map((p) => join(root, p)).find((p) => existsSync(p));
    if (!modBase) throw new Error('no lib/modules in the package');
    const release = readdirSync(modBase).find((r) => existsSync(join(modBase, r, 'kernel')));
    if (!release) throw new Error('no lib/modules/<release>/kernel in the package');
    // vmlinuz: under boot/ up to 6.x, beside the modules from 7.x.
    const vmlinuzDir = [join(root, 'boot'), join(modBase, release)].find((p) => existsSync(p) && readdirSync(p).some((f) => f.startsWith('vmlinuz')));
    if (!vmlinuzDir) throw new Error('no vmlinuz in the package');
    renameSync(join(vmlinuzDir, readdirSync(vmlinuzDir).find((f) => f.startsWith('vmlinuz'))!), join(work, 'vmlinuz'));
    const configSrc = findConfig(root, join(modBase, release), release);
    if (!configSrc) throw new Error(`no boot/config-${release} in the packages`);
    const config = readFileSync(configSrc);
    if (same) {
      // Only the config is missing (a cache entry from before it was kept): add it in place, as a
      // VM running now may have this entry's modules directory shared.
      writeFileSync(join(cached!.modulesDir, 'config'), config);
      const m: KernelFiles = { ...cached!, config: join(cached!.modulesDir, 'config'), suite: spec.suite, debs };
      writeManifest(dir, m);
      rmSync(work, { recursive: true, force: true });
      return m;
    }
    // Keep only the modules, at lib/modules/<release> (where depmod -b looks); the package
    // ships no modules.dep (its postinst makes it), so make it here. The config goes in the
    // same directory: the guest mounts it at /lib/modules/<release>.
    const modulesRoot = join(work, 'modules');
    mkdirSync(join(modulesRoot, 'lib', 'modules'), { recursive: true });
    renameSync(join(modBase, release), join(modulesRoot, 'lib', 'modules', release));
    writeFileSync(join(modulesRoot, 'lib', 'modules', release, 'config'), config);
    await exec('depmod', ['-b', modulesRoot, release]);
    rmSync(root, { recursive: true, force: true });
    rmSync(apt, { recursive: true, force: true });
    const modulesDir = join(dir, 'modules', 'lib', 'modules', release);
    const m: KernelFiles = {
      name,
      package: spec.package,
      version: spec.version,
      release,
      sha256: debs[0].sha256,
      vmlinuz: join(dir, 'vmlinuz'),
      modulesDir,
      config: join(modulesDir, 'config'),
      suite: spec.suite,
      debs,
    };
    return publish(work, dir, m);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw fail('fetch failed', e);
  }
}

// ── a kernel of the user's: a directory as `make install`/`modules_install` leave it ──

/**
 * The version string a bzImage carries in its setup header (`6.1.0-50-amd64 (…) #1 SMP …`):
 * 0x202 holds "HdrS", the u16 at 0x20e points to the string (plus 0x200). Undefined for
 * anything else.
 */
export function bzImageVersion(head: Buffer): string | undefined {
  if (head.length < 0x210 || head.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
  const at = head.readUInt16LE(0x20e) + 0x200;
  if (at >= head.length) return undefined;
  const end = head.indexOf(0, at);
  const s = head.toString('latin1', at, end < 0 ? Math.min(head.length, at + 256) : end).trim();
  return s || undefined;
}

export interface KernelDir {
  vmlinuz: string;
  release: string;
  /** lib/modules/<release> inside the user's directory. */
  modulesDir: string;
  config?: string;
  /** From the bzImage header, when it has one. */
  version?: string;
}

/** Find vmlinuz, the release and its modules in a user's kernel directory; a message saying what is missing otherwise. */
export function readKernelDir(dir: string): KernelDir | string {
  const ls = (d: string) => {
    try {
      return readdirSync(d, { withFileTypes: true });
    } catch {
      return [];
    }
  };
  const images = [dir, join(dir, 'boot')].flatMap((d) =>
    ls(d)
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && (/^vmlinuz/.test(e.name) || e.name === 'bzImage'))
      .map((e) => join(d, e.name)),
  );
  const modBase = [join(dir, 'lib', 'modules'), join(dir, 'usr', 'lib', 'modules')].find((d) => existsSync(d));
  const releases = modBase
    ? ls(modBase)
        .filter((e) => e.isDirectory() && ['kernel', 'modules.order', 'modules.builtin'].some((f) => existsSync(join(modBase, e.name, f))))
        .map((e) => e.name)
    : [];
  if (!images.length && !releases.length) return 'it holds neither a vmlinuz* (or bzImage) file nor lib/modules/<release>/';
  if (!images.length) return 'no vmlinuz* or bzImage file at its top or under boot/';
  if (!releases.length) return 'no lib/modules/<release>/ with the kernel/ tree, modules.order or modules.builtin in it';
  const versionOf = (p: string) => {
    try {
      // The string sits past the setup sectors: 64 KiB covers it (at 0x44c0 in Debian's).
      const fd = openSync(p, 'r');
      try {
        const head = Buffer.alloc(0x10000);
        return bzImageVersion(head.subarray(0, readSync(fd, head, 0, head.length, 0)));
      } finally {
        closeSync(fd);
      }
    } catch {
      return undefined;
    }
  };
  // Each image names its release in its header (or its file name); it must have its modules.
  const pairs = images.flatMap((img) => {
    const version = versionOf(img);
    const rel = version?.split(/\s/)[0] ?? basename(img).replace(/^vmlinuz-?/, '');
    return releases.includes(rel) ? [{ img, rel, version }] : [];
  });
  // One image with no readable header and one release: nothing contradicts taking them together.
  const lone = images.length === 1 && releases.length === 1 && !versionOf(images[0]) ? { img: images[0], rel: releases[0], version: undefined } : undefined;
  const pick = pairs[0] ?? lone;
  if (!pick) return `no vmlinuz matches a release under lib/modules (images: ${images.map((i) => basename(i)).join(', ')}; releases: ${releases.join(', ')})`;
  const modulesDir = join(modBase!, pick.rel);
  const config = [
    join(dir, 'boot', `config-${pick.rel}`),
    join(dir, `config-${pick.rel}`),
    join(modulesDir, 'config'),
    join(dir, '.config'),
    join(dir, 'config'),
  ].find((p) => existsSync(p));
  return { vmlinuz: pick.img, release: pick.rel, modulesDir, config, version: pick.version };
}

/**
 * A registered name → fetchKernel; a user's kernel directory → a cache entry made from it
 * (vmlinuz copied, the modules tree hard-linked where it can be, depmod run when modules.dep is
 * missing, the config placed at lib/modules/<release>/config), so nothing is ever written to the
 * user's directory; anything else → E_INPUT naming the known kernels.
 */
export async function resolveKernel(nameOrPath: string, cacheDir: string): Promise<KernelFiles> {
  if (isKernelName(nameOrPath)) return fetchKernel(nameOrPath, cacheDir);
  const hint = `known kernels: ${knownKernels().join(', ')}; or ${KERNEL_DIR_HINT}`;
  let isDir = false;
  try {
    isDir = statSync(nameOrPath).isDirectory();
  } catch {
    /* absent */
  }
  if (!isDir) {
    const looksLikePath = nameOrPath.includes('/') || existsSync(nameOrPath);
    throw inputError(looksLikePath ? `kernel "${nameOrPath}" is not a directory` : `unknown kernel "${nameOrPath}"`, [], hint);
  }
  const src = resolve(nameOrPath);
  const k = readKernelDir(src);
  if (typeof k === 'string') throw inputError(`kernel directory ${src}: ${k}`, [], hint);
  // Keyed by what the build left: a rebuilt kernel gets a new entry.
  const stamp = (p: string | undefined) => {
    if (!p) return '-';
    const s = statSync(p);
    return `${p}:${s.size}:${s.mtimeMs}`;
  };
  const key = createHash('sha256')
    .update(
      [k.vmlinuz, k.modulesDir, join(k.modulesDir, 'modules.dep'), join(k.modulesDir, 'modules.order'), k.config]
        .map((p) => (p && existsSync(p) ? stamp(p) : '-'))
        .join('\n'),
    )
    .digest('hex')
    .slice(0, 12);
  const dir = join(cacheDir, `custom-${k.release}-${key}`);
  const cached = readManifest(dir);
  if (cached && existsSync(cached.vmlinuz) && existsSync(join(cached.modulesDir, 'modules.dep'))) return cached;
  const work = join(cacheDir, `.custom-${k.release}-${key}.${process.pid}.tmp`);
  rmSync(work, { recursive: true, force: true });
  try {
    const rel = join(work, 'modules', 'lib', 'modules', k.release);
    mkdirSync(rel, { recursive: true });
    copyFileSync(k.vmlinuz, join(work, 'vmlinuz'));
    // Subtrees (kernel/, updates/ …) hard-linked, as depmod only reads them; top-level files
    // copied, as depmod rewrites those and must not write through a link into the user's tree.
    for (const e of readdirSync(k.modulesDir, { withFileTypes: true })) {
      const from = join(k.modulesDir, e.name);
      if (e.isDirectory() && (await exec('cp', ['-al', from, rel], { allowFail: true })).code === 0) continue;
      await exec('cp', ['-a', from, rel]);
    }
    rmSync(join(rel, 'config'), { force: true });
    if (k.config) copyFileSync(k.config, join(rel, 'config'));
    // depmod lives in /sbin, which a user's PATH may lack.
    const depmod = (await which('depmod')) ?? ['/usr/sbin/depmod', '/sbin/depmod'].find((p) => existsSync(p)) ?? 'depmod';
    if (!existsSync(join(rel, 'modules.dep'))) await exec(depmod, ['-b', join(work, 'modules'), k.release]);
    const modulesDir = join(dir, 'modules', 'lib', 'modules', k.release);
    const m: KernelFiles = {
      name: `custom:${k.release}`,
      package: 'custom',
      version: k.version ?? k.release,
      release: k.release,
      sha256: await sha256File(k.vmlinuz),
      vmlinuz: join(dir, 'vmlinuz'),
      modulesDir,
      ...(k.config ? { config: join(modulesDir, 'config') } : {}),
      source: src,
    };
    return publish(work, dir, m);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw envError(
      `cannot prepare the kernel in ${src}: ${e instanceof Error ? e.message : String(e)}`,
      'check that cp and depmod (kmod) are installed and the kernel cache is writable',
    );
  }
}

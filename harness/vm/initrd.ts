// A tiny initramfs per kernel: busybox-static, the modules that mount 9p over virtio and
// overlayfs (resolved from THAT kernel's modules.dep), and an /init that builds the guest's root
// (host root read-only over 9p + tmpfs overlay, the kernel's modules on a second share) and
// switch_roots into it (not chroot: module autoload needs a real root).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { envError, runError } from '../errors.js';
import { exec, which } from '../util/exec.js';

/** Modules the initramfs loads, by name; dependencies are added from modules.dep. */
export const INITRD_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];

/** 9p mount tags shared between boot.ts (qemu -device …,mount_tag=) and the init script. */
export const TAGS = { root: 'mbroot', modules: 'mbmods', io: 'mbio' } as const;
/** Where the writable exchange directory (command, output, exit code) appears in the guest. */
export const GUEST_IO = '/run/mbvm';

const norm = (name: string) => name.replace(/-/g, '_');
/** `kernel/fs/9p/9p.ko.xz` → `9p`. */
export const moduleName = (path: string) => norm(basename(path).replace(/\.ko(\.(xz|zst|gz))?$/, ''));

/** modules.dep as module path → its dependencies' paths (relative to the modules directory). */
export function parseModulesDep(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    out.set(
      line.slice(0, i).trim(),
      line
        .slice(i + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    );
  }
  return out;
}

/**
 * The module files to insmod, in load order (each after its dependencies, no repeats), for
 * `names`. Names built into the kernel (listed in modules.builtin) need nothing; a name in
 * neither list is an error naming it.
 */
export function resolveModules(depText: string, builtinText: string, names: string[]): string[] {
  const dep = parseModulesDep(depText);
  const byName = new Map([...dep.keys()].map((p) => [moduleName(p), p]));
  const builtin = new Set(builtinText.split('\n').filter(Boolean).map(moduleName));
  const order: string[] = [];
  const seen = new Set<string>();
  // modules.dep lists every transitive dependency already, deepest last: load them reversed.
  const visit = (path: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    for (const d of [...(dep.get(path) ?? [])].reverse()) visit(d);
    order.push(path);
  };
  for (const n of names) {
    const p = byName.get(norm(n));
    if (p) visit(p);
    else if (!builtin.has(norm(n))) throw runError(`module ${n} is neither in modules.dep nor built in`);
  }
  return order;
}

/** The initramfs /init (busybox sh). `modules` are file names under /modules, in load order. */
export function renderInit(opts: { modules: string[]; release: string }): string {
  const mods = opts.modules.map((m) => `insmod /modules/${m} || echo "mbvm: insmod ${m} failed"`).join('\n');
  const ninep = 'trans=virtio,version=9p2000.L,msize=262144';
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
${mods}
fail() { echo "mbvm: $*"; echo o > /proc/sysrq-trigger; sleep 5; }
mkdir -p /ro /rw /newroot
mount -t 9p -o ${ninep},ro ${TAGS.root} /ro || fail "cannot mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "cannot mount the overlay"
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot/lib/modules/${opts.release} /newroot${GUEST_IO}
mount -t 9p -o ${ninep},ro ${TAGS.modules} /newroot/lib/modules/${opts.release} || fail "cannot mount the modules"
mount -t 9p -o ${ninep} ${TAGS.io} /newroot${GUEST_IO} || fail "cannot mount the exchange directory"
umount /proc /sys /dev
exec switch_root /newroot /bin/sh ${GUEST_IO}/stage2.sh
`;
}

interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
  /** Device number of a character device node. */
  rdev?: [number, number];
}

/** A cpio archive in the "newc" format the kernel unpacks (no cpio binary needed). */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  const push = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0]) => {
    const nameBuf = Buffer.from(`${name}\0`);
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBuf.length, 0];
    const header = Buffer.from(`070701${fields.map(hex).join('')}`);
    parts.push(header, nameBuf, pad(header.length + nameBuf.length), data, pad(data.length));
  };
  for (const e of entries) push(e.name, e.mode, e.data ?? Buffer.alloc(0), e.rdev);
  push('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

const DIR = 0o040755;
const FILE = 0o100644;
const EXE = 0o100755;

async function readModule(path: string): Promise<Buffer> {
  // busybox insmod takes plain .ko files only.
  const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : undefined;
  if (!tool) return readFileSync(path);
  const r = await exec('sh', ['-c', `${tool} -dc "$1" | base64 -w0`, 'sh', path]);
  return Buffer.from(r.stdout, 'base64');
}

/**
 * Build (or reuse) the initramfs for the kernel whose modules are in `modulesDir`; written next
 * to it, named by a hash of its inputs.
 */
export async function buildInitrd(opts: { modulesDir: string; release: string; outDir: string }): Promise<string> {
  const busybox = (await which('busybox')) ?? '/bin/busybox';
  if (!existsSync(busybox) || !readFileSync(busybox).subarray(0, 4).equals(Buffer.from('\x7fELF')))
    throw envError('busybox is not installed', 'install busybox-static (scripts/setup.sh does)');
  const bb = readFileSync(busybox);
  const depText = readFileSync(join(opts.modulesDir, 'modules.dep'), 'utf8');
  const builtinPath = join(opts.modulesDir, 'modules.builtin');
  const builtinText = existsSync(builtinPath) ? readFileSync(builtinPath, 'utf8') : '';
  const mods = resolveModules(depText, builtinText, INITRD_MODULES);
  const plain = mods.map((m) => `${moduleName(m)}.ko`);
  const init = renderInit({ modules: plain, release: opts.release });
  const key = createHash('sha256').update(bb).update(init).update(depText).digest('hex').slice(0, 16);
  const out = join(opts.outDir, `initrd-${key}.gz`);
  if (existsSync(out)) return out;
  const entries: CpioEntry[] = ['bin', 'dev', 'proc', 'sys', 'modules'].map((d) => ({ name: d, mode: DIR }));
  entries.push({ name: 'dev/console', mode: 0o020600, rdev: [5, 1] });
  entries.push({ name: 'bin/busybox', mode: EXE, data: bb }, { name: 'init', mode: EXE, data: Buffer.from(init) });
  for (let i = 0; i < mods.length; i++) entries.push({ name: `modules/${plain[i]}`, mode: FILE, data: await readModule(join(opts.modulesDir, mods[i])) });
  mkdirSync(opts.outDir, { recursive: true });
  writeFileSync(`${out}.${process.pid}.tmp`, gzipSync(cpioNewc(entries)));
  renameSync(`${out}.${process.pid}.tmp`, out);
  return out;
}

// `meshbench doctor --hosts <inventory.yaml|vagrant>`: doctor on every machine of an inventory,
// over SSH, all hosts at once. Each host runs its own built CLI (`<meshbenchDir>/dist/…/main.js
// doctor --json`); its checks come back as JSON and are printed here (a heading and doctor's own
// text per host, or one JSON object keyed by host). Every host is tried before the exit code is
// decided, so all unreachable ones are named together. The runner is closed in every case.
import { envError, inputError, MeshbenchError, runError } from '../errors.js';
import { type Check, formatDoctor } from '../probes/host.js';
import { exec, type ExecResult, which } from '../util/exec.js';
import type { Progress } from '../util/progress.js';
import { type Inventory, type InventoryHost, hostTarget, inventoryFromSshConfig, loadInventory, meshbenchDirOf, parseSshConfig } from './inventory.js';
import { SshRunner } from './ssh.js';

/** What one host's doctor came to: its checks, or why there are none. */
export type HostDoctor = { host: InventoryHost; checks: Check[] } | { host: InventoryHost; error: MeshbenchError };

/** The built CLI under a meshbench checkout. */
const CLI = 'dist/harness/cli/main.js';
const NO_MESHBENCH = 97;
const NO_NODE = 98;

/**
 * The remote argv: `cd <dir> && node <dir>/dist/harness/cli/main.js doctor --json`, after checking
 * that both the build and node are there (distinct exits, so "not set up" is told apart from
 * doctor's own failures). The directory is an argument, never spliced into the script.
 */
export function remoteDoctorArgv(dir: string): string[] {
  const script = [
    `[ -f "$1/${CLI}" ] || exit ${NO_MESHBENCH}`,
    `command -v node >/dev/null 2>&1 || exit ${NO_NODE}`,
    `cd "$1" && exec node "$1/${CLI}" doctor --json`,
  ].join('\n');
  return ['sh', '-c', script, 'sh', dir];
}

const who = (h: InventoryHost) => `${h.name} (${h.user}@${h.address}:${h.port}${h.netns ? ` from namespace ${h.netns}` : ''})`;

/** A host's remote doctor run (its exit, stdout, stderr) as checks or an error; pure. */
export function interpretDoctorRun(h: InventoryHost, r: ExecResult): HostDoctor {
  const dir = meshbenchDirOf(h);
  const notSetUp = (what: string) =>
    envError(
      `host ${who(h)} has ${what}`,
      `run scripts/setup.sh in ${dir} on it (it installs node and builds dist/), or set meshbenchDir for ${h.name} in the inventory to where meshbench is there`,
    );
  if (r.code === NO_MESHBENCH) return { host: h, error: notSetUp(`no meshbench at ${dir} (${dir}/${CLI} not found)`) };
  if (r.code === NO_NODE) return { host: h, error: notSetUp('no node (Node.js) on its PATH') };
  if (/sudo: (a password is required|a terminal is required)/.test(r.stderr))
    return { host: h, error: envError(`host ${who(h)}: sudo asks ${h.user} for a password`, `allow ${h.user} passwordless sudo there, or log in as root`) };
  let checks: unknown;
  try {
    checks = JSON.parse(r.stdout);
  } catch {
    /* below */
  }
  if (!Array.isArray(checks) || !checks.every((c) => c && typeof c === 'object' && typeof c.name === 'string' && typeof c.status === 'string')) {
    const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n');
    return { host: h, error: runError(`doctor on host ${who(h)} printed no checks (exit ${r.code})${tail ? `:\n${tail}` : ''}`) };
  }
  return { host: h, checks: checks as Check[] };
}

const missingRequired = (checks: Check[]) => checks.filter((c) => c.status === 'missing' && c.required);

/** A host's exit: 3 unreachable / not set up / a required check missing, 1 doctor failed there, else 0. */
export const hostExitCode = (r: HostDoctor): number => ('error' in r ? r.error.exitCode : missingRequired(r.checks).length ? 3 : 0);

/**
 * Every host's result as the CLI prints it (pure): stdout (a heading and doctor's text per host,
 * or one JSON object keyed by host name: its checks, or `{error}`), stderr (one error per host
 * that gave no checks, in the CLI's error format) and the exit code: the worst host's.
 */
export function combineHostDoctors(results: HostDoctor[], json: boolean): { stdout: string; stderr: string; exitCode: number } {
  const errors = results.filter((r): r is Extract<HostDoctor, { error: MeshbenchError }> => 'error' in r);
  const stderr = errors.map(({ error: e }) => `meshbench: ${e.message}\n${e.hint ? `  → ${e.hint}\n` : ''}`);
  const unreachable = errors.filter((r) => r.error.code === 'E_ENV').length;
  const missing = results.filter((r) => 'checks' in r && missingRequired(r.checks).length);
  if (errors.length > 1 || (errors.length && missing.length))
    stderr.push(
      `meshbench: ${[
        unreachable && `${unreachable} of ${results.length} hosts unreachable or not set up (${errors.map((r) => r.host.name).join(', ')})`,
        errors.length > unreachable && `doctor failed on ${errors.length - unreachable}`,
        missing.length && `required checks missing on ${missing.map((r) => r.host.name).join(', ')}`,
      ]
        .filter(Boolean)
        .join('; ')}\n`,
    );
  let stdout: string;
  if (json) {
    const byHost = Object.fromEntries(
      results.map((r) => [r.host.name, 'checks' in r ? r.checks : { error: { code: r.error.code, message: r.error.message, hint: r.error.hint } }]),
    );
    stdout = `${JSON.stringify(byHost, null, 2)}\n`;
  } else
    stdout = results
      .map((r) => {
        const head = `── ${r.host.name} (${r.host.user}@${r.host.address}:${r.host.port}) ──`;
        return `${head}\n${'checks' in r ? formatDoctor(r.checks) : `not checked: ${r.error.message}`}\n`;
      })
      .join('\n');
  return { stdout, stderr: stderr.join(''), exitCode: Math.max(0, ...results.map(hostExitCode)) };
}

/** `vagrant ssh-config` in `cwd` as an inventory; E_ENV when vagrant is missing or no machine is up. */
export async function vagrantInventory(cwd?: string): Promise<Inventory> {
  if (!(await which('vagrant'))) throw envError('vagrant is not installed', 'install it with scripts/setup.sh (vagrant + vagrant-libvirt), then `vagrant up`');
  // VAGRANT_CWD: vagrant's own way to name the Vagrantfile's directory (default: where we run).
  const r = await exec('vagrant', ['ssh-config'], { env: cwd ? { ...process.env, VAGRANT_CWD: cwd } : undefined, allowFail: true, timeoutMs: 120_000 });
  const where = cwd ?? process.env.VAGRANT_CWD ?? process.cwd();
  const says = (r.stderr.trim() || r.stdout.trim()).replace(/\s+/g, ' ').slice(0, 400);
  if (r.code !== 0 || !parseSshConfig(r.stdout).length)
    throw envError(
      `\`vagrant ssh-config\` in ${where} found no running machine${says ? `: ${says}` : ''}`,
      'run `vagrant up` first in the directory with the Vagrantfile (docs/vagrant.md)',
    );
  return inventoryFromSshConfig(r.stdout, { source: `vagrant ssh-config (${where})`, labInterface: 'eth1' });
}

/** The inventory `--hosts` names: a file, or `vagrant`. Bad files are E_INPUT before any ssh. */
export async function hostsInventory(spec: string, cwd?: string): Promise<Inventory> {
  return spec === 'vagrant' ? vagrantInventory(cwd) : loadInventory(spec);
}

export interface HostsDoctorOptions {
  json: boolean;
  progress?: Progress;
  /** Seconds for each host's doctor (TCG guests run its probes ~10× slower). */
  timeoutS?: number;
  out?: (s: string) => void;
  err?: (s: string) => void;
}

/** Doctor on every host of `spec`; prints the results and returns the exit code. */
export async function doctorOnHosts(spec: string, o: HostsDoctorOptions): Promise<number> {
  const inv = await hostsInventory(spec);
  return doctorOnInventory(inv, o);
}

/** Doctor on every host of `inv` at once; the runner (masters, control directory) is closed in every case. */
export async function doctorOnInventory(inv: Inventory, o: HostsDoctorOptions): Promise<number> {
  if (!(await which('ssh'))) throw envError('ssh (the OpenSSH client) is not installed', 'install openssh-client (scripts/setup.sh does)');
  const ssh = new SshRunner({ connectTimeoutS: 10 });
  let results: HostDoctor[];
  try {
    o.progress?.log(`running doctor on ${inv.hosts.length} host(s) of ${inv.file}: ${inv.hosts.map((h) => h.name).join(', ')}`);
    results = await Promise.all(
      inv.hosts.map(async (h): Promise<HostDoctor> => {
        try {
          const r = await ssh.host(hostTarget(h)).run(remoteDoctorArgv(meshbenchDirOf(h)), { allowFail: true, timeoutMs: (o.timeoutS ?? 600) * 1000 });
          const res = interpretDoctorRun(h, r);
          o.progress?.log(`${h.name}: ${'error' in res ? 'failed' : 'done'}`);
          return res;
        } catch (e) {
          if (e instanceof MeshbenchError) return { host: h, error: e };
          throw e;
        }
      }),
    );
  } finally {
    await ssh.close();
  }
  const c = combineHostDoctors(results, o.json);
  (o.out ?? ((s) => process.stdout.write(s)))(c.stdout);
  if (c.stderr) (o.err ?? ((s) => process.stderr.write(s)))(c.stderr);
  return c.exitCode;
}

/** `--hosts` excludes `--kernel`/`--kernels` (doctor or run on the machines, or in local VMs). */
export function checkHostsOptions(o: { hosts?: string; kernel?: string; kernels?: string[] }): void {
  if (o.hosts !== undefined && (o.kernel || o.kernels))
    throw inputError(
      `--hosts and --${o.kernel ? 'kernel' : 'kernels'} together`,
      [],
      "choose one: the inventory's machines with --hosts, or local VMs with --kernel/--kernels",
    );
}

// Finding the external tools the lab runs, and their versions for the run record.
// fortio is looked up on PATH first, then in the checkout's .tools/bin where setup installs it;
// each place looks on its own machine and caches its answers (place/local.ts findTool).
import { envError } from '../errors.js';
import { localPlace, type Place } from '../place/index.js';
import { exec } from './exec.js';

export { PROJECT_ROOT } from './host.js';

export const FORTIO_VERSION = '1.68.2';

/** On `place` (default this host): PATH, then <root>/.tools/bin. */
export function findTool(name: string, place: Place = localPlace): Promise<string | undefined> {
  return place.findTool(name);
}

const installHints: Record<string, string> = {
  fortio: `run the README's set-up (scripts/setup.sh), which installs fortio ${FORTIO_VERSION} with go install`,
  ip: 'apt-get install iproute2',
  iptables: 'apt-get install iptables',
  'iptables-restore': 'apt-get install iptables',
  taskset: 'apt-get install util-linux',
  ping: 'apt-get install iputils-ping',
  haproxy: 'apt-get install haproxy',
  setpriv: 'apt-get install util-linux',
  mount: 'apt-get install mount',
  tc: 'apt-get install iproute2',
  bpftool: 'apt-get install bpftool',
  clang: 'apt-get install clang',
  llc: 'apt-get install llvm',
  wg: 'apt-get install wireguard-tools',
  'wireguard-go': 'needed where the kernel has no WireGuard module: run scripts/setup.sh',
  'mb-flowd': "run the README's set-up (scripts/setup.sh), which builds it into .tools/bin",
};

/** What to do when `name` is missing. */
export const installHint = (name: string): string => installHints[name] ?? `install ${name}`;

export async function requireTool(name: string): Promise<string> {
  const p = await findTool(name);
  if (!p) throw envError(`${name} not found on PATH`, installHint(name));
  return p;
}

/** For a dataplane's check(): each tool of `names` not found, as "<what is missing> (<what to do>)". */
export async function missingTools(names: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const t of names) if (!(await findTool(t))) missing.push(`${t} not found on PATH (${installHint(t)})`);
  return missing;
}

const versionArgs: Record<string, string[]> = {
  fortio: ['version'],
  ip: ['-V'],
  iptables: ['--version'],
  haproxy: ['-v'],
  clang: ['--version'],
  bpftool: ['version'],
  'wireguard-go': ['--version'],
};

/** First line of the tool's version output, or undefined when absent. */
export async function toolVersion(name: string, place?: Place): Promise<string | undefined> {
  const p = await findTool(name, place);
  if (!p) return undefined;
  const r = await exec(p, versionArgs[name] ?? ['--version'], { allowFail: true, timeoutMs: 5000, place });
  const line = (r.stdout || r.stderr).split('\n').find((l) => l.trim());
  return line?.trim();
}

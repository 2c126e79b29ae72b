// Shared test helpers. Integration tests need root and the real kernel; without root they are
// skipped with the reason (so a rootless `npm test` still runs every unit test).
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { type Dirent, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRoot } from '../harness/util/host.js';
import { sweep } from '../harness/topology/cleanup.js';
import { routeRuleFor, type ResolvedRoute } from '../harness/dataplanes/mesh/policy/model.js';
import type { RouteInput } from '../harness/scenario/policy-schema.js';

export const ROOT = isRoot();

/** A serial test that needs root; skipped, with the reason in its title, otherwise. */
export const rootTest: typeof test.serial = ROOT
  ? test.serial
  : (((title: string, ...rest: unknown[]) => (test.skip as any)(`${title} (skipped: needs root)`, ...rest)) as any);

/** rootTest, skipped (with the reason) unless the project binaries (apps/) are built in .tools/bin. */
export function rootTestWhenBuilt(names: string[]): typeof test.serial {
  const absent = names.map((n) => join(process.cwd(), '.tools/bin', n)).filter((p) => !existsSync(p));
  if (!absent.length) return rootTest;
  return ((title: string, ...rest: unknown[]) =>
    (test.skip as any)(`${title} (skipped: ${absent.join(', ')} not built yet; bash scripts/setup.sh builds them)`, ...rest)) as any;
}

/** rootTest, skipped (with the reason) unless every command in `tools` is on PATH. */
export async function rootTestNeeding(tools: string[]): Promise<typeof test.serial> {
  const missing: string[] = [];
  for (const c of tools) if (!(await which(c))) missing.push(c);
  return missing.length
    ? (((title: string, ...rest: unknown[]) => (test.skip as any)(`${title} (skipped: ${missing.join(', ')} not installed)`, ...rest)) as any)
    : rootTest;
}

/** A fresh lab prefix (mb + 4 base36 characters), as a run makes one. */
export const newLabPrefix = (): string =>
  `mb${BigInt(`0x${randomBytes(4).toString('hex')}`)
    .toString(36)
    .padStart(4, '0')
    .slice(-4)}`;

/** Remove every lab object before and after a suite (Mininet's test runner calls mn -c). */
export function cleanAround(): void {
  if (!ROOT) return;
  test.serial.before(async () => {
    await sweep();
  });
  test.serial.after.always(async () => {
    await sweep();
  });
}

import { spawn } from 'node:child_process';
import { exec, which } from '../harness/util/exec.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the meshbench CLI from source (no build needed), optionally through a wrapper command. */
export function cli(
  args: string[],
  opts: { wrap?: string[]; onStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void; timeoutMs?: number } = {},
): Promise<CliResult> {
  const argv = [...(opts.wrap ?? []), process.execPath, '--import', 'tsx', 'harness/cli/main.ts', ...args];
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      opts.onStderr?.(d, child);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/**
 * `meshbench run scenarios/quick.yaml` as the tests run it: baseline, 2 s measured after 1 s of
 * warm-up, records and reports where asked. `more` comes last, so an option there wins.
 */
export function quickArgs(results: string, reports: string, ...more: string[]): string[] {
  return ['run', 'scenarios/quick.yaml', '--dataplanes', 'baseline', '--duration', '2', '--warmup', '1', '--results', results, '--reports', reports, ...more];
}

/** Lab namespaces currently on the host. */
export async function labNetns(): Promise<string[]> {
  const r = await exec('ip', ['netns', 'list'], { allowFail: true });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => /^mb[0-9a-z]{4}-/.test(n));
}

/** A snapshot of the root namespace's network state, to prove the lab left it as found. */
export async function rootNetState(): Promise<string> {
  const parts = await Promise.all([
    exec('ip', ['-br', 'link'], { allowFail: true }),
    exec('ip', ['route', 'show', 'table', 'all'], { allowFail: true }),
    exec('ip', ['rule'], { allowFail: true }),
    exec('sysctl', ['net.ipv4.ip_forward'], { allowFail: true }),
  ]);
  // Link state flags and counters are not ours to freeze; names and routes are.
  return parts.map((p) => p.stdout.replace(/\s+(UP|DOWN|UNKNOWN|LOWERLAYERDOWN)\s+/g, ' ')).join('\n---\n');
}

/**
 * Net sysctls that are counters, moved by any host traffic: left out of hostSnapshot. Two
 * snapshots 10 s apart on an idle host (kernel 6.18) differ in nothing else.
 */
const VOLATILE_SYSCTLS = [/^net\.netfilter\.nf_conntrack_count$/, /^net\.netfilter\.nf_conntrack_expect_count$/];

/** Every readable file under /proc/sys/net as `name = value`, sorted (the root namespace's, as this process lives there). */
function netSysctls(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const name = p.slice('/proc/sys/'.length).replace(/\//g, '.');
        if (VOLATILE_SYSCTLS.some((re) => re.test(name))) continue;
        try {
          out.push(`${name} = ${readFileSync(p, 'utf8').trim().replace(/\s+/g, ' ')}`);
        } catch {
          /* write-only (route.flush) or not readable: not state */
        }
      }
    }
  };
  walk('/proc/sys/net');
  return out.sort();
}

/** Directories under every cgroup hierarchy (v1 and v2, three levels deep) named like a lab prefix or lab object. */
export function labCgroups(): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      if (/^mb[0-9a-z]{4}($|-)/.test(e.name)) out.push(p);
      if (depth > 0) walk(p, depth - 1);
    }
  };
  const roots = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2')
    .map((f) => f[1]);
  for (const r of roots) walk(r, 3);
  return out.sort();
}

async function bpfObjects(kind: 'prog' | 'map'): Promise<string> {
  const r = await exec('bpftool', ['-j', kind, 'show'], { allowFail: true });
  if (r.code !== 0) return `(bpftool ${kind} show failed: ${r.stderr.trim()})`;
  // Ids, types and names only: run counters, memlock and load times are not ours to freeze.
  const list = JSON.parse(r.stdout || '[]') as { id: number; type: string; name?: string }[];
  return list.map((x) => `${x.id} ${x.type} ${x.name ?? ''}`.trimEnd()).join('\n');
}

/**
 * Waits (up to `ms`) until no lab BPF map (`mb_*`) is left. The kernel frees the programs and
 * maps of a deleted namespace's devices only when its deferred netns clean-up runs, which after
 * a test that tore down dozens of namespaces can be minutes later: a snapshot taken meanwhile
 * would hold objects that then vanish on their own (seen: an ebpf-l7 run's maps gone during the
 * next test but one). A leak that stays is still there after the wait, and in the snapshot. No
 * wait while a lab namespace exists: a live run's objects are what such a snapshot is for.
 */
async function labBpfFreed(ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    // A lab namespace means a run is live (a test may snapshot it on purpose): its maps stay.
    const ns = await exec('ip', ['netns', 'list'], { allowFail: true });
    if (/^mb[0-9a-z]{4}-/m.test(ns.stdout)) return;
    const r = await exec('bpftool', ['-j', 'map', 'show'], { allowFail: true });
    if (r.code !== 0) return;
    const maps = JSON.parse(r.stdout || '[]') as { name?: string }[];
    if (!maps.some((m) => m.name?.startsWith('mb_'))) return;
    await sleep(1000);
  }
}

/**
 * The root namespace's state as one stable text, for `t.is(await hostSnapshot(), before)` around
 * a fault: iptables and ip6tables rules (counters zeroed, dated comments dropped), nftables,
 * link names and addresses, routes and rules of every table (v4, v6), every net.* sysctl but
 * the volatile counters, mounts (without mount ids), BPF programs and maps (id, type, name) and
 * cgroups named like a lab prefix. Tools that are not installed say so in their section.
 */
export async function hostSnapshot(): Promise<string> {
  await labBpfFreed();
  const run = async (cmd: string, args: string[]) => {
    const r = await exec(cmd, args, { allowFail: true }).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
    return r.code === 0 ? r.stdout : `(${cmd} ${args.join(' ')}: exit ${r.code} ${r.stderr.trim()})`;
  };
  const save = (out: string) =>
    out
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
      .join('\n');
  const [ipt, ip6t, nft, links, r4, r6, ru4, ru6, progs, maps] = await Promise.all([
    run('iptables-save', []).then(save),
    run('ip6tables-save', []).then(save),
    run('nft', ['list', 'ruleset']).then((x) => x.replace(/counter packets \d+ bytes \d+/g, 'counter')),
    run('ip', ['-br', 'link']),
    run('ip', ['-4', 'route', 'show', 'table', 'all']),
    run('ip', ['-6', 'route', 'show', 'table', 'all']),
    run('ip', ['-4', 'rule', 'show']),
    run('ip', ['-6', 'rule', 'show']),
    bpfObjects('prog'),
    bpfObjects('map'),
  ]);
  // Names and addresses of links; state and flags (LOWER_UP, NO-CARRIER) move on their own.
  const linkNames = links
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(/\s+/))
    .map((f) => `${f[0]} ${f.find((x) => /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(x)) ?? ''}`.trimEnd())
    .join('\n');
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').slice(2).join(' '))
    .join('\n');
  const sections: [string, string][] = [
    ['iptables-save', ipt],
    ['ip6tables-save', ip6t],
    ['nft list ruleset', nft],
    ['links', linkNames],
    ['routes v4 (all tables)', r4.replace(/ expires \d+sec/g, '')],
    ['routes v6 (all tables)', r6.replace(/ expires \d+sec/g, '')],
    ['rules v4', ru4],
    ['rules v6', ru6],
    ['net.* sysctls', netSysctls().join('\n')],
    ['mounts', mountinfo],
    ['bpf programs', progs],
    ['bpf maps', maps],
    ['lab-named cgroups', labCgroups().join('\n')],
  ];
  return sections.map(([name, body]) => `## ${name}\n${body.trimEnd()}`).join('\n\n') + '\n';
}

/** A golden fixture under test/fixtures/capture/, without its comment lines. */
export function golden(name: string): string {
  return readFileSync(`test/fixtures/capture/${name}`, 'utf8')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n');
}

/** A request held against a rendered HAProxy frontend; `draw` in [0, 1) stands in for every rand(N). */
export interface ProbeRequest {
  dst: string;
  dport: number;
  path: string;
  headers: Record<string, string>;
  draw: number;
}

/**
 * The request rules of one rendered HAProxy frontend, evaluated for one request: `http-request`
 * set-var (str, rand), allow, deny and `use_backend`/`default_backend`, in order, with the ACL
 * forms the renderers emit (an unknown form throws, so a test cannot pass by ignoring a
 * condition). Lets unit tests hold rendered routes against the model without root. Lines from
 * `until` on are not evaluated.
 */
export function evalFrontend(
  cfg: string,
  frontend: string,
  req: ProbeRequest,
  until?: RegExp,
): { backend?: string; status?: number; vars: Record<string, string | number> } {
  const lines = cfg.split('\n');
  const start = lines.indexOf(`frontend ${frontend}`);
  if (start < 0) throw new Error(`no frontend ${frontend}`);
  const vars: Record<string, string | number> = {};
  const hdr = new Map(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const words = (s: string) => [...s.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]);
  const term = (t: string): boolean => {
    if (t === 'TRUE') return true;
    if (!t.startsWith('{')) throw new Error(`named ACL not modelled: ${t}`);
    const [fetch, ...rest] = words(t.slice(1, -1));
    const values = rest[0] === '-m' ? rest.slice(2) : rest;
    const m = rest[0] === '-m' ? rest[1] : '';
    let v: string | number | undefined;
    if (fetch === 'dst') v = req.dst;
    else if (fetch === 'dst_port') v = req.dport;
    else if (fetch === 'pathq') v = req.path;
    else if (fetch === 'req.ver') v = '1.1';
    else if (/^req\.hdr\(.+\)$/.test(fetch)) v = hdr.get(fetch.slice(8, -1).toLowerCase());
    else if (/^var\(.+\)$/.test(fetch)) v = vars[fetch.slice(4, -1)];
    else throw new Error(`fetch not modelled: ${fetch}`);
    if (m === 'found') return v !== undefined;
    if (v === undefined) return false;
    if (m === 'beg') return values.some((x) => String(v).startsWith(x));
    if (m === 'int' && values[0] === 'lt') return Number(v) < Number(values[1]);
    if (m === 'int' && values[0] === 'gt') return Number(v) > Number(values[1]);
    if (m === '' || m === 'str' || m === 'int') return values.some((x) => String(v) === x);
    throw new Error(`match not modelled: ${t}`);
  };
  // All terms AND-ed, left to right, stopping at the first false one (as HAProxy does).
  const holds = (cond: string): boolean => {
    const m = cond.match(/^\s*(if|unless)\s+(.*)$/);
    if (!m) return cond.trim() === '';
    let all = true;
    for (const [, neg, t] of m[2].matchAll(/(!?)\s*(\{[^}]*\}|[^\s{}!]+)/g))
      if (term(t) === !!neg) {
        all = false;
        break;
      }
    return m[1] === 'if' ? all : !all;
  };
  let httpDone = false;
  for (const raw of lines.slice(start + 1)) {
    if (!raw.startsWith('  ')) break;
    const l = raw.trim();
    if (until?.test(l)) break;
    let m: RegExpMatchArray | null;
    if (l.startsWith('http-request ') && httpDone) continue;
    if ((m = l.match(/^http-request set-var\(([\w.]+)\) (str|rand)\(([^)]*)\)(.*)$/))) {
      if (holds(m[4])) vars[m[1]] = m[2] === 'str' ? m[3] : Math.floor(req.draw * Number(m[3]));
    } else if ((m = l.match(/^http-request allow(.*)$/))) {
      if (holds(m[1])) httpDone = true;
    } else if ((m = l.match(/^http-request deny deny_status (\d+)(.*)$/))) {
      if (holds(m[2])) return { status: Number(m[1]), vars };
    } else if ((m = l.match(/^use_backend (\S+)(.*)$/))) {
      if (!m[1].includes('%[') && holds(m[2])) return { backend: m[1], vars };
    } else if ((m = l.match(/^default_backend (\S+)$/))) return { backend: m[1], vars };
  }
  return { vars };
}

/** Where the model (routeRuleFor) sends a request on a resolved route: the destination's key <ns>_<name>_<port>, or 404. */
export function modelRoute(route: ResolvedRoute, req: ProbeRequest): string | 404 {
  const rule = routeRuleFor(route, { path: req.path, headers: req.headers });
  if (!rule) return 404;
  const total = rule.to.reduce((a, d) => a + d.weight, 0);
  const r = Math.floor(req.draw * total);
  let acc = 0;
  const d = rule.to.find((x) => r < (acc += x.weight))!;
  return `${d.service.namespace}_${d.service.name}_${d.service.port}`;
}

/** Requests that tell route rules apart: path prefixes (with and without query), header values, names in other case, draws across the weights. */
export function routeProbes(dst: string, dport: number): ProbeRequest[] {
  const out: ProbeRequest[] = [];
  for (const path of ['/', '/v2', '/v2/', '/v2/x?y=1', '/v3/x', '/beta/1', '/beta', '/other?v2/', '/V2/x'])
    for (const headers of [{}, { 'x-canary': 'true' }, { 'X-Canary': 'true' }, { 'x-canary': 'false' }] as Record<string, string>[])
      for (const draw of [0, 0.2, 0.3, 0.5, 0.89, 0.9, 0.95, 0.999]) out.push({ dst, dport, path, headers, draw });
  return out;
}

/**
 * Routes on api-service (→ api-service-v1/-v2) that tell the rules' parts apart: a path-only rule,
 * headers and path together with weights, headers only, the catch-all split; and a route without
 * a catch-all (404 when nothing matches).
 */
export function pathRouteSets(namespace: string): Record<string, RouteInput[]> {
  return {
    'path, headers+path (weighted), headers, catch-all split': [
      {
        service: 'api-service',
        namespace,
        rules: [
          { match: { pathPrefix: '/v2/' }, to: [{ service: 'api-service-v2' }] },
          {
            match: { headers: { 'x-canary': 'true' }, pathPrefix: '/beta/' },
            to: [
              { service: 'api-service-v2', weight: 1 },
              { service: 'api-service-v1', weight: 3 },
            ],
          },
          { match: { headers: { 'x-canary': 'true' } }, to: [{ service: 'api-service-v2' }] },
          {
            to: [
              { service: 'api-service-v1', weight: 90 },
              { service: 'api-service-v2', weight: 10 },
            ],
          },
        ],
      },
    ],
    'no catch-all: 404 when no rule matches': [
      {
        service: 'api-service',
        namespace,
        rules: [
          { match: { pathPrefix: '/v2' }, to: [{ service: 'api-service-v2' }] },
          { match: { headers: { 'x-canary': 'true' } }, to: [{ service: 'api-service-v1' }, { service: 'api-service-v2' }] },
        ],
      },
    ],
  };
}

/**
 * A fleet of `count` debian-6.1 VMs (real sshd, lab NIC eth1) whose places are registered as
 * nodes 1..count, so lab namespaces P-n<i>… route to VM i; `fn` runs with them, then the places
 * are closed and reset and the fleet stopped, however `fn` ends. 2 GiB per VM by default: the
 * process group keeps 1 GiB free on every machine.
 */
export async function withFleetPlaces<T>(
  prefix: string,
  count: number,
  fn: (places: RemotePlace[], fleet: Fleet) => Promise<T>,
  o: { memoryMiB?: number; pollMs?: number } = {},
): Promise<T> {
  const fleet = await startFleet({ prefix, kernel: 'debian-6.1', count, memoryMiB: o.memoryMiB ?? 2048 });
  const places = fleet.inventory().hosts.map((h) => RemotePlace.of(fleet.ssh, h, { pollMs: o.pollMs ?? 250 }));
  places.forEach((p, i) => registerPlace(i + 1, p));
  try {
    return await fn(places, fleet);
  } finally {
    for (const p of places) p.close();
    resetPlaces();
    await fleet.stop();
  }
}

import { registerPlace, resetPlaces } from '../harness/place/index.js';
import { RemotePlace } from '../harness/place/remote.js';
import { startFleet, type Fleet } from '../harness/vm/fleet.js';

/**
 * scenarios/quick.yaml copied into `dir` (its topology by absolute path) with `qps`, and name and
 * workload lines edited by `edit`: for TCG guests, which do not always keep 200 qps.
 */
export function quickScenarioCopy(dir: string, qps: number, edit: (text: string) => string = (x) => x): string {
  const file = join(dir, `quick-${qps}qps.yaml`);
  const text = readFileSync('scenarios/quick.yaml', 'utf8')
    .replace('qps: 200', `qps: ${qps}`)
    .replace('../topologies/two-node.yaml', join(process.cwd(), 'topologies/two-node.yaml'));
  writeFileSync(file, edit(text));
  return file;
}

// Hostile scenario input (issue 12, items 3-6): zero and huge durations, referenced files that are
// not regular or too big, files outside the project quoted back, alias bombs, unbounded counts,
// strings that would break a proxy config, labels that collide in the eBPF identity key.
import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadScenario } from '../../harness/scenario/load.js';
import { applyOverrides, expandCases } from '../../harness/scenario/expand.js';
import { validateFile } from '../../harness/cli/validate.js';
import { readCiliumPolicies } from '../../harness/dataplanes/mesh/policy/cnp.js';
import { allocateIdentities } from '../../harness/dataplanes/ebpf/identity.js';
import { MeshbenchError } from '../../harness/errors.js';
import type { Cluster, PodSpec } from '../../harness/topology/graph.js';

const fx = (f: string) => `test/fixtures/scenarios/hostile/${f}`;
const TWO_NODE = join(process.cwd(), 'topologies/two-node.yaml');

/** Details of the E_INPUT error validate gives (any other outcome fails the test). */
function problems(file: string): string[] {
  try {
    validateFile(file);
  } catch (e) {
    if (e instanceof MeshbenchError && e.code === 'E_INPUT') return e.details;
    throw e;
  }
  return [];
}

const has = (t: import('ava').ExecutionContext, d: string[], file: string, line: number, re: RegExp) =>
  t.true(
    d.some((x) => x.startsWith(`${file}:${line}: `) && re.test(x)),
    `${file}:${line} ${re}\n${d.join('\n')}`,
  );

const dir = mkdtempSync(join(tmpdir(), 'mb-bounds-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** A minimal valid scenario with `extra` lines appended (or replacing keys given in `replace`). */
function scenario(name: string, extra = '', replace: Record<string, string> = {}): string {
  const keys: Record<string, string> = {
    kind: 'Scenario',
    name: 'b',
    topology: TWO_NODE,
    client: '{node: node1}',
    services: '[{name: echo, port: 80, targetPort: 8080, nodes: [node2]}]',
    workloads: '[{name: a, protocol: http1, qps: 10, duration: 1s, warmup: 1s, chain: [echo]}]',
    dataplanes: '[baseline]',
    ...replace,
  };
  const f = join(dir, name);
  writeFileSync(
    f,
    Object.entries(keys)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n') +
      '\n' +
      extra,
  );
  return f;
}

test('zero durations are refused in every form, at their line (fortio -t 0s never ends)', (t) => {
  const f = fx('zero-durations.yaml');
  const d = problems(f);
  has(t, d, f, 9, /workloads\.0\.duration: must be more than 0/);
  has(t, d, f, 10, /workloads\.1\.warmup: must be more than 0/);
  has(t, d, f, 11, /workloads\.2\.duration: must be more than 0/);
  has(t, d, f, 12, /workloads\.3\.duration: must be more than 0/);
  has(t, d, f, 12, /workloads\.3\.warmup: must be more than 0/);
  has(t, d, f, 16, /quick\.duration: must be more than 0/);
  has(t, d, f, 17, /quick\.warmup: must be more than 0/);
});

test('durations and repeats have upper bounds: 1h measured, 10m warm-up, 100 repeats (quick too)', (t) => {
  const f = fx('zero-durations.yaml');
  const d = problems(f);
  has(t, d, f, 13, /workloads\.4\.duration: must be at most 1h/);
  has(t, d, f, 13, /workloads\.4\.warmup: must be at most 10m/);
  has(t, d, f, 18, /quick\.repeats: Too big/);
  // The bounds themselves are allowed.
  t.deepEqual(problems(scenario('edge.yaml', '', { workloads: '[{name: a, protocol: http1, qps: 10, duration: 1h, warmup: 10m, chain: [echo]}]' })), []);
  t.deepEqual(problems(scenario('edge2.yaml', 'quick: {repeats: 100, duration: 1ms, warmup: 0.5}\nrepeats: 100\n')), []);
});

test('--duration, --warmup and --repeats overrides are bounded like the scenario keys (E_INPUT)', (t) => {
  const s = loadScenario('scenarios/quick.yaml');
  for (const o of [
    { durationS: 0 },
    { durationS: -1 },
    { durationS: Number.NaN },
    { durationS: 3601 },
    { warmupS: 0 },
    { warmupS: 601 },
    { repeats: 0 },
    { repeats: 101 },
    { repeats: 1.5 },
  ]) {
    const e = t.throws(() => applyOverrides(s, o), { instanceOf: MeshbenchError }, JSON.stringify(o));
    t.is(e?.code, 'E_INPUT');
  }
  t.is(expandCases(applyOverrides(s, { durationS: 3600, warmupS: 600, repeats: 100 })).length, 100 * s.dataplanes.length);
});

test('referenced files must be regular and at most 1 MiB, checked before reading; reported at the referencing line', (t) => {
  const fifo = join(dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  symlinkSync('/dev/zero', join(dir, 'zero.yaml'));
  mkdirSync(join(dir, 'adir.yaml'));
  writeFileSync(join(dir, 'big.yaml'), 'kind: Topology\n' + `# ${'x'.repeat(1100 * 1024)}\n`);
  const cases: [string, RegExp][] = [
    ['fifo.yaml', /is a FIFO, not a regular file/],
    ['zero.yaml', /is a device, not a regular file/],
    ['adir.yaml', /is a directory, not a regular file/],
    ['big.yaml', /is \d+ bytes; the limit is 1048576 bytes/],
    ['missing.yaml', /file not found/],
  ];
  for (const [target, re] of cases) {
    const topo = scenario(`topo-${target}`, '', { topology: target });
    has(t, problems(topo), topo, 3, new RegExp(`topology: .*${target}: ${re.source}`));
    const quick = scenario(`quick-${target}`, `quick: {topology: ${target}}\n`);
    has(t, problems(quick), quick, 8, new RegExp(`quick\\.topology: .*${target}: ${re.source}`));
    const pol = scenario(`pol-${target}`, `policyFiles: [${target}]\n`);
    has(t, problems(pol), pol, 8, new RegExp(`policyFiles\\.0: .*${target}: ${re.source}`));
    // The scenario itself.
    t.regex(problems(join(dir, target))[0] ?? '', new RegExp(`:1: ${re.source}`), target);
  }
  // Only YAML files can be referenced: /dev/zero itself, /etc/shadow …
  const dev = scenario('dev.yaml', '', { topology: '/dev/zero' });
  has(t, problems(dev), dev, 3, /topology: must name a \.yaml or \.yml file/);
  has(t, problems(fx('shadow-ref.yaml')), fx('shadow-ref.yaml'), 11, /policyFiles\.0: must name a \.yaml or \.yml file/);
});

test('a FIFO or device named on the command line gives exit 2 at once, not a hang or 16 GB read', async (t) => {
  const fifo = join(dir, 'cli-fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  const topo = scenario('cli-topo.yaml', '', { topology: 'cli-fifo.yaml' });
  for (const f of [fifo, topo, '/dev/zero']) {
    // node itself (not npx), so the timeout stops the process that would block on the FIFO.
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'harness/cli/main.ts', 'validate', f], {
      timeout: 30_000,
      killSignal: 'SIGKILL',
    }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr?: string; killed?: boolean }) => ({ code: e.killed ? -1 : e.code, stderr: e.stderr ?? '' }),
    );
    t.is(r.code, 2, `${f}: ${r.stderr}`);
    t.regex(r.stderr, /:\d+: .*(FIFO|device)/);
  }
});

test('files outside the project are never quoted back, beyond one short token', (t) => {
  // A file that is valid YAML but not a topology or policy: one line, none of its content.
  const secret = join(dir, 'secret.yaml');
  writeFileSync(secret, 'root:$6$SECRETSALT$SECRETHASHSECRETHASHSECRETHASH:19000:0:99999:7:::\ndaemon: SECRETLINE2\n');
  for (const [name, extra, replace] of [
    ['s-topo.yaml', '', { topology: 'secret.yaml' }],
    ['s-pol.yaml', 'policyFiles: [secret.yaml]\n', {}],
  ] as const) {
    const d = problems(scenario(name, extra, replace));
    t.true(d.length > 0);
    t.false(d.join('\n').includes('SECRET'), d.join('\n'));
    t.true(
      d.some((x) => /secret\.yaml:1: not a (topology file|CiliumNetworkPolicy)/.test(x)),
      d.join('\n'),
    );
  }
  // Long tokens of the scenario itself are cut to 40 characters; control characters are escaped.
  const long = scenario('long-key.yaml', `? ${'k'.repeat(5000)}\n: 1\n"\\e[31mred\\r\\n": 2\n`);
  const d = problems(long);
  t.true(
    d.every((x) => x.length < 500 && !/[\u0000-\u001f]/.test(x)),
    d.join('\n'),
  );
  t.true(
    d.some((x) => x.includes(`"${'k'.repeat(40)}…"`)),
    d.join('\n'),
  );
  // Errors of a real /etc/shadow (when readable), named through a .yaml symlink.
  try {
    readFileSync('/etc/shadow');
    symlinkSync('/etc/shadow', join(dir, 'shadow.yaml'));
    const s = problems(scenario('s-shadow.yaml', 'policyFiles: [shadow.yaml]\n')).join('\n');
    t.false(/root:|daemon:|\$\d\$/.test(s), s);
  } catch {
    t.log('/etc/shadow not readable here; skipped that part');
  }
});

test('a YAML alias bomb is exit 2 with file:line, not a stack trace', (t) => {
  const f = fx('alias-bomb.yaml');
  has(t, problems(f), f, 4, /aliases expand too far/);
  // Nesting deeper than 32 levels, written in the scenario.
  const deep = scenario('deep.yaml', `x: ${'['.repeat(40)}${']'.repeat(40)}\n`);
  has(t, problems(deep), deep, 8, /nested more than 32 levels deep/);
});

test('free text and lists have caps: 4 KiB descriptions, 100 services …; the file cap covers the rest', (t) => {
  const desc = scenario('desc.yaml', `description: ${'d'.repeat(5000)}\n`);
  has(t, problems(desc), desc, 8, /description: Too big/);
  const note = scenario('note.yaml', `reference: {table: http-visibility-p95, note: "${'n'.repeat(5000)}", scaling: {a: "${'s'.repeat(5000)}"}}\n`);
  const dn = problems(note);
  t.true(dn.some((x) => /reference\.note: Too big/.test(x)) && dn.some((x) => /reference\.scaling\.a: Too big/.test(x)), dn.join('\n'));
  const svcs = Array.from({ length: 101 }, (_, i) => `{name: s${i}, port: 80, targetPort: 8080}`).join(', ');
  const many = scenario('many.yaml', '', { services: `[${svcs}]` });
  has(t, problems(many), many, 5, /services: Too big: expected array to have <=100 items/);
  const dps = scenario('dps.yaml', '', { dataplanes: `[${Array.from({ length: 17 }, (_, i) => `d${i}`).join(', ')}]` });
  has(t, problems(dps), dps, 7, /dataplanes: Too big/);
  const huge = join(dir, 'huge.yaml');
  writeFileSync(huge, `kind: Scenario\ndescription: ${'x'.repeat(2 * 1024 * 1024)}\n`);
  t.regex(problems(huge)[0], /huge\.yaml:1: is \d+ bytes; the limit is 1048576 bytes/);
});

test('strings that reach proxy configs or a shell are refused by validate, at their line', (t) => {
  const f = fx('proxy-strings.yaml');
  const d = problems(f);
  has(t, d, f, 7, /services\.0\.labels\.tier: bad label value/);
  has(t, d, f, 16, /http\.0\.path: paths may hold printable ASCII without spaces, quotes/);
  has(t, d, f, 17, /http\.1\.path: paths may hold/);
  has(t, d, f, 18, /http\.2\.headers\.0: must be "Name: value"/);
  has(t, d, f, 22, /headers\.x-canary: header values may hold/);
  has(t, d, f, 24, /headers\.x-crlf: header values may hold/);
  has(t, d, f, 26, /bad header name/);
  has(t, d, f, 28, /pathPrefix: must start with "\/" and hold only URL path characters/);
  has(t, d, f, 34, /pinning\.load: must be a CPU list/);
  has(t, d, f, 34, /pinning\.apps: ranges must go up/);
  const keys = scenario('label-keys.yaml', '', { client: '{node: node1, labels: {"a=b": x, "-x": y, "k8s:app": z}}' });
  t.is(problems(keys).filter((x) => /bad label key/.test(x)).length, 3, problems(keys).join('\n'));
});

test("CiliumNetworkPolicy files are held to the same charsets, with the policy file's lines", (t) => {
  const f = fx('cnp-hostile.yaml');
  const { errors, policies } = readCiliumPolicies(f);
  t.is(policies.length, 0);
  has(t, errors, f, 6, /matchLabels\.app: bad label value/);
  has(t, errors, f, 12, /http\.0\.path: paths may hold/);
  has(t, errors, f, 13, /http\.1\.path: paths may hold/);
  has(t, errors, f, 14, /http\.2\.headers\.0: expected "Name: value"/);
  // Through a scenario: the same lines.
  const d = problems(fx('cnp-ref.yaml'));
  has(t, d, f, 12, /path: paths may hold/);
});

test('eBPF identities: label sets that differ never share an identity, whatever their characters', (t) => {
  // Before: labels joined as "k8s:k=v" with "," made these two one key (and one identity).
  const pod = (name: string, labels: Record<string, string>): PodSpec =>
    ({ name, namespace: 'default', serviceAccount: 'default', labels }) as unknown as PodSpec;
  const ids = allocateIdentities({ pods: [pod('p1', { a: 'x,k8s:b=y' }), pod('p2', { a: 'x', b: 'y' }), pod('p3', { a: 'x', b: 'y' })] } as unknown as Cluster);
  t.not(ids.byPod.get('p1'), ids.byPod.get('p2'));
  t.is(ids.byPod.get('p2'), ids.byPod.get('p3'));
  t.is(ids.labels.size, 2);
});

test('validity: defaulted to 0.1 % errors and 95 % of the rate; bounded; strict', (t) => {
  const s = loadScenario('scenarios/quick.yaml');
  t.deepEqual(s.validity, { maxErrorRate: 0.001, minRateRatio: 0.95 });
  const v = loadScenario(fx('validity.yaml'));
  t.deepEqual(v.validity, { maxErrorRate: 0.01, minRateRatio: 0.95 });
  t.deepEqual(v.pinning, { load: '0', apps: '1-3,5' });
  const bad = scenario('validity-bad.yaml', 'validity: {maxErrorRate: 1.5, minRateRatio: 0, colour: red}\n');
  const d = problems(bad);
  has(t, d, bad, 8, /validity\.maxErrorRate: Too big/);
  has(t, d, bad, 8, /validity\.minRateRatio: Too small/);
  has(t, d, bad, 8, /unknown key\(s\) "colour"/);
});

// Property test of the scenario loader (issue 12): hostile mutations of the shipped scenarios,
// topologies and policy files, each validated in-process the way `meshbench validate` does.
// Every input must end OK or in E_INPUT with at least one `file:line: ` detail (exit 0 or 2) —
// never another exception — within a time and memory bound, and never quote a secret back.
import test from 'ava';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parse, stringify } from 'yaml';
import { validateFile } from '../../harness/cli/validate.js';
import { MeshbenchError } from '../../harness/errors.js';

// Fixed, so a failure reproduces; MB_FUZZ_SEED / MB_FUZZ_RUNS explore further by hand.
const SEED = Number(process.env.MB_FUZZ_SEED ?? 122026);
const RUNS = Number(process.env.MB_FUZZ_RUNS ?? 2500);
/** Per case; a real input takes milliseconds. A hang (FIFO) or a 16 GB read would blow it. */
const CASE_LIMIT_MS = 5_000;
/** Resident memory after a case (and a collection); the test's own generator needs a few hundred MiB. */
const RSS_LIMIT = 1.5 * 1024 ** 3;

// A full collection on demand, for the memory bound (the unit suite runs without --expose-gc).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const dir = mkdtempSync(join(tmpdir(), 'mb-fuzz-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

// Special files a mutated reference may name.
execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
symlinkSync('/dev/zero', join(dir, 'zero.yaml'));
symlinkSync('loop.yaml', join(dir, 'loop.yaml'));
mkdirSync(join(dir, 'adir.yaml'));
writeFileSync(join(dir, 'big.yaml'), `kind: Topology\n# ${'x'.repeat(1100 * 1024)}\n`);
writeFileSync(join(dir, 'secret.yaml'), 'root:$6$SECRET$SECRETHASH:19000:0:99999:7:::\nkind: SECRETKIND\n');
writeFileSync(join(dir, 'secret.txt'), 'SECRET\n');
const SPECIAL = [
  'fifo.yaml',
  'zero.yaml',
  'loop.yaml',
  'adir.yaml',
  'big.yaml',
  'secret.yaml',
  'secret.txt',
  'missing.yaml',
  '/dev/zero',
  '/dev/null',
  '/etc/shadow',
  '/etc/passwd',
  dir,
  '../../../../../../etc/shadow',
  'topo.yaml',
  'pol.yaml',
];

// Seeds: every shipped scenario and fixture, with its file references made absolute.
type Tree = unknown;
function seeds(folder: string): { tree: Tree; text: string }[] {
  return readdirSync(folder)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => {
      const file = resolve(folder, f);
      const text = readFileSync(file, 'utf8');
      let tree: Tree;
      try {
        tree = parse(text, { maxAliasCount: 100 });
      } catch {
        tree = null;
      }
      const abs = (x: unknown) => (typeof x === 'string' && !x.startsWith('/') ? resolve(dirname(file), x) : x);
      if (tree && typeof tree === 'object' && !Array.isArray(tree)) {
        const o = tree as Record<string, Tree> & { quick?: Record<string, unknown> };
        if (typeof o.topology === 'string') o.topology = abs(o.topology);
        if (Array.isArray(o.policyFiles)) o.policyFiles = o.policyFiles.map(abs);
        if (o.quick && typeof o.quick === 'object' && typeof o.quick.topology === 'string') o.quick.topology = abs(o.quick.topology);
      }
      return { tree, text };
    });
}
const SCENARIOS = [...seeds('scenarios'), ...seeds('test/fixtures/scenarios'), ...seeds('test/fixtures/scenarios/hostile')].filter(
  (s) => s.tree && typeof s.tree === 'object',
);
const TOPOLOGIES = seeds('topologies');
const POLICIES = ['cnp-orders.yaml', 'cnp-production.yaml', 'cnp-unsupported.yaml'].map((f) => readFileSync(`test/fixtures/policy/${f}`, 'utf8'));

// Hostile leaves.
const hostileString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom(
    "it's",
    'a"b',
    'a\\b',
    'a\nb',
    'a\r\nb',
    '\u001b[31mred',
    '\u0000',
    '\u2028',
    '',
    ' ',
    'x,k8s:b=y',
    'a=b',
    '-x',
    'k8s:app',
    '0; touch /tmp/pwned',
    '$(id)',
    '`id`',
    '3-1',
    '0-4095',
    '/api/(',
    '/a(?!b)',
    '.*',
    "/it's",
    'GET|HEAD',
    "X-A: it's",
    'X-Debug',
  ),
  fc.integer({ min: 1, max: 6000 }).map((n) => 'x'.repeat(n)),
  fc.constantFrom(...SPECIAL),
);
const hostileDuration = fc.oneof(
  fc.constantFrom(
    '0s',
    '0ms',
    '0m0s',
    '0',
    '-1s',
    '0.0001s',
    '1ms',
    '1h',
    '1h0m1s',
    '10m',
    '10m1s',
    '99999999h',
    '1e3s',
    '1.5.5s',
    's',
    '',
    '9'.repeat(400) + 'h',
  ),
  fc.double({ noNaN: false }),
  fc.integer({ min: -10, max: 10_000 }),
);
const hostileNumber = fc.oneof(fc.constantFrom(0, -1, 1, 100, 101, 1e8, 1e308, -0, 0.5, Number.MAX_SAFE_INTEGER, 65536, 1025), fc.double(), fc.integer());
const leaf: fc.Arbitrary<Tree> = fc.oneof(
  { arbitrary: hostileString, weight: 4 },
  { arbitrary: hostileDuration, weight: 2 },
  { arbitrary: hostileNumber, weight: 2 },
  { arbitrary: fc.constantFrom(null, true, false, [], {}), weight: 1 },
);
const value: fc.Arbitrary<Tree> = fc.letrec<{ v: Tree }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(hostileString, tie('v'), { maxKeys: 4 }),
  ),
})).v;

/** Every path to a node of the tree (bounded), so a mutation can land anywhere. */
function paths(t: Tree, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (out.length > 400) return out;
  out.push(prefix);
  if (Array.isArray(t)) t.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (t && typeof t === 'object') for (const [k, v] of Object.entries(t)) paths(v, [...prefix, k], out);
  return out;
}

type Mutation =
  | { op: 'set'; at: number; v: Tree }
  | { op: 'delete'; at: number }
  | { op: 'add'; at: number; key: string; v: Tree }
  | { op: 'repeat'; at: number; n: number }
  | { op: 'nest'; at: number; depth: number }
  | { op: 'ref'; key: 'topology' | 'quick' | 'policyFiles'; file: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('set' as const), at: fc.nat(), v: value }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({
      op: fc.constant('add' as const),
      at: fc.nat(),
      key: fc.oneof(hostileString, fc.constantFrom('kind', 'validity', 'quick', 'pinning', 'policyFiles', '__proto__', 'constructor', 'toString')),
      v: value,
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), n: fc.integer({ min: 2, max: 400 }) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('nest' as const), at: fc.nat(), depth: fc.integer({ min: 20, max: 60 }) }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('ref' as const),
      key: fc.constantFrom('topology' as const, 'quick' as const, 'policyFiles' as const),
      file: fc.constantFrom(...SPECIAL),
    }),
    weight: 2,
  },
);

function apply(tree: Tree, m: Mutation): Tree {
  if (m.op === 'ref') {
    // Point a file reference at a special file: FIFO, device, directory, big, secret, missing …
    if (!tree || typeof tree !== 'object' || Array.isArray(tree)) return tree;
    const o = tree as Record<string, Tree>;
    if (m.key === 'topology') o.topology = m.file;
    else if (m.key === 'quick') o.quick = { ...(o.quick && typeof o.quick === 'object' ? o.quick : {}), topology: m.file };
    else o.policyFiles = [...(Array.isArray(o.policyFiles) ? o.policyFiles : []), m.file];
    return tree;
  }
  const ps = paths(tree);
  const path = ps[m.at % ps.length];
  const get = (p: (string | number)[]) => p.reduce<Tree>((o, k) => (o as Record<string | number, Tree>)?.[k], tree);
  const put = (p: (string | number)[], v: Tree) => {
    if (!p.length) return v;
    const parent = get(p.slice(0, -1)) as Record<string | number, Tree>;
    if (parent && typeof parent === 'object') parent[p[p.length - 1]] = v;
    return tree;
  };
  const here = get(path);
  switch (m.op) {
    case 'set':
      // Cloned: fast-check's values are its own (and constants like {} are shared instances).
      return put(path, structuredClone(m.v));
    case 'delete': {
      if (!path.length) return {};
      const parent = get(path.slice(0, -1));
      if (Array.isArray(parent)) parent.splice(path[path.length - 1] as number, 1);
      else if (parent && typeof parent === 'object') delete (parent as Record<string, Tree>)[path[path.length - 1]];
      return tree;
    }
    case 'add':
      if (here && typeof here === 'object' && !Array.isArray(here))
        Object.defineProperty(here, m.key, { value: structuredClone(m.v), enumerable: true, writable: true, configurable: true });
      else if (Array.isArray(here)) here.push(structuredClone(m.v));
      return tree;
    case 'repeat': {
      // Up to ~200 kB of JSON (YAML indentation multiplies it): enough to pass the count caps, and the generator stays small.
      const item = Array.isArray(here) && here.length ? here[0] : here;
      const size = JSON.stringify(item ?? null)?.length ?? 4;
      return put(
        path,
        Array.from({ length: Math.max(1, Math.min(m.n, Math.floor(2e5 / (size + 2)))) }, () => structuredClone(item)),
      );
    }
    case 'nest': {
      if ((JSON.stringify(here ?? null)?.length ?? 0) > 2e4) return tree;
      let v: Tree = here ?? 1;
      for (let i = 0; i < m.depth; i++) v = i % 2 ? { k: v } : [v];
      return put(path, v);
    }
  }
}

/** Text-level damage after serialising: what a tree cannot express (aliases, syntax errors, encodings). */
type TextOp =
  | { op: 'none' }
  | { op: 'bomb' }
  | { op: 'selfAlias' }
  | { op: 'cut'; at: number }
  | { op: 'insert'; at: number; s: string }
  | { op: 'crlf' }
  | { op: 'bom' }
  | { op: 'dupKey' }
  | { op: 'tag'; s: string };
const textOp: fc.Arbitrary<TextOp> = fc.oneof(
  { arbitrary: fc.constant({ op: 'none' as const }), weight: 8 },
  fc.constant({ op: 'bomb' as const }),
  fc.constant({ op: 'selfAlias' as const }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    s: fc.oneof(
      fc.string({ unit: 'binary', maxLength: 8 }),
      fc.constantFrom(
        '\t',
        ': ',
        '- ',
        '&a ',
        '*a',
        '*nope',
        '!!binary ',
        '!<tag:x> ',
        '%YAML 1.1\n---\n',
        '---\n',
        '"',
        "'",
        '{',
        '[',
        '? ',
        '<<: *a\n',
        '\\',
        '#',
        '|\n',
        '>-\n',
      ),
    ),
  }),
  fc.constant({ op: 'crlf' as const }),
  fc.constant({ op: 'bom' as const }),
  fc.constant({ op: 'dupKey' as const }),
  fc.record({
    op: fc.constant('tag' as const),
    s: fc.constantFrom('!!str', '!!int', '!!float', '!!map', '!!seq', '!!set', '!!omap', '!!timestamp', '!custom', `!${'t'.repeat(200)}`),
  }),
);

function damage(text: string, op: TextOp): string {
  switch (op.op) {
    case 'none':
      return text;
    case 'bomb':
      return `${text}\nz0: &z0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n${Array.from({ length: 8 }, (_, i) => `z${i + 1}: &z${i + 1} [${Array(9).fill(`*z${i}`).join(', ')}]`).join('\n')}\n`;
    case 'selfAlias':
      return `${text}\nself: &s [1, *s]\nmerge: {<<: *s}\n`;
    case 'cut':
      return text.slice(0, op.at % (text.length + 1));
    case 'insert': {
      const i = op.at % (text.length + 1);
      return text.slice(0, i) + op.s + text.slice(i);
    }
    case 'crlf':
      return text.replace(/\n/g, '\r\n');
    case 'bom':
      return `\ufeff${text}`;
    case 'dupKey':
      return `${text}\nkind: Scenario\n`;
    case 'tag':
      return text.replace(/^(\w+): /m, `$1: ${op.s} `);
  }
}

const fileCase = fc.record({
  seed: fc.nat(),
  mutations: fc.array(mutation, { minLength: 0, maxLength: 4 }),
  text: textOp,
  topo: fc.record({ seed: fc.nat(), mutations: fc.array(mutation, { maxLength: 2 }), text: textOp }),
  pol: fc.record({ seed: fc.nat(), at: fc.nat(), s: fc.oneof(fc.constant(''), hostileString), text: textOp }),
  quick: fc.boolean(),
});
type FileCase = typeof fileCase extends fc.Arbitrary<infer T> ? T : never;

let n = 0;
function runCase(c: FileCase): void {
  const caseDir = join(dir, `c${n++ % 8}`);
  mkdirSync(caseDir, { recursive: true });
  // A per-case topology and policy file the mutated scenario may reference (topo.yaml, pol.yaml).
  const t = TOPOLOGIES[c.topo.seed % TOPOLOGIES.length];
  const topoTree = c.topo.mutations.reduce(apply, structuredClone(t.tree));
  writeFileSync(join(caseDir, 'topo.yaml'), damage(stringify(topoTree), c.topo.text));
  const pol = POLICIES[c.pol.seed % POLICIES.length];
  const at = c.pol.at % (pol.length + 1);
  writeFileSync(join(caseDir, 'pol.yaml'), damage(pol.slice(0, at) + c.pol.s + pol.slice(at), c.pol.text));
  for (const f of SPECIAL.filter((x) => !x.includes('/') && x !== 'topo.yaml' && x !== 'pol.yaml')) {
    try {
      symlinkSync(join(dir, f), join(caseDir, f));
    } catch {
      /* already there */
    }
  }

  const s = SCENARIOS[c.seed % SCENARIOS.length];
  const tree = c.mutations.reduce(apply, structuredClone(s.tree));
  let text: string;
  try {
    text = stringify(tree, { aliasDuplicateObjects: false, lineWidth: 0 });
  } catch {
    text = s.text;
  }
  const file = join(caseDir, 'scenario.yaml');
  writeFileSync(file, damage(text, c.text));

  const started = performance.now();
  let outcome: 'ok' | 'input';
  try {
    validateFile(file, { quick: c.quick });
    outcome = 'ok';
  } catch (e) {
    if (!(e instanceof MeshbenchError) || e.code !== 'E_INPUT') throw new Error(`not E_INPUT: ${(e as Error)?.stack ?? e}`);
    if (!e.details.some((d) => /^[^\n]+:\d+: /.test(d))) throw new Error(`E_INPUT without a file:line detail: ${e.message} ${JSON.stringify(e.details)}`);
    const all = [e.message, ...e.details].join('\n');
    if (/SECRET/.test(all)) throw new Error(`a secret was quoted back: ${all}`);
    // eslint-disable-next-line no-control-regex
    if (e.details.some((d) => /[\u0000-\u001f\u007f]/.test(d))) throw new Error(`raw control characters in: ${JSON.stringify(e.details)}`);
    outcome = 'input';
  }
  const ms = performance.now() - started;
  if (ms > CASE_LIMIT_MS) throw new Error(`case took ${Math.round(ms)} ms (limit ${CASE_LIMIT_MS}), outcome ${outcome}`);
  let rss = process.memoryUsage.rss();
  // Over the bound: collect first (V8 lets garbage pile up while there is room), then judge.
  if (rss > RSS_LIMIT) {
    gc();
    rss = process.memoryUsage.rss();
  }
  if (rss > RSS_LIMIT) throw new Error(`rss ${Math.round(rss / 2 ** 20)} MiB after the case (limit ${RSS_LIMIT / 2 ** 20} MiB)`);
  counts[outcome]++;
}
const counts = { ok: 0, input: 0 };

test(`scenario loader: ${RUNS} hostile inputs end in exit 0 or 2 with file:line, within bounds`, (t) => {
  const start = performance.now();
  t.log(`fast-check seed ${SEED} (rerun a failure with the seed and path fast-check prints)`);
  const r = fc.check(
    fc.property(fileCase, (c) => {
      runCase(c);
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
  if (r.failed) {
    const cut = (s: string) => (s.length > 3000 ? `${s.slice(0, 3000)}…` : s);
    t.fail(
      `property failed after ${r.numRuns} case(s) (seed ${r.seed}, path ${r.counterexamplePath}):\n${cut(String((r.errorInstance as Error)?.message ?? r.errorInstance))}\ncounterexample: ${cut(fc.stringify(r.counterexample))}`,
    );
    return;
  }
  const elapsed = (performance.now() - start) / 1000;
  const total = counts.ok + counts.input;
  t.log(`${total} cases in ${elapsed.toFixed(1)} s: ${counts.ok} valid, ${counts.input} refused with file:line (seed ${SEED})`);
  t.true(total >= 2000, `only ${total} cases ran`);
  // The property is meaningful only if both outcomes occur.
  t.true(counts.ok > 0 && counts.input > 0, JSON.stringify(counts));
});

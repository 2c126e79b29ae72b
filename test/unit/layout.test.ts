// The house rules of harness/ (docs/development.md): no import cycle, no dataplane family importing
// a sibling family, thin commands, and a written reason at the top of any file over 500 lines.
import test from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { PROJECT_ROOT } from '../../harness/util/tools.js';

const ROOT = join(PROJECT_ROOT, 'harness');
const FAMILIES = ['baseline', 'sidecar', 'ambient', 'ebpf'];

function sources(dir = ROOT): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Relative imports of each file (type-only included), resolved to files. */
function importGraph(files: string[]): Map<string, string[]> {
  const set = new Set(files);
  const g = new Map<string, string[]>();
  for (const f of files) {
    const src = readFileSync(f, 'utf8');
    const deps = [...src.matchAll(/^\s*(?:import|export)[^'"]*?from\s+'(\.[^']+)'|^\s*import\s+'(\.[^']+)'/gm)].map((m) =>
      resolve(dirname(f), (m[1] ?? m[2])!.replace(/\.js$/, '.ts')),
    );
    g.set(
      f,
      deps.filter((d) => set.has(d)),
    );
  }
  return g;
}

function cycles(g: Map<string, string[]>): string[][] {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (f: string) => {
    state.set(f, 1);
    stack.push(f);
    for (const d of g.get(f) ?? []) {
      if (state.get(d) === 1) out.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.get(d)) visit(d);
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of g.keys()) if (!state.get(f)) visit(f);
  return out;
}

const family = (f: string) => relative(ROOT, f).match(/^dataplanes\/([^/]+)\//)?.[1];
const rel = (f: string) => relative(ROOT, f);

test('harness/ has no import cycle', (t) => {
  t.deepEqual(
    cycles(importGraph(sources())).map((c) => c.map(rel).join(' → ')),
    [],
  );
});

test('the cycle check finds a cycle (it can fail)', (t) => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
  ]);
  t.deepEqual(cycles(g), [['a', 'b', 'c', 'a']]);
});

test('no dataplane family imports a sibling family', (t) => {
  const bad: string[] = [];
  for (const [f, deps] of importGraph(sources())) {
    const a = family(f);
    for (const d of deps) {
      const b = family(d);
      if (a && b && FAMILIES.includes(a) && FAMILIES.includes(b) && a !== b) bad.push(`${rel(f)} → ${rel(d)}`);
    }
  }
  t.deepEqual(bad, []);
  t.true(
    FAMILIES.every((x) => sources().some((f) => family(f) === x)),
    'every family folder exists',
  );
});

test('cli/ stays thin: under 600 lines in all', (t) => {
  const lines = sources(join(ROOT, 'cli')).reduce((n, f) => n + readFileSync(f, 'utf8').split('\n').length, 0);
  t.log(`cli/: ${lines} lines`);
  t.true(lines < 600, `cli/ has ${lines} lines`);
});

test('a file over 500 lines says why at its top', (t) => {
  const long = sources().filter((f) => readFileSync(f, 'utf8').split('\n').length > 500);
  t.log(`over 500 lines: ${long.map(rel).join(', ')}`);
  t.deepEqual(long.filter((f) => !/over 500 lines/i.test(readFileSync(f, 'utf8').split('\n').slice(0, 30).join('\n'))).map(rel), []);
});

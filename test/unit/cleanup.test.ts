// `down`'s input is checked before anything is touched: a prefix that is not the lab's own
// pattern is bad input (exit 2), and no user string reaches a RegExp unescaped.
import test from 'ava';
import { checkPrefix, down, sweep } from '../../harness/topology/cleanup.js';
import { deleteNetns } from '../../harness/topology/netns.js';
import { escapeRegExp } from '../../harness/util/host.js';
import { cli } from '../helpers.js';

const NOT_PREFIXES = ['zzrel', '.*', 'mb', 'mb.*', 'mbab1', 'mbab123', 'MBAB12', 'mbab1-', 'mb[a-z]{4}', '', 'mbab12\n', '../mbab12'];

test('checkPrefix accepts lab prefixes only', (t) => {
  t.notThrows(() => checkPrefix('mbk3f9'));
  for (const p of NOT_PREFIXES) t.throws(() => checkPrefix(p), { message: /is not a meshbench run prefix/ }, JSON.stringify(p));
});

test('sweep and down refuse a foreign prefix with E_INPUT before touching the host', async (t) => {
  for (const p of NOT_PREFIXES) {
    const e1 = await t.throwsAsync(sweep(p));
    t.is((e1 as { code?: string }).code, 'E_INPUT', p);
    const e2 = await t.throwsAsync(down({ prefix: p }));
    t.is((e2 as { code?: string }).code, 'E_INPUT', p);
  }
});

test('meshbench down --prefix <not a lab prefix>: exit 2 with the reason', async (t) => {
  for (const p of ['zzrel', '.*']) {
    const r = await cli(['down', '--prefix', p]);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, /is not a meshbench run prefix/);
    t.regex(r.stderr, /"mb" and 4 characters of 0-9 a-z/);
  }
});

test('escapeRegExp: the pattern matches the string itself and nothing wider', (t) => {
  for (const s of ['.*', 'a-b', '(x)|y', '[a-z]+', '^$', 'a\\b', 'a/b?{1}']) {
    const re = new RegExp(`^${escapeRegExp(s)}$`);
    t.true(re.test(s), s);
    t.false(re.test(s + 'x'), s);
  }
  t.false(new RegExp(`^${escapeRegExp('.*')}-`).test('zzrel-victim'));
});

test('deleteNetns refuses names without the lab mark', async (t) => {
  await t.throwsAsync(deleteNetns(['mbab12-n1', 'zzrel-victim']), { message: /without the lab prefix: zzrel-victim/ });
});

// runDoctor on the real host (root): the core kernel probes succeed here, the optional ones are
// reported, and the scratch namespace is gone afterwards.
import { exec } from '../../harness/util/exec.js';
import { CHECK, formatDoctor, runDoctor, type Check } from '../../harness/probes/host.js';
import { cleanAround, rootTest } from '../helpers.js';

cleanAround();

const byName = (checks: Check[], name: string) => checks.find((c) => c.name === name);

async function scratchLeft(): Promise<string[]> {
  const r = await exec('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith('mbdoc'));
}

rootTest('doctor probes netns, veth and iptables REDIRECT for real, and they work here', async (t) => {
  const checks = await runDoctor();
  t.log(formatDoctor(checks));
  for (const name of [CHECK.root, CHECK.netns, CHECK.veth, CHECK.redirect]) {
    const c = byName(checks, name);
    t.truthy(c, `${name} is checked`);
    t.is(c!.status, 'ok', `${name}: ${c!.detail}`);
  }
  t.false(
    checks.some((c) => c.required && c.status === 'missing'),
    'no required check is missing on this host',
  );
  t.regex(byName(checks, CHECK.iptablesBackend)!.detail, /^(nf_tables|legacy)\b/);
});

rootTest('the WireGuard module check is present, and without a module it says wireguard-go takes over', async (t) => {
  const checks = await runDoctor();
  const wg = byName(checks, CHECK.wireguard);
  t.truthy(wg);
  t.false(wg!.required);
  t.true(wg!.status === 'ok' || wg!.status === 'warn', `status ${wg!.status}: ${wg!.detail}`);
  if (wg!.status === 'warn') {
    t.true(wg!.detail.startsWith('no WireGuard kernel module: the lab will use wireguard-go'), wg!.detail);
    t.truthy(wg!.fix);
  } else t.log('this kernel has the WireGuard module');
});

rootTest('every check is well-formed, and every non-ok check but a skipped one says what to do', async (t) => {
  const checks = await runDoctor();
  const names = checks.map((c) => c.name);
  t.is(new Set(names).size, names.length, 'check names are unique');
  for (const c of checks) {
    t.true(['ok', 'missing', 'warn', 'skipped'].includes(c.status), c.name);
    t.true(c.detail.length > 0, `${c.name} has a detail`);
    if (c.status === 'missing' || (c.status === 'warn' && !c.required)) t.truthy(c.fix, `${c.name} (${c.status}) has a fix`);
  }
});

rootTest('no scratch namespace is left behind', async (t) => {
  const t0 = performance.now();
  await runDoctor();
  t.log(`doctor took ${Math.round(performance.now() - t0)} ms`);
  // Checked here, not in an after hook: cleanAround's sweep would hide a leak.
  t.deepEqual(await scratchLeft(), []);
});

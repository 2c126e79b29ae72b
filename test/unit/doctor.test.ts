// formatDoctor on hand-made checks: marks, alignment, fixes under non-ok lines, the summary line;
// the capabilities come from the registry's declared needs, so fake entries change the table.
import test from 'ava';
import { CHECK, capabilities, declaredChecks, formatDoctor, scratchName, summarize, type Check, type DataplaneNeeds } from '../../harness/probes/host.js';
import { allDataplanes, dataplaneNames } from '../../harness/dataplanes/registry.js';
import { needChecks } from '../../harness/dataplanes/needs.js';
import { LAB_OBJECT_RE } from '../../harness/util/host.js';

const ALL = allDataplanes();
/** The registered dataplanes that declare a need decided by this check, in registry order. */
const needing = (check: string) => ALL.filter((d) => d.needs.flatMap(needChecks).includes(check)).map((d) => d.name);

const c = (group: string, name: string, status: Check['status'], required: boolean, detail: string, fix?: string): Check => ({
  group,
  name,
  status,
  required,
  detail,
  ...(fix ? { fix } : {}),
});

/** Every check the capabilities look at, all ok, plus the required ones. */
function healthy(): Check[] {
  return [
    c('privileges', CHECK.root, 'ok', true, 'running as root (uid 0)'),
    c('host', CHECK.node, 'ok', true, 'v20.20.2'),
    c('kernel', CHECK.netns, 'ok', true, 'scratch namespace created'),
    c('kernel', CHECK.veth, 'ok', true, 'veth pair created'),
    c('kernel', CHECK.redirect, 'ok', true, 'accepted'),
    c('kernel', CHECK.tproxy, 'ok', false, 'accepted'),
    c('kernel', CHECK.wireguard, 'ok', false, 'kernel WireGuard'),
    c('kernel', CHECK.netem, 'ok', false, 'accepted'),
    c('kernel', CHECK.esp, 'ok', false, 'accepted'),
    c('kernel', CHECK.cgroup2, 'ok', false, '/sys/fs/cgroup'),
    c('ebpf', CHECK.bpffs, 'ok', false, 'mounted at /sys/fs/bpf'),
    c('ebpf', CHECK.schedCls, 'ok', false, 'program type loads'),
    c('ebpf', CHECK.cgroupSockAddr, 'ok', false, 'program type loads'),
    c('tools', 'ip', 'ok', true, 'iproute2-6.1.0'),
    c('tools', 'tc', 'ok', false, 'iproute2-6.1.0'),
    c('tools', 'fortio', 'ok', true, '1.68.2'),
    c('tools', CHECK.haproxy, 'ok', false, '2.6.12'),
    c('tools', CHECK.haproxyFeatures, 'ok', false, '+NS +TPROXY'),
    c('tools', 'clang', 'ok', false, '14'),
    c('tools', 'llc', 'ok', false, '14'),
    c('tools', 'libbpf headers', 'ok', false, 'present'),
    c('tools', 'bpftool', 'ok', false, 'v7.1.0'),
    c('tools', 'wireguard-go', 'ok', false, 'v0.0.20220316'),
    c('tools', 'wg', 'ok', false, 'v1.0.20210914'),
    // Whatever else a registered dataplane declares (setpriv, mb-flowd, built BPF objects …).
    ...[...new Set(ALL.flatMap((d) => d.needs.flatMap(needChecks)))].map((n) => c('tools', n, 'ok', false, 'present')),
  ].filter((x, i, all) => all.findIndex((y) => y.name === x.name) === i);
}

const set = (checks: Check[], name: string, patch: Partial<Check>) => checks.map((x) => (x.name === name ? { ...x, ...patch } : x));

test('each status gets its mark, and lines are grouped in first-seen order', (t) => {
  const out = formatDoctor([
    c('privileges', 'root', 'ok', true, 'running as root'),
    c('kernel', 'netem', 'warn', false, 'no netem qdisc', 'modprobe sch_netem'),
    c('tools', 'fortio', 'missing', true, 'not found', 'run scripts/setup.sh'),
    c('kernel', 'veth', 'skipped', true, 'needs root'),
  ]);
  const lines = out.split('\n');
  t.deepEqual(
    lines.filter((l) => !l.startsWith(' ') && l !== ''),
    ['privileges', 'kernel', 'tools', lines[lines.length - 1]],
  );
  t.truthy(lines.find((l) => /^ {2}✓ root\b/.test(l)));
  t.truthy(lines.find((l) => /^ {2}! netem\b/.test(l)));
  t.truthy(lines.find((l) => /^ {2}✗ fortio\b.*not found \(required\)$/.test(l)));
  t.truthy(lines.find((l) => /^ {2}- veth\b.*needs root$/.test(l)));
  // veth (kernel) is listed with its group, before tools, though it came last.
  t.true(lines.findIndex((l) => l.includes('veth')) < lines.indexOf('tools'));
});

test('details start in one column whatever the name length', (t) => {
  const out = formatDoctor([c('g', 'a', 'ok', false, 'DETAIL-A'), c('g', 'a much longer name', 'ok', false, 'DETAIL-B')]);
  const cols = out
    .split('\n')
    .filter((l) => l.includes('DETAIL'))
    .map((l) => l.indexOf('DETAIL'));
  t.is(cols.length, 2);
  t.is(cols[0], cols[1]);
});

test('the fix is shown, indented, under every non-ok line and never under an ok one', (t) => {
  const out = formatDoctor([
    c('ebpf', 'bpffs', 'warn', false, 'bpffs is not mounted', 'mount -t bpf bpf /sys/fs/bpf'),
    c('ebpf', 'btf', 'ok', false, 'present', 'SHOULD-NOT-SHOW'),
    c('tools', 'taskset', 'missing', true, 'not found', 'apt-get install util-linux'),
    c('kernel', 'netns', 'skipped', true, 'needs root', 'run as root'),
  ]);
  const lines = out.split('\n');
  const under = (name: string) => lines[lines.findIndex((l) => new RegExp(`^ {2}. ${name}\\b`).test(l)) + 1];
  t.regex(under('bpffs'), /^ {6,}fix: mount -t bpf bpf \/sys\/fs\/bpf$/);
  t.regex(under('taskset'), /^ {6,}fix: apt-get install util-linux$/);
  t.regex(under('netns'), /^ {6,}fix: run as root$/);
  t.false(out.includes('SHOULD-NOT-SHOW'));
  // The fix starts in the detail column.
  const detailCol = lines.find((l) => l.includes('bpffs is not mounted'))!.indexOf('bpffs is not mounted');
  t.is(under('bpffs').indexOf('fix:'), detailCol);
});

test('multi-line details and fixes stay on one line each', (t) => {
  const out = formatDoctor([c('g', 'x', 'warn', false, 'first\nsecond', 'do this\nthen that')]);
  t.is(out.split('\n').filter(Boolean).length, 4); // group, check, fix, summary
  t.true(out.includes('first; second'));
  t.true(out.includes('fix: do this; then that'));
});

test('summary counts missing required checks by name, and then the lab runs nothing', (t) => {
  const checks = set(set(healthy(), CHECK.root, { status: 'missing', detail: 'uid 1000' }), 'fortio', { status: 'missing', detail: 'not found' });
  checks.push(c('kernel', 'extra', 'warn', false, 'something'));
  const last = formatDoctor(checks).split('\n').at(-1)!;
  t.regex(last, /^2 required checks missing \(root, fortio\), 1 warning\b/);
  t.regex(last, /can run nothing/);
});

test('a missing optional check is not counted as required', (t) => {
  const checks = [...healthy(), c('tools', 'tcpdump', 'missing', false, 'not found', 'apt-get install tcpdump')];
  t.regex(summarize(checks), /^0 required checks missing, 0 warnings · can run: /);
});

test('summary: all healthy means every registered dataplane can run', (t) => {
  const s = summarize(healthy());
  t.is(s, `0 required checks missing, 0 warnings · can run: ${dataplaneNames().join(', ')}, WireGuard (kernel), fault injection, IPsec`);
});

test('summary names what blocks each family (this host: no bpffs, netem, ESP, WireGuard module)', (t) => {
  let checks = healthy();
  checks = set(checks, CHECK.bpffs, { status: 'warn', detail: 'not mounted' });
  checks = set(checks, CHECK.netem, { status: 'warn' });
  checks = set(checks, CHECK.esp, { status: 'warn' });
  checks = set(checks, CHECK.wireguard, { status: 'warn' });
  const s = summarize(checks);
  t.regex(s, /^0 required checks missing, 4 warnings · /);
  t.regex(s, /can run: baseline, istio-sidecar, linkerd-sidecar, ambient, ambient-waypoint, WireGuard \(wireguard-go\) · /);
  t.regex(s, /not yet: ebpf \(bpffs\); ebpf-l7 \(bpffs\); fault injection \(netem\); IPsec \(ipsec esp\)$/);
});

test('a warning on a required check (another fortio version) still lets the lab run', (t) => {
  const s = summarize(set(healthy(), 'fortio', { status: 'warn', detail: '1.60.0' }));
  t.regex(s, /^0 required checks missing, 1 warning · can run: baseline,/);
});

test('no haproxy: the proxy dataplanes cannot run, baseline and ebpf still can', (t) => {
  const s = summarize(set(healthy(), CHECK.haproxy, { status: 'warn', detail: 'not found' }));
  const blocked = needing(CHECK.haproxy);
  t.true(blocked.length > 0);
  t.true(
    s.includes(
      `can run: ${dataplaneNames()
        .filter((n) => !blocked.includes(n))
        .join(', ')}, WireGuard (kernel), fault injection, IPsec · `,
    ),
  );
  t.true(s.endsWith(`not yet: ${blocked.map((n) => `${n} (haproxy)`).join('; ')}`));
});

test('no WireGuard module and no wireguard-go: WireGuard is listed as blocked', (t) => {
  const s = summarize(set(set(healthy(), CHECK.wireguard, { status: 'warn' }), 'wireguard-go', { status: 'missing', required: false }));
  // The eBPF family declares wireguard-go (its fallback where the kernel has no module), as run's pre-flight checks.
  t.true(
    s.endsWith(
      `not yet: ${needing('wireguard-go')
        .map((n) => `${n} (wireguard-go)`)
        .join('; ')}; WireGuard (wireguard module, wireguard-go)`,
    ),
  );
});

test('skipped probes are reported as not probed, not as missing', (t) => {
  const s = summarize(set(healthy(), CHECK.netem, { status: 'skipped', detail: 'needs root' }));
  t.regex(s, /, 1 skipped · /);
  t.regex(s, /not probed: fault injection$/);
});

test('without root the summary says to run doctor as root', (t) => {
  const checks = set(set(healthy(), CHECK.root, { status: 'missing' }), CHECK.veth, { status: 'skipped' });
  t.regex(summarize(checks), /run doctor as root/);
});

test('the scratch namespace carries the lab prefix, so `meshbench down` removes it', (t) => {
  for (let i = 0; i < 50; i++) {
    const n = scratchName();
    t.regex(n, /^mbdoc[0-9a-z]-scratch$/);
    t.regex(n, LAB_OBJECT_RE);
    t.true(n.length <= 15);
  }
});

test('capabilities list every registered dataplane, by the checks of its declared needs', (t) => {
  const caps = capabilities();
  t.deepEqual(
    caps.slice(0, ALL.length).map((x) => x.label),
    dataplaneNames(),
  );
  t.deepEqual(caps.find((x) => x.label === 'ambient')!.needs, [...new Set(ALL.find((d) => d.name === 'ambient')!.needs.flatMap(needChecks))]);
});

test("doctor's table changes when a dataplane's declared needs change", async (t) => {
  const ebpf = ALL.find((d) => d.name === 'ebpf')!;
  const checks = set(healthy(), CHECK.tproxy, { status: 'warn', detail: 'TPROXY refused' });
  t.regex(summarize(checks, [ebpf]), /can run: ebpf, /);
  // The same dataplane with one more declared need: blocked by it, named in the table.
  const withTproxy: DataplaneNeeds = { name: 'ebpf', needs: [...ebpf.needs, { host: CHECK.tproxy }] };
  t.regex(summarize(checks, [withTproxy]), /not yet: ebpf \(iptables TPROXY\)/);

  // A new entry with a tool and a built file nobody has: doctor grows a line for each, and says what blocks it.
  const fake: DataplaneNeeds = { name: 'fake-dp', needs: [{ tool: 'mb-no-such-tool' }, { file: 'bpf/build/no-such.o', fix: 'make -C bpf' }, { tool: 'ip' }] };
  const extra = await declaredChecks([...ALL, fake]);
  const tool = extra.find((x) => x.name === 'mb-no-such-tool')!;
  t.is(tool.status, 'missing');
  t.regex(tool.detail, /needed by fake-dp/);
  t.is(extra.find((x) => x.name === 'bpf/build/no-such.o')?.fix, 'make -C bpf');
  t.falsy(
    extra.find((x) => x.name === 'ip'),
    'tools doctor always checks are not repeated',
  );
  t.is((await declaredChecks(ALL)).filter((x) => x.name.includes('no-such')).length, 0);
  const s = summarize([...healthy(), ...extra], [...ALL, fake]);
  t.true(s.endsWith('not yet: fake-dp (mb-no-such-tool, bpf/build/no-such.o)'));
  t.true(s.includes(`can run: ${dataplaneNames().join(', ')}, `));
});

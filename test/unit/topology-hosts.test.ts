// The topology on several machines (topology/netns.ts, cleanup.ts; docs/hosts.md step 4), rootless:
// on one host clusterUp sends exactly the commands it always did; with the hosts backend each
// machine gets only its node's namespaces, its lab interface moved in and renamed P-ul after its
// original name and MTU are recorded there, and nothing runs here; a management interface is
// refused before anything is built. The sweep script for another machine runs through a real
// local `sh` with stand-in ip/bpftool: it kills only what it should, gives the interface back
// before the namespaces go, removes only the prefix's files, and takes the prefix as an argument.
// Serial: the place registry and localPlace.exec are process-wide.
import test from 'ava';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// STATE_DIR is read when util/host.ts loads: point it at a temporary directory first.
const stateDir = mkdtempSync(join(tmpdir(), 'mb-topo-hosts-'));
process.env.MESHBENCH_STATE_DIR = stateDir;
const { localPlace, registerPlace, resetPlaces } = await import('../../harness/place/index.js');
type PlaceExecOptions = import('../../harness/place/index.js').PlaceExecOptions;
const { buildCluster } = await import('../../harness/topology/graph.js');
const { loadScenario } = await import('../../harness/scenario/load.js');
const { clusterUp, podUp, configJobs, rootLines, LAB_IF_CHECK_SCRIPT, labInterfaceProblem, parseLabIfCheck, underlayRecordPath } = await import(
  '../../harness/topology/netns.js'
);
const { SWEEP_SCRIPT, detachCgroupPrograms, parseSweepOutput, sweepPlace, sweepScriptArgs } = await import('../../harness/topology/cleanup.js');
const { pidStartTime } = await import('../../harness/util/host.js');
import { NullPlace } from '../fake-place.js';

const realExec = localPlace.exec;
test.after.always(() => {
  localPlace.exec = realExec;
  resetPlaces();
  rmSync(stateDir, { recursive: true, force: true });
});

type Call = [string, string[], PlaceExecOptions?];

/** Record what this host is asked to run instead of running it. */
function recordLocal(): Call[] {
  const calls: Call[] = [];
  localPlace.exec = async (cmd, args, opts) => {
    calls.push([cmd, args, opts]);
    return { code: 0, stdout: '', stderr: '' };
  };
  return calls;
}

/** A machine that answers the lab-interface check with `check` and records everything else. */
class FakeMachine extends NullPlace {
  readonly root = '/opt/meshbench';
  calls: unknown[][] = [];
  constructor(
    readonly name: string,
    private readonly check: string,
    private readonly answer: string = '',
    private readonly stateFile?: string,
  ) {
    super();
  }
  async exec(cmd: string, args: string[], opts: PlaceExecOptions = {}) {
    if (cmd === 'sh' && args[1] === LAB_IF_CHECK_SCRIPT) {
      this.calls.push(['check', args.slice(3)]);
      return { code: 0, stdout: this.check, stderr: '' };
    }
    this.calls.push(['exec', cmd, cmd === 'sh' && args[0] === '-c' ? ['-c', '<script>', ...args.slice(2)] : args, opts.input ?? '']);
    return { code: 0, stdout: this.answer, stderr: '' };
  }
  async readFile(path: string) {
    this.calls.push(['readFile', path]);
    return this.stateFile;
  }
  async writeFile(path: string, text: string) {
    this.calls.push(['writeFile', path, text]);
  }
  async mkdir(path: string) {
    this.calls.push(['mkdir', path]);
  }
}

const P = 'mbab12';
const quick = () => loadScenario('scenarios/quick.yaml');
const ETH1 = [
  'link 3: eth1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc pfifo_fast state UP mode DEFAULT group default qlen 1000\\    link/ether 52:54:00:18:01:01 brd ff:ff:ff:ff:ff:ff',
  'default default via 10.0.2.2 dev eth0 proto dhcp',
  'ssh 198.18.250.1 40022 198.18.250.11 22',
  'sshroute 198.18.250.1 dev eth0 src 198.18.250.11 uid 0',
].join('\n');

test.serial('one host: clusterUp and podUp send this host exactly the commands they sent before the hosts backend', async (t) => {
  resetPlaces();
  const calls = recordLocal();
  try {
    const c = buildCluster(quick(), P);
    await clusterUp(c);
    // Captured from clusterUp before this change (git show HEAD~:harness/topology/netns.ts), for quick.yaml.
    const nsBatch = (ns: string, lines: string[]) => [
      `nsenter --net=/run/netns/${ns} ip -batch - <<'EOF' || { echo "meshbench: configuring ${ns} failed" >&2; exit 1; }`,
      ...lines,
      'EOF',
    ];
    const pod = (ns: string, ip: string, gw: string) =>
      nsBatch(ns, ['link set lo up', `addr add ${ip}/32 dev ${P}-eth0`, `link set ${P}-eth0 up`, `route add 198.18.0.0/15 via ${gw} dev ${P}-eth0 onlink`]);
    const node = (i: number, peer: number) => [
      ...nsBatch(`${P}-n${i}`, [
        'link set lo up',
        `addr add 198.18.0.${i}/24 dev ${P}-ul`,
        `link set ${P}-ul up`,
        `addr add 198.19.${i}.1/32 dev ${P}-p0`,
        `link set ${P}-p0 up`,
        `route add 198.19.${i}.2/32 dev ${P}-p0 scope link`,
        `route add 198.19.${peer}.0/24 via 198.18.0.${peer} dev ${P}-ul`,
      ]),
      `nsenter --net=/run/netns/${P}-n${i} sysctl -q -w net.ipv4.ip_forward=1`,
    ];
    const sh = (...parts: string[][]) => ['sh', ['-s'], { input: `${['set -e', ...parts.flat()].join('\n')}\n` }];
    t.deepEqual(calls, [
      ['ip', ['-batch', '-'], { input: `${['fab', 'n1', 'n2', 'n1p0', 'n2p0'].map((x) => `netns add ${P}-${x}`).join('\n')}\n`, allowFail: false }],
      [
        'ip',
        ['-batch', '-'],
        {
          input: `${[
            `link add ${P}-u1 netns ${P}-fab mtu 1500 type veth peer name ${P}-ul netns ${P}-n1 mtu 1500`,
            `link add ${P}-p0 netns ${P}-n1 type veth peer name ${P}-eth0 netns ${P}-n1p0`,
            `link add ${P}-u2 netns ${P}-fab mtu 1500 type veth peer name ${P}-ul netns ${P}-n2 mtu 1500`,
            `link add ${P}-p0 netns ${P}-n2 type veth peer name ${P}-eth0 netns ${P}-n2p0`,
          ].join('\n')}\n`,
          allowFail: false,
        },
      ],
      sh(
        nsBatch(`${P}-fab`, [
          'link set lo up',
          `link add ${P}-br type bridge`,
          `link set ${P}-br up`,
          `link set ${P}-u1 master ${P}-br`,
          `link set ${P}-u1 up`,
          `link set ${P}-u2 master ${P}-br`,
          `link set ${P}-u2 up`,
        ]),
        pod(`${P}-n2p0`, '198.19.2.2', '198.19.2.1'),
      ),
      sh(node(1, 2)),
      sh(pod(`${P}-n1p0`, '198.19.1.2', '198.19.1.1')),
      sh(node(2, 1)),
    ] as unknown as Call[]);
    calls.length = 0;
    await podUp(c, c.pods[1]);
    t.deepEqual(
      calls.map(([cmd, args]) => `${cmd} ${args.join(' ')}`),
      ['ip -batch -', `ip -n ${P}-n2 -batch -`, `ip -n ${P}-n2p0 -batch -`],
    );
  } finally {
    localPlace.exec = realExec;
  }
});

test.serial('hosts: each machine gets its node, its lab interface recorded, then moved in and renamed P-ul; this host nothing', async (t) => {
  resetPlaces();
  const m1 = new FakeMachine('node1', ETH1);
  const m2 = new FakeMachine('node2', ETH1.replace('mtu 1400', 'mtu 9000').replace('UP,LOWER_UP', 'LOWER_UP'));
  registerPlace(1, m1);
  registerPlace(2, m2);
  const here = recordLocal();
  try {
    const c = buildCluster(quick(), P, { labInterfaces: { node1: 'eth1', node2: 'ens5' } });
    await clusterUp(c);
    t.deepEqual(here, [], 'nothing runs on this host: no fabric namespace, no bridge');
    t.deepEqual(m1.calls.slice(0, 5), [
      ['check', ['eth1']],
      ['mkdir', join(stateDir, P)],
      ['writeFile', underlayRecordPath(P), '{"node":"node1","name":"eth1","mtu":1400,"up":true}\n'],
      ['exec', 'ip', ['-batch', '-'], `netns add ${P}-n1\nnetns add ${P}-n1p0\n`],
      ['exec', 'ip', ['-batch', '-'], `link set dev eth1 netns ${P}-n1\nlink add ${P}-p0 netns ${P}-n1 type veth peer name ${P}-eth0 netns ${P}-n1p0\n`],
    ]);
    t.is(underlayRecordPath(P), join(stateDir, P, 'underlay.json'));
    const scripts = m1.calls.slice(5).map((x) => x[3] as string);
    t.is(m1.calls.length, 7, 'two config shells: the node and its pod');
    t.true(
      scripts[0].includes(
        [
          'link set dev eth1 name mbab12-ul',
          'link set dev mbab12-ul mtu 1500',
          'link set lo up',
          'addr add 198.18.0.1/24 dev mbab12-ul',
          'link set mbab12-ul up',
        ].join('\n'),
      ),
      scripts[0],
    );
    t.regex(scripts[0], /route add 198\.19\.2\.0\/24 via 198\.18\.0\.2 dev mbab12-ul\n/);
    t.notRegex(scripts.join('\n'), /n2|fab|-br\b|-u\d/, "node 2's namespaces and the fabric are not on node 1's machine");
    t.deepEqual(m2.calls[0], ['check', ['ens5']]);
    t.deepEqual(m2.calls[2], ['writeFile', underlayRecordPath(P), '{"node":"node2","name":"ens5","mtu":9000,"up":false}\n']);
    t.deepEqual(m2.calls[4], [
      'exec',
      'ip',
      ['-batch', '-'],
      `link set dev ens5 netns ${P}-n2\nlink add ${P}-p0 netns ${P}-n2 type veth peer name ${P}-eth0 netns ${P}-n2p0\n`,
    ]);

    // podUp (a waypoint) goes to its node's machine too, root-namespace batch included.
    here.length = 0;
    const before = m2.calls.length;
    await podUp(c, c.pods[1]);
    t.deepEqual(here, []);
    t.deepEqual(
      m2.calls.slice(before).map((x) => `${x[1]} ${(x[2] as string[]).join(' ')}`),
      ['ip -batch -', `ip -n ${P}-n2 -batch -`, `ip -n ${P}-n2p0 -batch -`],
    );
  } finally {
    localPlace.exec = realExec;
    resetPlaces();
  }
});

test.serial('hosts: a management interface, a missing one or a node without one is refused before anything is built', async (t) => {
  resetPlaces();
  const eth0 = [
    'link 2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc pfifo_fast state UP',
    'addr inet 198.18.250.11/24',
    'ssh 198.18.250.1 40022 198.18.250.11 22',
    'sshroute 198.18.250.1 dev eth0 src 198.18.250.11 uid 0',
  ].join('\n');
  const m1 = new FakeMachine('node1', eth0);
  const m2 = new FakeMachine('node2', 'missing\nhave eth0\nhave lo');
  registerPlace(1, m1);
  registerPlace(2, m2);
  const here = recordLocal();
  try {
    const c = buildCluster(quick(), P, { labInterfaces: { node1: 'eth0', node2: 'eth1' } });
    const e = await t.throwsAsync(clusterUp(c));
    t.is((e as { code?: string }).code, 'E_RUN');
    t.regex(
      e!.message,
      /host node1: refusing to move eth0 into the lab: it carries the SSH connection meshbench uses \(198\.18\.250\.11\); name a dedicated interface/,
    );
    t.regex(e!.message, /host node2: the lab interface eth1 does not exist there \(it has eth0, lo\)/);
    t.regex(e!.message, /labInterface in the inventory/);
    t.deepEqual(m1.calls, [['check', ['eth0']]], 'only asked: nothing recorded, made or moved');
    t.deepEqual(m2.calls, [['check', ['eth1']]]);
    t.deepEqual(here, []);

    const e2 = await t.throwsAsync(clusterUp(buildCluster(quick(), P, { labInterfaces: { node1: 'eth0' } })));
    t.regex(e2!.message, /node node2 \(host node2\) has no lab interface/);
    resetPlaces();
    registerPlace(2, m2);
    const e3 = await t.throwsAsync(clusterUp(buildCluster(quick(), P)));
    t.regex(e3!.message, /nodes on other machines need a lab interface each/);
  } finally {
    localPlace.exec = realExec;
    resetPlaces();
  }
});

test('labInterfaceProblem: addresses outside the lab range, the default route and the SSH session each refuse', (t) => {
  const ck = (lines: string[]) => parseLabIfCheck(['link 3: eth1: <BROADCAST,UP> mtu 1500 qdisc x', ...lines].join('\n'));
  t.is(labInterfaceProblem('h', 'eth1', ck([])), undefined);
  t.is(labInterfaceProblem('h', 'eth1', ck(['addr inet 198.18.0.1/24', 'addr inet6 fd00::1/64'])), undefined, 'a lab address from an earlier run');
  t.regex(
    labInterfaceProblem('h', 'eth1', ck(['addr inet 192.168.1.5/24'])) ?? '',
    /^host h: refusing to move eth1 into the lab: it has the address 192\.168\.1\.5\/24 \(outside/,
  );
  t.regex(labInterfaceProblem('h', 'eth1', ck(['default default via 1.2.3.4 dev eth1 proto static'])) ?? '', /the default route leaves through it/);
  t.regex(labInterfaceProblem('h', 'eth1', ck(['default default proto static', 'default nexthop via fe80::1 dev eth1 weight 1'])) ?? '', /default route/);
  t.regex(labInterfaceProblem('h', 'eth1', ck(['sshroute 10.1.1.1 via 198.18.0.9 dev eth1 src 198.18.0.1'])) ?? '', /SSH connection/);
  t.regex(labInterfaceProblem('h', 'eth1', ck(['addr inet 198.18.251.11/24']), ['198.18.251.11']) ?? '', /SSH connection meshbench uses \(198\.18\.251\.11\)/);
  t.is(labInterfaceProblem('h', 'eth1', ck(['default default via 1.2.3.4 dev eth0', 'sshroute 1.2.3.9 dev eth0'])), undefined);
  const p = parseLabIfCheck(ETH1);
  t.deepEqual(
    { mtu: p.mtu, up: p.up, sshServer: p.sshServer, sshDev: p.sshDev, defaultDevs: p.defaultDevs },
    {
      mtu: 1400,
      up: true,
      sshServer: '198.18.250.11',
      sshDev: 'eth0',
      defaultDevs: ['eth0'],
    },
  );
  t.false(parseLabIfCheck('link 3: eth1: <BROADCAST,MULTICAST,LOWER_UP> mtu 1500').up, 'LOWER_UP is not UP');
});

test('the lab-interface check script, run by a real sh: lo exists with its MTU; a missing name lists what there is', (t) => {
  const run = (dev: string) => spawnSync('sh', ['-c', LAB_IF_CHECK_SCRIPT, 'sh', dev], { encoding: 'utf8' });
  const lo = parseLabIfCheck(run('lo').stdout);
  t.true(lo.exists);
  t.is(lo.mtu, Number(readFileSync('/sys/class/net/lo/mtu', 'utf8')));
  const none = parseLabIfCheck(run('mbnope0').stdout);
  t.false(none.exists);
  t.deepEqual(none.have.sort(), readdirSync('/sys/class/net').sort());
  t.regex(labInterfaceProblem('here', 'mbnope0', none) ?? '', /^host here: the lab interface mbnope0 does not exist there \(it has .*\blo\b/);
});

test('rootLines/configJobs: one host keeps the fabric; hosts mode has no fabric veth and renames the moved interface first', (t) => {
  const c = buildCluster(quick(), P, { labInterfaces: { node1: 'eth1', node2: 'eth1' } });
  const one = rootLines({ ...c, labInterfaces: undefined }, c.nodes, true);
  t.is(one.netns[0], `netns add ${P}-fab`);
  t.true(one.links.some((l) => l.startsWith(`link add ${P}-u1 netns ${P}-fab`)));
  const hosts = rootLines(c, [c.nodes[1]], false);
  t.deepEqual(hosts.netns, [`netns add ${P}-n2`, `netns add ${P}-n2p0`]);
  t.false(hosts.links.some((l) => l.includes('-fab') || l.includes('-u2')));
  const jobs = configJobs(c, [c.nodes[1]], false);
  t.deepEqual(
    jobs.map((j) => j.ns),
    [`${P}-n2`, `${P}-n2p0`],
  );
  t.deepEqual(jobs[0].lines.slice(0, 3), [`link set dev eth1 name ${P}-ul`, `link set dev ${P}-ul mtu 1500`, 'link set lo up']);
});

/** Stand-in ip/bpftool/umount: log every call; `ip` keeps "devices" as files under $DEVS (root) and $DEVS/<ns>/. */
function stubTools(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const ip = `#!/bin/sh
echo "ip $*" >> "$LOG"
case "$*" in
  "netns list") printf '%s\\n' 'mbab12-n1 (id: 0)' 'mbab12-n1p0 (id: 1)' mbab123-n1 mbzz99-n1 mbab12-fleetx; exit 0 ;;
  "-force -batch -") sed 's/^/batch: /' >> "$LOG"; exit 0 ;;
esac
if [ "$1" = -n ]; then ns=$2; shift 2; else ns=; fi
if [ "$1 $2 $3" = "link set dev" ] && [ "$5" = netns ]; then
  [ -e "$DEVS/$ns/$4" ] || exit 1
  mv "$DEVS/$ns/$4" "$DEVS/$4"; exit 0
fi
if [ "$1 $2 $3" = "link show dev" ]; then [ -e "$DEVS/$4" ]; exit; fi
if [ "$1 $2 $3 $5" = "link set dev name" ]; then mv "$DEVS/$4" "$DEVS/$6"; exit; fi
exit 0
`;
  const bpftool = `#!/bin/sh
echo "bpftool $*" >> "$LOG"
case "$*" in
  "-j cgroup show "*/mbab12/app) echo '[{"id":41,"attach_type":"cgroup_inet4_connect","attach_flags":"multi","name":"sock4"},{"id":42,"attach_type":"cgroup_inet4_getpeername","attach_flags":"multi","name":"peer4"}]' ;;
  "-j cgroup show "*) echo '[]' ;;
esac
exit 0
`;
  for (const [name, text] of [
    ['ip', ip],
    ['bpftool', bpftool],
    ['umount', '#!/bin/sh\necho "umount $*" >> "$LOG"\n'],
  ]) {
    writeFileSync(join(bin, name), text);
    chmodSync(join(bin, name), 0o755);
  }
  return bin;
}

test.serial(
  'the sweep script (real sh, stand-in ip/bpftool): kills only its own, gives the interface back, then deletes, removes only its files',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mb-sweep-script-'));
    const children: ChildProcess[] = [];
    const sleeper = () => {
      const c = spawn('sleep', ['60'], { stdio: 'ignore' });
      children.push(c);
      return c.pid!;
    };
    try {
      const bin = stubTools(dir);
      const S = join(dir, 'state');
      const W = join(dir, 'wg');
      const CG = join(dir, 'cgroup');
      const DEVS = join(dir, 'devs');
      const LOG = join(dir, 'log');
      for (const d of [S, join(S, P), join(S, 'mbab13'), W, join(CG, P, 'app'), join(CG, 'mbab123'), join(DEVS, `${P}-n1`), join(DEVS, `${P}-n1p0`)])
        mkdirSync(d, { recursive: true });
      // The interface is still in node 1's namespace; a pod namespace has a device of the same name (never touched).
      writeFileSync(join(DEVS, `${P}-n1`, `${P}-ul`), '');
      writeFileSync(join(DEVS, `${P}-n1p0`, `${P}-ul`), '');
      writeFileSync(join(S, P, 'underlay.json'), '{"node":"node1","name":"eth9","mtu":1400,"up":true}\n');
      for (const f of [`${P}.json`, `${P}.json.tmp`, `${P}.json.4242.tmp`, `${P}/admin.sock`, 'mbab123.json', 'mbab13/x']) writeFileSync(join(S, f), '');
      for (const f of [`${P}-wg1`, 'mbab123-wg1', 'mbzz99-wg0']) writeFileSync(join(W, f), '');
      const inCgroup = sleeper();
      const otherCgroup = sleeper();
      const recorded = sleeper();
      const reused = sleeper();
      writeFileSync(join(CG, P, 'cgroup.procs'), '');
      writeFileSync(join(CG, P, 'app', 'cgroup.procs'), `${inCgroup}\n`);
      writeFileSync(join(CG, 'mbab123', 'cgroup.procs'), `${otherCgroup}\n`);
      const args = sweepScriptArgs(P, {
        stateDir: S,
        wgDir: W,
        root: dir,
        cgroupRoot: CG,
        pids: [
          { pid: recorded, startTime: pidStartTime(recorded) },
          { pid: reused, startTime: (pidStartTime(reused) ?? 0) + 1 }, // another process now has this pid
          { pid: 1, startTime: pidStartTime(1) },
          { pid: 77, startTime: undefined },
        ],
      });
      t.deepEqual(args.slice(3), [
        P,
        S,
        W,
        dir,
        'all',
        CG,
        String(recorded),
        String(pidStartTime(recorded)),
        String(reused),
        String((pidStartTime(reused) ?? 0) + 1),
      ]);
      const r = spawnSync('sh', args, { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, LOG, DEVS } });
      t.is(r.status, 0, r.stderr);
      const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
      t.false(alive(inCgroup), 'in a lab cgroup: killed');
      t.false(alive(recorded), 'recorded with its start time: killed');
      t.true(alive(reused), 'recorded, but another start time: left alone');
      t.true(alive(otherCgroup), "another prefix's cgroup: left alone");

      const { report, problem } = parseSweepOutput(r.stdout);
      t.is(problem, undefined);
      t.deepEqual(report, { processes: 2, namespaces: 3, cgroups: 1, bpfPrograms: 2, tmpDirs: 0, interfaces: 1 });
      const log = readFileSync(LOG, 'utf8').split('\n');
      const steps = log.filter((l) => /^ip (-n|link set)|^batch:|^bpftool cgroup detach/.test(l)).map((l) => l.replace(/netns \d+$/, 'netns <shell>'));
      t.deepEqual(steps, [
        `ip -n ${P}-n1 link set dev ${P}-ul netns <shell>`,
        `ip -n ${P}-n1 link set dev eth9 netns <shell>`,
        `ip link set dev ${P}-ul down`,
        `ip link set dev ${P}-ul name eth9`,
        'ip link set dev eth9 mtu 1400',
        'ip link set dev eth9 up',
        `batch: netns del ${P}-n1`,
        `batch: netns del ${P}-n1p0`,
        `batch: netns del ${P}-fleetx`,
        `bpftool cgroup detach ${join(CG, P, 'app')} cgroup_inet4_connect id 41`,
        `bpftool cgroup detach ${join(CG, P, 'app')} cgroup_inet4_getpeername id 42`,
      ]);
      t.true(existsSync(join(DEVS, 'eth9')), 'given back under its own name');
      t.true(existsSync(join(DEVS, `${P}-n1p0`, `${P}-ul`)), 'pod namespaces are not searched');
      t.deepEqual(readdirSync(S).sort(), ['mbab123.json', 'mbab13']);
      t.deepEqual(readdirSync(W).sort(), ['mbab123-wg1', 'mbzz99-wg0']);

      // Repeated (once the killed processes are reaped and out of their cgroup): nothing to give back, nothing killed.
      await Promise.all(
        children.filter((c) => [inCgroup, recorded].includes(c.pid!)).map((c) => (c.exitCode !== null || c.signalCode ? undefined : once(c, 'exit'))),
      );
      writeFileSync(join(CG, P, 'app', 'cgroup.procs'), '');
      const again = spawnSync('sh', args, { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, LOG, DEVS } });
      t.is(parseSweepOutput(again.stdout).report.interfaces, 0);
      t.is(parseSweepOutput(again.stdout).report.processes, 0);
    } finally {
      for (const c of children) c.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test.serial('the sweep script takes the prefix as an argument: its text is the same for every prefix, and an injected one does nothing', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-sweep-inject-'));
  try {
    const o = { stateDir: dir, wgDir: dir, root: dir, cgroupRoot: dir };
    t.deepEqual(sweepScriptArgs('mbab12', o).slice(0, 3), ['-c', SWEEP_SCRIPT, 'sh']);
    t.is(sweepScriptArgs('mbzz99', o)[1], SWEEP_SCRIPT);
    t.false(SWEEP_SCRIPT.includes('mbab12'));
    const pwned = join(dir, 'pwned');
    for (const evil of [`mbab12; touch ${pwned}`, `$(touch ${pwned})`, `mbab12\`touch ${pwned}\``, 'mb*', '*']) {
      const r = spawnSync('sh', sweepScriptArgs(evil, o), { encoding: 'utf8' });
      t.is(r.status, 2, evil);
      t.regex(r.stderr, /not a lab prefix/);
      t.false(existsSync(pwned), evil);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('sweepPlace on another machine: prefix checked first, its state file then one script, the output as a report', async (t) => {
  const st = JSON.stringify({
    prefix: P,
    pids: [
      { pid: 4321, startTime: 99, name: 'srv' },
      { pid: 4322, name: 'gone' },
    ],
  });
  const m = new FakeMachine('node2', '', `K 4321\nK 4321\nK 555\nN ${P}-n2\nN ${P}-n2p0\nD 41\nM /run/x\nC /sys/fs/cgroup/${P}\nI ok eth1\n`, st);
  for (const bad of ['zzrel', '.*', 'mbab12; reboot']) {
    const e = await t.throwsAsync(sweepPlace(bad, m));
    t.is((e as { code?: string }).code, 'E_INPUT', bad);
  }
  t.deepEqual(m.calls, [], 'a bad prefix reaches nothing');
  const r = await sweepPlace(P, m);
  t.deepEqual(r, { processes: 2, namespaces: 2, cgroups: 1, bpfPrograms: 1, tmpDirs: 0, interfaces: 1 });
  t.deepEqual(m.calls, [
    ['readFile', join(stateDir, `${P}.json`)],
    ['exec', 'sh', ['-c', '<script>', 'sh', P, stateDir, '/var/run/wireguard', '/opt/meshbench', 'all', '', '4321', '99'], ''],
  ]);
  const lost = new FakeMachine('node1', '', 'I missing eth1\n');
  const e = await t.throwsAsync(sweepPlace(P, lost));
  t.regex(e!.message, /^host node1: the lab interface was not given back \(missing eth1\)/);

  const d = new FakeMachine('node1', '', 'D 7\nD 8\n');
  t.is(await detachCgroupPrograms(`/sys/fs/cgroup/${P}`, d), 2);
  t.deepEqual(d.calls, [['exec', 'sh', ['-c', '<script>', 'sh', `/sys/fs/cgroup/${P}`, '/opt/meshbench'], '']]);
});

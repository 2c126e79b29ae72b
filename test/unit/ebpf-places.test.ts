// The eBPF dataplane on several machines (docs/hosts.md, ebpf/), rootless: the per-machine kernel
// cost script run for real against a stand-in bpftool, map batches and bpffs unmounts going to the
// place named, WireGuard figures per node and per machine, the auth agent's command on another
// machine's checkout, teardown once per machine, and ebpf-l7 refused on the hosts backend before
// anything is touched. Serial: the place registry is process-wide.
import test from 'ava';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshbenchError } from '../../harness/errors.js';
import { authAgentCommand, bpffsDir, kernelCostScript, parseKernelCost, unmountBpffs, wgSummary } from '../../harness/dataplanes/ebpf/family.js';
import { ebpf } from '../../harness/dataplanes/ebpf/ebpf.js';
import { ebpfL7 } from '../../harness/dataplanes/ebpf/l7.js';
import { applyUpdates, enc, update } from '../../harness/dataplanes/ebpf/maps.js';
import { joinVersions, transferTxBytes, wgImplementation, wireguardTxBytes } from '../../harness/dataplanes/ebpf/wireguard.js';
import { localPlace, registerPlace, resetPlaces, type Place, type PlaceProcess, type PlaceStartSpec } from '../../harness/place/index.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { exec } from '../../harness/util/exec.js';
import { PROJECT_ROOT } from '../../harness/util/host.js';
import type { DataplaneContext } from '../../harness/dataplanes/types.js';
import { NullPlace } from '../fake-place.js';

const tmp = mkdtempSync(join(tmpdir(), 'mb-ebpf-places-'));
test.after.always(() => {
  resetPlaces();
  rmSync(tmp, { recursive: true, force: true });
});

/** A machine that answers every command with `answer(cmd, args)` and records what it was asked. */
class FakePlace extends NullPlace {
  readonly root = '/srv/meshbench';
  calls: { cmd: string; args: string[]; netns?: string; input?: string }[] = [];
  files = new Map<string, { text: string; mode?: number }>();
  constructor(
    readonly name: string,
    private answer: (cmd: string, args: string[]) => string = () => '',
  ) {
    super();
  }
  async exec(cmd: string, args: string[], opts: { netns?: string; input?: string } = {}) {
    this.calls.push({ cmd, args, netns: opts.netns, input: opts.input });
    return { code: 0, stdout: this.answer(cmd, args), stderr: '' };
  }
  async start(spec: PlaceStartSpec): Promise<PlaceProcess> {
    this.calls.push({ cmd: spec.cmd, args: spec.args, netns: spec.netns });
    return { pid: 999_999_999, exited: new Promise(() => {}) };
  }
  async readFile(p: string) {
    return this.files.get(p)?.text;
  }
  async readFiles(p: string[]) {
    return p.map((x) => this.files.get(x)?.text);
  }
  async writeFile(path: string, text: string, opts: { mode?: number } = {}) {
    this.files.set(path, { text, mode: opts.mode });
  }
  async exists() {
    return true;
  }
  async findTool(name: string) {
    return `${this.root}/.tools/bin/${name}`;
  }
}

const quick = () => buildCluster(loadScenario('scenarios/quick.yaml'), 'mbt4eb');

test.serial('kernelCostScript: one shell finds every pinned map and program (a stand-in bpftool answers); missing pins count 0', async (t) => {
  // Pins: two map directories (one empty, one missing), maps whose "size" is the file's text;
  // programs whose file holds "run_time_ns run_cnt"; one program missing.
  const bin = join(tmp, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'bpftool'),
    [
      '#!/bin/sh',
      '# -j map|prog show pinned FILE',
      '[ -e "$5" ] || { echo \'{"error":"bpf obj get: No such file"}\'; exit 255; }',
      'case "$2" in',
      '  map) echo "{\\"id\\":1,\\"bytes_memlock\\":$(cat "$5")}" ;;',
      '  prog) set -- $(cat "$5"); echo "{\\"id\\":2,\\"run_time_ns\\":$1,\\"run_cnt\\":$2}" ;;',
      'esac',
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'bpftool'), 0o755);
  const lbMaps = join(tmp, 'pins', 'lb', 'maps');
  const nodeMaps = join(tmp, 'pins', 'node 1', 'maps'); // a space: paths are quoted
  mkdirSync(lbMaps, { recursive: true });
  mkdirSync(nodeMaps, { recursive: true });
  mkdirSync(join(tmp, 'pins', 'empty', 'maps'), { recursive: true });
  writeFileSync(join(lbMaps, 'mb_lb4_services'), '4096');
  writeFileSync(join(lbMaps, 'mb_lb4_backends'), '8192');
  writeFileSync(join(nodeMaps, 'mb_ipcache'), '100');
  writeFileSync(join(tmp, 'pins', 'lb', 'sock4_connect'), '1000 10');
  writeFileSync(join(tmp, 'pins', 'node 1', 'from_container'), '500 5');
  const script = kernelCostScript(
    [lbMaps, nodeMaps, join(tmp, 'pins', 'empty', 'maps'), join(tmp, 'pins', 'gone', 'maps')],
    [join(tmp, 'pins', 'lb', 'sock4_connect'), join(tmp, 'pins', 'node 1', 'from_container'), join(tmp, 'pins', 'node 1', 'from_network')],
  );
  const r = await exec('sh', ['-s'], { input: script, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
  t.is(r.stdout.split('\n').filter((l) => l.startsWith('M ')).length, 3, r.stdout);
  t.is(r.stdout.split('\n').filter((l) => l.startsWith('P ')).length, 3, r.stdout);
  t.deepEqual(parseKernelCost(r.stdout), { bpfMapBytes: 4096 + 8192 + 100, bpfRunTimeNs: 1500, bpfRunCount: 15 });
});

test.serial('parseKernelCost: bpftool errors, empty answers and stray lines count 0', (t) => {
  const out = ['M {"bytes_memlock":10}', 'M {"error":"No such file"}', 'M ', 'P null', 'P {"run_time_ns":7,"run_cnt":1}', 'noise', ''].join('\n');
  t.deepEqual(parseKernelCost(out), { bpfMapBytes: 10, bpfRunTimeNs: 7, bpfRunCount: 1 });
});

test.serial('applyUpdates: the batch file is kept here and written on the place, and bpftool runs there', async (t) => {
  const vm = new FakePlace('vm2');
  const file = join(tmp, 'case', 'bpf-node2.batch');
  const u = [update('/run/meshbench/mbt4eb/bpffs/node2/maps/mb_lxc', enc.endpointKey('198.19.2.2'), enc.u32Key(7))];
  await applyUpdates(u, file, vm);
  const text = 'map update pinned /run/meshbench/mbt4eb/bpffs/node2/maps/mb_lxc key hex c6 13 02 02 value hex 07 00 00 00\n';
  t.is(readFileSync(file, 'utf8'), text, "the controller's copy");
  t.is(vm.files.get(file)?.text, text, 'the machine that applies it');
  t.deepEqual(
    vm.calls.map((c) => [c.cmd, ...c.args]),
    [['bpftool', 'batch', 'file', file]],
  );
});

test.serial('unmountBpffs: unmounts on the place named', async (t) => {
  const vm = new FakePlace('vm1');
  await unmountBpffs('mbt4eb', vm);
  t.deepEqual(
    vm.calls.map((c) => [c.cmd, ...c.args]),
    [['umount', '-l', bpffsDir('mbt4eb')]],
  );
});

test.serial('wireguardTxBytes: each node asked on its own machine, sent bytes summed', async (t) => {
  const c = quick();
  const vms = [1, 2].map((i) => new FakePlace(`vm${i}`, () => `peerkey${i}=\t${i}00\t${i}000\n`));
  vms.forEach((p, i) => registerPlace(i + 1, p));
  try {
    t.is(await wireguardTxBytes(c), 1000 + 2000);
    vms.forEach((p, i) => t.deepEqual(p.calls, [{ cmd: 'wg', args: ['show', `mbt4eb-wg${i + 1}`, 'transfer'], netns: c.nodes[i].netns, input: undefined }]));
  } finally {
    resetPlaces();
  }
});

test.serial('WireGuard record: one kind when all nodes agree, each node named when machines differ; versions per machine only when they differ', (t) => {
  t.is(wgImplementation({ node1: 'kernel', node2: 'kernel' }), 'kernel');
  t.is(wgImplementation({ node1: 'wireguard-go' }), 'wireguard-go');
  t.is(wgImplementation({ node1: 'kernel', node2: 'wireguard-go' }), 'mixed');
  t.is(wgSummary({ implementation: 'kernel', perNode: { node1: 'kernel' } }).path, 'kernel');
  t.is(wgSummary({ implementation: 'wireguard-go', perNode: { node1: 'wireguard-go' } }).path, 'wireguard-go, in user space');
  const mixed = wgSummary({ implementation: 'mixed', perNode: { node1: 'kernel', node2: 'wireguard-go' } });
  t.is(mixed.path, 'mixed: node1 kernel, node2 wireguard-go');
  t.regex(mixed.mechanism, /node1 kernel, node2 wireguard-go/);
  t.is(
    joinVersions([
      { place: 'local', version: '6.1.0' },
      { place: 'x', version: '6.1.0' },
    ]),
    '6.1.0',
  );
  t.is(
    joinVersions([
      { place: 'node1', version: '6.1.0' },
      { place: 'node2', version: '6.12.0' },
    ]),
    'node1: 6.1.0; node2: 6.12.0',
  );
  t.is(transferTxBytes('a\t1\t2\nb\t3\t4\n'), 6);
});

test.serial("authAgentCommand: this host runs this node with this file; another machine its node with its checkout's file", (t) => {
  const js = join(PROJECT_ROOT, 'dist', 'harness', 'dataplanes', 'ebpf', 'family.js');
  t.deepEqual(authAgentCommand('/r/auth/node1.json', localPlace, js), {
    cmd: process.execPath,
    args: [join(PROJECT_ROOT, 'dist/harness/dataplanes/ebpf/auth-agent.js'), '/r/auth/node1.json'],
  });
  const vm = new FakePlace('node2');
  t.deepEqual(authAgentCommand('/r/auth/node2.json', vm, js), {
    cmd: 'node',
    args: ['/srv/meshbench/dist/harness/dataplanes/ebpf/auth-agent.js', '/r/auth/node2.json'],
  });
  const ts = join(PROJECT_ROOT, 'harness', 'dataplanes', 'ebpf', 'family.ts');
  t.deepEqual(authAgentCommand('/c.json', vm, ts).args, ['--import', 'tsx', '/srv/meshbench/harness/dataplanes/ebpf/auth-agent.ts', '/c.json']);
});

test.serial('teardown: each machine detaches its run cgroup programs and unmounts its bpffs', async (t) => {
  const c = quick();
  const vms = [1, 2].map((i) => new FakePlace(`vm${i}`));
  vms.forEach((p, i) => registerPlace(i + 1, p));
  const asked: string[] = [];
  const procs = {
    cgroupBaseOn: async (p: Place) => {
      asked.push(p.name);
      return `/sys/fs/cgroup/mbt4eb`;
    },
  };
  try {
    await ebpf.teardown({ cluster: c, procs } as unknown as DataplaneContext);
    t.deepEqual(asked, ['vm1', 'vm2']);
    for (const vm of vms) {
      t.true(
        vm.calls.some((x) => x.cmd === 'umount' && x.args.join(' ') === `-l ${bpffsDir('mbt4eb')}`),
        `${vm.name}: ${JSON.stringify(vm.calls)}`,
      );
      t.true(
        vm.calls.some((x) => [x.cmd, ...x.args, x.input ?? ''].join(' ').includes('/sys/fs/cgroup/mbt4eb')),
        `${vm.name} looked at its cgroup`,
      );
    }
  } finally {
    resetPlaces();
  }
});

test.serial('ebpf-l7 on the hosts backend: refused with a clear error before any machine is touched', async (t) => {
  const c = quick();
  const vm = new FakePlace('vm2');
  registerPlace(2, vm);
  const caseDir = join(tmp, 'l7case');
  try {
    const e = await t.throwsAsync(
      ebpfL7.deploy({ cluster: c, scenario: loadScenario('scenarios/quick.yaml'), procs: {}, caseDir, log: () => {} } as unknown as DataplaneContext),
    );
    t.true(e instanceof MeshbenchError);
    t.regex(e!.message, /^ebpf-l7 does not run on the hosts backend yet: /);
    t.deepEqual(vm.calls, []);
    t.false(existsSync(caseDir));
  } finally {
    resetPlaces();
  }
});

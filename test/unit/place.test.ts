// The seam every command goes through (harness/place/): which place owns a namespace name (the
// names topology/graph.ts makes), a place registered for node 2 getting exactly node 2's
// commands and processes while everything else stays on this host, and the local place's basics.
// Serial: the registry is process-wide. Rootless, except the ProcessGroup test (it makes a cgroup,
// as a run does).
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// STATE_DIR is read when util/host.ts loads: point it at a temporary directory first.
const stateDir = mkdtempSync(join(tmpdir(), 'mb-place-test-'));
process.env.MESHBENCH_STATE_DIR = stateDir;
const { MeshbenchError } = await import('../../harness/errors.js');
const { localPlace, nodeOfNetns, placeOf, placeOfNode, registerPlace, resetPlaces } = await import('../../harness/place/index.js');
type PlaceProcess = import('../../harness/place/index.js').PlaceProcess;
const { exec, ipBatch, which } = await import('../../harness/util/exec.js');
const { findTool } = await import('../../harness/util/tools.js');
const { isRoot } = await import('../../harness/util/host.js');
const { ProcessGroup } = await import('../../harness/util/procs.js');
const { buildCluster, infraPod, names } = await import('../../harness/topology/graph.js');
const { loadScenario } = await import('../../harness/scenario/load.js');
import { NullPlace } from '../fake-place.js';

test.after.always(() => {
  resetPlaces();
  rmSync(stateDir, { recursive: true, force: true });
});

/** A place that answers everything and records what it was asked. */
class FakePlace extends NullPlace {
  readonly name = 'fake-node2';
  readonly root = '/opt/meshbench';
  calls: unknown[][] = [];
  async exec(cmd: string, args: string[], opts = {}) {
    this.calls.push(['exec', cmd, args, opts]);
    return { code: 0, stdout: 'fake\n', stderr: '' };
  }
  async start(spec: import('../../harness/place/index.js').PlaceStartSpec): Promise<PlaceProcess> {
    this.calls.push(['start', spec.cmd, spec.args, spec.netns]);
    return { pid: 999_999_999, startTime: 7, exited: new Promise(() => {}) };
  }
  files = new Map<string, string>();
  async writeFile(path: string, text: string) {
    this.files.set(path, text);
  }
  async findTool(name: string) {
    this.calls.push(['findTool', name]);
    return `/opt/meshbench/.tools/bin/${name}`;
  }
}

test.serial('placeOf: node, pod and infrastructure pod names carry the node index; fabric and others are local', (t) => {
  resetPlaces();
  const c = buildCluster(loadScenario('scenarios/quick.yaml'), 'mbt3st');
  t.true(c.nodes.length >= 2);
  for (const n of c.nodes) t.is(nodeOfNetns(n.netns), n.index, n.netns);
  for (const p of c.pods) t.is(nodeOfNetns(p.netns), p.nodeIndex, p.netns);
  const w = infraPod(c, c.nodes[1]!, 1, 'waypoint', 'default', 'waypoint');
  t.is(nodeOfNetns(w.netns), 2, w.netns);
  t.is(nodeOfNetns(names.node('mbabcd', 12)), 12);
  t.is(nodeOfNetns(names.pod('mbabcd', 12, 130)), 12);
  for (const other of [c.fabricNetns, 'mbt3st-fleet', 'mbt3st-n0', 'mbt3st-n2x', 'x-n2', 'mbt3stt-n2', 'n2', '', undefined])
    t.is(nodeOfNetns(other), undefined, String(other));
  for (const ns of [c.fabricNetns, c.nodes[1]!.netns, 'unknown', undefined]) t.is(placeOf(ns), localPlace);
});

test.serial('a place registered for node 2 gets exactly the commands of node 2 namespaces and those naming it', async (t) => {
  resetPlaces();
  const fake = new FakePlace();
  registerPlace(2, fake);
  try {
    t.is(placeOfNode(2), fake);
    t.is(placeOfNode(1), localPlace);
    // node 2 and its pods: to the fake (nothing runs here: the namespaces do not exist)
    t.is((await exec('ip', ['-j', 'link'], { netns: 'mbt3st-n2', input: 'x' })).stdout, 'fake\n');
    await exec('iptables-save', [], { netns: 'mbt3st-n2p0', cgroup: '/sys/fs/cgroup/x', allowFail: true, timeoutMs: 5 });
    await exec('true', [], { netns: 'mbt3st-n2w1' });
    // node 1, the fabric, the root namespace: this host, really run
    t.is((await exec('sh', ['-c', 'echo local'])).stdout, 'local\n');
    const n1 = await exec('true', [], { netns: 'mbt3st-n1p0', allowFail: true });
    t.not(n1.stdout, 'fake\n'); // nsenter here fails (no such namespace): it ran locally
    const fab = await exec('true', [], { netns: 'mbt3st-fab', allowFail: true });
    t.not(fab.stdout, 'fake\n');
    // a root-namespace command naming its place
    await ipBatch(['link show'], { place: fake });
    t.is(await which('wg', fake), 'fake');
    t.is(await findTool('haproxy', fake), '/opt/meshbench/.tools/bin/haproxy');
    t.deepEqual(fake.calls, [
      ['exec', 'ip', ['-j', 'link'], { netns: 'mbt3st-n2', input: 'x' }],
      ['exec', 'iptables-save', [], { netns: 'mbt3st-n2p0', cgroup: '/sys/fs/cgroup/x', allowFail: true, timeoutMs: 5 }],
      ['exec', 'true', [], { netns: 'mbt3st-n2w1' }],
      ['exec', 'ip', ['-batch', '-'], { input: 'link show\n', allowFail: false }],
      ['exec', 'sh', ['-c', 'command -v "$1"', 'sh', 'wg'], { allowFail: true }],
      ['findTool', 'haproxy'],
    ]);
    t.is(await findTool('sh'), (await which('sh'))!, 'findTool without a place: this host');
  } finally {
    resetPlaces();
  }
  t.is(placeOf('mbt3st-n2'), localPlace, 'reset: every node back on this host');
});

// ProcessGroup makes its cgroup under the host's cgroup v2 mount: root only.
(isRoot() ? test.serial : test.skip)('ProcessGroup: a process in a node 2 namespace starts on node 2’s place; others here', async (t) => {
  resetPlaces();
  const fake = new FakePlace();
  registerPlace(2, fake);
  const g = new ProcessGroup(`mbp${Math.random().toString(36).slice(2, 5).padEnd(3, '0')}`);
  try {
    const remote = await g.startAsync({ name: 'srv', role: 'app', cmd: 'fortio', args: ['server'], netns: 'mbt3st-n2p1' });
    t.is(remote.pid, 999_999_999);
    t.is(remote.name, 'srv');
    t.is(remote.netns, 'mbt3st-n2p1');
    t.deepEqual(fake.calls, [['start', 'fortio', ['server'], 'mbt3st-n2p1']]);
    // the synchronous start cannot wait for another machine: it refuses, and the place sees nothing
    const e = t.throws(() => g.start({ name: 'srv2', role: 'app', cmd: 'fortio', args: [], netns: 'mbt3st-n2' })) as InstanceType<typeof MeshbenchError>;
    t.is(e.code, 'E_RUN');
    t.regex(e.message, /on fake-node2/);
    t.is(fake.calls.length, 1);
    // root namespace: this host, a real process
    const local = g.start({ name: 'here', role: 'app', cmd: 'sh', args: ['-c', 'exit 3'] });
    t.truthy(local.child);
    t.is(await local.exited, 3);
    t.is(local.exitCode, 3);
    t.is(typeof local.exitedAt, 'number');
    const viaAsync = await g.startAsync({ name: 'here2', role: 'app', cmd: 'true', args: [] });
    t.is(await viaAsync.exited, 0);
    t.is(fake.calls.length, 1);
    const state = JSON.parse(readFileSync(join(stateDir, `${g.prefix}.json`), 'utf8'));
    t.deepEqual(
      state.pids.map((p: { name: string }) => p.name),
      ['here', 'here2'],
      "this host's state file: this host's processes only",
    );
    const there = JSON.parse(fake.files.get(join(stateDir, `${g.prefix}.json`)) ?? '{}');
    t.deepEqual(there.pids, [{ pid: 999_999_999, startTime: 7, name: 'srv' }], "node 2's process: in the state file on node 2's place");
  } finally {
    g.procs.splice(0, g.procs.length, ...g.procs.filter((p) => p.child)); // the fake's process is nobody's to stop
    await g.stopAll();
    await g.close();
    resetPlaces();
  }
});

test.serial('LocalPlace: exec, files (atomic write, mode), dirs, alive/kill, mounts, findTool', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-place-'));
  try {
    t.is(localPlace.name, 'local');
    const r = await localPlace.exec('sh', ['-c', 'cat; echo err >&2; exit 4'], { input: 'in', allowFail: true });
    t.deepEqual(r, { code: 4, stdout: 'in', stderr: 'err\n' });
    const e = await t.throwsAsync(localPlace.exec('sh', ['-c', 'echo nope >&2; exit 2']));
    t.true(e instanceof MeshbenchError);
    t.regex(e!.message, /command failed \(exit 2\): sh -c .*\nnope/);
    t.is((await localPlace.exec('sh', ['-c', 'echo $X'], { env: { X: 'y' } })).stdout, 'y\n');
    t.is((await localPlace.exec('sleep', ['5'], { timeoutMs: 50, allowFail: true })).code, 128);

    const f = join(dir, 'a', 'f.txt');
    await localPlace.mkdir(join(dir, 'a'));
    await localPlace.writeFile(f, 'one');
    await localPlace.writeFile(f, 'two', { mode: 0o600 });
    t.is(await localPlace.readFile(f), 'two');
    t.is(statSync(f).mode & 0o777, 0o600);
    t.deepEqual(await localPlace.readFiles([f, join(dir, 'missing')]), ['two', undefined]);
    t.true(await localPlace.exists(f));
    t.false(await localPlace.exists(join(dir, 'missing')));
    t.deepEqual(await localPlace.list(join(dir, 'a')), ['f.txt'], 'no temporary file left beside it');
    t.deepEqual(await localPlace.list(join(dir, 'missing')), []);

    t.true(await localPlace.alive(process.pid));
    t.false(await localPlace.alive(process.pid, -1), 'another start time: another process');
    t.false(await localPlace.kill(process.pid, { startTime: -1 }), 'not ours: not killed');
    t.true((await localPlace.mounts()).some((m) => m.target === '/'));
    t.is(await localPlace.findTool('sh'), await which('sh'));
    t.is(await localPlace.findTool('no-such-tool-mb'), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

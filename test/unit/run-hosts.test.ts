// The controller side of `run --hosts` without machines: which dataplanes it takes, case files
// pushed to and fetched from a place (place/files.ts), and the run directory it makes on a place
// and removes again (run/hosts.ts). A recording place stands in for the SSH one (its commands are
// tested for real in test/integration/place-remote.test.ts and hosts-run.test.ts).
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshbenchError } from '../../harness/errors.js';
import { localPlace, pullDir, putFile, type ExecResult, type PlaceExecOptions } from '../../harness/place/index.js';
import { checkHostsDataplanes, makeRunDirOn, removeRunDirOn } from '../../harness/run/hosts.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { NullPlace } from '../fake-place.js';

class RecordingPlace extends NullPlace {
  readonly name = 'node2';
  readonly root = '/opt/meshbench';
  calls: string[] = [];
  files = new Map<string, string>();
  constructor(private readonly answer: (cmd: string, args: string[]) => ExecResult = () => ({ code: 0, stdout: '', stderr: '' })) {
    super();
  }
  async exec(cmd: string, args: string[], _o?: PlaceExecOptions) {
    this.calls.push([cmd, ...args].join(' '));
    return this.answer(cmd, args);
  }
  async readFile(p: string) {
    return this.files.get(p);
  }
  async readFiles(ps: string[]) {
    return ps.map((p) => this.files.get(p));
  }
  async writeFile(p: string, text: string, o: { mode?: number } = {}) {
    this.calls.push(`write ${p} ${o.mode?.toString(8) ?? '-'}`);
    this.files.set(p, text);
  }
  async mkdir(p: string) {
    this.calls.push(`mkdir ${p}`);
  }
  async exists(p: string) {
    return this.files.has(p);
  }
}

test('--hosts takes baseline and ebpf; any other dataplane is bad input naming the way out', (t) => {
  const s = loadScenario('scenarios/quick.yaml');
  const e = t.throws(() => checkHostsDataplanes(s), { instanceOf: MeshbenchError });
  t.is(e?.exitCode, 2);
  t.regex(e!.message, /istio-sidecar, linkerd-sidecar, ambient, ambient-waypoint, ebpf-l7 do not run on several machines yet \(only baseline, ebpf\)/);
  t.regex(e!.hint ?? '', /--dataplanes baseline,ebpf/);
  t.notThrows(() => checkHostsDataplanes({ ...s, dataplanes: ['ebpf', 'baseline'] }));
});

test('putFile writes the controller copy and the same path on the place, with the mode; locally only once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-runhosts-'));
  try {
    const p = new RecordingPlace();
    const key = join(dir, 'wireguard', 'node2.key');
    await putFile(p, key, 'secret\n', { mode: 0o600 });
    t.is(readFileSync(key, 'utf8'), 'secret\n');
    t.is(statSync(key).mode & 0o777, 0o600);
    t.deepEqual(p.calls, [`mkdir ${join(dir, 'wireguard')}`, `write ${key} 600`]);
    t.is(p.files.get(key), 'secret\n');
    await putFile(localPlace, join(dir, 'here.txt'), 'x');
    t.is(readFileSync(join(dir, 'here.txt'), 'utf8'), 'x');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pullDir copies every file the place lists under the case directory to the same paths here', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-runhosts-'));
  try {
    const p = new RecordingPlace((cmd) =>
      cmd === 'find' ? { code: 0, stdout: '12 flows/node2.jsonl\0' + '3 app-echo-0.log\0', stderr: '' } : { code: 1, stdout: '', stderr: '' },
    );
    p.files.set(join(dir, 'flows/node2.jsonl'), '{"verdict":1}\n');
    p.files.set(join(dir, 'app-echo-0.log'), 'ok\n');
    t.is(await pullDir(p, dir), 2);
    t.is(readFileSync(join(dir, 'flows/node2.jsonl'), 'utf8'), '{"verdict":1}\n');
    t.is(readFileSync(join(dir, 'app-echo-0.log'), 'utf8'), 'ok\n');
    t.deepEqual(p.calls, [`find ${dir} -type f -printf %s %P\\0`]);
    t.is(await pullDir(localPlace, dir), 0, 'nothing to fetch from this host');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the run directory on a place: the outermost directory mkdir made is what is removed, nothing when it all existed, never '/'", async (t) => {
  const made = new RecordingPlace(() => ({
    code: 0,
    stdout: "mkdir: created directory '/srv/results/quick'\nmkdir: created directory '/srv/results/quick/20261129T0900Z-ab12'\n",
    stderr: '',
  }));
  t.is(await makeRunDirOn(made, '/srv/results/quick/20261129T0900Z-ab12'), '/srv/results/quick');
  t.deepEqual(made.calls, ['mkdir -pv -- /srv/results/quick/20261129T0900Z-ab12']);
  await removeRunDirOn(made, '/srv/results/quick');
  t.is(made.calls[1], 'rm -rf -- /srv/results/quick');
  const existed = new RecordingPlace();
  t.is(await makeRunDirOn(existed, '/srv/results/quick/x'), undefined);
  await removeRunDirOn(existed, undefined);
  await removeRunDirOn(existed, '/');
  t.deepEqual(existed.calls, ['mkdir -pv -- /srv/results/quick/x']);
  t.is(await makeRunDirOn(localPlace, '/nowhere/at/all'), undefined, 'this host: the run makes its own directories');
});

// The guard that keeps a too-large scenario from driving the host into the OOM killer: no lab
// process is started while less than max(1 GiB, 5 % of RAM) is available.
import test from 'ava';
import { MeshbenchError } from '../../harness/errors.js';
import { checkMemory, memoryFloorBytes, readMemInfo } from '../../harness/util/procs.js';

const meminfo = (totalKb: number, availKb: number) =>
  `MemTotal:       ${totalKb} kB\nMemFree:          123456 kB\nMemAvailable:   ${availKb} kB\nBuffers:           1234 kB\n`;

test('meminfo: total and available in bytes; unreadable text gives undefined', (t) => {
  t.deepEqual(readMemInfo(meminfo(24_000_000, 20_000_000)), { totalBytes: 24_000_000 * 1024, availableBytes: 20_000_000 * 1024 });
  t.is(readMemInfo('nothing here'), undefined);
  const live = readMemInfo();
  t.truthy(live, 'this host has /proc/meminfo');
  t.true(live!.availableBytes > 0 && live!.availableBytes <= live!.totalBytes);
});

test('floor: 1 GiB on small hosts, 5 % of RAM on large ones', (t) => {
  t.is(memoryFloorBytes(8 * 2 ** 30), 2 ** 30);
  t.is(memoryFloorBytes(40 * 2 ** 30), 2 * 2 ** 30);
});

test('below the floor, starting a process is refused with a message that says what to change', (t) => {
  const total = 24 * 2 ** 20; // kB
  t.notThrows(() => checkMemory('app-0', 10, meminfo(total, 2 * 2 ** 20)));
  const e = t.throws(() => checkMemory('sidecar-812', 1623, meminfo(total, 300 * 1024)), { instanceOf: MeshbenchError });
  t.is(e?.code, 'E_RUN');
  t.regex(
    e!.message,
    /host memory nearly exhausted: 300 MiB available of 24576 MiB \(meshbench keeps 1229 MiB free\) after starting 1623 process\(es\) in this case; not starting sidecar-812/,
  );
  t.regex(e!.message, /fewer pods/);
});

import test from 'ava';
import { softirqSeconds, smapsRollup, cgroupCpuSeconds, procCpuSeconds } from '../../harness/probes/resources.js';

test('softirq seconds come from the cpu line of /proc/stat (7th value, 10 ms ticks)', (t) => {
  const stat = 'cpu  100 0 50 9000 10 5 250 0 0 0\ncpu0 50 0 25 4500 5 2 125 0 0 0\n';
  t.is(softirqSeconds(stat), 2.5);
  t.is(softirqSeconds('nothing'), 0);
  t.true(softirqSeconds() >= 0);
});

test('RSS and PSS of a live process from smaps_rollup', (t) => {
  const m = smapsRollup(process.pid);
  t.truthy(m);
  t.true(m!.rss > 10 * 1024 * 1024, `rss ${m!.rss}`);
  t.true(m!.pss > 0 && m!.pss <= m!.rss);
  t.is(smapsRollup(2 ** 22 + 12345), undefined);
});

test('CPU seconds of this process grow with work', (t) => {
  const before = procCpuSeconds(process.pid)!;
  const end = Date.now() + 150;
  let x = 0;
  while (Date.now() < end) x += Math.sqrt(x + 1);
  t.true(x > 0);
  t.true(procCpuSeconds(process.pid)! > before);
  t.is(cgroupCpuSeconds(undefined), undefined);
  t.is(cgroupCpuSeconds('/nonexistent'), undefined);
});

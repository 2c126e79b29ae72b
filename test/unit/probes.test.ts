import test from 'ava';
import { readFileSync } from 'node:fs';
import { softirqSeconds, smapsRollup, cgroupCpuSeconds, procCpuSeconds } from '../../harness/probes/resources.js';

test('softirq seconds come from the cpu line of /proc/stat (7th value, 10 ms ticks)', (t) => {
  const stat = 'cpu  100 0 50 9000 10 5 250 0 0 0\ncpu0 50 0 25 4500 5 2 125 0 0 0\n';
  t.is(softirqSeconds(stat), 2.5);
  t.is(softirqSeconds('nothing'), 0);
  // Without an argument it reads this host's /proc/stat: between two readings taken around it.
  const before = softirqSeconds(readFileSync('/proc/stat', 'utf8'));
  const live = softirqSeconds();
  const after = softirqSeconds(readFileSync('/proc/stat', 'utf8'));
  t.true(before > 0 && before <= live && live <= after, `${before} <= ${live} <= ${after}`);
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
  // 150 ms of busy loop: at least 50 ms of CPU (10 ms ticks; slack for a loaded host).
  const spent = procCpuSeconds(process.pid)! - before;
  t.true(spent >= 0.05, `cpu +${spent} s after 150 ms busy (x = ${x})`);
  t.is(cgroupCpuSeconds(undefined), undefined);
  t.is(cgroupCpuSeconds('/nonexistent'), undefined);
});

#!/usr/bin/env node
// The project's test command (npm test). Runs ava twice: unit tests (rootless, files in
// parallel), then integration tests (root, real kernel) one file at a time, because they share
// the host's kernel and each suite sweeps lab objects before and after. Prints the TAP stream
// and ends with one line "N passed, N failed, N skipped" for CI; exits non-zero on any failure.
// Usage: node scripts/test.mjs [test/unit | test/integration | file…]
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const groups = args.length ? args : ['test/unit', 'test/integration'];

function files(p) {
  if (!existsSync(p)) return [];
  if (statSync(p).isFile()) return [p];
  return readdirSync(p, { recursive: true })
    .map((f) => join(p, f))
    .filter((f) => f.endsWith('.test.ts'))
    .sort();
}

function runAva(list, serial) {
  return new Promise((resolve) => {
    const avaArgs = ['ava', '--tap', ...(serial ? ['--concurrency=1', '--serial'] : []), ...list];
    const child = spawn(join('node_modules', '.bin', 'ava'), avaArgs.slice(1), {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    });
    const counts = { passed: 0, failed: 0, skipped: 0 };
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      process.stdout.write(d);
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (/^ok \d+/.test(line)) {
          if (/# (SKIP|TODO)/i.test(line)) counts.skipped++;
          else counts.passed++;
        } else if (/^not ok \d+/.test(line)) {
          if (/# TODO/i.test(line)) counts.skipped++;
          else counts.failed++;
        }
      }
    });
    child.on('close', (code) => resolve({ code: code ?? 1, counts }));
  });
}

const total = { passed: 0, failed: 0, skipped: 0 };
let exit = 0;
for (const g of groups) {
  const list = files(g);
  if (!list.length) continue;
  const serial = g.includes('integration');
  process.stdout.write(`# ${g}: ${list.length} file(s)${serial ? ', one at a time' : ''}\n`);
  const { code, counts } = await runAva(list, serial);
  for (const k of Object.keys(total)) total[k] += counts[k];
  // ava exits non-zero on a failure, and also when it could not run a file (count it as failed).
  if (code !== 0) {
    exit = 1;
    if (counts.failed === 0) total.failed++;
  }
}
if (total.passed + total.failed === 0) exit = 1;
process.stdout.write(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped\n`);
process.exit(exit);

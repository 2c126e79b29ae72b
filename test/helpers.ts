// Shared test helpers. Integration tests need root and the real kernel; without root they are
// skipped with the reason (so a rootless `npm test` still runs every unit test).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { isRoot } from '../harness/util/host.js';
import { sweep } from '../harness/topology/cleanup.js';

export const ROOT = isRoot();

/** A serial test that needs root; skipped, with the reason in its title, otherwise. */
export const rootTest: typeof test.serial = (ROOT ? test.serial : (((title: string, ...rest: unknown[]) => (test.skip as any)(`${title} (skipped: needs root)`, ...rest)) as any));

/** Remove every lab object before and after a suite (Mininet's test runner calls mn -c). */
export function cleanAround(): void {
  if (!ROOT) return;
  test.serial.before(async () => {
    await sweep();
  });
  test.serial.after.always(async () => {
    await sweep();
  });
}

import { spawn } from 'node:child_process';
import { exec } from '../harness/util/exec.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the meshbench CLI from source (no build needed), optionally through a wrapper command. */
export function cli(args: string[], opts: { wrap?: string[]; onStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void; timeoutMs?: number } = {}): Promise<CliResult> {
  const argv = [...(opts.wrap ?? []), process.execPath, '--import', 'tsx', 'harness/cli/main.ts', ...args];
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      opts.onStderr?.(d, child);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** Lab namespaces currently on the host. */
export async function labNetns(): Promise<string[]> {
  const r = await exec('ip', ['netns', 'list'], { allowFail: true });
  return r.stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => /^mb[0-9a-z]{4}-/.test(n));
}

/** A snapshot of the root namespace's network state, to prove the lab left it as found. */
export async function rootNetState(): Promise<string> {
  const parts = await Promise.all([
    exec('ip', ['-br', 'link'], { allowFail: true }),
    exec('ip', ['route', 'show', 'table', 'all'], { allowFail: true }),
    exec('ip', ['rule'], { allowFail: true }),
    exec('sysctl', ['net.ipv4.ip_forward'], { allowFail: true }),
  ]);
  // Link state flags and counters are not ours to freeze; names and routes are.
  return parts.map((p) => p.stdout.replace(/\s+(UP|DOWN|UNKNOWN|LOWERLAYERDOWN)\s+/g, ' ')).join('\n---\n');
}

/** A golden fixture under test/fixtures/capture/, without its comment lines. */
export function golden(name: string): string {
  return readFileSync(`test/fixtures/capture/${name}`, 'utf8')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n');
}

// Small network helpers used by several stages.
import { setTimeout as sleep } from 'node:timers/promises';
import { runError } from '../errors.js';
import { exec } from './exec.js';
import type { LabProcess } from './procs.js';

/** Wait until something listens on every one of `ports` inside `netns`. */
export async function waitListening(netns: string, ports: number | number[], timeoutMs = 15000, proc?: LabProcess): Promise<void> {
  const want = Array.isArray(ports) ? ports : [ports];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc?.exitCode !== undefined)
      throw runError(`process ${proc.name} exited (code ${proc.exitCode}) before listening on ${want.join(', ')}; see ${proc.logFile}`);
    const r = await exec('ss', ['-Hltn'], { netns, allowFail: true });
    const listening = new Set([...r.stdout.matchAll(/:(\d+)\s/g)].map((m) => Number(m[1])));
    if (want.every((p) => listening.has(p))) return;
    await sleep(10);
  }
  throw runError(`nothing listens on port(s) ${want.join(', ')} in ${netns} after ${timeoutMs} ms${proc ? `; see ${proc.logFile}` : ''}`);
}

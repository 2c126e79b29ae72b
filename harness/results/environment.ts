// What the run ran on: kernel (and its facts: package, virtualisation, config), CPU, memory, tool versions, the project's commit.
import { cpus, hostname, totalmem } from 'node:os';
import { kernelFacts } from '../probes/kernel.js';
import type { Place } from '../place/index.js';
import { exec } from '../util/exec.js';
import { readText } from '../util/host.js';
import { PROJECT_ROOT, toolVersion } from '../util/tools.js';
import type { Environment } from './types.js';

/** `toolsPlace`: where the lab's tools run (a node's machine with --hosts); default this host. */
export async function collectEnvironment(pinning: Environment['pinning'], tools: string[], toolsPlace?: Place): Promise<Environment> {
  const versions: Record<string, string> = {};
  for (const t of tools) {
    const v = await toolVersion(t, toolsPlace);
    if (v) versions[t] = v;
  }
  const git = await exec('git', ['-C', PROJECT_ROOT, 'rev-parse', 'HEAD'], { allowFail: true });
  const dirty = await exec('git', ['-C', PROJECT_ROOT, 'status', '--porcelain', '--untracked-files=no'], { allowFail: true });
  const commit = git.code === 0 ? git.stdout.trim() + (dirty.stdout.trim() ? '+dirty' : '') : 'unknown';
  return {
    kernel: (readText('/proc/sys/kernel/osrelease') ?? 'unknown').trim(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryBytes: totalmem(),
    tools: versions,
    commit,
    hostname: hostname(),
    node: process.version,
    pinning,
    kernelFacts: await kernelFacts(),
  };
}

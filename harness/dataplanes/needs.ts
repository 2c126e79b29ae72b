// What a dataplane needs from the host, declared as data next to the dataplane. `doctor` judges
// every need with its probes and builds its table from the registry; `run` checks, before anything
// is built, the needs that are cheap to check (tools, engine build flags, built files).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findTool, installHint } from '../util/tools.js';
import { HAPROXY_FLAG_USE, haproxyBuild } from './engine/haproxy.js';

/** Host features only `doctor` probes (in its scratch namespace, or by reading the host), by check name. */
export const HOST = {
  redirect: 'iptables REDIRECT',
  tproxy: 'iptables TPROXY',
  cgroup2: 'cgroup v2',
  bpffs: 'bpffs',
  schedCls: 'prog sched_cls',
  cgroupSockAddr: 'prog cgroup_sock_addr',
  libbpfHeaders: 'libbpf headers',
} as const;
export type HostFeature = (typeof HOST)[keyof typeof HOST];

export type Need =
  /** A program on PATH (or in .tools/bin). `toBuild`: needed to build the lab's programs, not to run them (doctor only). */
  | { tool: string; toBuild?: boolean }
  /** A kernel or host feature, probed by doctor. */
  | { host: HostFeature }
  /** Build options of the proxy engine (`haproxy -vv` Feature list). */
  | { engine: 'haproxy'; flags: string[] }
  /** A file the set-up builds, relative to the project root. */
  | { file: string; fix: string };

/** The doctor check that decides each need: tool and host needs by name, engine needs by the engine and its features. */
export function needChecks(n: Need): string[] {
  if ('tool' in n) return [n.tool];
  if ('host' in n) return [n.host];
  if ('engine' in n) return [n.engine, `${n.engine} features`];
  return [n.file];
}

/** Every engine build flag the given needs ask for, in first-seen order. */
export const engineFlags = (needs: Need[]): string[] => [...new Set(needs.flatMap((n) => ('engine' in n ? n.flags : [])))];

/** What of `needs` this host lacks that can be told without probing the kernel, each with what to do. */
export async function missingNeeds(needs: Need[], root: string): Promise<string[]> {
  const missing: string[] = [];
  for (const n of needs) {
    if ('tool' in n && !n.toBuild && !(await findTool(n.tool))) missing.push(`${n.tool} not found on PATH (${installHint(n.tool)})`);
    if ('file' in n && !existsSync(join(root, n.file))) missing.push(`${n.file} not built: ${n.fix}`);
  }
  const flags = engineFlags(needs);
  if (flags.length) {
    const build = await haproxyBuild();
    if (!build) missing.push(`haproxy not found on PATH (${installHint('haproxy')})`);
    for (const f of build ? flags.filter((x) => !build.features.includes(x)) : [])
      missing.push(`haproxy is built without ${f} (${HAPROXY_FLAG_USE[f] ?? f}): apt-get install haproxy (Debian's build has +NS +TPROXY)`);
  }
  return [...new Set(missing)];
}

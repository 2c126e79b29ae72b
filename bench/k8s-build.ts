// Build cost of the Kubernetes test tools (scripts/k8s-tools.sh: kube-apiserver, kube-controller-manager,
// kube-scheduler, kubectl, etcd and the CRDs): a cold build (fresh empty GOCACHE and GOMODCACHE), a warm build (same caches,
// binaries removed) and a no-op rerun (stamp matches). Prints wall time, peak memory (the whole
// build's process tree, sampled every 250 ms, and the largest single process per /usr/bin/time)
// and the cache sizes. Everything goes to a temp dir; the real .tools/k8s is left alone.
// Usage: npx tsx bench/k8s-build.ts [--keep]   (~5 min, ~2 GB RAM, ~4 GB disk while it runs)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec, which } from '../harness/util/exec.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (kb: number) => `${(kb / 1024).toFixed(0)} MiB`;

if (!(await which('go'))) {
  console.error('bench/k8s-build.ts: go is not on PATH');
  process.exit(3);
}
const timeBin = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

/** RSS (kB) of `root` and all its descendants, from /proc. */
function treeRssKb(root: number): number {
  const parent = new Map<number, number>();
  const rss = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${e}/status`, 'utf8'));
      rss.set(Number(e), m ? Number(m[1]) : 0);
    } catch {
      /* exited while we looked */
    }
  }
  let total = 0;
  for (const [pid, kb] of rss) {
    for (let p: number | undefined = pid; p && p > 1; p = parent.get(p))
      if (p === root) {
        total += kb;
        break;
      }
  }
  return total;
}

interface Measure {
  wallMs: number;
  treePeakKb: number;
  maxProcKb: number;
  code: number;
  output: string;
}

function measure(env: NodeJS.ProcessEnv): Promise<Measure> {
  return new Promise((done) => {
    const script = ['nice', '-n', '10', 'bash', join(REPO, 'scripts/k8s-tools.sh')];
    const argv = timeBin ? [timeBin, '-v', ...script] : script;
    const t0 = Date.now();
    const child = spawn(argv[0], argv.slice(1), { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let treePeakKb = 0;
    const poll = setInterval(() => {
      if (child.pid) treePeakKb = Math.max(treePeakKb, treeRssKb(child.pid));
    }, 250);
    const onData = (d: string) => {
      output += d;
      for (const l of d.split('\n')) if (/^k8s-tools: .*(done|total|nothing)/.test(l)) console.log(`    ${l}`);
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.on('close', (code) => {
      clearInterval(poll);
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(output);
      done({ wallMs: Date.now() - t0, treePeakKb, maxProcKb: m ? Number(m[1]) : 0, code: code ?? 1, output });
    });
  });
}

async function du(p: string): Promise<string> {
  if (!existsSync(p)) return '0';
  const r = await exec('du', ['-sh', p], { allowFail: true });
  return r.stdout.split('\t')[0];
}

const tmp = mkdtempSync(join(tmpdir(), 'mb-k8s-bench-'));
const env = {
  ...process.env,
  MB_K8S_TOOLS_DIR: join(tmp, 'out'),
  GOCACHE: join(tmp, 'gocache'),
  GOMODCACHE: join(tmp, 'gomodcache'),
};
const rows: [string, Measure][] = [];
try {
  for (const [name, prep] of [
    ['cold (empty Go caches)', () => {}],
    ['warm (caches kept, binaries removed)', () => rmSync(join(tmp, 'out/bin'), { recursive: true, force: true })],
    ['no-op (stamp matches)', () => {}],
  ] as const) {
    prep();
    console.log(`${name} ...`);
    const m = await measure(env);
    if (m.code !== 0) {
      console.error(m.output.slice(-4000));
      console.error(`bench/k8s-build.ts: scripts/k8s-tools.sh exited ${m.code} in the ${name} run`);
      process.exitCode = 1;
      break;
    }
    rows.push([name, m]);
    console.log(`  wall ${s(m.wallMs)}, peak RSS of the build tree ${mib(m.treePeakKb)}, largest single process ${mib(m.maxProcKb)}`);
  }
  console.log(
    `caches: GOCACHE ${await du(env.GOCACHE)}, GOMODCACHE ${await du(env.GOMODCACHE)}; binaries ${await du(join(tmp, 'out/bin'))}; CRDs ${await du(join(tmp, 'out/crds'))}; wrapper src ${await du(join(tmp, 'out/src'))}`,
  );
  console.log('\n| run | wall | peak RSS (tree) | largest process |\n| --- | --- | --- | --- |');
  for (const [name, m] of rows) console.log(`| ${name} | ${s(m.wallMs)} | ${mib(m.treePeakKb)} | ${mib(m.maxProcKb)} |`);
} finally {
  if (keep) console.log(`kept ${tmp}`);
  else {
    // The module cache is read-only by design; make it writable to remove it.
    await exec('chmod', ['-R', 'u+w', tmp], { allowFail: true });
    rmSync(tmp, { recursive: true, force: true });
  }
}

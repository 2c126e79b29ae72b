// Test fixture: a real etcd + kube-apiserver on 127.0.0.1 (issue 18), built from Go modules by
// scripts/k8s-tools.sh into .tools/k8s. By default no kubelet, controller-manager or scheduler:
// objects are stored and validated (schemas, CEL, RBAC), nothing runs. With `cluster`, it all runs
// in a lab network namespace (<prefix>-k8s, 198.18.250.1): the real controller-manager and
// scheduler beside the API server, and the SIMULATED kubelet of test/k8s/sim-kubelet.ts on
// 198.18.250.2 (the API server refuses to proxy to a kubelet on a loopback address). `dir` should be a fresh temp dir: it
// holds the keys, etcd's data, logs and a pids file that the next start in the same dir uses to
// kill leftovers of a crashed run (only processes of our binaries whose command line names `dir`).
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = join(REPO, 'scripts/k8s-tools.sh');
const OUT = process.env.MB_K8S_TOOLS_DIR ?? join(REPO, '.tools/k8s');

export const K8S_TOOLS = { bin: join(OUT, 'bin'), crds: join(OUT, 'crds'), kubectl: join(OUT, 'bin/kubectl') };

/** The versions pinned at the top of scripts/k8s-tools.sh (one source of truth). */
function pinned(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of readFileSync(SCRIPT, 'utf8').matchAll(/^([A-Z0-9_]+_VERSION)=(\S+)$/gm)) out[m[1]] = m[2];
  return out;
}

/** Why the fixture cannot start (binaries or CRDs missing or stale), or undefined. */
export function k8sToolsMissing(): string | undefined {
  for (const b of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl', 'etcd']) {
    try {
      accessSync(join(K8S_TOOLS.bin, b), constants.X_OK);
    } catch {
      return `${join(K8S_TOOLS.bin, b)} not built (bash scripts/k8s-tools.sh builds it)`;
    }
  }
  const v = pinned();
  const stamp = existsSync(join(K8S_TOOLS.bin, 'VERSIONS')) ? readFileSync(join(K8S_TOOLS.bin, 'VERSIONS'), 'utf8') : '';
  if (!stamp.includes(`kubernetes=${v.K8S_VERSION} `) || !stamp.includes(`etcd=${v.ETCD_VERSION} `) || !stamp.includes('kube-scheduler'))
    return `${K8S_TOOLS.bin} was built for other versions than scripts/k8s-tools.sh pins (rerun it)`;
  const crds = existsSync(join(K8S_TOOLS.crds, 'VERSIONS')) ? readFileSync(join(K8S_TOOLS.crds, 'VERSIONS'), 'utf8') : '';
  if (
    !crds.includes(`gateway-api=${v.GATEWAY_API_VERSION}|`) ||
    !crds.includes(`istio-api=${v.ISTIO_API_VERSION}|`) ||
    !crds.includes(`cilium=${v.CILIUM_VERSION}`)
  )
    return `${K8S_TOOLS.crds} missing or fetched for other versions (bash scripts/k8s-tools.sh fetches them)`;
  return undefined;
}

/** Build the binaries and fetch the CRDs when missing (cold ~4 min, warm Go caches ~10 s). */
export async function ensureK8sTools(log: (m: string) => void): Promise<void> {
  const why = k8sToolsMissing();
  if (!why) return;
  log(`k8s tools: ${why}; running scripts/k8s-tools.sh`);
  const code = await new Promise<number>((done) => {
    const child = spawn('nice', ['-n', '10', 'bash', SCRIPT], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    let downloads = 0;
    const onLine = (line: string) => {
      if (/^go: downloading /.test(line)) {
        if (++downloads % 50 === 0) log(`k8s tools: ${downloads} Go modules downloaded`);
      } else if (line.trim()) log(line);
      tail = `${tail}\n${line}`.slice(-4000);
    };
    for (const s of [child.stdout, child.stderr]) {
      let buf = '';
      s.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        lines.forEach(onLine);
      });
    }
    child.on('error', (e) => {
      log(`k8s tools: cannot run bash: ${e.message}`);
      done(127);
    });
    child.on('close', (c) => {
      if (c) log(`k8s tools: scripts/k8s-tools.sh exited ${c}; last output:${tail}`);
      done(c ?? 1);
    });
  });
  if (code !== 0) throw new Error(`scripts/k8s-tools.sh failed (exit ${code}); see the log above`);
  const still = k8sToolsMissing();
  if (still) throw new Error(`after scripts/k8s-tools.sh: ${still}`);
}

export interface TestApiServer {
  kubeconfig: string;
  server: string;
  dir: string;
  pids: number[];
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
  /** With `cluster`: the network namespace everything runs in (clients must run there too). */
  netns?: string;
}

/** A free TCP port on 127.0.0.1 (closed again before use: a small race we accept in tests). */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? done(a.port) : fail(new Error('no port'))));
    });
  });
}

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    const child = spawn(cmd, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.stdout?.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('error', (e) => {
      stderr += e.message;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    // A child that exits without reading its input must not crash the test process (EPIPE).
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input);
  });
}

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** CA, serving cert (127.0.0.1), admin client cert in system:masters, service-account key pair (all P-256). */
async function makePki(pki: string, address: string): Promise<void> {
  mkdirSync(pki, { recursive: true });
  const p = (f: string) => join(pki, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=meshbench-test-ca']);
  const leaf = async (name: string, subj: string, ext: string) => {
    writeFileSync(p(`${name}.ext`), ext);
    await openssl(['req', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', subj]);
    await openssl([
      'x509',
      '-req',
      '-in',
      p(`${name}.csr`),
      '-CA',
      p('ca.crt'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      p(`${name}.crt`),
      '-extfile',
      p(`${name}.ext`),
    ]);
  };
  await leaf(
    'serving',
    '/CN=kube-apiserver',
    `subjectAltName=IP:127.0.0.1,IP:${address},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:198.19.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
  );
  await leaf(
    'kubelet',
    '/CN=simulated-kubelet',
    `subjectAltName=IP:${SIM_KUBELET_IP}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
  );
  await leaf('admin', '/O=system:masters/CN=meshbench-admin', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p('sa.key')]);
  await openssl(['pkey', '-in', p('sa.key'), '-pubout', '-out', p('sa.pub')]);
}

/** Kill leftovers of an earlier start in `dir` (its pids file), only if they still are our binaries running for `dir`. */
async function killStale(dir: string, log: (m: string) => void): Promise<void> {
  const file = join(dir, 'pids');
  if (!existsSync(file)) return;
  for (const s of readFileSync(file, 'utf8').split(/\s+/).filter(Boolean)) {
    const pid = Number(s);
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue; // gone
    }
    if (cmdline.startsWith(K8S_TOOLS.bin) && cmdline.includes(dir)) {
      log(`apiserver fixture: killing stale pid ${pid} (${cmdline.split(' ')[0]})`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* raced with its exit */
      }
      // etcd's data-dir lock is only free once the old one is gone.
      for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(50);
    }
  }
  rmSync(file, { force: true });
}

function httpsGet(url: string, pki: string): Promise<{ status: number; body: string }> {
  return new Promise((done) => {
    const req = request(
      url,
      {
        ca: readFileSync(join(pki, 'ca.crt')),
        cert: readFileSync(join(pki, 'admin.crt')),
        key: readFileSync(join(pki, 'admin.key')),
        timeout: 2000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () => done({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => done({ status: 0, body: e.message }));
    req.end();
  });
}

/** /readyz from inside the fixture's namespace (curl with the admin client certificate). */
async function curlReadyz(inNs: (cmd: string, args: string[]) => [string, string[]], server: string, pki: string) {
  const r = await run(
    ...inNs('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--cacert',
      join(pki, 'ca.crt'),
      '--cert',
      join(pki, 'admin.crt'),
      '--key',
      join(pki, 'admin.key'),
      `${server}/readyz`,
    ]),
  );
  return { status: Number(r.stdout) || 0, body: r.stderr };
}

const logTail = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').slice(-3000) : '(no log)');

/** Every *.yaml under the CRD directory, sorted (kubectl -R would also do, but we log the count). */
function crdFiles(): string[] {
  return readdirSync(K8S_TOOLS.crds, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(K8S_TOOLS.crds, f));
}

export const API_IP = '198.18.250.1';
export const SIM_KUBELET_IP = '198.18.250.2';

export interface ClusterOptions {
  /** The lab prefix (mb + 4): the namespace is <prefix>-k8s, so `meshbench down` removes it. */
  prefix: string;
  /** The topology nodes the simulated kubelet registers. */
  nodes: string[];
  /** How long a Job's load container "runs" in the simulation (s). */
  jobSeconds?: number;
}

/**
 * Start etcd and kube-apiserver; with `crds` (default) apply and wait for every fetched CRD; with
 * `controllers` the real controller-manager and scheduler too (namespaces then finalize when
 * deleted); with `cluster` everything in a lab namespace with the simulated kubelet (root).
 */
export async function startApiServer(
  dir: string,
  o: { crds?: boolean; controllers?: boolean; log?: (m: string) => void; cluster?: ClusterOptions } = {},
): Promise<TestApiServer> {
  const log = o.log ?? (() => {});
  const why = k8sToolsMissing();
  if (why) throw new Error(`apiserver fixture: ${why}`);
  dir = resolve(dir);
  mkdirSync(dir, { recursive: true });
  await killStale(dir, log);
  const pki = join(dir, 'pki');
  const t0 = Date.now();
  const c = o.cluster;
  const netns = c ? `${c.prefix}-k8s` : undefined;
  const address = c ? API_IP : '127.0.0.1';
  await makePki(pki, address);
  if (netns) {
    for (const args of [
      ['netns', 'add', netns],
      ['-n', netns, 'link', 'set', 'lo', 'up'],
      ['-n', netns, 'addr', 'add', `${API_IP}/32`, 'dev', 'lo'],
      ['-n', netns, 'addr', 'add', `${SIM_KUBELET_IP}/32`, 'dev', 'lo'],
    ]) {
      const r = await run('ip', args);
      if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
    }
  }
  /** A command in the fixture's namespace (when it has one). */
  const inNs = (cmd: string, args: string[]): [string, string[]] => (netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, args]);

  const children: ChildProcess[] = [];
  const pids: number[] = [];
  const killAllNow = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  // pdeathsig covers a killed test process; this covers a normal exit that skipped stop().
  process.once('exit', killAllNow);
  const launch = (name: string, args: string[], bin = join(K8S_TOOLS.bin, name)) => {
    const out = openSync(join(dir, `${name}.log`), 'a');
    // setpriv execs the binary (same pid) with a parent-death signal, as harness/vm does for qemu.
    const [cmd, argv] = inNs('setpriv', ['--pdeathsig', 'KILL', '--', bin, ...args]);
    const child = spawn(cmd, argv, { stdio: ['ignore', out, out] });
    children.push(child);
    if (child.pid) pids.push(child.pid);
    writeFileSync(join(dir, 'pids'), `${pids.join('\n')}\n`);
    return child;
  };
  const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      for (const c of [...children].reverse()) {
        if (!alive(c)) continue;
        const exited = new Promise<void>((done) => c.once('exit', () => done()));
        c.kill('SIGTERM');
        const graceful = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
        if (!graceful) {
          c.kill('SIGKILL');
          await exited;
        }
      }
      process.removeListener('exit', killAllNow);
      rmSync(join(dir, 'pids'), { force: true });
      if (netns) await run('ip', ['netns', 'del', netns]);
    })();
    return stopping;
  };

  try {
    // In its own namespace every port is free.
    const [etcdPort, peerPort, apiPort] = netns ? [2379, 2380, 6443] : [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = launch('etcd', [
      '--name=mb',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=mb=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    for (let i = 0; ; i++) {
      if (!alive(etcd)) throw new Error(`etcd exited (${etcd.exitCode ?? etcd.signalCode}):\n${logTail(join(dir, 'etcd.log'))}`);
      const ok = netns
        ? (await run(...inNs('curl', ['-sf', `${etcdUrl}/health`]))).stdout.includes('"health":"true"')
        : await fetch(`${etcdUrl}/health`)
            .then((r) => r.text())
            .then((b) => b.includes('"health":"true"'))
            .catch(() => false);
      if (ok) break;
      if (i > 150) throw new Error(`etcd not healthy after 30 s:\n${logTail(join(dir, 'etcd.log'))}`);
      await sleep(200);
    }

    const api = launch('kube-apiserver', [
      `--etcd-servers=${etcdUrl}`,
      `--bind-address=${address}`,
      `--advertise-address=${address}`,
      '--kubelet-preferred-address-types=InternalIP',
      `--secure-port=${apiPort}`,
      `--cert-dir=${pki}`,
      `--tls-cert-file=${join(pki, 'serving.crt')}`,
      `--tls-private-key-file=${join(pki, 'serving.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      `--service-account-key-file=${join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      '--authorization-mode=RBAC',
      '--endpoint-reconciler-type=none',
      '--service-cluster-ip-range=198.19.0.0/16',
      '--profiling=false',
    ]);
    const server = `https://${address}:${apiPort}`;
    for (let i = 0; ; i++) {
      if (!alive(api)) throw new Error(`kube-apiserver exited (${api.exitCode ?? api.signalCode}):\n${logTail(join(dir, 'kube-apiserver.log'))}`);
      const r = netns ? await curlReadyz(inNs, server, pki) : await httpsGet(`${server}/readyz`, pki);
      if (r.status === 200) break;
      if (i > 300) throw new Error(`kube-apiserver not ready after 60 s (${r.status} ${r.body}):\n${logTail(join(dir, 'kube-apiserver.log'))}`);
      await sleep(200);
    }
    log(`apiserver fixture: ${server} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (etcd pid ${etcd.pid}, apiserver pid ${api.pid})`);

    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: mb-test\n  cluster:\n    server: ${server}\n    certificate-authority: ${join(pki, 'ca.crt')}`,
        'users:',
        `- name: mb-admin\n  user:\n    client-certificate: ${join(pki, 'admin.crt')}\n    client-key: ${join(pki, 'admin.key')}`,
        'contexts:',
        '- name: mb-test\n  context:\n    cluster: mb-test\n    user: mb-admin',
        'current-context: mb-test',
        '',
      ].join('\n'),
    );
    const kubectl = (args: string[], input?: string) =>
      run(...inNs(K8S_TOOLS.kubectl, [`--kubeconfig=${kubeconfig}`, ...args]), { input, env: { ...process.env, KUBECONFIG: kubeconfig } });

    if (o.crds ?? true) {
      const t1 = Date.now();
      const files = crdFiles();
      const applied = await kubectl(['apply', '--server-side', '--force-conflicts', ...files.flatMap((f) => ['-f', f])]);
      if (applied.code !== 0) throw new Error(`applying CRDs failed: ${applied.stderr}`);
      const waited = await kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
      if (waited.code !== 0) throw new Error(`CRDs not Established: ${waited.stderr}`);
      const n = waited.stdout.split('\n').filter((l) => l.includes('condition met')).length;
      log(`apiserver fixture: ${n} CRDs from ${files.length} files Established in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    }
    if (c || o.controllers) {
      // Serving ports of their own are not needed (0 = none).
      const common = ['--kubeconfig', kubeconfig, '--leader-elect=false', '--bind-address=127.0.0.1', '--secure-port=0'];
      launch('kube-controller-manager', [
        ...common,
        // No kubelet heartbeats to judge: the node lifecycle controller would taint the simulated nodes.
        '--controllers=*,-nodelifecycle,-nodeipam',
        `--service-account-private-key-file=${join(pki, 'sa.key')}`,
        `--root-ca-file=${join(pki, 'ca.crt')}`,
        '--use-service-account-credentials=false',
      ]);
      launch('kube-scheduler', common);
      log('apiserver fixture: controller-manager and scheduler started');
    }
    if (c) {
      const ready = join(dir, 'sim-kubelet.ready');
      rmSync(ready, { force: true });
      const sim = launch(
        'sim-kubelet',
        [
          '--import',
          'tsx',
          join(REPO, 'test/k8s/sim-kubelet.ts'),
          '--kubeconfig',
          kubeconfig,
          '--kubectl',
          K8S_TOOLS.kubectl,
          '--address',
          SIM_KUBELET_IP,
          '--nodes',
          c.nodes.join(','),
          '--dir',
          dir,
          '--cert',
          join(pki, 'kubelet.crt'),
          '--key',
          join(pki, 'kubelet.key'),
          '--job-seconds',
          String(c.jobSeconds ?? 2),
        ],
        process.execPath,
      );
      for (let i = 0; !existsSync(ready); i++) {
        if (!alive(sim) || i > 300) throw new Error(`simulated kubelet did not start:\n${logTail(join(dir, 'sim-kubelet.log'))}`);
        await sleep(200);
      }
      log(`apiserver fixture: the simulated kubelet (${c.nodes.join(', ')}) in ${netns}`);
    }
    return { kubeconfig, server, dir, pids, kubectl, stop, netns };
  } catch (e) {
    await stop();
    throw e;
  }
}

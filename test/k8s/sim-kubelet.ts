// SIMULATED KUBELET, for tests only: there is no container runtime on these machines, so the
// kubelet's part of a cluster is played here, and only that part. The API server, etcd, the
// scheduler and the controller manager are the real ones (test/k8s/apiserver.ts). It
//   - registers the topology's nodes (Ready, capacity, labelled meshbench.dev/node=<lab node>);
//   - marks every pod the scheduler binds to them Running and Ready (a Job's pod: its init
//     container done, its load container running for `--job-seconds`, then Succeeded), and
//     confirms their deletion (a pod being deleted is removed at once: no containers to stop);
//   - serves, as a kubelet does, /containerLogs (the load container's log is a recorded fortio
//     run: test/fixtures/fortio-http1.*) and /metrics/resource (CPU seconds growing at a fixed
//     simulated rate per container, a fixed working set) on one HTTPS port per node.
// Nothing it reports is a measurement. Run inside the test's network namespace:
//   node --import tsx test/k8s/sim-kubelet.ts --kubeconfig F --kubectl K --address A --nodes node1,node2 --port 10250 --dir D
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';

const run = promisify(execFile);
const { values: a } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    kubectl: { type: 'string' },
    address: { type: 'string' },
    nodes: { type: 'string' },
    port: { type: 'string', default: '10250' },
    dir: { type: 'string' },
    'job-seconds': { type: 'string', default: '2' },
    cert: { type: 'string' },
    key: { type: 'string' },
  },
});
const nodes = a.nodes!.split(',');
const port = (i: number) => Number(a.port) + i;
const kubectl = async (args: string[], input?: string) => {
  const p = run(a.kubectl!, ['--kubeconfig', a.kubeconfig!, ...args], { maxBuffer: 64 << 20 });
  if (input !== undefined) p.child.stdin!.end(input);
  return (await p).stdout;
};
const FIXTURES = join(import.meta.dirname, '../fixtures');
// The access-log fixture is a trimmed 300 of the recorded run's 2000 requests: the summary says 300 to match.
const ACCESS = readFileSync(join(FIXTURES, 'fortio-http1.access.jsonl'), 'utf8');
const N = ACCESS.split('\n').filter(Boolean).length;
const LOAD_LOG = `${ACCESS}${readFileSync(join(FIXTURES, 'fortio-http1.json'), 'utf8').replace('"Count": 2000,', `"Count": ${N},`).replace('"200": 2000', `"200": ${N}`)}`;
/** Simulated CPU use of every container, CPU-seconds per second, and working set. */
const SIM_CPU_RATE = 0.05;
const SIM_WORKING_SET = 20 * 1024 * 1024;
const t0 = Date.now();

async function registerNodes(): Promise<void> {
  for (const [i, name] of nodes.entries()) {
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'meshbench.dev/node': name, 'meshbench.dev/simulated-kubelet': 'true' },
      },
    };
    await kubectl(['apply', '--server-side', '--field-manager=sim-kubelet', '-f', '-'], JSON.stringify(node));
    const now = new Date().toISOString();
    const status = {
      status: {
        capacity: { cpu: '4', memory: '8Gi', pods: '110' },
        allocatable: { cpu: '4', memory: '8Gi', pods: '110' },
        addresses: [{ type: 'InternalIP', address: a.address }],
        daemonEndpoints: { kubeletEndpoint: { Port: port(i) } },
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'SimulatedKubeletReady',
            message: 'simulated kubelet (tests)',
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          },
        ],
        nodeInfo: {
          kubeletVersion: 'simulated',
          kernelVersion: 'simulated',
          osImage: 'simulated kubelet (tests)',
          containerRuntimeVersion: 'none://simulated',
          operatingSystem: 'linux',
          architecture: 'amd64',
          machineID: '',
          systemUUID: '',
          bootID: '',
          kubeProxyVersion: '',
        },
      },
    };
    await kubectl(['patch', 'node', name, '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
    // The API server taints a new node not-ready; the node lifecycle controller, off here (no heartbeats to judge), would lift it.
    await kubectl(['taint', 'node', name, 'node.kubernetes.io/not-ready:NoSchedule-']).catch(() => undefined);
  }
}

const started = new Map<string, number>(); // pod uid → ms when marked running
let podIp = 10;

async function tick(): Promise<void> {
  const pods = JSON.parse(await kubectl(['get', 'pods', '-A', '-o', 'json'])).items as any[];
  for (const p of pods) {
    if (!nodes.includes(p.spec?.nodeName)) continue;
    if (p.metadata.deletionTimestamp) {
      // A kubelet confirms a deletion once the containers are gone: there are none here.
      await kubectl(['delete', 'pod', '-n', p.metadata.namespace, p.metadata.name, '--grace-period=0', '--force', '--wait=false']).catch(() => undefined);
      continue;
    }
    const phase = p.status?.phase;
    const isJob = !!p.metadata.labels?.['job-name'];
    const now = new Date().toISOString();
    const cond = (type: string) => ({ type, status: 'True', lastTransitionTime: now });
    const running = (c: any) => ({
      name: c.name,
      image: c.image,
      imageID: '',
      containerID: `sim://${p.metadata.uid}/${c.name}`,
      ready: true,
      started: true,
      restartCount: 0,
      state: { running: { startedAt: now } },
    });
    const terminated = (c: any, started: string) => ({
      ...running(c),
      ready: false,
      started: false,
      state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: started, finishedAt: now } },
    });
    let status: any;
    if (phase === 'Pending' && !started.has(p.metadata.uid)) {
      started.set(p.metadata.uid, Date.now());
      status = {
        phase: 'Running',
        hostIP: a.address,
        podIP: `198.18.251.${podIp++ % 250}`,
        startTime: now,
        conditions: [cond('PodScheduled'), cond('Initialized'), cond('ContainersReady'), cond('Ready')],
        ...(p.spec.initContainers ? { initContainerStatuses: p.spec.initContainers.map((c: any) => terminated(c, now)) } : {}),
        containerStatuses: p.spec.containers.map(running),
      };
    } else if (phase === 'Running' && isJob && Date.now() - started.get(p.metadata.uid)! > Number(a['job-seconds']) * 1000) {
      const from = new Date(started.get(p.metadata.uid)!).toISOString();
      status = {
        phase: 'Succeeded',
        conditions: [cond('PodScheduled'), cond('Initialized')],
        containerStatuses: p.spec.containers.map((c: any) => terminated(c, from)),
      };
    }
    if (status)
      await kubectl([
        'patch',
        'pod',
        '-n',
        p.metadata.namespace,
        p.metadata.name,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status }),
      ]).catch(() => undefined);
  }
}

/** The kubelet's resource metrics of the pods on node `i` (simulated figures). */
async function metrics(i: number): Promise<string> {
  const pods = JSON.parse(await kubectl(['get', 'pods', '-A', '-o', 'json'])).items as any[];
  const s = (Date.now() - t0) / 1000;
  const lines = ['# HELP container_cpu_usage_seconds_total [SIMULATED]', '# TYPE container_cpu_usage_seconds_total counter'];
  for (const p of pods.filter((x) => x.spec?.nodeName === nodes[i] && x.status?.phase === 'Running'))
    for (const c of p.spec.containers) {
      const l = `container="${c.name}",namespace="${p.metadata.namespace}",pod="${p.metadata.name}"`;
      lines.push(`container_cpu_usage_seconds_total{${l}} ${(SIM_CPU_RATE * s).toFixed(6)} ${Date.now()}`);
      lines.push(`container_memory_working_set_bytes{${l}} ${SIM_WORKING_SET} ${Date.now()}`);
    }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  await registerNodes();
  for (const [i] of nodes.entries()) {
    const server = createServer({ cert: readFileSync(a.cert!), key: readFileSync(a.key!) }, async (req, res) => {
      try {
        const url = new URL(req.url ?? '/', 'https://kubelet');
        const logs = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
        if (logs) {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(logs[3] === 'load' ? LOAD_LOG : '');
        } else if (url.pathname === '/metrics/resource') {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
          res.end(await metrics(i));
        } else {
          res.writeHead(404);
          res.end('not simulated\n');
        }
      } catch (e) {
        res.writeHead(500);
        res.end(String(e));
      }
    });
    server.listen(port(i), a.address);
  }
  writeFileSync(join(a.dir!, 'sim-kubelet.ready'), String(process.pid));
  for (;;) {
    await tick().catch((e) => process.stderr.write(`sim-kubelet: ${e}\n`));
    await new Promise((r) => setTimeout(r, 300));
  }
}

await main();

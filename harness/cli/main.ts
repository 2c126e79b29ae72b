#!/usr/bin/env node
// meshbench command line. Exit codes: 0 ok, 1 run failed, 2 bad input, 3 environment missing,
// 130 interrupted.
import { Command, InvalidArgumentError } from 'commander';
import { inputError, MeshbenchError } from '../errors.js';
import type { RunOutcome } from '../run/run.js';
import { knownKernels } from '../vm/kernels.js';
import { isRoot } from '../util/host.js';
import { Progress } from '../util/progress.js';
import { dataplaneNames, allDataplanes, optionsText } from '../dataplanes/registry.js';
import { metricNames } from '../analysis/metrics.js';
import { registerHistory } from './history.js';
import { capacityOptions, capacityRunOptions } from '../run/capacity-options.js';
import { fmt, runSummary } from '../run/summary.js';
import { checkTargetOptions, downOnKubernetes, kubernetesOptions, runOnKubernetes } from '../k8s/options.js';

const program = new Command();

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number ≥ 1');
  return n;
};
const positiveNum = (v: string) => {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('must be a number of seconds > 0');
  return n;
};
const knownKernelNames = () => knownKernels().join(', ');
const list = (v: string) =>
  v
    .split(/,(?![^[]*\])/) // not inside a variant's [key=value,…]
    .map((x) => x.trim())
    .filter(Boolean);

program
  .name('meshbench')
  .description(
    'Measure what service-mesh dataplanes cost on this kernel: builds a cluster of network namespaces, deploys a dataplane, drives fortio load, reports latency, CPU, memory and start-up.',
  )
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (s, write) => write(s) })
  .exitOverride();

kubernetesOptions(capacityOptions(program.command('run')))
  .description(
    'Run a scenario: every case (dataplane × workload × repeat) on a fresh topology; writes results/<scenario>/<run-id>/run.json and the HTML report, and prints both paths. Needs root.',
  )
  .argument('<scenario.yaml>', 'scenario file (see scenarios/)')
  .option(
    '--dataplanes <list>',
    `comma-separated dataplanes or variants kind[key=value,…], replacing the scenario's (known: ${dataplaneNames().join(', ')})`,
    list,
  )
  .option('--repeats <n>', 'repeats per dataplane × workload, interleaved', positiveInt)
  .option('--duration <seconds>', 'measured seconds per case, replacing the scenario', positiveNum)
  .option('--warmup <seconds>', 'warm-up seconds before each measured window, replacing the scenario', positiveNum)
  .option('--quick', "use the scenario's quick settings (shorter runs)")
  .option('--results <dir>', 'where run records go', 'results')
  .option('--reports <dir>', 'where reports go', 'reports')
  .option('--no-report', 'write run.json only')
  .option('--json', 'print only a JSON summary on stdout (no progress)')
  .option(
    '--kernel <name|dir>',
    `run the whole lab inside a qemu VM booting this kernel (${knownKernelNames()}, or a directory holding vmlinuz and lib/modules/<release>/); KVM when it works, else TCG (figures functional only)`,
  )
  .option('--kernels <list>', 'comma-separated kernels: the scenario once per kernel, each in its own VM, one report side by side', list)
  .option('--vm-memory <MiB>', 'memory of the VM with --kernel/--kernels', positiveInt, 4096)
  .option(
    '--hosts <inventory.yaml|vagrant>',
    `each topology node on a machine of this inventory, over SSH (\`vagrant\`: this directory's \`vagrant ssh-config\`); dataplanes baseline and ebpf (docs/hosts.md)`,
  )
  .action(async (file: string, o) => {
    const progress = new Progress(o.json ? 'quiet' : undefined);
    const runOpts = {
      dataplanes: o.dataplanes,
      repeats: o.repeats,
      durationS: o.duration,
      warmupS: o.warmup,
      quick: o.quick,
      resultsRoot: o.results,
      progress,
      hosts: o.hosts,
      ...capacityRunOptions(o),
    };
    const onCluster = checkTargetOptions(o) ? await runOnKubernetes(file, runOpts, o, progress) : undefined;
    if (onCluster === null) return; // --render / --dry-run: printed
    if (o.kernel && o.kernels) throw inputError('--kernel and --kernels together', [], 'give one kernel with --kernel, or a list with --kernels');
    if (o.hosts !== undefined) (await import('../hosts/doctor.js')).checkHostsOptions(o);
    let outcomes: RunOutcome[];
    if (onCluster) outcomes = [onCluster];
    else if (o.kernel || o.kernels) {
      const { runKernelMatrix } = await import('../vm/lab.js');
      outcomes = await runKernelMatrix(file, { ...runOpts, kernels: o.kernels ?? [o.kernel], memoryMiB: o.vmMemory });
    } else {
      const { runScenario } = await import('../run/run.js');
      outcomes = [await runScenario(file, runOpts)];
    }
    // The records are written: their paths are printed whatever happens to the report.
    let report: string | undefined;
    let reportFailure: MeshbenchError | undefined;
    if (o.report && outcomes.some((res) => res.record.cases.some((c) => c.latencyUs) || res.record.capacity)) {
      const { writeReport } = await import('../report/report.js');
      try {
        report = (
          await writeReport(
            outcomes.map((res) => res.file),
            { reportsRoot: o.reports },
          )
        ).html;
      } catch (err) {
        if (!(err instanceof MeshbenchError)) throw err;
        reportFailure = err;
      }
    }
    const summaries = await Promise.all(outcomes.map((res) => runSummary(res)));
    if (o.json) {
      const extra = { report, ...(reportFailure ? { reportError: reportFailure.message } : {}) };
      const out = summaries.length === 1 ? { ...summaries[0], ...extra } : { ...extra, runs: summaries };
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    } else {
      for (const summary of summaries) {
        if (summaries.length > 1) process.stdout.write(`kernel ${summary.kernel}:\n`);
        const width = Math.max(16, ...summary.cases.map((c) => c.dataplane.length));
        for (const c of summary.cases) {
          const figures = c.status === 'ok' ? `p50 ${fmt(c.p50Us)} µs  p99 ${fmt(c.p99Us)} µs` : 'not a result';
          process.stdout.write(
            `  ${c.dataplane.padEnd(width)} ${c.workload.padEnd(16)} r${c.repeat}  ${c.status.padEnd(11)} ${figures}  ${c.qps} qps  ${c.errors} errors\n`,
          );
          for (const r of c.reasons ?? []) process.stdout.write(`      ${r}\n`);
        }
        for (const l of [summary.capacityLine, summary.claimsLine]) if (l) process.stdout.write(`${l}\n`);
        process.stdout.write(`run record: ${summary.runJson}\n`);
      }
      if (report) process.stdout.write(`report: ${report}\n`);
      else if (reportFailure) process.stdout.write('report: not written (see the error)\n');
      else if (o.report) process.stdout.write('report: none (no case produced latency figures)\n');
    }
    if (reportFailure) {
      // Exit 3 (environment) unless the run itself already failed or was interrupted.
      process.exitCode = reportError(
        new MeshbenchError('E_ENV', reportFailure.message, {
          hint: `${reportFailure.hint ?? 'choose a writable --reports directory'}; the run record is intact: meshbench report ${outcomes.map((res) => res.file).join(' ')} --reports <dir>`,
        }),
      );
    }
    const statuses = outcomes.map((res) => res.record.status);
    if (statuses.includes('incomplete')) process.exitCode = 130;
    else if (statuses.includes('failed')) {
      process.exitCode = 1;
      if (!o.json)
        for (const res of outcomes)
          if (res.record.status === 'failed') process.stderr.write(`meshbench: run failed: ${res.record.error ?? 'see the record'}\n`);
    }
  });

program
  .command('report')
  .description('Render reports/<scenario>/index.html (and one SVG per chart) from one or more run.json files of the same scenario.')
  .argument('<run.json...>', 'run records')
  .option('--reports <dir>', 'where reports go', 'reports')
  .option('--out <dir>', 'write into this directory instead of reports/<scenario>/')
  .action(async (files: string[], o) => {
    const { writeReport } = await import('../report/report.js');
    const r = await writeReport(files, { reportsRoot: o.reports, outDir: o.out });
    process.stdout.write(`report: ${r.html}\n`);
  });

const probability = (v: string) => {
  const n = Number(v);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError('must be a number between 0 and 1, e.g. 0.05');
  return n;
};

program
  .command('compare')
  .description(
    'Compare two runs case by case (dataplane × workload, repeats as samples): per metric the medians, the change B − A with a 95% bootstrap interval, a permutation-test p-value and a verdict (better, worse, no significant change). With --fail-on it exits 1 when a named metric is significantly worse beyond --threshold: the hook for nightly CI.',
  )
  .argument('<a/run.json>', 'the reference run (before), or its directory')
  .argument('<b/run.json>', 'the run to judge (after), or its directory')
  .option(
    '--metric <list>',
    `metrics to compare, comma-separated, or "all" for every metric the runs carry (default p50,p90,p99,qps,errors; known: ${metricNames().join(', ')})`,
    list,
  )
  .option(
    '--fail-on <list>',
    'exit 1 when one of these metrics is worse with p < alpha and beyond the threshold (they are compared even if not in --metric)',
    list,
  )
  .option(
    '--threshold <spec>',
    "how much worse counts as a regression: a percentage of A's median (10%), an amount (200us, 0.5ms, 2MiB, a bare number in the metric's unit), or per metric (p99=200us,qps=5%,10%)",
    '5%',
  )
  .option('--alpha <p>', 'significance level of the permutation test', probability, 0.05)
  .option('--seed <seed>', 'seed of the bootstrap and permutation streams (results are reproducible for a seed)', 'meshbench')
  .option('--resamples <n>', 'bootstrap resamples', positiveInt, 2000)
  .option(
    '--test <name>',
    'significance test: median (permutation test of the difference of medians) or rank (Mann–Whitney U by permutation; more power with few repeats)',
    'median',
  )
  .option('--permutations <n>', 'permutation-test relabellings (exact enumeration when the splits are fewer)', positiveInt, 5000)
  .option('--json', 'print the comparison as JSON (schema meshbench/compare/v1)')
  .option(
    '--export-fortio <dir>',
    'also write every case of both runs as fortio result JSON into <dir> (<runId>-<index>-<dataplane>-<workload>-r<repeat>.json), for `fortio report -data-dir <dir>`',
  )
  .addHelpText(
    'after',
    `
Cases are matched by dataplane and workload (status ok only); repeats are the samples. Lower is
better for latency, CPU, memory, errors and start-up; higher for qps. Few repeats limit what can
be called significant: the smallest p of the median test is 0.2 for 3 vs 3 repeats, 0.048 for
5 vs 5, 0.013 for 6 vs 6; of --test rank 0.1, 0.008, 0.002. Rows out of reach are marked *.

Exit status: 0 no regression (or no --fail-on), 1 a --fail-on metric regressed, 2 bad input
(missing or unreadable run.json, no common case, unknown metric or threshold).

Example (nightly CI):
  meshbench compare results/quick/<last>/run.json results/quick/<new>/run.json --fail-on p99 --threshold 10%`,
  )
  .action(async (fileA: string, fileB: string, o) => {
    const { runCompare } = await import('./compare.js');
    const r = runCompare(fileA, fileB, {
      metrics: o.metric,
      failOn: o.failOn,
      threshold: o.threshold,
      alpha: o.alpha,
      seed: o.seed,
      resamples: o.resamples,
      permutations: o.permutations,
      test: o.test,
      json: o.json,
      exportFortio: o.exportFortio,
    });
    process.stderr.write(r.stderr);
    process.stdout.write(r.stdout);
    process.exitCode = r.exitCode;
  });

program
  .command('validate')
  .description(
    'Check a scenario or topology file without touching the host; prints every problem as file:line: message (exit 2) or a summary of the cluster it declares.',
  )
  .argument('<file.yaml>', 'scenario or topology file')
  .option('--quick', "describe the scenario's quick form (what `run --quick` runs)")
  .action(async (file: string, o: { quick?: boolean }) => {
    const { validateFile } = await import('./validate.js');
    process.stdout.write(validateFile(file, { quick: o.quick }) + '\n');
  });

program
  .command('down')
  .description(
    'Remove every lab object left on this host (processes, network namespaces, BPF programs on lab cgroups, bpffs mounts, cgroups, state): only what carries the lab prefix (docs/safety.md). Refuses while a run is in progress unless --force. Safe to repeat. Needs root.',
  )
  .option('--prefix <prefix>', 'only this run prefix (mb + 4 characters of 0-9a-z, as `run` prints it)')
  .option('--force', 'remove lab objects even while a run holds the run lock (that run fails)')
  .option(
    '--hosts <inventory.yaml|vagrant>',
    'instead, on every machine of an inventory over SSH (after a `run --hosts` that was killed); the lab interfaces get their names back',
  )
  .option('--target <where>', 'kubernetes: instead, the namespaces of meshbench runs on the cluster (by label), with --kubeconfig/--context')
  .option('--kubeconfig <file>')
  .option('--context <name>')
  .action(async (o) => {
    if (o.target === 'kubernetes') return void process.stdout.write(await downOnKubernetes(o));
    const { down, checkPrefix } = await import('../topology/cleanup.js');
    if (o.hosts !== undefined)
      return void process.stdout.write(await (await import('../run/hosts.js')).downOnHosts(o.hosts, o.prefix, (m) => process.stderr.write(`${m}\n`)));
    if (o.prefix !== undefined) checkPrefix(o.prefix);
    if (!isRoot()) throw new MeshbenchError('E_ENV', 'meshbench down needs root to delete network namespaces', { hint: 'run it as root' });
    const r = await down({ prefix: o.prefix, force: o.force, warn: (m) => process.stderr.write(`warning: ${m}\n`) });
    process.stdout.write(
      `removed ${r.namespaces} namespace(s), ${r.processes} process(es), ${r.bpfPrograms} BPF program attachment(s), ${r.cgroups} cgroup tree(s)${r.tmpDirs ? `, ${r.tmpDirs} temporary dir(s) of killed runs` : ''}\n`,
    );
  });

program
  .command('doctor')
  .description(
    'Report what this host can do for the lab: privileges, kernel features (netns, veth, iptables REDIRECT/TPROXY, eBPF/BTF, cgroup v2, WireGuard, netem, IPsec), tools and versions, each with what to do when missing.',
  )
  .option('--json', 'machine-readable output')
  .option('--kernel <name|dir>', `run doctor inside a qemu VM booting this kernel (${knownKernelNames()}, or a kernel directory) instead of on this host`)
  .option('--kernels <list>', 'run doctor inside each of these kernels in turn', list)
  .option('--hosts <inventory.yaml|vagrant>', "run doctor on every machine of an inventory over SSH (`vagrant`: this directory's `vagrant ssh-config`)")
  .action(async (o) => {
    if (o.hosts !== undefined) {
      const { checkHostsOptions, doctorOnHosts } = await import('../hosts/doctor.js');
      checkHostsOptions(o);
      process.exitCode = await doctorOnHosts(o.hosts, { json: !!o.json, progress: new Progress(o.json ? 'quiet' : undefined) });
      return;
    }
    if (o.kernel || o.kernels) {
      const { doctorInKernels } = await import('../vm/lab.js');
      process.exitCode = await doctorInKernels(o.kernels ?? [o.kernel], { json: !!o.json, progress: new Progress(o.json ? 'quiet' : undefined) });
      return;
    }
    const { runDoctor, formatDoctor } = await import('../probes/host.js');
    const checks = await runDoctor();
    process.stdout.write(o.json ? JSON.stringify(checks, null, 2) + '\n' : formatDoctor(checks) + '\n');
    if (checks.some((c) => c.status === 'missing' && c.required)) process.exitCode = 3;
  });

program
  .command('observe')
  .description(
    'Print the flow log of an eBPF run (like hubble observe): every drop with its reason and every new connection, with pods, identities, direction and node, in time order.',
  )
  .argument('<run>', 'a run.json, a run directory or one case directory of it')
  .option('--verdict <verdict>', 'only FORWARDED, DROPPED or REDIRECTED flows')
  .option('--pod <[namespace/]pod>', 'only flows from or to this pod')
  .option('--namespace <namespace>', 'only flows from or to this namespace')
  .option('--json', 'one JSON object per line')
  .action(async (path: string, o) => {
    const { readFlows, filterFlows, formatFlow } = await import('./observe.js');
    for (const f of filterFlows(
      readFlows(path, (m) => process.stderr.write(`warning: ${m}\n`)),
      o,
    ))
      process.stdout.write((o.json ? JSON.stringify(f) : formatFlow(f)) + '\n');
  });

registerHistory(program);

program
  .command('dataplanes')
  .description('List the dataplanes this build knows, their variants kind[key=value,…], and what each needs from the host.')
  .option('--json', 'name, summary, options and declared needs of each, as JSON')
  .action((o: { json?: boolean }) => {
    const all = allDataplanes().map((d) => ({ name: d.name, summary: d.summary, options: d.options ?? [], needs: d.needs }));
    if (o.json) process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
    else
      for (const d of all)
        process.stdout.write(`${d.name.padEnd(18)} ${d.summary}\n${d.options.length ? `${''.padEnd(19)}variants ${d.name}[…]: ${optionsText(d)}\n` : ''}`);
  });

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}

function reportError(err: unknown): number {
  const e = err as { code?: string; exitCode?: number; message?: string };
  if (typeof e?.code === 'string' && e.code.startsWith('commander.')) {
    // --help and --version exit 0; usage errors are bad input.
    return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : 2;
  }
  if (err instanceof MeshbenchError) {
    process.stderr.write(`meshbench: ${err.message}\n`);
    for (const d of err.details) process.stderr.write(`${d}\n`);
    if (err.hint) process.stderr.write(`  → ${err.hint}\n`);
    return err.exitCode;
  }
  process.stderr.write(`meshbench: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}

await main();

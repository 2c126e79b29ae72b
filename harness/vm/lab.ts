// `meshbench run --kernel K` / `--kernels A,B`: the whole lab (namespace cluster, dataplanes,
// load, probes) runs inside one qemu VM booting kernel K; the record comes back into the host's
// results directory as if the run were local. The scenario is checked on the host first, so bad
// input never boots a VM. A signal asks the guest to stop (SIGINT inside: it tears down and
// keeps its record, `incomplete`) before qemu is killed.
import { cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { envError, inputError, MeshbenchError, runError } from '../errors.js';
import { readCiliumPolicies } from '../dataplanes/mesh/policy/cnp.js';
import { dataplaneChecks } from '../dataplanes/registry.js';
import type { RunRecord } from '../results/types.js';
import { writeJsonAtomic } from '../results/write.js';
import { checkScenarioPolicies } from '../run/checks.js';
import { preflight, type RunOptions, type RunOutcome } from '../run/run.js';
import { applyOverrides, type Case, expandCases } from '../scenario/expand.js';
import { loadScenario } from '../scenario/load.js';
import { Progress } from '../util/progress.js';
import { PROJECT_ROOT } from '../util/tools.js';
import { type VmHandle, startVm } from './boot.js';
import { GUEST_IO } from './initrd.js';
import { isKernelName, KERNEL_DIR_HINT, knownKernels, readKernelDir } from './kernels.js';

export interface VmRunOptions extends RunOptions {
  /** A registered kernel name (debian-6.1, …) or a directory with vmlinuz and lib/modules/<release>. */
  kernel: string;
  memoryMiB?: number;
  cpus?: number;
}

/** What the guest is told about itself (MESHBENCH_VM): the record's kernel facts take it from there. */
export interface VmIdentity {
  kernel: string;
  package?: string;
  version?: string;
  release: string;
  accel: 'kvm' | 'tcg';
}

const GUEST_RESULTS = `${GUEST_IO}/results`;

/** `'…'` for sh: the guest's command line is shell text. */
export const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The CLI the guest runs: the same code as this process (dist when run from dist, else the sources through tsx). */
export function guestEntry(argv1 = process.argv[1] ?? '', execArgv = process.execArgv): string[] {
  if (/harness\/cli\/main\.(js|ts)$/.test(argv1)) return [process.execPath, ...execArgv, resolve(argv1)];
  return [process.execPath, '--import', 'tsx', join(PROJECT_ROOT, 'harness', 'cli', 'main.ts')];
}

/** The guest's shell command: `meshbench run` with the host's overrides, results into the exchange directory. */
export function guestCommand(file: string, o: RunOptions, vm: VmIdentity, entry = guestEntry()): string {
  const args = ['run', resolve(file), '--results', GUEST_RESULTS, '--no-report'];
  if (o.dataplanes) args.push('--dataplanes', o.dataplanes.join(','));
  if (o.repeats !== undefined) args.push('--repeats', String(o.repeats));
  if (o.durationS !== undefined) args.push('--duration', String(o.durationS));
  if (o.warmupS !== undefined) args.push('--warmup', String(o.warmupS));
  if (o.quick) args.push('--quick');
  return [
    `export MESHBENCH_VM=${shq(JSON.stringify(vm))}`,
    // Kernel objects in the guest are the guest's: no prefix of the host can collide, but the
    // run lock and tool lookups are the same code as on the host.
    `cd ${shq(PROJECT_ROOT)}`,
    `exec ${[...entry, ...args].map(shq).join(' ')}`,
  ].join('\n');
}

/** Wall-clock bound of one VM run: boot, per case set-up and teardown under TCG, the measured windows. */
function vmTimeoutMs(cases: Case[]): number {
  return 180_000 + cases.reduce((ms, c) => ms + (c.workload.durationS + c.workload.warmupS) * 1000 + 120_000, 0);
}

/** Run `file` inside a VM booting `o.kernel`; the record lands in the host's results directory. */
export async function runScenarioInVm(file: string, o: VmRunOptions): Promise<RunOutcome> {
  const progress = o.progress ?? new Progress();
  // Bad input is refused here, before a kernel is fetched or a VM booted.
  const loaded = loadScenario(file, { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
  checkScenarioPolicies(loaded, (m) => progress.warn(m));
  const s = applyOverrides(loaded, o, dataplaneChecks);
  checkKernelArg(o.kernel);
  await preflight(s);
  const cases = expandCases(s);
  const resultsRoot = resolve(o.resultsRoot ?? join(PROJECT_ROOT, 'results'));

  let handle: VmHandle | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    progress.log(`${sig} received: asking the VM's run to stop and tear down`);
    handle?.stop(120_000);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const onAbort = () => onSignal('SIGTERM');
  o.signal?.addEventListener('abort', onAbort, { once: true });
  let copied: string | undefined;
  try {
    progress.log(`booting ${o.kernel} for ${s.name} (${cases.length} case(s); the whole lab runs inside the VM)`);
    const vm: VmIdentity = { kernel: o.kernel, release: '', accel: 'tcg' };
    handle = await startVm({
      kernel: o.kernel,
      memoryMiB: o.memoryMiB ?? 4096,
      cpus: o.cpus ?? 2,
      timeoutMs: vmTimeoutMs(cases),
      // The guest is told which kernel and accelerator it runs on (MESHBENCH_VM, for its record).
      command: (k, accel) => {
        Object.assign(vm, { kernel: k.name, package: k.package, version: k.version, release: k.release, accel });
        return guestCommand(file, o, vm);
      },
      onOutput: (line) => {
        if (line.trim()) progress.log(`[${o.kernel}] ${line.replace(/^\[\s*[\d.]+s\] /, '')}`);
      },
      collect: (io) => {
        copied = collectRun(join(io, 'results'), resultsRoot);
      },
    });
    if (o.signal?.aborted) handle.stop(120_000);
    progress.log(`${handle.accel === 'tcg' ? 'TCG (emulation: figures are functional only)' : 'KVM'}, kernel ${handle.kernel.release}, qemu pid ${handle.pid}`);
    const res = await handle.done;
    if (!copied) {
      // The guest's CLI refused before it wrote a record: pass its own message and exit code on.
      const code = res.exitCode === 2 ? 'E_INPUT' : res.exitCode === 3 ? 'E_ENV' : 'E_RUN';
      throw new MeshbenchError(
        code,
        `the run inside the VM (${o.kernel}) wrote no record (exit ${res.exitCode}):\n${res.output.trim().split('\n').slice(-15).join('\n')}`,
      );
    }
    return outcome(copied);
  } catch (e) {
    // A VM that died or timed out may still have left the record of what it did up to then:
    // kept, and marked failed with the reason (it says `incomplete`, written before the end).
    if (copied && e instanceof MeshbenchError && e.code === 'E_RUN') return outcome(copied, e.message);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/** The copied record as a run's outcome; with `failure`, marked failed first (its status said what the guest last wrote). */
function outcome(file: string, failure?: string): RunOutcome {
  const record = JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
  if (failure) {
    Object.assign(record, { status: 'failed', error: failure, finishedAt: record.finishedAt ?? new Date().toISOString() });
    writeJsonAtomic(file, record);
  }
  return { record, file, dir: dirname(file) };
}

/** Copy the guest's run directory (results/<scenario>/<run-id>/) into the host's results root; the run.json path. */
function collectRun(guestResults: string, resultsRoot: string): string | undefined {
  if (!existsSync(guestResults)) return undefined;
  let found: string | undefined;
  for (const scenario of readdirSync(guestResults)) {
    for (const runId of readdirSync(join(guestResults, scenario))) {
      const src = join(guestResults, scenario, runId);
      if (!existsSync(join(src, 'run.json'))) continue;
      const dst = join(resultsRoot, scenario, runId);
      try {
        cpSync(src, dst, { recursive: true, errorOnExist: false });
      } catch (err) {
        throw envError(
          `cannot copy the VM's run record into ${dst}: ${(err as Error).message}`,
          'choose a writable directory with --results <dir>, or make this one writable (and not full)',
        );
      }
      found = join(dst, 'run.json');
    }
  }
  return found;
}

/** A kernel argument names a registered kernel or a kernel directory; else exit 2 listing the names (before any VM boots). */
export function checkKernelArg(k: string): void {
  if (isKernelName(k)) return;
  const hint = `known kernels: ${knownKernels().join(', ')}; or ${KERNEL_DIR_HINT}`;
  if (!k.includes('/') || !existsSync(k)) throw inputError(`unknown kernel "${k}"`, [], hint);
  const problem = readKernelDir(resolve(k));
  if (typeof problem === 'string') throw inputError(`kernel directory ${resolve(k)}: ${problem}`, [], hint);
}

/** `--kernels A,B,…`: the scenario once per kernel, in order; a run that fails does not stop the next. */
export async function runKernelMatrix(file: string, o: RunOptions & { kernels: string[]; memoryMiB?: number }): Promise<RunOutcome[]> {
  for (const k of o.kernels) checkKernelArg(k);
  if (new Set(o.kernels).size !== o.kernels.length) throw inputError('--kernels: a kernel is named twice', [], `given: ${o.kernels.join(', ')}`);
  const out: RunOutcome[] = [];
  for (const kernel of o.kernels) {
    if (o.signal?.aborted) break;
    out.push(await runScenarioInVm(file, { ...o, kernel }));
    if (out.at(-1)!.record.status === 'incomplete') break;
  }
  if (!out.length) throw runError('no kernel of the matrix ran');
  return out;
}

/**
 * `doctor --kernel(s)`: doctor inside a VM per kernel, its output passed through (JSON: one
 * object per kernel, keyed by name). The exit code is the worst of the guests' (3: a required
 * check missing in some kernel).
 */
export async function doctorInKernels(kernels: string[], o: { json: boolean; progress: Progress }): Promise<number> {
  for (const k of kernels) checkKernelArg(k);
  const byKernel: Record<string, unknown> = {};
  let worst = 0;
  for (const kernel of kernels) {
    o.progress.log(`booting ${kernel} to run doctor inside it`);
    const res = await startVm({
      kernel,
      memoryMiB: 1024,
      timeoutMs: 180_000,
      command: (k, accel) => {
        const vm: VmIdentity = { kernel: k.name, package: k.package, version: k.version, release: k.release, accel };
        return [
          `export MESHBENCH_VM=${shq(JSON.stringify(vm))}`,
          `cd ${shq(PROJECT_ROOT)}`,
          `exec ${[...guestEntry(), 'doctor', ...(o.json ? ['--json'] : [])].map(shq).join(' ')}`,
        ].join('\n');
      },
    }).then((h) => h.done);
    worst = Math.max(worst, res.exitCode);
    if (o.json) {
      try {
        byKernel[kernel] = JSON.parse(res.output);
      } catch {
        throw runError(`doctor inside ${kernel} printed no JSON (exit ${res.exitCode}):\n${res.output.slice(-2000)}`);
      }
    } else
      process.stdout.write(
        `── ${kernel} (${res.accel === 'tcg' ? 'TCG, emulated' : 'KVM'}, booted in ${(res.bootMs / 1000).toFixed(1)} s) ──\n${res.output.trimEnd()}\n\n`,
      );
  }
  if (o.json) process.stdout.write(JSON.stringify(byKernel, null, 2) + '\n');
  return worst;
}

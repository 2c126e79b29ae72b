// Ablation variants of the eBPF family (issue 17): `ebpf[encryption=none|wireguard]` through the
// registry — the name a case carries, its settings, bad keys and values refused with the valid
// ones, and what `encryption=none` drops (WireGuard's tools from the needs run checks, any
// WireGuard trace from the rendered configs). The wire itself: test/integration/ebpf-encryption.
import test from 'ava';
import { dataplaneChecks, dataplaneKey, getDataplane } from '../../harness/dataplanes/registry.js';
import { ebpf } from '../../harness/dataplanes/ebpf/ebpf.js';
import { ebpfL7 } from '../../harness/dataplanes/ebpf/l7.js';
import type { Need } from '../../harness/dataplanes/needs.js';
import { readCiliumPolicies } from '../../harness/dataplanes/mesh/policy/cnp.js';
import { MeshbenchError } from '../../harness/errors.js';
import { loadScenario, loadScenarioText } from '../../harness/scenario/load.js';
import { applyOverrides } from '../../harness/scenario/expand.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildCluster } from '../../harness/topology/graph.js';

const tools = (needs: Need[]) => needs.flatMap((n) => ('tool' in n ? [n.tool] : []));
const WG = /wireguard|wg\d|51871/i;

test('ebpf[encryption=none] is a dataplane named exactly so, with its settings; the bare kind is the registered one', (t) => {
  for (const kind of ['ebpf', 'ebpf-l7']) {
    const none = getDataplane(`${kind}[encryption=none]`);
    t.is(none.name, `${kind}[encryption=none]`);
    t.deepEqual(none.settings, { encryption: 'none' });
    t.notRegex(none.summary, /WireGuard between/, 'its summary does not claim WireGuard');
    t.regex(none.summary, /no encryption between nodes/);
    const wg = getDataplane(`${kind}[encryption=wireguard]`);
    t.is(wg.name, `${kind}[encryption=wireguard]`);
    t.deepEqual(wg.settings, { encryption: 'wireguard' });
    // The lab's default stays WireGuard (what earlier runs measured); Cilium's product default is none.
    const bare = getDataplane(kind);
    t.is(bare, kind === 'ebpf' ? ebpf : ebpfL7);
    t.deepEqual(bare.settings, { encryption: 'wireguard' });
    t.like(bare.options?.[0], { key: 'encryption', values: ['none', 'wireguard'], default: 'wireguard', product: 'none' });
    t.is(dataplaneKey(`${kind}[encryption=wireguard]`), kind);
    t.is(dataplaneKey(`${kind}[encryption=none]`), `${kind}[encryption=none]`);
    // A variant of a variant is configured from its own settings, not the first one's.
    t.deepEqual(none.configure!({ encryption: 'wireguard' }, kind).settings, { encryption: 'wireguard' });
  }
});

test('an unknown encryption value or option is bad input (exit 2) that lists the valid ones', (t) => {
  const value = t.throws(() => getDataplane('ebpf[encryption=foo]'), { instanceOf: MeshbenchError }) as MeshbenchError;
  t.is(value.code, 'E_INPUT');
  t.is(value.exitCode, 2);
  t.regex(value.message, /encryption must be one of none, wireguard/);
  const key = t.throws(() => getDataplane('ebpf[colour=red]'), { instanceOf: MeshbenchError }) as MeshbenchError;
  t.is(key.code, 'E_INPUT');
  t.regex(key.message, /no option "colour".*encryption=none\|wireguard \(default wireguard\)/);
});

test('encryption=none needs neither wg nor wireguard-go; everything else it needs is unchanged', (t) => {
  for (const [kind, d] of [
    ['ebpf', ebpf],
    ['ebpf-l7', ebpfL7],
  ] as const) {
    const none = getDataplane(`${kind}[encryption=none]`).needs;
    const wg = getDataplane(`${kind}[encryption=wireguard]`).needs;
    t.true(tools(d.needs).includes('wg') && tools(d.needs).includes('wireguard-go'), `${kind} still needs WireGuard's tools`);
    t.deepEqual(wg, d.needs);
    t.false(
      tools(none).some((x) => /^(wg|wireguard-go)$/.test(x)),
      `${kind}[encryption=none]: ${tools(none).join(', ')}`,
    );
    t.deepEqual(
      none,
      d.needs.filter((n) => !('tool' in n && (n.tool === 'wg' || n.tool === 'wireguard-go'))),
    );
  }
});

test("encryption=none renders no WireGuard config; the node L7 proxies' configs do not depend on encryption", (t) => {
  const file = new URL('../fixtures/scenarios/routes-path.yaml', import.meta.url).pathname;
  const s = loadScenario(file, { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
  const cluster = buildCluster(s, 'mbvar');
  for (const kind of ['ebpf', 'ebpf-l7']) {
    const none = getDataplane(`${kind}[encryption=none]`).plan({ cluster, scenario: s }).configs;
    const wg = getDataplane(`${kind}[encryption=wireguard]`).plan({ cluster, scenario: s }).configs;
    for (const [name, text] of Object.entries(none)) t.notRegex(`${name}\n${text}`, WG, `${kind}[encryption=none] ${name}`);
    t.deepEqual(none, wg, kind);
  }
  t.true(Object.keys(getDataplane('ebpf-l7[encryption=none]').plan({ cluster, scenario: s }).configs).length > 0, 'ebpf-l7 renders its node proxies');
});

// The contract as a scenario and `--dataplanes` see it: bad variants point at their line, a variant
// that only sets defaults is its kind again, and `run` passes the exact string through.
test('a scenario names variants; a bad one is refused at its line with the valid values, a same-settings one as a duplicate', (t) => {
  const text = (dps: string) =>
    readFileSync('scenarios/quick.yaml', 'utf8')
      .replace('../topologies/two-node.yaml', resolve('topologies/two-node.yaml'))
      .replace(/^dataplanes: .*$/m, `dataplanes:\n${dps}`);
  const ok = loadScenarioText(text('  - baseline\n  - "ebpf[encryption=none]"\n  - "istio-sidecar[mtls=off,mode=mesh]"'), '/tmp/v.yaml', [], {
    dataplanes: dataplaneChecks,
  });
  t.deepEqual(ok.dataplanes, ['baseline', 'ebpf[encryption=none]', 'istio-sidecar[mtls=off,mode=mesh]']);
  const e = t.throws(
    () =>
      loadScenarioText(text('  - baseline\n  - "ebpf[encryption=ipsec]"\n  - ebpf\n  - "ebpf[encryption=wireguard]"'), '/tmp/v.yaml', [], {
        dataplanes: dataplaneChecks,
      }),
    {
      instanceOf: MeshbenchError,
    },
  );
  const lines = (e as MeshbenchError).details.join('\n');
  t.regex(lines, /v\.yaml:\d+: dataplanes\.1: ebpf: encryption must be one of none, wireguard \(got "encryption=ipsec"\)/);
  t.regex(lines, /dataplanes\.3: dataplane "ebpf\[encryption=wireguard\]" is "ebpf" again \(same settings\)/);
  t.is((e as MeshbenchError).exitCode, 2);
});

test('--dataplanes splits on commas outside brackets, and refuses what the registry does not know', (t) => {
  const s = loadScenario('scenarios/quick.yaml', { dataplanes: dataplaneChecks });
  t.notThrows(() => applyOverrides(s, { dataplanes: ['baseline', 'istio-sidecar[mtls=off,mode=mesh]'] }, dataplaneChecks));
  t.throws(() => applyOverrides(s, { dataplanes: ['ebpf[colour=red]'] }, dataplaneChecks), {
    message: /--dataplanes: ebpf has no option "colour" \(its options: encryption=none\|wireguard/,
  });
  t.throws(() => applyOverrides(s, { dataplanes: ['ebpf', 'ebpf[encryption=wireguard]'] }, dataplaneChecks), { message: /listed twice \(same settings\)/ });
});

import test from 'ava';
import { cli } from '../helpers.js';

test('--help explains every command and exits 0', async (t) => {
  const r = await cli(['--help']);
  t.is(r.code, 0);
  for (const c of ['run', 'report', 'validate', 'down', 'doctor']) t.regex(r.stdout, new RegExp(`\\n  ${c} `));
  for (const c of ['run', 'report', 'validate', 'down', 'doctor']) {
    const h = await cli([c, '--help']);
    t.is(h.code, 0, c);
    t.regex(h.stdout, new RegExp(`Usage: meshbench ${c}`));
  }
});

test('validate: a good scenario prints the cluster it declares', async (t) => {
  const r = await cli(['validate', 'scenarios/quick.yaml']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /valid scenario "quick": 7 case\(s\) = 7 dataplane/);
  t.regex(r.stdout, /svc default\/echo 198\.18\.64\.1:80/);
  const topo = await cli(['validate', 'topologies/scale-100x10.yaml']);
  t.regex(topo.stdout, /100 node\(s\), 10 idle pod\(s\) per node/);
  const full = await cli(['validate', 'scenarios/seed-000-cluster-memory.yaml']);
  t.regex(full.stdout, /valid scenario "seed-000-cluster-memory": 15 case\(s\)[^\n]*\n50 node\(s\), 501 pod\(s\)/);
  const quick = await cli(['validate', '--quick', 'scenarios/seed-000-cluster-memory.yaml']);
  t.regex(quick.stdout, /valid scenario "seed-000-cluster-memory" \(quick form\): 5 case\(s\)[^\n]*\n4 node\(s\), 101 pod\(s\)/);
});

test('validate: a broken scenario lists file:line errors and exits 2', async (t) => {
  const r = await cli(['validate', 'test/fixtures/scenarios/broken.yaml']);
  t.is(r.code, 2);
  t.regex(r.stderr, /broken\.yaml:3: name: must be a lowercase DNS label/);
  t.regex(r.stderr, /broken\.yaml:20: unknown key\(s\) "colour"/);
});

test('usage errors exit 2', async (t) => {
  t.is((await cli(['run'])).code, 2);
  t.is((await cli(['frobnicate'])).code, 2);
  t.is((await cli(['run', 'scenarios/quick.yaml', '--repeats', 'zero'])).code, 2);
});

test('--dataplanes takes variants: commas inside [..] do not split, a bad value exits 2 before anything is built', async (t) => {
  const r = await cli(['run', 'scenarios/quick.yaml', '--dataplanes', 'baseline,istio-sidecar[mtls=off,mode=bogus]']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--dataplanes: istio-sidecar: mode must be one of mesh, capture-only \(got "mode=bogus"\)/);
  const d = await cli(['dataplanes']);
  t.regex(d.stdout, /variants ebpf\[…\]: encryption=none\|wireguard \(default wireguard\)/);
  t.regex(d.stdout, /variants istio-sidecar\[…\]: mtls=on\|off \(default on\), mode=mesh\|capture-only \(default mesh\)/);
});

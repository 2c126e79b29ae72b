// The project's Go programs (apps/: mb-load, mb-grpc): gofmt-clean, go vet, and their Go tests
// (the open-loop schedule, histograms, transports against local servers, the gRPC chain with a
// denied method), run from npm test so CI runs them too. Go is installed by set-up. With the integration tests
// (one file at a time), not the parallel unit files: the schedule tests time a stall in ms.
import { spawnSync } from 'node:child_process';
import test from 'ava';

const go = (args: string[]) => spawnSync('go', args, { cwd: 'apps', encoding: 'utf8', timeout: 300_000 });

test('apps/: gofmt finds nothing to change, go vet and go test pass', (t) => {
  const fmt = spawnSync('gofmt', ['-l', '.'], { cwd: 'apps', encoding: 'utf8' });
  t.is(fmt.status, 0, fmt.stderr);
  t.is(fmt.stdout.trim(), '', `gofmt would change: ${fmt.stdout}`);
  const vet = go(['vet', './...']);
  t.is(vet.status, 0, vet.stdout + vet.stderr);
  const run = go(['test', '-count=1', './...']);
  t.log(run.stdout.trim());
  t.is(run.status, 0, run.stdout + run.stderr);
});

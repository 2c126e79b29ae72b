import test from 'ava';
import type { ExecutionContext } from 'ava';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { createMeshCA, haproxyPeerAcl, spiffeId, uriSanDerHex, type KeyType, type MeshCA, type WorkloadIdentity } from '../../harness/dataplanes/mesh/ca.js';
import { MeshbenchError } from '../../harness/errors.js';

const run = promisify(execFile);
const keyTypes: KeyType[] = ['rsa-2048', 'ecdsa-p256'];
const ECHO = 'spiffe://cluster.local/ns/default/sa/echo';
const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';
const hasHaproxy = spawnSync('haproxy', ['-v']).status === 0;

async function tmpDir(t: ExecutionContext): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'meshbench-mesh-ca-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** One CA per key type, plus a second, unrelated CA (another run) for the rejection tests. */
const cas = new Map<string, Promise<MeshCA>>();
const sharedDirs: string[] = [];
test.after.always(async () => {
  await Promise.all(sharedDirs.map((d) => rm(d, { recursive: true, force: true })));
});
function sharedCA(keyType: KeyType, which: 'main' | 'other' = 'main'): Promise<MeshCA> {
  const k = `${keyType}/${which}`;
  let ca = cas.get(k);
  if (!ca) {
    ca = (async () => {
      const d = await mkdtemp(path.join(os.tmpdir(), `meshbench-mesh-ca-${which}-`));
      sharedDirs.push(d);
      return createMeshCA({ dir: path.join(d, 'ca'), keyType });
    })();
    cas.set(k, ca);
  }
  return ca;
}

function assertKey(t: ExecutionContext, cert: X509Certificate, keyType: KeyType) {
  const pk = cert.publicKey;
  if (keyType === 'rsa-2048') {
    t.is(pk.asymmetricKeyType, 'rsa');
    t.is(pk.asymmetricKeyDetails?.modulusLength, 2048);
    t.is(pk.asymmetricKeyDetails?.publicExponent, 65537n);
  } else {
    t.is(pk.asymmetricKeyType, 'ec');
    t.is(pk.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  }
}

const validitySeconds = (c: X509Certificate) => (Date.parse(c.validTo) - Date.parse(c.validFrom)) / 1000;

for (const keyType of keyTypes) {
  test(`${keyType}: leaf and root contents, parsed by node:crypto`, async (t) => {
    const ca = await sharedCA(keyType);
    const id = await ca.issue('default', 'echo');
    const root = new X509Certificate(ca.rootCertPem);
    const leaf = new X509Certificate(id.certPem);

    t.is(id.spiffeId, ECHO);
    t.is(leaf.subjectAltName, `URI:${ECHO}`); // exactly one entry: Node joins several with ", "
    t.is(leaf.subject, `CN=${ECHO}`); // for HAProxy verifyhost
    t.is(leaf.issuer, root.subject);
    t.is(root.subject, 'O=meshbench\nCN=meshbench root CA cluster.local');
    t.true(leaf.verify(root.publicKey));
    t.true(leaf.checkIssued(root));
    t.false(root.checkIssued(leaf));
    t.true(root.verify(root.publicKey));
    t.true(leaf.checkPrivateKey(createPrivateKey(id.keyPem)));
    assertKey(t, leaf, keyType);
    assertKey(t, root, keyType);

    t.false(leaf.ca);
    t.true(root.ca);
    t.deepEqual([...(leaf.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // node: extKeyUsage OIDs

    // notBefore = now − 60 s, notAfter = now + 24 h (1 s resolution)
    t.true(Math.abs(validitySeconds(leaf) - (86_400 + 60)) <= 2, `leaf validity ${validitySeconds(leaf)} s`);
    t.true(Math.abs(Date.parse(leaf.validFrom) - (Date.now() - 60_000)) < 30_000, leaf.validFrom);
    t.is(id.notAfter.getTime(), Date.parse(leaf.validTo));
    t.is(id.notBefore.getTime(), Date.parse(leaf.validFrom));
    t.true(Math.abs(validitySeconds(root) - (365 * 86_400 + 60)) <= 2, `root validity ${validitySeconds(root)} s`);

    // 128-bit random serials
    t.regex(leaf.serialNumber, /^[0-9A-F]{32}$/);
    const other = new X509Certificate((await ca.issue('default', 'serial-check')).certPem);
    t.not(other.serialNumber, leaf.serialNumber);

    const short = await ca.issue('default', 'short-lived', { ttlSeconds: 3600 });
    t.true(Math.abs(validitySeconds(new X509Certificate(short.certPem)) - 3660) <= 2);
    t.true(id.issueMs > 0);
  });

  test(`${keyType}: openssl verifies the chain and shows the extensions`, async (t) => {
    const ca = await sharedCA(keyType);
    const id = await ca.issue('default', 'echo');
    for (const purpose of [[], ['-purpose', 'sslserver'], ['-purpose', 'sslclient']]) {
      const { stdout } = await run('openssl', ['verify', ...purpose, '-CAfile', ca.rootCertFile, id.certFile]);
      t.is(stdout.trim(), `${id.certFile}: OK`);
    }
    // the same command fails for a leaf of another run's CA, so the check above can fail
    const foreign = await (await sharedCA(keyType, 'other')).issue('default', 'echo');
    await t.throwsAsync(run('openssl', ['verify', '-CAfile', ca.rootCertFile, foreign.certFile]));

    const { stdout: text } = await run('openssl', ['x509', '-noout', '-text', '-in', id.certFile]);
    t.regex(text, /X509v3 Extended Key Usage: *\n *TLS Web Server Authentication, TLS Web Client Authentication\n/);
    t.regex(text, /X509v3 Basic Constraints: critical\n *CA:FALSE\n/);
    t.regex(
      text,
      keyType === 'rsa-2048' ? /X509v3 Key Usage: critical\n *Digital Signature, Key Encipherment\n/ : /X509v3 Key Usage: critical\n *Digital Signature\n/,
    );
    t.regex(text, /X509v3 Subject Key Identifier:/);
    t.regex(text, /X509v3 Authority Key Identifier:/);
    t.regex(text, /X509v3 Subject Alternative Name: *\n *URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/echo\n/);
    t.regex(text, keyType === 'rsa-2048' ? /Signature Algorithm: sha256WithRSAEncryption/ : /Signature Algorithm: ecdsa-with-SHA256/);

    const { stdout: rootText } = await run('openssl', ['x509', '-noout', '-text', '-in', ca.rootCertFile]);
    t.regex(rootText, /X509v3 Basic Constraints: critical\n *CA:TRUE\n/);
    t.regex(rootText, /X509v3 Key Usage: critical\n *Certificate Sign, CRL Sign\n/);
    t.regex(rootText, /X509v3 Subject Key Identifier:/);

    // AKI of the leaf = SKI of the root
    const ski = /Subject Key Identifier: *\n *([0-9A-F:]+)/.exec(rootText)?.[1];
    const aki = /Authority Key Identifier: *\n *(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
    t.truthy(ski);
    t.is(aki, ski);
  });

  test(`${keyType}: uriSanDerHex is found in the leaf's DER, other IDs are not`, async (t) => {
    const ca = await sharedCA(keyType);
    const id = await ca.issue('default', 'echo');
    const der = new X509Certificate(id.certPem).raw.toString('hex');
    t.true(der.includes(uriSanDerHex(ECHO)));
    t.false(der.includes(uriSanDerHex(CLIENT)));
    t.false(der.includes(uriSanDerHex(`${ECHO}2`))); // a longer ID with the same prefix
    t.false(der.includes(uriSanDerHex('spiffe://cluster.local/ns/default/sa/ech'))); // a shorter one
    const foreignTd = spiffeId('example.org', 'default', 'echo');
    t.false(der.includes(uriSanDerHex(foreignTd)));
  });

  test(`${keyType}: mutual TLS on 127.0.0.1 accepts the mesh's workloads and rejects others`, async (t) => {
    const ca = await sharedCA(keyType);
    const server = await ca.issue('default', 'echo');
    const client = await ca.issue('default', 'client');
    const foreign = await (await sharedCA(keyType, 'other')).issue('default', 'client');

    const ok = await handshake(ca, server, { bundlePem: await readText(client.bundleFile) });
    t.is(ok.data, 'hello URI:spiffe://cluster.local/ns/default/sa/client');
    t.deepEqual(ok.serverSaw, [`URI:${CLIENT}`]);
    t.is(ok.serverErrors.length, 0);
    t.is(ok.clientSawServer, `URI:${ECHO}`);

    const other = await handshake(ca, server, { bundlePem: await readText(foreign.bundleFile) });
    t.is(other.data, '', `foreign client got ${JSON.stringify(other.data)}`);
    t.deepEqual(other.serverSaw, []);
    t.true(other.serverErrors.length > 0, 'server reported no TLS error for a foreign client');
    t.log(`foreign CA: server ${other.serverErrors.join('; ')} / client ${other.clientError}`);

    const none = await handshake(ca, server, {});
    t.is(none.data, '');
    t.deepEqual(none.serverSaw, []);
    t.true(none.serverErrors.length > 0, 'server reported no TLS error for a client without a certificate');
    t.log(`no certificate: server ${none.serverErrors.join('; ')} / client ${none.clientError}`);
  });

  test(`${keyType}: issue() is cached per namespace/service account`, async (t) => {
    const ca = await createMeshCA({ dir: path.join(await tmpDir(t), 'ca'), keyType });
    const [a, b] = await Promise.all([ca.issue('default', 'echo'), ca.issue('default', 'echo')]);
    t.is(a, b);
    const before = (await stat(a.certFile)).mtimeMs;
    const c = await ca.issue('default', 'echo');
    t.is(c, a);
    t.is((await stat(a.certFile)).mtimeMs, before);
    const d = await ca.issue('other', 'echo');
    t.not(d, a);
    t.not(d.certPem, a.certPem);
    const e = await t.throwsAsync(ca.issue('default', 'echo', { ttlSeconds: 60 }));
    t.is((e as MeshbenchError).code, 'E_INPUT');
  });

  test(`${keyType}: files stay inside dir with private modes`, async (t) => {
    const parent = await tmpDir(t);
    const dir = path.join(parent, 'nested', 'ca');
    const ca = await createMeshCA({ dir, keyType });
    const ids = [await ca.issue('default', 'echo'), await ca.issue('prod', 'api')];
    t.deepEqual(await readdir(parent), ['nested']);
    t.deepEqual(await readdir(path.join(parent, 'nested')), ['ca']);
    t.deepEqual((await readdir(dir)).sort(), [
      'default.echo.bundle.pem',
      'default.echo.key.pem',
      'default.echo.pem',
      'prod.api.bundle.pem',
      'prod.api.key.pem',
      'prod.api.pem',
      'root.key.pem',
      'root.pem',
    ]);
    const mode = async (f: string) => (await stat(f)).mode & 0o777;
    t.is(await mode(dir), 0o700);
    t.is(await mode(path.join(dir, 'root.key.pem')), 0o600);
    t.is(ca.rootCertFile, path.join(dir, 'root.pem'));
    for (const id of ids) {
      for (const f of [id.certFile, id.keyFile, id.bundleFile]) t.is(path.dirname(f), dir);
      t.is(await mode(id.keyFile), 0o600);
      t.is(await mode(id.bundleFile), 0o600);
      t.is(await readText(id.certFile), id.certPem);
      t.is(await readText(id.keyFile), id.keyPem);
      t.is(await readText(id.bundleFile), id.certPem + id.keyPem);
      t.regex(id.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    }
    // an existing world-readable key file is replaced, not reused with its old mode
    const dir2 = path.join(parent, 'ca2');
    await createMeshCA({ dir: dir2, keyType: 'ecdsa-p256' });
    await writeFile(path.join(dir2, 'x.y.key.pem'), 'old', { mode: 0o644 });
    const ca2 = await createMeshCA({ dir: dir2, keyType: 'ecdsa-p256' });
    const xy = await ca2.issue('x', 'y');
    t.is(await mode(xy.keyFile), 0o600);
  });

  test(`${keyType}: describe() states the TLS set-up`, async (t) => {
    const ca = await sharedCA(keyType);
    const d = ca.describe();
    t.is(d.keyType, keyType);
    t.is(d.chainDepth, 1);
    t.is(d.workloadTtlSeconds, 86_400);
    t.is(d.trustDomain, 'cluster.local');
    t.regex(d.signature, keyType === 'rsa-2048' ? /sha256WithRSAEncryption/ : /ecdsa-with-SHA256/);
    t.regex(d.library, /@peculiar\/x509 1\.14\.\d+ .*OpenSSL/);
  });

  test(`${keyType}: long names (63-character labels) still verify`, async (t) => {
    const ca = await sharedCA(keyType);
    const ns = 'n'.repeat(63);
    const sa = `s${'-'.repeat(61)}a`;
    const id = await ca.issue(ns, sa);
    const leaf = new X509Certificate(id.certPem);
    t.is(leaf.subjectAltName, `URI:spiffe://cluster.local/ns/${ns}/sa/${sa}`);
    t.is(leaf.subject, `CN=spiffe://cluster.local/ns/${ns}/sa/${sa}`);
    t.true(leaf.raw.toString('hex').includes(uriSanDerHex(id.spiffeId)));
    const { stdout } = await run('openssl', ['verify', '-CAfile', ca.rootCertFile, id.certFile]);
    t.regex(stdout, /: OK\n$/);
  });

  test.serial(`${keyType}: time to issue 20 identities (informational)`, async (t) => {
    const t0 = performance.now();
    const ca = await createMeshCA({ dir: path.join(await tmpDir(t), 'ca'), keyType });
    const rootMs = performance.now() - t0;
    const ids: WorkloadIdentity[] = [];
    const t1 = performance.now();
    for (let i = 0; i < 20; i++) ids.push(await ca.issue('bench', `sa-${i}`));
    const seqMs = performance.now() - t1;
    const per = ids.map((i) => i.issueMs).sort((a, b) => a - b);
    t.log(
      `${keyType}: root ${rootMs.toFixed(1)} ms; 20 identities one after another ${seqMs.toFixed(0)} ms ` +
        `(per issue: median ${per[10].toFixed(1)} ms, min ${per[0].toFixed(1)}, max ${per[19].toFixed(1)})`,
    );
    const ca2 = await createMeshCA({ dir: path.join(await tmpDir(t), 'ca'), keyType });
    const t2 = performance.now();
    await Promise.all(Array.from({ length: 20 }, (_, i) => ca2.issue('bench', `sa-${i}`)));
    t.log(`${keyType}: 20 identities concurrently ${(performance.now() - t2).toFixed(0)} ms (libuv pool ${process.env.UV_THREADPOOL_SIZE ?? 4} threads)`);
    t.is(ids.length, 20);
  });

  (hasHaproxy ? test : test.skip)(`${keyType}: HAProxy 2.6 verifies the server by CN (verifyhost) and the client by ssl_c_der`, async (t) => {
    const dir = await tmpDir(t);
    const ca = await sharedCA(keyType);
    const srv = await ca.issue('default', 'echo');
    const cli = await ca.issue('default', 'client');
    const intruder = await ca.issue('default', 'intruder');
    const foreign = await (await sharedCA(keyType, 'other')).issue('default', 'client');
    const [inPort, good, badHost, wrongPeer, foreignPort] = await freePorts(5);
    const backend = (name: string, bundle: string, host: string) =>
      `backend ${name}\n  server s 127.0.0.1:${inPort} ssl crt ${bundle} ca-file ${ca.rootCertFile} verify required verifyhost ${host}\n`;
    const frontend = (name: string, port: number) => `frontend f_${name}\n  bind 127.0.0.1:${port}\n  default_backend ${name}\n`;
    const cfg =
      `defaults\n  mode http\n  retries 0\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n` +
      `frontend inbound\n  bind 127.0.0.1:${inPort} ssl crt ${srv.bundleFile} ca-file ${ca.rootCertFile} verify required\n` +
      `  ${haproxyPeerAcl('peer_ok', cli.spiffeId)}\n` +
      `  http-request return status 403 content-type text/plain string denied if !peer_ok\n` +
      `  http-request return status 200 content-type text/plain string ok\n` +
      frontend('good', good) +
      frontend('badhost', badHost) +
      frontend('wrongpeer', wrongPeer) +
      frontend('foreign', foreignPort) +
      backend('good', cli.bundleFile, srv.spiffeId) +
      backend('badhost', cli.bundleFile, spiffeId('cluster.local', 'default', 'not-echo')) +
      backend('wrongpeer', intruder.bundleFile, srv.spiffeId) +
      backend('foreign', foreign.bundleFile, srv.spiffeId);
    const cfgFile = path.join(dir, 'haproxy.cfg');
    await writeFile(cfgFile, cfg);
    const hp = spawn('haproxy', ['-db', '-f', cfgFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    hp.stderr.on('data', (d) => (stderr += d));
    t.teardown(() => void hp.kill('SIGTERM'));
    await waitForPort(good);
    const status = async (port: number) => {
      const res = await httpGet(port);
      return res.status;
    };
    t.is(await status(good), 200, stderr);
    t.is(await status(badHost), 503); // verifyhost (CN) mismatch: handshake refused by the client proxy
    t.is(await status(wrongPeer), 403); // verified, but not the authorized SPIFFE ID
    // another run's CA: the server proxy refuses the client certificate. Under TLS 1.3 the client
    // proxy may already have sent the request, so it reports 502 (or 503 when the refusal comes first).
    const foreignStatus = await status(foreignPort);
    t.true(foreignStatus === 502 || foreignStatus === 503, `foreign client got ${foreignStatus}`);
  });
}

test('uriSanDerHex encodes [6] IMPLICIT IA5String with DER lengths', (t) => {
  t.is(uriSanDerHex('spiffe://a'), '860a' + Buffer.from('spiffe://a').toString('hex'));
  t.is(uriSanDerHex(ECHO).slice(0, 4), '8629'); // 41 characters
  const long = `spiffe://cluster.local/ns/${'n'.repeat(63)}/sa/${'s'.repeat(63)}`;
  t.is(long.length, 156);
  t.is(uriSanDerHex(long).slice(0, 6), '86819c'); // 156 > 127: long form, one length octet
  const longer = `spiffe://x/${'p'.repeat(300)}`; // 311 characters
  t.is(uriSanDerHex(longer).slice(0, 8), '86820137');
  t.is(uriSanDerHex(ECHO), uriSanDerHex(ECHO).toLowerCase());
  t.throws(() => uriSanDerHex('spiffe://é'));
  t.is(haproxyPeerAcl('peer_ok', ECHO), `acl peer_ok ssl_c_der,hex -m sub -i ${uriSanDerHex(ECHO)}`);
});

test('spiffeId formats spiffe://<td>/ns/<ns>/sa/<sa>', (t) => {
  t.is(spiffeId('cluster.local', 'default', 'echo'), ECHO);
});

test('namespace, service account and trust domain are validated', async (t) => {
  const ca = await sharedCA('ecdsa-p256');
  for (const bad of ['', 'Default', 'a.b', '-x', 'x-', 'a/b', '../etc', 'a_b', 'x'.repeat(64)]) {
    const e1 = await t.throwsAsync(ca.issue(bad, 'echo'), undefined, `namespace ${JSON.stringify(bad)}`);
    t.true(e1 instanceof MeshbenchError && e1.code === 'E_INPUT');
    const e2 = await t.throwsAsync(ca.issue('default', bad), undefined, `service account ${JSON.stringify(bad)}`);
    t.true(e2 instanceof MeshbenchError && e2.code === 'E_INPUT');
  }
  await t.notThrowsAsync(ca.issue('x'.repeat(63), '0'));
  const dir = await tmpDir(t);
  const e3 = await t.throwsAsync(createMeshCA({ dir, keyType: 'ecdsa-p256', trustDomain: 'Cluster Local' }));
  t.is((e3 as MeshbenchError).code, 'E_INPUT');
  const e4 = await t.throwsAsync(createMeshCA({ dir, keyType: 'dsa-1024' as KeyType }));
  t.is((e4 as MeshbenchError).code, 'E_INPUT');
  const e5 = await t.throwsAsync(createMeshCA({ dir, keyType: 'ecdsa-p256', workloadTtlSeconds: 0 }));
  t.is((e5 as MeshbenchError).code, 'E_INPUT');
  t.deepEqual(await readdir(dir), []); // nothing written on bad input
  const e6 = await t.throwsAsync(ca.issue('default', 'too-long', { ttlSeconds: 2 * 365 * 86_400 }));
  t.is((e6 as MeshbenchError).code, 'E_INPUT');
});

test('a custom trust domain reaches the SAN, CN and root subject', async (t) => {
  const ca = await createMeshCA({ dir: path.join(await tmpDir(t), 'ca'), keyType: 'ecdsa-p256', trustDomain: 'lab.example' });
  const id = await ca.issue('default', 'echo');
  const leaf = new X509Certificate(id.certPem);
  t.is(leaf.subjectAltName, 'URI:spiffe://lab.example/ns/default/sa/echo');
  t.is(new X509Certificate(ca.rootCertPem).subject, 'O=meshbench\nCN=meshbench root CA lab.example');
});

// ---- helpers ----

async function readText(f: string): Promise<string> {
  return (await import('node:fs/promises')).readFile(f, 'utf8');
}

interface HandshakeResult {
  data: string;
  serverSaw: string[];
  serverErrors: string[];
  clientError?: string;
  clientSawServer?: string;
}

/** One mTLS exchange: the server (identity `server`, trusting only `ca`) answers verified clients. */
async function handshake(ca: MeshCA, server: WorkloadIdentity, client: { bundlePem?: string }): Promise<HandshakeResult> {
  const bundle = await readText(server.bundleFile);
  const serverSaw: string[] = [];
  const serverErrors: string[] = [];
  const srv = tls.createServer({ cert: bundle, key: bundle, ca: ca.rootCertPem, requestCert: true, rejectUnauthorized: true }, (sock) => {
    const san = sock.getPeerCertificate().subjectaltname ?? '';
    serverSaw.push(san);
    sock.end(`hello ${san}`);
  });
  srv.on('tlsClientError', (e) => serverErrors.push((e as NodeJS.ErrnoException).code ?? e.message));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  let clientSawServer: string | undefined;
  const res = await new Promise<{ data: string; clientError?: string }>((resolve) => {
    let data = '';
    let clientError: string | undefined;
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      ca: ca.rootCertPem,
      ...(client.bundlePem ? { cert: client.bundlePem, key: client.bundlePem } : {}),
      checkServerIdentity: (_host, cert) => {
        clientSawServer = cert.subjectaltname;
        return cert.subjectaltname === `URI:${server.spiffeId}` ? undefined : new Error(`unexpected server ${cert.subjectaltname}`);
      },
    });
    sock.setEncoding('utf8');
    sock.on('data', (d) => (data += d));
    sock.on('error', (e) => (clientError = (e as NodeJS.ErrnoException).code ?? e.message));
    sock.on('close', () => resolve({ data, clientError }));
    sock.setTimeout(5000, () => sock.destroy(new Error('timeout')));
  });
  await new Promise((resolve) => srv.close(resolve));
  return { ...res, serverSaw, serverErrors, clientSawServer };
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve) => {
          const s = net.createServer();
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

async function httpGet(port: number): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  return { status: res.status, body: await res.text() };
}

// The mesh certificate authority: one self-signed root per run and workload certificates signed by
// it (chain depth 1, one URI SAN spiffe://<td>/ns/<ns>/sa/<sa>), for sidecars, node proxies and eBPF
// mutual auth. rsa-2048 models Istio, ecdsa-p256 Linkerd. The subject CN repeats the SPIFFE ID because
// HAProxy 2.6 `verifyhost` reads only the CN; `uriSanDerHex()` lets a proxy find the URI SAN in
// `ssl_c_der`. Certificate profile and file layout: docs/ (mesh CA section).
import { webcrypto, randomBytes } from 'node:crypto';
import { mkdir, chmod, writeFile, unlink, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { MeshbenchError, inputError, runError } from '../../errors.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export type KeyType = 'rsa-2048' | 'ecdsa-p256';

export interface MeshCaOptions {
  /** Where every file goes; created (mode 0700) if missing, chmod 0700 if present. */
  dir: string;
  /** SPIFFE trust domain, default 'cluster.local'. */
  trustDomain?: string;
  keyType: KeyType;
  /** Workload certificate lifetime, default 86400 (24 h, Istio's and Linkerd's default). */
  workloadTtlSeconds?: number;
  /** Root lifetime, default 1 year. */
  rootTtlSeconds?: number;
}

export interface WorkloadIdentity {
  spiffeId: string;
  namespace: string;
  serviceAccount: string;
  certPem: string;
  keyPem: string;
  certFile: string;
  keyFile: string;
  /** Leaf certificate PEM followed by its private key PEM: what HAProxy's `crt` wants. */
  bundleFile: string;
  notBefore: Date;
  notAfter: Date;
  /** Wall time this issue() took (key generation + signing + writing). */
  issueMs: number;
  /** Serial number, lowercase hex (128 random bits; the DER INTEGER adds a 00 octet when the top bit is set). */
  serialHex: string;
  /** TTL the certificate was issued with (notAfter − issue time), seconds. */
  ttlSeconds: number;
}

export interface MeshCaDescription {
  keyType: KeyType;
  signature: string;
  chainDepth: number;
  workloadTtlSeconds: number;
  trustDomain: string;
  library: string;
  /** Extra detail for the run record. */
  rootTtlSeconds: number;
  rootSubject: string;
  identityForm: string;
}

export interface MeshCA {
  trustDomain: string;
  keyType: KeyType;
  dir: string;
  rootCertPem: string;
  /** The trust bundle for HAProxy's `ca-file`. */
  rootCertFile: string;
  /** Issue (or return the cached) identity for namespace/serviceAccount. */
  issue(namespace: string, serviceAccount: string, opts?: { ttlSeconds?: number }): Promise<WorkloadIdentity>;
  /** What the run record states about the TLS set-up: key type, signature algorithm, chain depth, TTL. */
  describe(): MeshCaDescription;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// SPIFFE trust domain: lowercase letters, digits, '.', '-', '_' (SPIFFE-ID spec §2.1).
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const SKEW_SECONDS = 60;
const DEFAULT_WORKLOAD_TTL = 86_400;
const DEFAULT_ROOT_TTL = 365 * 86_400;

interface Profile {
  keyGen: RsaHashedKeyGenParams | EcKeyGenParams;
  signing: RsaHashedImportParams | EcdsaParams;
  signature: string;
  leafUsages: x509.KeyUsageFlags;
}

const profiles: Record<KeyType, Profile> = {
  'rsa-2048': {
    keyGen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    signing: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    signature: 'sha256WithRSAEncryption (RSASSA-PKCS1-v1_5, SHA-256)',
    leafUsages: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
  },
  'ecdsa-p256': {
    keyGen: { name: 'ECDSA', namedCurve: 'P-256' },
    signing: { name: 'ECDSA', hash: 'SHA-256' },
    signature: 'ecdsa-with-SHA256 (P-256)',
    leafUsages: x509.KeyUsageFlags.digitalSignature,
  },
};

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** DER length octets (definite form). */
function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

/**
 * Hex (lowercase) of the DER encoding of this SPIFFE ID as an X.509 GeneralName
 * uniformResourceIdentifier ([6] IMPLICIT IA5String: 0x86, length, bytes). HAProxy 2.6 has no SAN
 * fetch, so a proxy authorizes a verified peer by searching `ssl_c_der,hex` for exactly this byte
 * string.
 */
export function uriSanDerHex(id: string): string {
  // IA5String is 7-bit ASCII.
  if (!/^[\x00-\x7f]*$/.test(id)) throw inputError(`SPIFFE ID ${JSON.stringify(id)} is not ASCII (IA5String)`);
  const body = Buffer.from(id, 'ascii');
  return Buffer.concat([Buffer.from([0x86, ...derLength(body.length)]), body]).toString('hex');
}

/**
 * An HAProxy 2.6 ACL line that is true when the verified client certificate carries this SPIFFE ID
 * as its URI SAN. `-i` is needed: HAProxy's `hex` converter emits uppercase. Use only on a `bind`
 * with `verify required` and this CA's root as `ca-file`.
 */
export function haproxyPeerAcl(aclName: string, id: string): string {
  if (!/^[A-Za-z0-9_.:-]+$/.test(aclName)) throw inputError(`mesh CA: ${JSON.stringify(aclName)} is not an HAProxy ACL name`);
  return `acl ${aclName} ssl_c_der,hex -m sub -i ${uriSanDerHex(id)}`;
}

function checkLabel(what: string, v: string): void {
  if (typeof v !== 'string' || !DNS_LABEL.test(v)) {
    throw inputError(
      `mesh CA: ${what} ${JSON.stringify(v)} is not a DNS label`,
      [],
      'use 1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit',
    );
  }
}

function checkTtl(what: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw inputError(`mesh CA: ${what} must be a positive whole number of seconds, got ${v}`);
}

/** Serial: 16 random bytes (the generator adds a leading 00 when the top bit is set). */
function randomSerialHex(): string {
  const b = randomBytes(16);
  if (b[0] === 0) b[0] = 1; // keep all 16 octets so every serial is a full 128-bit value
  return b.toString('hex');
}

/** Write a file that must not be readable by others: never reuse an existing inode's mode. */
async function writePrivate(file: string, data: string): Promise<void> {
  await unlink(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await writeFile(file, data, { mode: 0o600, flag: 'wx' });
  await chmod(file, 0o600);
}

async function writePublic(file: string, data: string): Promise<void> {
  await writeFile(file, data, { mode: 0o644 });
  await chmod(file, 0o644);
}

async function generateKeys(profile: Profile): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(profile.keyGen, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n';
}

function libraryVersion(): string {
  let peculiar = 'unknown';
  try {
    const require = createRequire(import.meta.url);
    peculiar = (require('@peculiar/x509/package.json') as { version: string }).version;
  } catch {
    // version is informational
  }
  return `@peculiar/x509 ${peculiar} on Node ${process.versions.node} WebCrypto (OpenSSL ${process.versions.openssl})`;
}

export async function createMeshCA(opts: MeshCaOptions): Promise<MeshCA> {
  const trustDomain = opts.trustDomain ?? 'cluster.local';
  if (!TRUST_DOMAIN.test(trustDomain)) {
    throw inputError(`mesh CA: trust domain ${JSON.stringify(trustDomain)} is not a SPIFFE trust domain`, [], 'use a-z, 0-9, ".", "-" and "_"');
  }
  const keyType = opts.keyType;
  const profile = profiles[keyType];
  if (!profile) throw inputError(`mesh CA: unknown key type ${JSON.stringify(keyType)}`, [], `use one of ${Object.keys(profiles).join(', ')}`);
  const workloadTtlSeconds = opts.workloadTtlSeconds ?? DEFAULT_WORKLOAD_TTL;
  const rootTtlSeconds = opts.rootTtlSeconds ?? DEFAULT_ROOT_TTL;
  checkTtl('workloadTtlSeconds', workloadTtlSeconds);
  checkTtl('rootTtlSeconds', rootTtlSeconds);
  if (!opts.dir) throw inputError('mesh CA: dir is required');
  const dir = path.resolve(opts.dir);

  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
  } catch (e) {
    throw runError(`mesh CA: cannot create ${dir}: ${(e as Error).message}`, e);
  }

  const rootName: x509.JsonName = [{ O: ['meshbench'] }, { CN: [`meshbench root CA ${trustDomain}`] }];
  const rootSubject = `O=meshbench, CN=meshbench root CA ${trustDomain}`;
  const rootFile = path.join(dir, 'root.pem');
  const rootKeyFile = path.join(dir, 'root.key.pem');

  let rootKeys: CryptoKeyPair;
  let rootCert: x509.X509Certificate;
  try {
    rootKeys = await generateKeys(profile);
    const now = Date.now();
    rootCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerialHex(),
      name: rootName,
      notBefore: new Date(now - SKEW_SECONDS * 1000),
      notAfter: new Date(now + rootTtlSeconds * 1000),
      keys: rootKeys,
      signingAlgorithm: profile.signing,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
  } catch (e) {
    throw runError(`mesh CA: cannot create the ${keyType} root: ${(e as Error).message}`, e);
  }
  const rootCertPem = rootCert.toString('pem') + '\n';
  const rootKeyId = (await rootCert.publicKey.getKeyIdentifier()) as ArrayBuffer;
  const aki = new x509.AuthorityKeyIdentifierExtension(Buffer.from(rootKeyId).toString('hex'));
  try {
    await writePrivate(rootKeyFile, await privateKeyPem(rootKeys.privateKey));
    await writePublic(rootFile, rootCertPem);
  } catch (e) {
    throw runError(`mesh CA: cannot write the root to ${dir}: ${(e as Error).message}`, e);
  }

  const cache = new Map<string, { ttl: number; identity: Promise<WorkloadIdentity> }>();

  async function mint(namespace: string, serviceAccount: string, ttl: number): Promise<WorkloadIdentity> {
    const t0 = performance.now();
    const id = spiffeId(trustDomain, namespace, serviceAccount);
    const keys = await generateKeys(profile);
    const now = Date.now();
    const notBefore = new Date(now - SKEW_SECONDS * 1000);
    const notAfter = new Date(now + ttl * 1000);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialHex(),
      subject: [{ CN: [id] }],
      issuer: rootCert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: profile.signing,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(profile.leafUsages, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        aki,
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }], false),
      ],
    });
    const certPem = cert.toString('pem') + '\n';
    const keyPem = await privateKeyPem(keys.privateKey);
    const base = path.join(dir, `${namespace}.${serviceAccount}`);
    const certFile = `${base}.pem`;
    const keyFile = `${base}.key.pem`;
    const bundleFile = `${base}.bundle.pem`;
    await writePublic(certFile, certPem);
    await writePrivate(keyFile, keyPem);
    await writePrivate(bundleFile, certPem + keyPem);
    return {
      spiffeId: id,
      namespace,
      serviceAccount,
      certPem,
      keyPem,
      certFile,
      keyFile,
      bundleFile,
      // X.509 times have 1-second resolution: report what the certificate says.
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      issueMs: performance.now() - t0,
      serialHex: cert.serialNumber,
      ttlSeconds: ttl,
    };
  }

  return {
    trustDomain,
    keyType,
    dir,
    rootCertPem,
    rootCertFile: rootFile,

    issue(namespace, serviceAccount, issueOpts = {}) {
      try {
        checkLabel('namespace', namespace);
        checkLabel('service account', serviceAccount);
        if (issueOpts.ttlSeconds !== undefined) checkTtl('ttlSeconds', issueOpts.ttlSeconds);
      } catch (e) {
        return Promise.reject(e);
      }
      const ttl = issueOpts.ttlSeconds ?? workloadTtlSeconds;
      if (ttl > rootTtlSeconds) {
        return Promise.reject(inputError(`mesh CA: a ${ttl} s workload TTL would outlive the ${rootTtlSeconds} s root`));
      }
      const key = `${namespace}/${serviceAccount}`;
      const hit = cache.get(key);
      if (hit) {
        if (hit.ttl !== ttl) {
          return Promise.reject(
            inputError(
              `mesh CA: ${key} was already issued with a ${hit.ttl} s TTL; asked again with ${ttl} s`,
              [],
              'ask for each identity with one TTL per run',
            ),
          );
        }
        return hit.identity;
      }
      const identity = mint(namespace, serviceAccount, ttl).catch((e: unknown) => {
        cache.delete(key);
        throw e instanceof MeshbenchError
          ? e
          : runError(`mesh CA: cannot issue ${spiffeId(trustDomain, namespace, serviceAccount)}: ${(e as Error).message}`, e);
      });
      cache.set(key, { ttl, identity });
      return identity;
    },

    describe() {
      return {
        keyType,
        signature: profile.signature,
        chainDepth: 1,
        workloadTtlSeconds,
        trustDomain,
        library: libraryVersion(),
        rootTtlSeconds,
        rootSubject,
        identityForm: 'one URI SAN spiffe://<td>/ns/<ns>/sa/<sa>; subject CN = the same SPIFFE ID (for HAProxy verifyhost)',
      };
    },
  };
}

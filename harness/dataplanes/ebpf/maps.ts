// The eBPF dataplane's map entries as bytes, laid out exactly like the structs in bpf/meshbench.h
// (x86-64: little-endian host order; addresses and ports in network order where the header says
// so), and written with one `bpftool batch file` per map set, on the machine whose kernel holds
// the maps (the batch file is kept with the case here too).
import { localPlace, putFile, type Place } from '../../place/index.js';
import { exec } from '../../util/exec.js';

class Bytes {
  private b: number[] = [];
  ip(a: string) {
    this.b.push(...a.split('.').map(Number));
    return this;
  }
  /** Network order (ports in keys). */
  be16(v: number) {
    this.b.push((v >> 8) & 255, v & 255);
    return this;
  }
  u8(v: number) {
    this.b.push(v & 255);
    return this;
  }
  u16(v: number) {
    this.b.push(v & 255, (v >> 8) & 255);
    return this;
  }
  u32(v: number) {
    for (let i = 0; i < 4; i++) this.b.push((v >>> (8 * i)) & 255);
    return this;
  }
  u64(v: bigint) {
    for (let i = 0n; i < 8n; i++) this.b.push(Number((v >> (8n * i)) & 255n));
    return this;
  }
  mac(m: string) {
    this.b.push(...m.split(':').map((x) => parseInt(x, 16)));
    return this;
  }
  pad(n: number) {
    for (let i = 0; i < n; i++) this.b.push(0);
    return this;
  }
  hex() {
    return this.b.map((x) => x.toString(16).padStart(2, '0')).join(' ');
  }
  get length() {
    return this.b.length;
  }
}

const B = () => new Bytes();

export const enc = {
  lb4Key: (vip: string, port: number, slot: number) => B().ip(vip).be16(port).u16(slot).u8(0).pad(3),
  lb4Service: (backendId: number, count: number, revNat: number) => B().u32(backendId).u16(count).u16(revNat),
  u32Key: (v: number) => B().u32(v),
  lb4Backend: (ip: string, port: number) => B().ip(ip).be16(port).u8(0).u8(0),
  ipcacheKey: (ip: string) => B().u32(32).ip(ip),
  remoteEndpoint: (identity: number, tunnelEndpoint: string | undefined, nodeId: number) =>
    B()
      .u32(identity)
      .ip(tunnelEndpoint ?? '0.0.0.0')
      .u16(nodeId)
      .pad(2),
  endpointKey: (ip: string) => B().ip(ip),
  endpointInfo: (e: { ifindex: number; epId: number; flags: number; identity: number; mac: string; nodeMac: string }) =>
    B().u32(e.ifindex).u16(e.epId).u8(e.flags).pad(1).u32(e.identity).mac(e.mac).mac(e.nodeMac),
  policyKey: (k: { epId: number; peer: number; port: number; proto: number; egress: boolean }) =>
    B()
      .u32(k.epId)
      .u32(k.peer)
      .be16(k.port)
      .u8(k.proto)
      .u8(k.egress ? 1 : 0),
  policyEntry: (e: { proxyPort?: number; deny?: boolean; authType?: number }) =>
    B()
      .u16(e.proxyPort ?? 0)
      .u8(e.deny ? 1 : 0)
      .u8(e.authType ?? 0)
      .pad(4)
      .u64(0n)
      .u64(0n),
  l7lbKey: (vip: string, port: number) => B().ip(vip).be16(port).pad(2),
  l7lbEntry: (proxyPort: number) => B().u16(proxyPort).pad(2),
  authKey: (local: number, remote: number, remoteNode: number, authType: number) => B().u32(local).u32(remote).u16(remoteNode).u8(authType).pad(1),
  authInfo: (expirationNs: bigint) => B().u64(expirationNs),
};

export const EP_F_INGRESS_ENFORCED = 0x1;
export const EP_F_EGRESS_ENFORCED = 0x2;
export const AUTH_TYPE_SPIRE = 1;

export interface MapUpdate {
  map: string; // pinned path
  key: Bytes;
  value: Bytes;
}

export const update = (map: string, key: Bytes, value: Bytes): MapUpdate => ({ map, key, value });

/** The `bpftool batch file` text for these updates. */
export const batchText = (updates: MapUpdate[]): string =>
  updates.map((u) => `map update pinned ${u.map} key hex ${u.key.hex()} value hex ${u.value.hex()}`).join('\n') + '\n';

/** Apply many updates with one bpftool process (`bpftool batch file`) on `place`. */
export async function applyUpdates(updates: MapUpdate[], batchFile: string, place: Place = localPlace): Promise<void> {
  if (!updates.length) return;
  await putFile(place, batchFile, batchText(updates));
  await exec('bpftool', ['batch', 'file', batchFile], { place });
}

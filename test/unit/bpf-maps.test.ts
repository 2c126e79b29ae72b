// The BPF map encoders (harness/dataplanes/ebpf/maps.ts) against the C layouts they must match
// byte for byte. The layouts are read from bpf/meshbench.h at test time (MB_BPF_HEADER points the
// test at another copy), offsets computed with C's alignment rules, and the map each encoder
// writes is found from the map definitions in bpf/*.c. Rootless: nothing is loaded.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { enc, EP_F_EGRESS_ENFORCED, EP_F_INGRESS_ENFORCED } from '../../harness/dataplanes/ebpf/maps.js';

const HEADER = resolve(process.env.MB_BPF_HEADER ?? 'bpf/meshbench.h');
const BPF_SOURCES = readdirSync('bpf')
  .filter((f) => f.endsWith('.c'))
  .map((f) => join('bpf', f));

interface Field {
  name: string;
  /** Size of one element: 1, 2, 4 or 8. */
  elem: number;
  count: number;
  offset: number;
  /** Multi-byte integers in network order (a __be type, or an address or port the header does not mark "host order"). */
  network: boolean;
}
interface Layout {
  name: string;
  fields: Field[];
  size: number;
}

const TYPES: Record<string, number> = { __u8: 1, __u16: 2, __u32: 4, __u64: 8, __be16: 2, __be32: 4, __s8: 1, __s16: 2, __s32: 4, __s64: 8 };
// The header's rule: "All addresses and ports are in network byte order unless a field says otherwise."
const isAddressOrPort = (name: string, comment: string) =>
  /(^|_)(address|addr|ip4|port|dport|sport)$|^(s|d)addr$|tunnel_endpoint/.test(name) || /\baddress\b/.test(comment);

/** Every struct of a C header, laid out as a C compiler does (natural alignment, tail padding). Unknown lines in a struct body throw. */
function parseStructs(text: string): Map<string, Layout> {
  const out = new Map<string, Layout>();
  for (const m of text.matchAll(/^struct (\w+) \{\n([\s\S]*?)^\};/gm)) {
    const fields: Field[] = [];
    let off = 0;
    let align = 1;
    for (const line of m[2].split('\n')) {
      if (/^\s*(\/\*.*\*\/)?\s*$/.test(line)) continue;
      const f = line.match(/^\s*(\w+)\s+(\w+)(?:\[(\d+)\])?;\s*(?:\/\*(.*?)\*\/)?\s*$/);
      if (!f || !TYPES[f[1]]) throw new Error(`struct ${m[1]}: cannot read "${line.trim()}"`);
      const elem = TYPES[f[1]];
      const comment = f[4] ?? '';
      off = Math.ceil(off / elem) * elem;
      const network = f[1].startsWith('__be') || (elem > 1 && isAddressOrPort(f[2], comment) && !/host order/.test(comment));
      fields.push({ name: f[2], elem, count: f[3] ? Number(f[3]) : 1, offset: off, network });
      off += elem * (f[3] ? Number(f[3]) : 1);
      align = Math.max(align, elem);
    }
    out.set(m[1], { name: m[1], fields, size: Math.ceil(off / align) * align });
  }
  return out;
}

/** Key and value type of every map defined in the BPF sources (`__type(key, struct x)`). */
function mapTypes(): Map<string, { key: string; value: string }> {
  const out = new Map<string, { key: string; value: string }>();
  for (const f of BPF_SOURCES)
    for (const m of readFileSync(f, 'utf8').matchAll(/struct \{([\s\S]*?)\}\s*(\w+)\s+SEC\("\.maps"\)/g)) {
      const key = m[1].match(/__type\(key,\s*([^)]+)\)/)?.[1].trim();
      const value = m[1].match(/__type\(value,\s*([^)]+)\)/)?.[1].trim();
      if (key && value) out.set(m[2], { key, value });
    }
  return out;
}

/** A C type as a layout: a struct from the header, or a scalar as one field named "(scalar)". */
function layoutOf(type: string, structs: Map<string, Layout>, scalarNetwork: boolean): Layout {
  const s = type.match(/^struct (\w+)$/);
  if (s) {
    const l = structs.get(s[1]);
    if (!l) throw new Error(`struct ${s[1]} not in ${HEADER}`);
    return l;
  }
  const size = TYPES[type];
  if (!size) throw new Error(`unknown map type ${type}`);
  return { name: type, size, fields: [{ name: '(scalar)', elem: size, count: 1, offset: 0, network: scalarNetwork }] };
}

type Value = number | bigint | string; // string: dotted IPv4 (as a 32-bit number) or a MAC (6 bytes)

/** The bytes C would hold for a field with this value. */
function fieldBytes(f: Field, v: Value): number[] {
  if (typeof v === 'string' && v.includes(':')) {
    if (f.elem !== 1 || f.count !== 6) throw new Error(`${f.name}: a MAC needs __u8[6]`);
    return v.split(':').map((x) => parseInt(x, 16));
  }
  if (f.count !== 1) throw new Error(`${f.name}: an array needs a MAC or zero`);
  let n = typeof v === 'string' ? BigInt(v.split('.').reduce((a, o) => a * 256 + Number(o), 0)) : BigInt(v);
  const le: number[] = [];
  for (let i = 0; i < f.elem; i++, n >>= 8n) le.push(Number(n & 255n));
  if (n !== 0n) throw new Error(`${f.name}: ${v} does not fit in ${f.elem} bytes`);
  return f.network ? le.reverse() : le;
}

/**
 * Where the encoded bytes differ from the layout filled with `want` (field name → value; fields
 * named pad* and padding holes must be zero; every other field needs a value). [] = they match.
 */
function compare(layout: Layout, hex: string, want: Record<string, Value>): string[] {
  const got = hex.split(' ').map((x) => parseInt(x, 16));
  const errs: string[] = [];
  if (got.length !== layout.size) errs.push(`${layout.name}: ${got.length} bytes encoded, sizeof is ${layout.size}`);
  const expected: number[] = new Array(layout.size).fill(0);
  const seen = new Set<string>();
  for (const f of layout.fields) {
    let v = want[f.name];
    if (v === undefined) {
      if (!/^pad/.test(f.name)) {
        errs.push(`${layout.name}.${f.name}: no expected value given (a new field?)`);
        continue;
      }
      v = 0;
    }
    seen.add(f.name);
    const bytes = /^pad/.test(f.name) ? new Array(f.elem * f.count).fill(0) : fieldBytes(f, v);
    bytes.forEach((b, i) => (expected[f.offset + i] = b));
    const at = got.slice(f.offset, f.offset + bytes.length);
    const show = (b: number[]) => b.map((x) => x.toString(16).padStart(2, '0')).join(' ');
    if (show(at) !== show(bytes))
      errs.push(
        `${layout.name}.${f.name} @${f.offset}: encoded ${show(at)}, header wants ${show(bytes)}${f.elem > 1 ? ` (${f.network ? 'network' : 'host'} order)` : ''}`,
      );
  }
  for (const k of Object.keys(want)) if (!seen.has(k)) errs.push(`${layout.name}: no field ${k} in the header`);
  // Padding holes the compiler inserts (not named fields) must be zero too.
  for (let i = 0; i < Math.min(got.length, layout.size); i++)
    if (expected[i] === 0 && got[i] !== 0 && !layout.fields.some((f) => i >= f.offset && i < f.offset + f.elem * f.count))
      errs.push(`${layout.name}: padding byte ${i} is ${got[i]}`);
  return errs;
}

interface Case {
  encoder: keyof typeof enc;
  map: string;
  side: 'key' | 'value';
  /** A scalar key (no struct) in network order: the header cannot say, the map's use does. */
  scalarNetwork?: boolean;
  hex: string;
  want: Record<string, Value>;
}

// Sample values with distinct bytes, so a field that moves or changes order lands wrong.
const MAC = '02:a1:b2:c3:d4:e5';
const NODE_MAC = '0e:11:22:33:44:55';
const CASES: Case[] = [
  {
    encoder: 'lb4Key',
    map: 'mb_lb4_services',
    side: 'key',
    hex: enc.lb4Key('198.18.1.2', 8080, 0x0203).hex(),
    want: { address: '198.18.1.2', dport: 8080, slot: 0x0203, proto: 0 },
  },
  {
    encoder: 'lb4Service',
    map: 'mb_lb4_services',
    side: 'value',
    hex: enc.lb4Service(0x01020304, 0x0506, 0x0708).hex(),
    want: { backend_id: 0x01020304, count: 0x0506, rev_nat_index: 0x0708 },
  },
  { encoder: 'u32Key', map: 'mb_lb4_backends', side: 'key', hex: enc.u32Key(0x0a0b0c0d).hex(), want: { '(scalar)': 0x0a0b0c0d } },
  {
    encoder: 'lb4Backend',
    map: 'mb_lb4_backends',
    side: 'value',
    hex: enc.lb4Backend('198.18.3.4', 0x1f91).hex(),
    want: { address: '198.18.3.4', port: 0x1f91, proto: 0, flags: 0 },
  },
  { encoder: 'ipcacheKey', map: 'mb_ipcache', side: 'key', hex: enc.ipcacheKey('198.18.5.6').hex(), want: { prefixlen: 32, ip4: '198.18.5.6' } },
  {
    encoder: 'remoteEndpoint',
    map: 'mb_ipcache',
    side: 'value',
    hex: enc.remoteEndpoint(0x0102, '198.19.0.7', 0x0304).hex(),
    want: { sec_identity: 0x0102, tunnel_endpoint: '198.19.0.7', node_id: 0x0304 },
  },
  {
    encoder: 'remoteEndpoint',
    map: 'mb_ipcache',
    side: 'value',
    hex: enc.remoteEndpoint(0x0102, undefined, 0).hex(),
    want: { sec_identity: 0x0102, tunnel_endpoint: 0, node_id: 0 },
  },
  { encoder: 'endpointKey', map: 'mb_lxc', side: 'key', scalarNetwork: true, hex: enc.endpointKey('198.18.7.8').hex(), want: { '(scalar)': '198.18.7.8' } },
  {
    encoder: 'endpointInfo',
    map: 'mb_lxc',
    side: 'value',
    hex: enc
      .endpointInfo({
        ifindex: 0x01020304,
        epId: 0x0506,
        flags: EP_F_INGRESS_ENFORCED | EP_F_EGRESS_ENFORCED,
        identity: 0x0708090a,
        mac: MAC,
        nodeMac: NODE_MAC,
      })
      .hex(),
    want: { ifindex: 0x01020304, ep_id: 0x0506, flags: 3, sec_identity: 0x0708090a, mac: MAC, node_mac: NODE_MAC },
  },
  {
    encoder: 'policyKey',
    map: 'mb_policy',
    side: 'key',
    hex: enc.policyKey({ epId: 0x0102, peer: 0x030405, port: 0x1f92, proto: 6, egress: true }).hex(),
    want: { ep_id: 0x0102, sec_label: 0x030405, dport: 0x1f92, protocol: 6, egress: 1 },
  },
  {
    encoder: 'policyEntry',
    map: 'mb_policy',
    side: 'value',
    hex: enc.policyEntry({ proxyPort: 0x3b2c, deny: true, authType: 2 }).hex(),
    want: { proxy_port: 0x3b2c, deny: 1, auth_type: 2, packets: 0, bytes: 0 },
  },
  {
    encoder: 'policyEntry',
    map: 'mb_policy',
    side: 'value',
    hex: enc.policyEntry({}).hex(),
    want: { proxy_port: 0, deny: 0, auth_type: 0, packets: 0, bytes: 0 },
  },
  { encoder: 'l7lbKey', map: 'mb_l7lb', side: 'key', hex: enc.l7lbKey('198.18.9.10', 0x0050).hex(), want: { address: '198.18.9.10', dport: 0x0050 } },
  { encoder: 'l7lbEntry', map: 'mb_l7lb', side: 'value', hex: enc.l7lbEntry(0x3b2d).hex(), want: { proxy_port: 0x3b2d } },
  {
    encoder: 'authKey',
    map: 'mb_auth',
    side: 'key',
    hex: enc.authKey(0x0101, 0x020202, 0x0304, 1).hex(),
    want: { local_sec_label: 0x0101, remote_sec_label: 0x020202, remote_node_id: 0x0304, auth_type: 1 },
  },
  { encoder: 'authInfo', map: 'mb_auth', side: 'value', hex: enc.authInfo(0x0102030405060708n).hex(), want: { expiration: 0x0102030405060708n } },
];

/** Every encoder case checked against a header text: the list of mismatches. */
function check(headerText: string): string[] {
  const structs = parseStructs(headerText);
  const maps = mapTypes();
  return CASES.flatMap((c) => {
    const m = maps.get(c.map);
    if (!m) return [`${c.encoder}: map ${c.map} not defined in ${BPF_SOURCES.join(', ')}`];
    return compare(layoutOf(m[c.side], structs, !!c.scalarNetwork), c.hex, c.want).map((e) => `${c.encoder} (${c.map} ${c.side}): ${e}`);
  });
}

const headerText = readFileSync(HEADER, 'utf8');

test(`every encoder writes its map's ${HEADER.endsWith('bpf/meshbench.h') ? 'bpf/meshbench.h' : HEADER} layout: each field at its offset, in its byte order, total size = sizeof`, (t) => {
  t.deepEqual(check(headerText), []);
  // Each encoder has a case: a new one cannot go unchecked.
  t.deepEqual(
    Object.keys(enc).filter((k) => !CASES.some((c) => c.encoder === k)),
    [],
  );
});

test('the parser lays structs out as C does: u64 aligned after a 4-byte tail, sizes rounded to the alignment', (t) => {
  const structs = parseStructs(headerText);
  t.true(structs.size >= 10, `${structs.size} structs`);
  t.is(structs.get('policy_entry')?.size, 24);
  t.is(structs.get('policy_entry')?.fields.find((f) => f.name === 'packets')?.offset, 8);
  const c = parseStructs('struct x {\n\t__u8 a;\n\t__u32 b;\n\t__u16 c;\n};\n').get('x')!;
  t.deepEqual(
    c.fields.map((f) => f.offset),
    [0, 4, 8],
  );
  t.is(c.size, 12);
  t.throws(() => parseStructs('struct y {\n\tint z;\n};\n'), { message: /cannot read "int z;"/ });
});

const HAVE_CLANG = spawnSync('clang', ['--version']).status === 0;
(HAVE_CLANG ? test : test.skip)(
  `every offset and sizeof the parser computes is what clang computes${HAVE_CLANG ? '' : ' (skipped: clang not installed)'}`,
  (t) => {
    // _Static_assert per field: clang refuses to compile if any computed offset or size is off.
    const structs = parseStructs(headerText);
    const dir = mkdtempSync(join(tmpdir(), 'mb-bpf-layout-'));
    const asserts = [...structs.values()].flatMap((s) => [
      `_Static_assert(sizeof(struct ${s.name}) == ${s.size}, "sizeof ${s.name}");`,
      ...s.fields.map((f) => `_Static_assert(__builtin_offsetof(struct ${s.name}, ${f.name}) == ${f.offset}, "${s.name}.${f.name}");`),
    ]);
    writeFileSync(join(dir, 'layout.c'), `#include "${HEADER}"\n${asserts.join('\n')}\n`);
    // As bpf/Makefile: linux/types.h needs the multiarch include directory for asm/types.h.
    const multiarch = spawnSync('clang', ['-print-multiarch'], { encoding: 'utf8' }).stdout.trim();
    const r = spawnSync('clang', ['-target', 'bpf', '-fsyntax-only', ...(multiarch ? [`-I/usr/include/${multiarch}`] : []), join(dir, 'layout.c')], {
      encoding: 'utf8',
    });
    t.is(r.status, 0, r.stderr);
    t.true(asserts.length > 50, `${asserts.length} assertions`);
  },
);

test('a header with a field moved, resized or added is caught', (t) => {
  const swap = (text: string, a: string, b: string) => {
    const i = text.indexOf(a);
    const j = text.indexOf(b);
    if (i < 0 || j < 0 || j !== i + a.length + 1) throw new Error(`lines not adjacent: ${a} / ${b}`);
    return text.slice(0, i) + b + '\n' + a + text.slice(j + b.length);
  };
  const mutations: [string, string][] = [
    [
      'lb4_key: dport and slot swapped',
      swap(headerText, '\t__u16 dport;     /* Service port */', '\t__u16 slot;      /* host order: 0 = the Service entry, 1..count = backend slots */'),
    ],
    [
      'policy_entry: deny and auth_type swapped',
      swap(headerText, '\t__u8 deny;', '\t__u8 auth_type;   /* non-zero = mutual authentication required (Cilium: 1 = spire) */'),
    ],
    ['endpoint_info: mac and node_mac swapped', swap(headerText, "\t__u8 mac[6];      /* the pod's eth0 */", '\t__u8 node_mac[6]; /* the host-side veth */')],
    ['auth_key: remote_node_id widened', headerText.replace('\t__u16 remote_node_id; /* host order */', '\t__u32 remote_node_id; /* host order */')],
    [
      'policy_key: dport said to be host order',
      headerText.replace('\t__u16 dport;     /* 0 = any port */', '\t__u16 dport;     /* host order; 0 = any port */'),
    ],
    [
      'remote_endpoint_info: a field added',
      headerText.replace('\t__u16 node_id;         /* host order */', '\t__u16 node_id;         /* host order */\n\t__u16 cluster_id;'),
    ],
  ];
  for (const [what, text] of mutations) {
    t.not(text, headerText, what);
    const errs = check(text);
    t.true(errs.length > 0, `${what}: not caught`);
    t.log(`${what}: ${errs[0]}`);
  }
});

test("the endpoint flags the encoders take are the header's", (t) => {
  const def = (name: string) => Number(headerText.match(new RegExp(`^#define ${name} (0x[0-9a-fA-F]+|\\d+)`, 'm'))?.[1]);
  t.is(EP_F_INGRESS_ENFORCED, def('EP_F_INGRESS_ENFORCED'));
  t.is(EP_F_EGRESS_ENFORCED, def('EP_F_EGRESS_ENFORCED'));
});

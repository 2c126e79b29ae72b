// The inventory of the `hosts` backend: which machine plays which lab node and how to reach it
// over SSH. A YAML file (`kind: Inventory`) checked like a scenario (every problem at once as
// `file:line: message`, E_INPUT), or made from `vagrant ssh-config` output. Host names are the
// topology's node names (node1, node2, … unless the topology lists its own).
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, stringify } from 'yaml';
import { z } from 'zod';
import { inputError } from '../errors.js';
import { readInputFile, safeLine, safeToJS, token, YAML_PARSE_OPTIONS, yamlErrorMessage, yamlLine } from '../util/yaml.js';
import { PROJECT_ROOT } from '../util/tools.js';
import type { SshTarget } from './ssh.js';

/** Most hosts an inventory may list (the topology's node limit). */
export const MAX_HOSTS = 250;

const dnsLabel = z.string().regex(/^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/, 'must be a lowercase DNS label (a-z, 0-9, "-", at most 32 characters)');
// A host name or an IPv4/IPv6 address; never starting with "-" (ssh would read an option).
const address = z
  .string()
  .max(253)
  .regex(
    /^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/,
    'must be a host name or an IP address',
  );
const user = z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/, 'must be a user name (a-z, 0-9, "_", ".", "-", at most 32 characters)');
// eslint-disable-next-line no-control-regex
const path = z
  .string()
  .min(1)
  .max(4096)
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not hold control characters');
const ifname = z
  .string()
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}$/, 'must be an interface name (at most 15 characters of A-Z a-z 0-9 _ . -)')
  .refine((s) => s !== '.' && s !== '..', 'must be an interface name');

export const InventoryHostSchema = z
  .object({
    /** The lab node this machine plays (a topology node name). */
    name: dnsLabel,
    address,
    user: user.default('root'),
    port: z.number().int().min(1).max(65535).default(22),
    /** Private key to log in with; relative to the inventory file. */
    identityFile: path.optional(),
    /** known_hosts checked for the host's key; relative to the inventory file. */
    knownHostsFile: path.optional(),
    /** strict (default): the key must be known; accept-new: learn it on first contact; off: never check (throwaway VMs only). */
    hostKeyChecking: z.enum(['strict', 'accept-new', 'off']).default('strict'),
    /** The interface carrying the lab's 198.18.0.0/15 underlay there (a dedicated one; teardown removes what the lab put on it). */
    labInterface: ifname.optional(),
    /** Run commands through `sudo -n`; default: when user is not root. */
    sudo: z.boolean().optional(),
    /** Where meshbench is checked out and built on that machine; default: this checkout's path (see meshbenchDirOf). */
    meshbenchDir: path.refine((p) => p.startsWith('/'), 'must be an absolute path on that machine').optional(),
    /** Run the ssh client inside this lab network namespace of this host (the test fleet's). */
    netns: z
      .string()
      .regex(/^mb[0-9a-z]{4}-[a-z0-9-]{1,24}$/, 'must be a lab network namespace (mbXXXX-…)')
      .optional(),
  })
  .strict();

export const InventorySchema = z
  .object({
    kind: z.literal('Inventory'),
    hosts: z.array(InventoryHostSchema).min(1, 'must list at least one host').max(MAX_HOSTS),
  })
  .strict();

export type InventoryHost = z.output<typeof InventoryHostSchema> & { line: number };

export interface Inventory {
  /** Where it came from (a file, or a label such as "vagrant ssh-config"), for messages. */
  file: string;
  hosts: InventoryHost[];
}

/** How the SSH runner reaches an inventory host. */
export function hostTarget(h: InventoryHost): SshTarget {
  return {
    name: h.name,
    address: h.address,
    user: h.user,
    port: h.port,
    identityFile: h.identityFile,
    knownHostsFile: h.knownHostsFile,
    hostKeyChecking: h.hostKeyChecking,
    netns: h.netns,
    sudo: h.sudo,
  };
}

/**
 * Where meshbench is on host `h`: its meshbenchDir, else this checkout's absolute path (right for
 * the test fleet, whose guests see this host's root; `vagrant ssh-config` inventories say /vagrant).
 */
export const meshbenchDirOf = (h: Pick<InventoryHost, 'meshbenchDir'>): string => h.meshbenchDir ?? PROJECT_ROOT;

const expandPath = (p: string, base: string) =>
  p === '~' ? homedir() : p.startsWith('~/') ? resolve(homedir(), p.slice(2)) : isAbsolute(p) ? p : resolve(base, p);

/** Problems that need the whole list (duplicate names and endpoints) or the disk (the key file). */
function crossChecks(hosts: InventoryHost[], at: (i: number, key: string) => string, errors: string[], checkFiles = true): void {
  const names = new Map<string, number>();
  const endpoints = new Map<string, number>();
  hosts.forEach((h, i) => {
    const prev = names.get(h.name);
    if (prev !== undefined) errors.push(`${at(i, 'name')}hosts.${i}.name: ${token(h.name)} is listed twice (also hosts.${prev})`);
    else names.set(h.name, i);
    const ep = `${h.netns ?? ''} ${h.user}@${h.address}:${h.port}`;
    const prevEp = endpoints.get(ep);
    if (prevEp !== undefined)
      errors.push(`${at(i, 'address')}hosts.${i}.address: ${token(`${h.address}:${h.port}`)} is also hosts.${prevEp}: one machine per node`);
    else endpoints.set(ep, i);
    if (h.identityFile && checkFiles) {
      let st: ReturnType<typeof statSync> | undefined;
      try {
        st = statSync(h.identityFile);
      } catch {
        /* reported below */
      }
      if (!st) errors.push(`${at(i, 'identityFile')}hosts.${i}.identityFile: ${token(h.identityFile, 80)}: file not found`);
      else if (!st.isFile()) errors.push(`${at(i, 'identityFile')}hosts.${i}.identityFile: ${token(h.identityFile, 80)}: not a regular file`);
    }
  });
}

/** "hosts.0.port: " for a zod path. */
const where = (p: PropertyKey[]) => (p.length ? `${p.map(String).join('.')}: ` : '');

function zodMessage(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string } {
  let path = issue.path as PropertyKey[];
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    message = `unknown key(s) ${issue.keys.map((k) => token(k)).join(', ')}`;
    path = [...path, issue.keys[0]];
  } else if (issue.code === 'invalid_type' && /received undefined/.test(message)) {
    message = `missing required key ${token(String(path[path.length - 1]))}`;
    path = path.slice(0, -1);
  }
  return { path, message };
}

function fail(what: string, errors: string[]): never {
  const key = (e: string) => Number(e.match(/^.*?:(\d+):/)?.[1] ?? 0);
  throw inputError(
    safeLine(`${what} is not a valid inventory`),
    [...errors].sort((a, b) => key(a) - key(b)).map((e) => safeLine(e)),
    'an inventory is `kind: Inventory` with hosts: [{name, address, user, port, identityFile, labInterface}], one per topology node',
  );
}

/** Parse and check inventory YAML text read from `file` (paths in it are relative to the file's directory). */
export function parseInventory(text: string, file: string): Inventory {
  const errors: string[] = [];
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, ...YAML_PARSE_OPTIONS });
  for (const e of doc.errors) errors.push(`${file}:${e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line}: ${yamlErrorMessage(e)}`);
  if (errors.length) fail(file, errors);
  const js = safeToJS(doc, lines);
  if (!('value' in js)) fail(file, [`${file}:${js.line}: ${js.error}`]);
  const v = js.value as { kind?: unknown } | null;
  const lineOf = (p: PropertyKey[]) => yamlLine(doc, lines, p);
  if (!v || typeof v !== 'object' || Array.isArray(v) || v.kind !== 'Inventory') {
    const has = !!v && typeof v === 'object' && 'kind' in v;
    fail(file, [
      `${file}:${has ? lineOf(['kind']) : 1}: not an inventory file: ${has ? 'kind' : 'the key "kind"'} must be Inventory${has ? '' : ' (missing)'}`,
    ]);
  }
  const r = InventorySchema.safeParse(v);
  if (!r.success) {
    for (const issue of r.error.issues.slice(0, 100)) {
      const { path: p, message } = zodMessage(issue);
      errors.push(`${file}:${lineOf(p)}: ${where(p)}${message}`);
    }
    fail(file, errors);
  }
  const base = dirname(resolve(file));
  const hosts: InventoryHost[] = r.data.hosts.map((h, i) => ({
    ...h,
    identityFile: h.identityFile && expandPath(h.identityFile, base),
    knownHostsFile: h.knownHostsFile && expandPath(h.knownHostsFile, base),
    line: lineOf(['hosts', i]),
  }));
  crossChecks(hosts, (i, k) => `${file}:${lineOf(['hosts', i, k])}: `, errors);
  if (errors.length) fail(file, errors);
  return { file, hosts };
}

/** Load an inventory file; E_INPUT with `file:line: message` for every problem. */
export function loadInventory(file: string): Inventory {
  const r = readInputFile(file);
  if ('error' in r) fail(file, [`${file}:1: ${r.error}`]);
  return parseInventory(r.text, file);
}

/**
 * The inventory hosts playing `nodes` (the topology's node names), in that order; E_INPUT at the
 * inventory's `hosts` line naming each node no host plays.
 */
export function hostsForNodes(inv: Inventory, nodes: string[]): InventoryHost[] {
  const byName = new Map(inv.hosts.map((h) => [h.name, h]));
  const missing = nodes.filter((n) => !byName.has(n));
  if (missing.length)
    throw inputError(
      `${inv.file} has no host for ${missing.length === 1 ? 'node' : 'nodes'} ${missing.map((n) => token(n)).join(', ')}`,
      [
        `${inv.file}:${inv.hosts[0]?.line ?? 1}: hosts: the topology's nodes are ${nodes.join(', ')}; the inventory names ${inv.hosts.map((h) => h.name).join(', ')}`,
      ],
      'give every topology node a host with that name',
    );
  return nodes.map((n) => byName.get(n)!);
}

/** The inventory as YAML (for a fleet's hosts, or an inventory made from `vagrant ssh-config`). */
export function renderInventory(inv: Inventory): string {
  const hosts = inv.hosts.map(({ line: _line, ...h }) => Object.fromEntries(Object.entries(h).filter(([, x]) => x !== undefined)));
  return stringify({ kind: 'Inventory', hosts });
}

/** Where the Vagrantfile puts the repository in each VM (its synced folder). */
export const VAGRANT_MESHBENCH_DIR = '/vagrant';

/**
 * Split ssh_config text into `Host` blocks, each key with its line. Keys are case-insensitive;
 * values may be quoted; `Key=value` works too.
 */
export function parseSshConfig(text: string): { host: string; line: number; keys: Map<string, { value: string; line: number }> }[] {
  const blocks: { host: string; line: number; keys: Map<string, { value: string; line: number }> }[] = [];
  text.split('\n').forEach((raw, i) => {
    const l = raw.trim();
    if (!l || l.startsWith('#')) return;
    const m = l.match(/^(\S+?)(?:\s*=\s*|\s+)(.*)$/);
    if (!m) return;
    const key = m[1].toLowerCase();
    const value = m[2].trim().replace(/^"(.*)"$/, '$1');
    if (key === 'host') blocks.push({ host: value, line: i + 1, keys: new Map() });
    else if (blocks.length && !blocks[blocks.length - 1].keys.has(key)) blocks[blocks.length - 1].keys.set(key, { value, line: i + 1 });
  });
  return blocks;
}

/**
 * An inventory from `vagrant ssh-config` output (Host, HostName, User, Port, IdentityFile,
 * StrictHostKeyChecking, UserKnownHostsFile). `source` names it in messages; `labInterface` is
 * set on every host; `meshbenchDir` too (default /vagrant, where the Vagrantfile syncs the
 * repository); `checkFiles: false` skips checking that the keys exist. Problems are E_INPUT at
 * the output's lines.
 */
export function inventoryFromSshConfig(
  text: string,
  o: { source?: string; labInterface?: string; meshbenchDir?: string; checkFiles?: boolean } = {},
): Inventory {
  const file = o.source ?? 'vagrant ssh-config';
  const errors: string[] = [];
  const hosts: InventoryHost[] = [];
  const blocks = parseSshConfig(text);
  if (!blocks.length) fail(file, [`${file}:1: no "Host" entries (is any machine up? run \`vagrant up\` first)`]);
  for (const b of blocks) {
    const k = (name: string) => b.keys.get(name);
    const strict = k('stricthostkeychecking')?.value.toLowerCase();
    const raw = {
      name: b.host,
      address: k('hostname')?.value ?? b.host,
      user: k('user')?.value,
      port: k('port') ? Number(k('port')!.value) : undefined,
      identityFile: k('identityfile')?.value,
      knownHostsFile: k('userknownhostsfile')?.value,
      hostKeyChecking: strict === 'no' || strict === 'off' ? 'off' : strict === 'accept-new' ? 'accept-new' : undefined,
      labInterface: o.labInterface,
      meshbenchDir: o.meshbenchDir ?? VAGRANT_MESHBENCH_DIR,
    };
    const lineOfKey: Record<string, number> = {
      name: b.line,
      address: k('hostname')?.line ?? b.line,
      user: k('user')?.line ?? b.line,
      port: k('port')?.line ?? b.line,
      identityFile: k('identityfile')?.line ?? b.line,
      knownHostsFile: k('userknownhostsfile')?.line ?? b.line,
    };
    const r = InventoryHostSchema.safeParse(Object.fromEntries(Object.entries(raw).filter(([, x]) => x !== undefined)));
    if (!r.success) {
      for (const issue of r.error.issues) {
        const { path: p, message } = zodMessage(issue);
        const key = String(p[0] ?? 'name');
        errors.push(`${file}:${lineOfKey[key] ?? b.line}: Host ${token(b.host)}: ${where(p)}${message}`);
      }
      continue;
    }
    hosts.push({
      ...r.data,
      identityFile: r.data.identityFile && expandPath(r.data.identityFile, process.cwd()),
      knownHostsFile: r.data.knownHostsFile && expandPath(r.data.knownHostsFile, process.cwd()),
      line: b.line,
    });
  }
  const lineOf = (i: number, key: string) => {
    const b = blocks.find((x) => x.host === hosts[i].name && x.line === hosts[i].line)!;
    const k = { address: 'hostname', identityFile: 'identityfile' }[key] ?? key;
    return `${file}:${b.keys.get(k)?.line ?? b.line}: `;
  };
  if (!errors.length) crossChecks(hosts, lineOf, errors, o.checkFiles);
  if (errors.length) fail(file, errors);
  return { file, hosts };
}

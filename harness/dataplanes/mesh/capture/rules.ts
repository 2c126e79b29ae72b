// Reading iptables rule text: the payloads the capture models generate (iptables-restore input) and
// what `iptables-save -t nat` prints back. The two spell the same rule differently: save moves
// -s/-d/-i/-o/-p to the front and the target to the end, adds the implicit `-m tcp`, writes /32 on
// host addresses and `--to-ports` for `--to-port`. `canonicalRule` maps both spellings to one key so
// a payload can be checked against the kernel's listing rule by rule, in order, per chain.

/** Chains iptables has built in; never created with -N. */
export const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** Split one rule line into words, honouring double quotes (comments) and backslash escapes. */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) cur += line[++i];
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') {
      quoted = true;
      inWord = true;
    } else if (ch === ' ' || ch === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quoted) throw new Error(`unterminated quote in rule: ${line}`);
  if (inWord) out.push(cur);
  return out;
}

export interface TableRules {
  /** User chains in the order they are declared (`-N X` or `:X - [0:0]`). */
  chains: string[];
  /** `-A` / `-I` lines in file order, counters and surrounding whitespace removed. */
  rules: string[];
}

/**
 * The nat table of an iptables-restore payload or of iptables-save output (with or without -c).
 * Comment lines, other tables and built-in chain policies are left out.
 */
export function parseTable(text: string, table = 'nat'): TableRules {
  const res: TableRules = { chains: [], rules: [] };
  let current: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = line.slice(1).trim();
      continue;
    }
    if (line === 'COMMIT') {
      current = undefined;
      continue;
    }
    if (current !== table) continue;
    const body = line.replace(/^\[\d+:\d+\]\s+/, '');
    if (body.startsWith(':')) {
      const name = body.slice(1).split(/\s+/)[0];
      if (!BUILTIN_CHAINS.has(name) && !res.chains.includes(name)) res.chains.push(name);
    } else if (/^-N\s/.test(body)) {
      const name = body.split(/\s+/)[1];
      if (!res.chains.includes(name)) res.chains.push(name);
    } else if (/^-[AI]\s/.test(body)) {
      res.rules.push(body);
    }
  }
  return res;
}

/** Packet counters per rule from `iptables-save -c` output, in file order. */
export function parseCounters(saveC: string, table = 'nat'): { rule: string; packets: number; bytes: number }[] {
  const out: { rule: string; packets: number; bytes: number }[] = [];
  let current: string | undefined;
  for (const raw of saveC.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) current = line.slice(1).trim();
    else if (line === 'COMMIT') current = undefined;
    const m = current === table ? /^\[(\d+):(\d+)\]\s+(-A\s.*)$/.exec(line) : null;
    if (m) out.push({ rule: m[3], packets: Number(m[1]), bytes: Number(m[2]) });
  }
  return out;
}

const LONG: Record<string, string> = {
  '--append': '-A',
  '--insert': '-I',
  '--source': '-s',
  '--src': '-s',
  '--destination': '-d',
  '--dst': '-d',
  '--in-interface': '-i',
  '--out-interface': '-o',
  '--protocol': '-p',
  '--jump': '-j',
  '--goto': '-g',
  '--match': '-m',
  '--destination-port': '--dport',
  '--source-port': '--sport',
  '--to-port': '--to-ports',
  '--destination-ports': '--dports',
  '--source-ports': '--sports',
};
const BASIC = new Set(['-s', '-d', '-i', '-o', '-p']);

/** The chain a rule line appends to (`-A X …` / `-I X [n] …`). */
export function ruleChain(rule: string): string {
  const t = tokenize(rule);
  const op = LONG[t[0]] ?? t[0];
  if (op !== '-A' && op !== '-I') throw new Error(`not an -A/-I rule: ${rule}`);
  return t[1];
}

/**
 * One spelling-independent key per rule: its chain plus its option groups (basic matches, each
 * match module with its options, the target with its options), sorted. Two lines with the same
 * key are the same rule to the kernel.
 */
export function canonicalRule(rule: string): string {
  const t = tokenize(rule).map((w) => LONG[w] ?? w);
  const op = t[0];
  if (op !== '-A' && op !== '-I') throw new Error(`not an -A/-I rule: ${rule}`);
  let i = 2;
  if (op === '-I' && /^\d+$/.test(t[i] ?? '')) i++;
  const groups: string[][] = [];
  let proto: string | undefined;
  let current: string[] | undefined;
  let negate = false;
  for (; i < t.length; i++) {
    const w = t[i];
    if (w === '!') {
      negate = true;
      continue;
    }
    const opt = negate ? `!${w}` : w;
    negate = false;
    const bare = opt.replace(/^!/, '');
    if (BASIC.has(bare)) {
      let v = t[++i];
      if ((bare === '-s' || bare === '-d') && /^\d+\.\d+\.\d+\.\d+$/.test(v)) v += '/32';
      if (bare === '-p') {
        proto = v;
        if (v === 'all') continue;
      }
      groups.push([`${opt} ${v}`]);
      current = undefined;
    } else if (opt === '-m' || opt === '-j' || opt === '-g') {
      const name = t[++i];
      // `-m tcp` / `-m udp` is what save writes for options of the protocol's implicit match.
      if (opt === '-m' && (name === 'tcp' || name === 'udp')) {
        current = groups.find((g) => g[0] === `-m ${name}`);
        if (!current) groups.push((current = [`-m ${name}`]));
        continue;
      }
      groups.push((current = [`${opt} ${name}`]));
    } else if (bare.startsWith('-')) {
      if (!current) {
        // An option before any -m: it belongs to the protocol's implicit match (`-p tcp --dport`).
        if (!proto) throw new Error(`option ${opt} outside any match in rule: ${rule}`);
        current = groups.find((g) => g[0] === `-m ${proto}`);
        if (!current) groups.push((current = [`-m ${proto}`]));
      }
      const vals: string[] = [];
      while (i + 1 < t.length && t[i + 1] !== '!' && !t[i + 1].startsWith('-')) vals.push(t[++i]);
      current.push(vals.length ? `${opt} ${vals.map(quoteIfNeeded).join(' ')}` : opt);
    } else {
      throw new Error(`unexpected word "${w}" in rule: ${rule}`);
    }
  }
  const keys = groups.map((g) => [g[0], ...g.slice(1).sort()].join(' ')).sort();
  return `${t[1]}: ${keys.join(' | ')}`;
}

function quoteIfNeeded(v: string): string {
  return /[\s"]/.test(v) ? JSON.stringify(v) : v;
}

/** Rules grouped by chain, each list in the order the chain evaluates them (appends only). */
export function rulesByChain(rules: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const r of rules) {
    const t = tokenize(r);
    if ((LONG[t[0]] ?? t[0]) !== '-A') throw new Error(`only -A rules can be grouped in order: ${r}`);
    const list = m.get(t[1]) ?? [];
    list.push(r);
    m.set(t[1], list);
  }
  return m;
}

/**
 * Differences between the rules a payload installs and the rules in a table listing, per chain and
 * in order (other chains in the listing are ignored). Empty when the listing holds the payload
 * exactly. Rules the payload adds to built-in chains must appear there in the same order, though
 * other rules may surround them.
 */
export function diffAgainstSave(payload: string, save: string): string[] {
  const want = parseTable(payload);
  const have = parseTable(save);
  const problems: string[] = [];
  for (const ch of want.chains) if (!have.chains.includes(ch)) problems.push(`chain ${ch} missing`);
  const haveBy = rulesByChain(have.rules);
  for (const [chain, rules] of rulesByChain(want.rules)) {
    const w = rules.map(canonicalRule);
    const h = (haveBy.get(chain) ?? []).map(canonicalRule);
    if (BUILTIN_CHAINS.has(chain)) {
      const sub = h.filter((x) => w.includes(x));
      if (JSON.stringify(sub) !== JSON.stringify(w)) problems.push(`${chain}: want [${w.join(' ; ')}] in order, have [${h.join(' ; ')}]`);
    } else if (JSON.stringify(h) !== JSON.stringify(w)) {
      const n = Math.max(w.length, h.length);
      for (let i = 0; i < n; i++) if (w[i] !== h[i]) problems.push(`${chain} rule ${i + 1}: want ${w[i] ?? '(none)'}, have ${h[i] ?? '(none)'}`);
    }
  }
  return problems;
}

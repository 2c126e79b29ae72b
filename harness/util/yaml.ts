// Reading user YAML safely, and where a YAML path is in its file, for `file:line` messages.
// Every file a scenario names is read through readInputFile: regular files only, size-capped,
// checked before anything is read, so /dev/zero, a FIFO or a directory is refused, not consumed.
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { isAlias, isCollection, isMap, isNode, isPair, isSeq, visit, type Document, type LineCounter, type Node } from 'yaml';

/** Largest input file read (scenario, topology, policy file). */
export const MAX_FILE_BYTES = 1024 * 1024;
/** Aliases a document may expand (the `yaml` library's measure; it throws past it). */
export const MAX_ALIAS_COUNT = 100;
/** Deepest nesting of maps and lists accepted (a real scenario needs < 10). */
export const MAX_DEPTH = 32;
/** Longest piece of input quoted back in a message. */
export const MAX_TOKEN = 40;

/** Options for yaml's parseDocument / parseAllDocuments. */
export const YAML_PARSE_OPTIONS = { prettyErrors: false, uniqueKeys: true } as const;

function kindOf(s: Stats): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Text of a user input file, or why it cannot be used (a message without the file's name, and
 * never any of its content). stat first, so a FIFO or device is never opened; O_NONBLOCK and
 * fstat after open close the window where the path is swapped in between.
 */
export function readInputFile(file: string, maxBytes = MAX_FILE_BYTES): { text: string } | { error: string } {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  if (!st.isFile()) return { error: `is ${kindOf(st)}, not a regular file` };
  if (st.size > maxBytes) return { error: `is ${st.size} bytes; the limit is ${maxBytes} bytes` };
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    return { error: `cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  try {
    const fst = fstatSync(fd);
    if (!fst.isFile()) return { error: `is ${kindOf(fst)}, not a regular file` };
    // Read at most one byte past the cap: a file that grows meanwhile is refused, not read whole.
    const buf = Buffer.alloc(Math.min(fst.size, maxBytes) + 1);
    let n = 0;
    for (let r = 1; r > 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, null);
    if (n > maxBytes) return { error: `is more than ${maxBytes} bytes` };
    return { text: buf.subarray(0, n).toString('utf8') };
  } catch (e) {
    return { error: `cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})` };
  } finally {
    closeSync(fd);
  }
}

/** A piece of input for a message: JSON-quoted (so control characters show as escapes), at most MAX_TOKEN characters. */
export function token(x: unknown, max = MAX_TOKEN): string {
  // Never String() an object: a YAML map with a `toString` key would throw.
  if (typeof x !== 'string') return x === null || typeof x !== 'object' ? String(x) : Array.isArray(x) ? '(a list)' : '(a map)';
  const s = x;
  const cut = [...s];
  return JSON.stringify(cut.length > max ? cut.slice(0, max).join('') + '…' : s);
}

/** One line of a message, safe to print: control characters escaped, at most `max` characters. */
export function safeLine(s: string, max = 400): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return clean.length > max ? clean.slice(0, max) + '…' : clean;
}

/** A `yaml` library error as one short line: its first line only (never a source snippet). */
export function yamlErrorMessage(e: { message: string }): string {
  return safeLine(e.message.split('\n')[0], 80);
}

/**
 * The document as plain JS, or a problem with its line: nesting deeper than MAX_DEPTH, or aliases
 * expanding past MAX_ALIAS_COUNT (billion laughs), instead of a stack overflow or an exception.
 */
export function safeToJS(doc: Document.Parsed, lines: LineCounter): { value: unknown } | { line: number; error: string } {
  const deep = tooDeep(doc);
  if (deep) return { line: deep.range ? lines.linePos(deep.range[0]).line : 1, error: `nested more than ${MAX_DEPTH} levels deep` };
  try {
    return { value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (e) {
    let at: Node | undefined;
    visit(doc, { Alias: (_k, n) => ((at = n), visit.BREAK) });
    const line = at?.range ? lines.linePos(at.range[0]).line : 1;
    const msg = /Excessive alias count/.test((e as Error).message)
      ? `aliases expand too far (more than ${MAX_ALIAS_COUNT}): not accepted`
      : yamlErrorMessage(e as Error);
    return { line, error: msg };
  }
}

/** The first collection nested deeper than MAX_DEPTH (aliases count as the depth they are written at). */
function tooDeep(doc: Document.Parsed): Node | undefined {
  const stack: [unknown, number][] = [[doc.contents, 1]];
  while (stack.length) {
    const [n, d] = stack.pop()!;
    if (!isCollection(n) || isAlias(n)) continue;
    if (d > MAX_DEPTH) return n as Node;
    for (const it of n.items as unknown[]) {
      if (isPair(it)) stack.push([it.key, d + 1], [it.value, d + 1]);
      else stack.push([it, d + 1]);
    }
  }
  return undefined;
}

/** The line of the deepest node along `path` that exists (a missing key points at its parent). */
export function yamlLine(doc: Document.Parsed, lines: LineCounter, path: readonly PropertyKey[]): number {
  let node: unknown = doc.contents;
  let line = 1;
  const at = (n: unknown) => {
    if (isNode(n) && (n as Node).range) line = lines.linePos((n as Node).range![0]).line;
  };
  at(node);
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => (isNode(it.key) ? (it.key as { value?: unknown }).value : it.key) === key);
      if (!pair) break;
      at(pair.key);
      node = pair.value;
      if (!isMap(node) && !isSeq(node)) at(node);
    } else if (isSeq(node) && typeof key === 'number' && node.items[key] !== undefined) {
      node = node.items[key];
      at(node);
    } else break;
  }
  return line;
}

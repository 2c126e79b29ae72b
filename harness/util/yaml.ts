// Where a YAML path is in its file, for `file:line` messages.
import { isMap, isNode, isSeq, type Document, type LineCounter, type Node } from 'yaml';

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

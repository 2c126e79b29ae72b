// The service dependency map of a case (Hubble UI's picture, drawn at build time): workloads as
// boxes in columns by call depth, arrows for the edges of the case's flow summary. Plain SVG
// written by hand — no vega, no script, no fonts, nothing fetched — and deterministic: positions
// come from the summary alone (plain string order breaks every tie), coordinates are rounded to
// 0.1 px, text widths are estimated from a fixed table (estimateTextWidth), and the ids (arrow
// markers) carry a per-map prefix so several maps can be inlined in one page.
//
// Layout: columns by longest call depth from the workloads nothing calls (edges that close a
// cycle are set aside first, found by a depth-first walk in string order); inside a column,
// workloads are ordered by the mean row of their callers. Forward edges are curves from the right
// side of a box to the left side of the next; edges back to the same or an earlier column run
// below the boxes; a workload calling itself gets a loop above its box.
import type { FlowEdge, FlowSummary, FlowWorkload } from '../results/types.js';
import { edgeHasDrops, edgeViaL7Proxy } from '../probes/flows.js';
import { estimateTextWidth } from './charts.js';
import { byString, esc, int } from './format.js';

const FONT = 'sans-serif';
const NAME_SIZE = 13;
const SMALL = 11;
const BOX_H = 44;
const ROW_GAP = 40;
const MARGIN = 16;
const LINE_H = 14;
const BACK_LANE = 26;

export const FLOW_COLORS = { ok: '#1a7f37', bad: '#cf222e', warn: '#9a6700' } as const;
export type EdgeState = keyof typeof FLOW_COLORS;

/** green: forwarded only; red: connections ended dropped or requests refused; amber: dropped first, then forwarded. */
export function edgeState(e: FlowEdge): EdgeState {
  if (edgeHasDrops(e)) return 'bad';
  if (Object.keys(e.droppedThenForwarded ?? {}).length) return 'warn';
  return 'ok';
}

const n1 = (x: number): string => {
  const r = Math.round(x * 10) / 10;
  return String(r === 0 ? 0 : r);
};

const counts = (r: Record<string, number> | undefined): [string, number][] => Object.entries(r ?? {}).sort((a, b) => byString(a[0], b[0]));

/** The text lines of one edge, first the port and what got through, then what did not. */
export function edgeLines(e: FlowEdge): { text: string; state: EdgeState }[] {
  const lines: { text: string; state: EdgeState }[] = [];
  const head = `${e.port}/${e.protocol}`;
  if (e.connections > 0)
    lines.push({ text: `${head} · ${int(e.forwarded)} forwarded${e.redirected ? ` (${int(e.redirected)} via L7 proxy)` : ''}`, state: 'ok' });
  else lines.push({ text: head, state: 'ok' });
  for (const [reason, n] of counts(e.dropped)) lines.push({ text: `dropped ${reason} ×${int(n)}`, state: 'bad' });
  for (const [reason, n] of counts(e.droppedThenForwarded)) lines.push({ text: `${reason} ×${int(n)}, then forwarded`, state: 'warn' });
  if (e.l7) {
    lines.push({ text: `L7 requests: ${int(e.l7.forwarded)} forwarded, ${int(e.l7.denied)} denied`, state: e.l7.denied ? 'bad' : 'ok' });
    for (const [reason, n] of counts(e.l7.dropped)) lines.push({ text: `L7 dropped ${reason} ×${int(n)}`, state: 'bad' });
  }
  return lines;
}

interface Box {
  w: FlowWorkload;
  col: number;
  row: number;
  x: number;
  y: number;
  width: number;
  title: string;
  subtitle: string;
}

export interface FlowLayout {
  /** Workload ids per column (call depth), top to bottom. */
  columns: string[][];
}

/** Columns by call depth (see the header); pure and deterministic. */
export function layoutColumns(s: FlowSummary): FlowLayout {
  const ids = [...new Set([...(s.workloads ?? []).map((w) => w.id), ...s.edges.flatMap((e) => [e.from, e.to])])].sort(byString);
  const out = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of s.edges) if (e.from !== e.to && !out.get(e.from)!.includes(e.to)) out.get(e.from)!.push(e.to);
  for (const list of out.values()) list.sort(byString);
  const indeg = new Map<string, number>(ids.map((id) => [id, 0]));
  for (const list of out.values()) for (const to of list) indeg.set(to, indeg.get(to)! + 1);

  // Depth-first from the workloads nothing calls, then from any left (cycles): edges to a workload
  // still on the walk's stack close a cycle and are left out of the depth computation.
  const state = new Map<string, 0 | 1 | 2>(ids.map((id) => [id, 0]));
  const back = new Set<string>();
  const walk = (root: string) => {
    const stack: { id: string; i: number }[] = [{ id: root, i: 0 }];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const next = out.get(top.id)![top.i++];
      if (next === undefined) {
        state.set(top.id, 2);
        stack.pop();
      } else if (state.get(next) === 1) back.add(`${top.id}\n${next}`);
      else if (state.get(next) === 0) {
        state.set(next, 1);
        stack.push({ id: next, i: 0 });
      }
    }
  };
  for (const id of ids) if (indeg.get(id) === 0 && state.get(id) === 0) walk(id);
  for (const id of ids) if (state.get(id) === 0) walk(id);

  // Longest path over what is left (a DAG), in topological order.
  const dagIn = new Map<string, number>(ids.map((id) => [id, 0]));
  for (const [from, list] of out) for (const to of list) if (!back.has(`${from}\n${to}`)) dagIn.set(to, dagIn.get(to)! + 1);
  const depth = new Map<string, number>(ids.map((id) => [id, 0]));
  const ready = ids.filter((id) => dagIn.get(id) === 0);
  while (ready.length) {
    ready.sort(byString);
    const id = ready.shift()!;
    for (const to of out.get(id)!) {
      if (back.has(`${id}\n${to}`)) continue;
      depth.set(to, Math.max(depth.get(to)!, depth.get(id)! + 1));
      dagIn.set(to, dagIn.get(to)! - 1);
      if (dagIn.get(to) === 0) ready.push(to);
    }
  }

  // A workload nothing calls sits just before the first workload it calls, not always in the
  // first column: an edge then spans one gap instead of running across the boxes in between.
  for (const id of ids) {
    if (indeg.get(id) !== 0) continue;
    const next = out
      .get(id)!
      .filter((to) => !back.has(`${id}\n${to}`))
      .map((to) => depth.get(to)!);
    if (next.length) depth.set(id, Math.max(0, Math.min(...next) - 1));
  }

  const ncols = ids.length ? Math.max(...ids.map((id) => depth.get(id)!)) + 1 : 0;
  const columns: string[][] = Array.from({ length: ncols }, () => []);
  // Rows: barycentre sweeps (Sugiyama): each column ordered by the mean position of its callers
  // (sweeping right) or of what it calls (sweeping left); positions are centred, as the columns are
  // drawn, so columns of different heights compare. Workloads with no neighbour in the compared
  // column keep their place; ties fall back to plain string order.
  const callers = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const [from, list] of out) for (const to of list) callers.get(to)!.push(from);
  for (let c = 0; c < ncols; c++) columns[c] = ids.filter((id) => depth.get(id) === c);
  const pos = new Map<string, number>();
  const place = (c: number) => columns[c]!.forEach((id, r) => pos.set(id, r - (columns[c]!.length - 1) / 2));
  for (let c = 0; c < ncols; c++) place(c);
  const order = (c: number, neighbours: (id: string) => string[]) => {
    const keyed = columns[c]!.map((id, r) => {
      const ps = neighbours(id)
        .filter((n) => depth.get(n) !== c)
        .map((n) => pos.get(n)!);
      return { id, r, k: ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : pos.get(id)! };
    });
    keyed.sort((a, b) => (a.k === b.k ? a.r - b.r : a.k < b.k ? -1 : 1));
    columns[c] = keyed.map((x) => x.id);
    place(c);
  };
  for (let pass = 0; pass < 4; pass++) {
    for (let c = 1; c < ncols; c++) order(c, (id) => callers.get(id)!);
    for (let c = ncols - 2; c >= 0; c--) order(c, (id) => out.get(id)!);
  }
  return { columns };
}

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

const overlaps = (a: Rect, b: Rect): boolean => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

function cubicAt(p: number[], t: number): [number, number] {
  const [x0, y0, x1, y1, x2, y2, x3, y3] = p as [number, number, number, number, number, number, number, number];
  const u = 1 - t;
  const a = u * u * u;
  const b = 3 * u * u * t;
  const c = 3 * u * t * t;
  const d = t * t * t;
  return [a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3];
}

/**
 * The map as one `<svg>` element. `idPrefix` makes the marker ids unique in the page
 * (letters, digits and dashes only).
 */
export function renderFlowMap(s: FlowSummary, idPrefix: string, ariaLabel = 'service dependency map'): string {
  const prefix = idPrefix.replace(/[^A-Za-z0-9-]/g, '-');
  const { columns } = layoutColumns(s);
  const byId = new Map((s.workloads ?? []).map((w) => [w.id, w]));
  const wl = (id: string): FlowWorkload => byId.get(id) ?? { id, kind: 'address', name: id, identities: [] };

  // Boxes: size from their text; columns as wide as their widest box.
  const boxes = new Map<string, Box>();
  const colWidth: number[] = [];
  columns.forEach((col, c) => {
    let widest = 0;
    col.forEach((id, r) => {
      const w = wl(id);
      const title = w.name;
      const subtitle =
        w.kind === 'workload'
          ? [w.namespace ?? '', w.pods !== undefined ? `${w.pods} pod${w.pods === 1 ? '' : 's'}` : ''].filter(Boolean).join(' · ')
          : w.kind === 'service'
            ? `${w.namespace ?? ''} · Service VIP`
            : w.kind === 'reserved'
              ? 'reserved identity'
              : 'address';
      const width = Math.max(estimateTextWidth(title, NAME_SIZE, true), estimateTextWidth(subtitle, SMALL)) + 24;
      widest = Math.max(widest, width);
      boxes.set(id, { w, col: c, row: r, x: 0, y: 0, width, title, subtitle });
    });
    colWidth[c] = widest;
  });

  // Edges grouped by (from, to): one label block per pair, one path per edge.
  const pairs = new Map<string, FlowEdge[]>();
  for (const e of s.edges) {
    const k = `${e.from}\n${e.to}`;
    pairs.set(k, [...(pairs.get(k) ?? []), e]);
  }
  const pairKeys = [...pairs.keys()].sort(byString);
  const labelOf = (list: FlowEdge[]) => list.flatMap(edgeLines);
  const labelWidth = (lines: { text: string }[]) => Math.max(0, ...lines.map((l) => estimateTextWidth(l.text, SMALL)));

  // Gap after each column: room for the widest label of the edges leaving it forward.
  const gap: number[] = columns.map(() => 120);
  for (const k of pairKeys) {
    const list = pairs.get(k)!;
    const a = boxes.get(list[0]!.from)!;
    const b = boxes.get(list[0]!.to)!;
    if (b.col > a.col) gap[a.col] = Math.max(gap[a.col]!, labelWidth(labelOf(list)) + 40);
  }

  const rowsMax = Math.max(1, ...columns.map((c) => c.length));
  // Room above the first row for loops (a workload calling itself) and their labels.
  const top = MARGIN + (s.edges.some((e) => e.from === e.to) ? 56 : 8);
  const colHeight = (c: number) => columns[c]!.length * BOX_H + (columns[c]!.length - 1) * ROW_GAP;
  const fullHeight = rowsMax * BOX_H + (rowsMax - 1) * ROW_GAP;
  let x = MARGIN;
  columns.forEach((col, c) => {
    const y0 = top + (fullHeight - colHeight(c)) / 2;
    for (const id of col) {
      const b = boxes.get(id)!;
      b.x = x + (colWidth[c]! - b.width) / 2;
      b.y = y0 + b.row * (BOX_H + ROW_GAP);
    }
    x += colWidth[c]! + (c < columns.length - 1 ? gap[c]! : 0);
  });
  let width = x + MARGIN;
  const bottomOfBoxes = top + fullHeight;

  const paths: string[] = [];
  const labels: string[] = [];
  const blocks: { x: number; y: number; w: number; h: number; lines: { text: string; state: EdgeState }[] }[] = [];
  const badges: Rect[] = [];
  let backLanes = 0;
  let backLabelRoom = 0;
  for (const k of pairKeys) {
    const list = pairs.get(k)!;
    const a = boxes.get(list[0]!.from)!;
    const b = boxes.get(list[0]!.to)!;
    const lines = labelOf(list);
    const lw = labelWidth(lines);
    let anchor: [number, number];
    const n = list.length;
    const geometry: { d: string; e: FlowEdge; l7: [number, number] }[] = [];
    if (a === b) {
      // A loop above the box.
      const cx = a.x + a.width / 2;
      list.forEach((e, i) => {
        const r = 14 + i * 8;
        const p = [cx - 12, a.y, cx - 12 - r, a.y - 20 - r, cx + 12 + r, a.y - 20 - r, cx + 12, a.y];
        geometry.push({
          d: `M${n1(p[0]!)},${n1(p[1]!)} C${n1(p[2]!)},${n1(p[3]!)} ${n1(p[4]!)},${n1(p[5]!)} ${n1(p[6]!)},${n1(p[7]!)}`,
          e,
          l7: cubicAt(p, 0.5),
        });
      });
      anchor = [cx, a.y - 30 - n * 8 - lines.length * LINE_H];
      width = Math.max(width, cx + lw / 2 + MARGIN);
    } else if (b.col > a.col) {
      list.forEach((e, i) => {
        const off = (i - (n - 1) / 2) * 8;
        const x1 = a.x + a.width;
        const y1 = a.y + BOX_H / 2 + off;
        const x2 = b.x;
        const y2 = b.y + BOX_H / 2 + off;
        const dx = (x2 - x1) / 2;
        const p = [x1, y1, x1 + dx, y1, x2 - dx, y2, x2, y2];
        geometry.push({ d: `M${n1(x1)},${n1(y1)} C${n1(p[2]!)},${n1(p[3]!)} ${n1(p[4]!)},${n1(p[5]!)} ${n1(x2)},${n1(y2)}`, e, l7: cubicAt(p, 0.8) });
      });
      // The curves are symmetric: their middle is the middle of the straight line.
      anchor = [(a.x + a.width + b.x) / 2, a.y / 2 + b.y / 2 + BOX_H / 2 - (lines.length * LINE_H) / 2];
    } else {
      // Back to the same or an earlier column: out of the bottom of a, into the bottom of b, below every box.
      const lane = bottomOfBoxes + BACK_LANE * (backLanes + 1);
      backLanes++;
      list.forEach((e, i) => {
        const off = (i - (n - 1) / 2) * 8;
        const x1 = a.x + a.width / 2 + off;
        const y1 = a.y + BOX_H;
        const x2 = b.x + b.width / 2 + off;
        const y2 = b.y + BOX_H;
        const p = [x1, y1, x1, lane, x2, lane, x2, y2];
        geometry.push({ d: `M${n1(x1)},${n1(y1)} C${n1(x1)},${n1(lane)} ${n1(x2)},${n1(lane)} ${n1(x2)},${n1(y2)}`, e, l7: cubicAt(p, 0.75) });
      });
      const mid = cubicAt([a.x + a.width / 2, a.y + BOX_H, a.x + a.width / 2, lane, b.x + b.width / 2, lane, b.x + b.width / 2, b.y + BOX_H], 0.5);
      anchor = [mid[0], mid[1] + 4];
      backLabelRoom = Math.max(backLabelRoom, mid[1] + 4 + lines.length * LINE_H - bottomOfBoxes);
    }
    const l7At = geometry.filter((g) => edgeViaL7Proxy(g.e)).map((g) => g.l7);
    for (const g of geometry) {
      const st = edgeState(g.e);
      const via = edgeViaL7Proxy(g.e);
      const tip = `${g.e.from} → ${g.e.to}: ${edgeLines(g.e)
        .map((l) => l.text)
        .join('; ')}`;
      paths.push(
        `<path class="edge edge-${st}${via ? ' edge-l7' : ''}" d="${g.d}" fill="none" stroke="${FLOW_COLORS[st]}" stroke-width="2"${via ? ' stroke-dasharray="6 4"' : ''} marker-end="url(#${prefix}-arrow-${st})"><title>${esc(tip)}</title></path>`,
      );
    }
    for (const [px, py] of l7At) {
      badges.push({ x: px - 12, y: py - 9, w: 24, h: 18 });
      paths.push(
        `<g class="l7-proxy"><rect x="${n1(px - 11)}" y="${n1(py - 8)}" width="22" height="16" rx="8" fill="#fff" stroke="#59636e"/><text x="${n1(px)}" y="${n1(py + 4)}" font-size="10" text-anchor="middle" fill="#59636e">L7</text></g>`,
      );
    }
    blocks.push({ x: anchor[0], y: anchor[1], w: lw + 8, h: lines.length * LINE_H + 4, lines });
  }

  // Labels in edge order, each moved up or down by half a line until it overlaps no box, no L7
  // mark and no label placed before it (a plain deterministic search, 40 steps each way at most).
  const obstacles: Rect[] = [...boxes.values()].map((b) => ({ x: b.x - 2, y: b.y - 2, w: b.width + 4, h: BOX_H + 4 })).concat(badges);
  let lowest = 0;
  for (const b of blocks) {
    b.x = Math.max(b.x, b.w / 2 + 4); // never off the left edge
    const rectAt = (dy: number): Rect => ({ x: b.x - b.w / 2, y: b.y + dy, w: b.w, h: b.h });
    let dy = 0;
    for (let i = 0; i <= 80; i++) {
      const cand = (i % 2 ? 1 : -1) * Math.ceil(i / 2) * (LINE_H / 2);
      const at = rectAt(cand);
      if (at.y >= 4 && !obstacles.some((o) => overlaps(o, at))) {
        dy = cand;
        break;
      }
    }
    const r = rectAt(dy);
    obstacles.push(r);
    lowest = Math.max(lowest, r.y + r.h);
    width = Math.max(width, r.x + r.w + MARGIN);
    const spans = b.lines
      .map(
        (l, i) =>
          `<tspan x="${n1(b.x)}" y="${n1(r.y + 2 + (i + 1) * LINE_H - 3)}" fill="${l.state === 'ok' ? '#1f2328' : FLOW_COLORS[l.state]}">${esc(l.text)}</tspan>`,
      )
      .join('');
    labels.push(
      `<g class="edge-label"><rect x="${n1(r.x)}" y="${n1(r.y)}" width="${n1(r.w)}" height="${n1(r.h)}" rx="3" fill="#fff" fill-opacity="0.9"/><text font-size="${SMALL}" text-anchor="middle">${spans}</text></g>`,
    );
  }

  const nodeMarkup = [...boxes.values()]
    .sort((p, q) => byString(p.w.id, q.w.id))
    .map((b) => {
      const pill = b.w.kind !== 'workload';
      const cx = b.x + b.width / 2;
      const tip = `${b.w.id}${(b.w.identities ?? []).length ? ` (identity ${b.w.identities!.join(', ')})` : ''}`;
      return `<g class="workload workload-${esc(b.w.kind)}"><title>${esc(tip)}</title><rect x="${n1(b.x)}" y="${n1(b.y)}" width="${n1(b.width)}" height="${BOX_H}" rx="${pill ? BOX_H / 2 : 6}" fill="${pill ? '#f6f8fa' : '#fff'}" stroke="${pill ? '#8c959f' : '#0969da'}" stroke-width="1.5"${pill ? ' stroke-dasharray="3 2"' : ''}/><text x="${n1(cx)}" y="${n1(b.y + 19)}" font-size="${NAME_SIZE}" font-weight="bold" text-anchor="middle" fill="#1f2328">${esc(b.title)}</text><text x="${n1(cx)}" y="${n1(b.y + 35)}" font-size="${SMALL}" text-anchor="middle" fill="#59636e">${esc(b.subtitle)}</text></g>`;
    });

  // Legend below everything.
  const legendY = Math.max(bottomOfBoxes + BACK_LANE * backLanes + Math.max(backLabelRoom, 0), lowest) + 30;
  const legendItems: [string, string][] = [
    [`<line x1="0" y1="0" x2="28" y2="0" stroke="${FLOW_COLORS.ok}" stroke-width="2"/>`, 'forwarded only'],
    [`<line x1="0" y1="0" x2="28" y2="0" stroke="${FLOW_COLORS.bad}" stroke-width="2"/>`, 'drops (connections or L7 requests)'],
    [`<line x1="0" y1="0" x2="28" y2="0" stroke="${FLOW_COLORS.warn}" stroke-width="2"/>`, 'dropped, then forwarded'],
    [`<line x1="0" y1="0" x2="28" y2="0" stroke="#59636e" stroke-width="2" stroke-dasharray="6 4"/>`, 'through the L7 proxy'],
  ];
  let lx = MARGIN;
  const legend = legendItems.map(([mark, text]) => {
    const g = `<g transform="translate(${n1(lx)},${n1(legendY)})">${mark}<text x="34" y="4" font-size="${SMALL}" fill="#59636e">${esc(text)}</text></g>`;
    lx += 34 + estimateTextWidth(text, SMALL) + 24;
    return g;
  });
  width = Math.max(width, lx + MARGIN);
  const height = legendY + 16;

  const markers = (Object.keys(FLOW_COLORS) as EdgeState[])
    .map(
      (st) =>
        `<marker id="${prefix}-arrow-${st}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="${FLOW_COLORS[st]}"/></marker>`,
    )
    .join('');
  const empty = s.edges.length === 0 ? `<text x="${MARGIN}" y="${top}" font-size="${SMALL}" fill="#59636e">no flows recorded</text>` : '';
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="flowmap" width="${n1(width)}" height="${n1(height)}" viewBox="0 0 ${n1(width)} ${n1(height)}" font-family="${FONT}" role="img" aria-label="${esc(ariaLabel)}">`,
    `<defs>${markers}</defs>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    empty,
    ...paths,
    ...nodeMarkup,
    ...labels,
    ...legend,
    '</svg>',
  ]
    .filter(Boolean)
    .join('\n');
}

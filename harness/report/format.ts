// Escaping and number formatting for the HTML report. Every piece of text taken from a run record
// goes through esc() (or jsonForScript() inside <script> elements); every figure goes through one
// of the formatters, so a unit is always shown the same way: µs and ms with 1 decimal, MiB and KiB
// with 1 decimal, seconds with 3, percentages with 1, qps with 2. Formatting is done by hand
// (no Intl/toLocaleString) so output does not depend on the host's locale or ICU data.

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Escape text for HTML element content and attribute values. A scheme separator `://` is written
 * as `&#58;//`: browsers show the same characters, but the page holds no URL a tool could take
 * for a resource to fetch (records carry tool version strings such as haproxy's home page).
 */
export function esc(v: unknown): string {
  return String(v ?? '')
    .replace(/[&<>"']/g, (ch) => ENTITIES[ch]!)
    .replace(/:\/\//g, '&#58;//');
}

/**
 * JSON for a `<script type="application/json">` element: `<`, `>`, `&` become \u escapes so the
 * text can never close the element, and `/` becomes `\/` so no `scheme://` string appears.
 * JSON.parse of the element's text gives back the value exactly.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/\//g, '\\/');
}

/**
 * For SVG text produced by vega: leave `xmlns…="http://…"` namespace attributes alone, write any
 * other `http(s)://` as `http(s)&#58;//` (record text can reach chart labels).
 */
export function defangUrls(markup: string): string {
  return markup.replace(/(xmlns(?::[\w-]+)?=")?(https?):\/\//gi, (m, ns: string | undefined, scheme: string) => (ns ? m : `${scheme}&#58;//`));
}

export const DASH = '—';

const finite = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n);

/** Thousands separators with commas, whatever the host locale. */
function group(fixed: string): string {
  const neg = fixed.startsWith('-');
  const body = neg ? fixed.slice(1) : fixed;
  const [int, frac] = body.split('.');
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return (neg ? '-' : '') + grouped + (frac !== undefined ? `.${frac}` : '');
}

/** Fixed decimals, grouped, with -0.0 shown as 0.0. */
export function fixed(n: unknown, decimals: number): string {
  if (!finite(n)) return DASH;
  let s = n.toFixed(decimals);
  if (/^-0(\.0*)?$/.test(s)) s = s.slice(1);
  return group(s);
}

export const int = (n: unknown): string => (finite(n) ? group(Math.round(n).toFixed(0)) : DASH);
export const us = (n: unknown): string => fixed(n, 1);
export const ms = (n: unknown): string => fixed(n, 1);
export const secs = (n: unknown): string => fixed(n, 3);
export const pct = (n: unknown): string => fixed(n, 1);
export const qps = (n: unknown): string => (n === 'max' ? 'max' : fixed(n, 2));
export const mibOf = (bytes: unknown): string => (finite(bytes) ? fixed(bytes / 1048576, 1) : DASH);
export const kibOf = (bytes: unknown): string => (finite(bytes) ? fixed(bytes / 1024, 1) : DASH);
export const gibOf = (bytes: unknown): string => (finite(bytes) ? fixed(bytes / 1073741824, 1) : DASH);

/** A difference in µs with its sign: +58.0, −12.5 (U+2212), +0.0. */
export function signedUs(n: unknown): string {
  if (!finite(n)) return DASH;
  const r = Math.round(n * 10) / 10;
  if (r === 0) return '+0.0';
  return (r > 0 ? '+' : '\u2212') + fixed(Math.abs(r), 1);
}

export { byString } from '../util/order.js';

/** The pages' shared palette, type and headings (the run report and the trend page start their CSS with it). */
export const BASE_CSS = `:root{--fg:#1f2328;--muted:#59636e;--line:#d0d7de;--soft:#f6f8fa;--accent:#0969da;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:1.7rem;margin:.1rem 0 .4rem}
h2{font-size:1.3rem;margin:2.2rem 0 .6rem;padding-bottom:.25rem;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
code{font:.9em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--soft);padding:.05em .3em;border-radius:4px}
`;

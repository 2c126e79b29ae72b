// Plain code-unit string order, the one comparator every sorted listing uses: independent of the
// host's locale and ICU data, so output order (reports, flow summaries, role lists) is the same
// everywhere.
export const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
